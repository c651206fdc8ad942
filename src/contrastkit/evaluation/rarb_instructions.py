"""RAR-b instructions: the exact instruction string of each task, and how a query carries it.

Strings as in the RAR-b code (thesis-methods.md section 3), keyed by the RAR-b
dataset key; :func:`instruction_for` also accepts MTEB task names and RAR-b
folder names.
"""

from __future__ import annotations

from typing import Literal

_SIQA = "Given the following context and question, retrieve the correct answer."
RARB_INSTRUCTIONS: dict[str, str] = {
    "alphanli": "Given the following start and end of a story, retrieve a possible reason that leads to the end.",
    "hellaswag": "Given the following unfinished context, retrieve the most plausible ending to finish it.",
    "winogrande": (
        "Given the following sentence, retrieve an appropriate answer to fill in the missing underscored part."
    ),
    "piqa": "Given the following goal, retrieve a possible solution.",
    "siqa": _SIQA,
    "arc-challenge": "Retrieve the answer to the question.",
    "quail": _SIQA,
    "spartqa": "Given the following spatial reasoning question, retrieve the right answer.",
    "tempreason-l1": "Given the following question about time, retrieve the correct answer.",
    **{f"tempreason-l{n}-pure": "Given the following question, retrieve the correct answer." for n in (2, 3)},
    **{f"tempreason-l{n}-fact": "Given the following question and facts, retrieve the correct answer." for n in (2, 3)},
    **{
        f"tempreason-l{n}-context": "Given the following question, facts and contexts, retrieve the correct answer."
        for n in (2, 3)
    },
    "math-pooled": "Retrieve the answer for the following math problem.",
    "humanevalpack-mbpp-pooled": "Retrieve the answer for the following coding problem.",
    "c-sts": "Retrieve an aspect and a sentence which are similar to the following sentence.",
}
# other spellings (MTEB task names, RAR-b folder/file names) -> RAR-b key
_ALIASES = {
    "physicaliqa": "piqa", "socialiqa": "siqa", "arcchallenge": "arc-challenge", "rarbmath": "math-pooled",
    "rarbcode": "humanevalpack-mbpp-pooled", "csts": "c-sts", "tr1": "tempreason-l1", "tempreasonl1": "tempreason-l1",
    **{f"tempreasonl{n}{kind}": f"tempreason-l{n}-{kind}" for n in (2, 3) for kind in ("pure", "fact", "context")},
    **{f"tr{n}-{kind}": f"tempreason-l{n}-{kind}" for n in (2, 3) for kind in ("pure", "fact", "context")},
}  # fmt: skip

InstructionMode = bool | Literal["both"]
MODE_SUFFIX = {False: "", True: "/instruction"}


def instruction_for(task: str) -> str:
    """The RAR-b instruction of ``task``: a RAR-b key, an MTEB task name or a RAR-b folder name, any case.

    Raises:
        KeyError: an unknown task (the message lists the known keys).
    """
    key = task.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, _ALIASES.get(key.replace("-", ""), key))
    if key not in RARB_INSTRUCTIONS:
        raise KeyError(f"no RAR-b instruction for task {task!r}; known: {', '.join(sorted(RARB_INSTRUCTIONS))}")
    return RARB_INSTRUCTIONS[key]


def with_instruction(instruction: str | None, query: str) -> str:
    """The RAR-b query text: ``(instruction + " " + query).strip()``, or the query itself without instruction."""
    return query if instruction is None else f"{instruction} {query}".strip()
