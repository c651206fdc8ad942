"""Prompt templates for decoder LMs used as encoders (``thesis-methods.md`` section 6).

A :class:`PromptTemplate` builds the exact input string for a text::

    instruction + input_slot.replace("{text}", text) + suffix [+ eos_token if append_eos]

with no separators added (presets hold their own). When ``system`` is set or
``add_generation_prompt`` is True, that string is the user turn of the
tokenizer's chat template (a system turn first when ``system`` is set, the
assistant turn opened when ``add_generation_prompt``), the text inserted
verbatim. :meth:`PromptTemplate.render` also returns the character span of the
text, which ``mean_excl_prompt`` pooling uses. The encoder that runs a
template is :class:`contrastkit.encoders.decoder.DecoderEncoder`.

Example::

    t = PromptTemplate.preset("prompteol")
    t.render("a cat", tokenizer).text   # 'This sentence: "a cat" means in one word:"'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from transformers import PreTrainedTokenizerBase

from contrastkit.encoders.pooling import check_pooling

DecoderPooling = Literal["last", "mean", "mean_excl_prompt"]
DECODER_POOLINGS: tuple[DecoderPooling, ...] = ("last", "mean", "mean_excl_prompt")
_SENTINEL = "\ue000contrastkit-input\ue000"

GEN2EMBED_SYSTEM = (
    "Given an image, summarize the provided image in one word. Given only text, describe the text in one word."
)
"""Level-1 (system) instruction of the hierarchical prompt (Ju & Lee, arXiv 2508.00955)."""

GRACE_SYSTEM = (
    "First reason about the given text step by step inside <think></think>, "
    "then give a comprehensive understanding of the text."
)
"""System prompt of the rationale preset: our wording of GRACE's (Sun et al., arXiv 2510.04506); the exact
string was not recovered (thesis-methods.md section 6 gives only its content)."""


@dataclass(frozen=True)
class PromptTemplate:
    """How a decoder LM reads a text and which states are pooled; see the module docstring.

    Presets (:meth:`preset`): ``prompteol`` (PromptEOL, ``This sentence:
    "{text}" means in one word:"``, last token), ``hierarchical`` (Ju & Lee
    2025), ``rationale`` (GRACE, Sun et al. 2025), ``e5_mistral``, ``gritlm``
    (the formats of ``thesis-methods.md`` section 3).
    """

    system: str | None = None
    instruction: str = ""
    input_slot: str = "{text}"
    suffix: str = ""
    add_generation_prompt: bool = False
    generate: bool = False
    max_new_tokens: int = 2048
    temperature: float = 1.0
    top_p: float = 1.0
    max_input_tokens: int | None = None
    append_eos: bool = False
    pooling: DecoderPooling = "last"
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.input_slot.count("{text}") != 1:
            raise ValueError(f"input_slot must contain '{{text}}' exactly once, got {self.input_slot!r}")
        check_pooling(self.pooling, DECODER_POOLINGS)
        if self.max_new_tokens < 1 or self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("need max_new_tokens >= 1, temperature >= 0 and 0 < top_p <= 1")

    @property
    def uses_chat(self) -> bool:
        """Whether the input goes through the tokenizer's chat template."""
        return self.system is not None or self.add_generation_prompt

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PromptTemplate:
        """A named preset (``prompteol``, ``hierarchical``, ``rationale``, ``e5_mistral``, ``gritlm``)."""
        if name not in PRESETS:
            raise ValueError(f"unknown template preset {name!r}; choose one of {', '.join(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    @classmethod
    def hierarchical(cls, task_instruction: str = "") -> PromptTemplate:
        """Preset 1: system = the modality-generic instruction; user = task instruction, newline, input."""
        return cls.preset("hierarchical", instruction=f"{task_instruction}\n" if task_instruction else "")

    @classmethod
    def e5_mistral(cls, task_instruction: str = "") -> PromptTemplate:
        """E5-Mistral: ``Instruct: {i}\\nQuery: {q}`` + EOS, last token (documents: no prefix)."""
        return cls.preset(
            "e5_mistral", instruction=f"Instruct: {task_instruction}\nQuery: " if task_instruction else ""
        )

    @classmethod
    def gritlm(cls, task_instruction: str = "") -> PromptTemplate:
        """GritLM: queries ``<|user|>\\n{i}\\n<|embed|>\\n``, documents ``<|embed|>\\n``; mean over the text."""
        prefix = f"<|user|>\n{task_instruction}\n<|embed|>\n" if task_instruction else "<|embed|>\n"
        return cls.preset("gritlm", instruction=prefix)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptTemplate:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown PromptTemplate fields {unknown}")
        return cls(**data)

    def render(self, text: str, tokenizer: PreTrainedTokenizerBase, *, instruction: str | None = None) -> Rendered:
        """The exact input string for ``text`` and the character span of ``text`` in it."""
        before, _, after = self.input_slot.partition("{text}")
        head = (self.instruction if instruction is None else instruction) + before
        tail = after + self.suffix
        if self.uses_chat:
            head, tail = self._chat_frame(head, tail, tokenizer)
        if self.append_eos:
            if tokenizer.eos_token is None:
                raise ValueError("append_eos: the tokenizer has no eos_token")
            tail += tokenizer.eos_token
        return Rendered(head + text + tail, (len(head), len(head) + len(text)))

    def _chat_frame(self, head: str, tail: str, tokenizer: PreTrainedTokenizerBase) -> tuple[str, str]:
        if not tokenizer.chat_template:
            raise ValueError("the template needs a chat format (system / add_generation_prompt): no chat_template")
        messages = [{"role": "system", "content": self.system}] if self.system is not None else []
        messages.append({"role": "user", "content": head + _SENTINEL + tail})
        rendered = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=self.add_generation_prompt
        )
        if not isinstance(rendered, str) or rendered.count(_SENTINEL) != 1:
            raise ValueError("the chat template did not insert the user text verbatim exactly once")
        new_head, _, new_tail = rendered.partition(_SENTINEL)
        return new_head, new_tail


@dataclass(frozen=True)
class Rendered:
    """A rendered input: the string and the character span of the input text in it."""

    text: str
    input_span: tuple[int, int]


PRESETS: dict[str, PromptTemplate] = {
    "prompteol": PromptTemplate(input_slot='This sentence: "{text}"', suffix=' means in one word:"', pooling="last"),
    "hierarchical": PromptTemplate(system=GEN2EMBED_SYSTEM, add_generation_prompt=True, pooling="last"),
    "rationale": PromptTemplate(
        system=GRACE_SYSTEM,
        add_generation_prompt=True,
        generate=True,
        max_new_tokens=2048,
        temperature=1.0,
        top_p=1.0,
        max_input_tokens=1024,
        pooling="mean_excl_prompt",
    ),
    "e5_mistral": PromptTemplate(append_eos=True, pooling="last"),
    "gritlm": PromptTemplate(instruction="<|embed|>\n", pooling="mean_excl_prompt"),
}
"""Named templates; the GritLM preset reproduces its format and pooling, not its bidirectional attention."""


def _text_token_ends(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [end for _, end in offsets]


def truncate_text(tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int) -> str:
    """The prefix of ``text`` made of its first ``max_tokens`` tokens (tokenized alone)."""
    ends = _text_token_ends(tokenizer, text)
    return text if len(ends) <= max_tokens else text[: ends[max_tokens - 1]] if max_tokens > 0 else ""
