"""PIQA as training data: a seeded-hash split into training triplets, a dev folder and an evaluation folder.

The shared ``piqa`` folder is PIQA's validation split as retrieval (query = goal,
corpus = every solution, one relevant document per query) plus the original
files (``original/valid.jsonl``: goal, sol1, sol2; ``original/valid-labels.lst``).
PIQA has no other split here, so training on it needs a split of its own.
:func:`split_piqa` assigns every question to one part by a hash of
``(seed, its goal text)``: questions that share a goal text (1838 questions,
1803 distinct goals) always land in the same part, so no evaluation goal is
ever trained on. With the default fractions:

* ``eval/`` (about 50%): a BEIR folder with the whole corpus and only these
  questions' queries and ``qrels/test.tsv``: report PIQA numbers on it only,
  and say they are on this half;
* ``dev/`` (about 10%): the same with ``qrels/dev.tsv``, for choosing
  checkpoints during training (never trained on, never reported as a test
  number);
* ``train.jsonl`` (about 40%): one triplet per question, ``{"anchor": goal,
  "positive": the correct solution, "negative": the other solution}``, the
  reasoning-as-retrieval training task (thesis ch. 6).

``meta.json`` records the seed, fractions, counts and source. The output is
written to a temporary sibling folder and renamed into place. The split is a
pure function of the source files and the seed.

Command line::

    python -m contrastkit.data.piqa_split ../shared/data/piqa runs/recipes/data/piqa --seed 0
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from contrastkit.data.beir import QRELS_HEADER, load_beir
from contrastkit.data.errors import DataError
from contrastkit.data.holdout import unit_hash, write_atomically

PARTS = ("eval", "dev", "train")


@dataclass(frozen=True)
class Question:
    """One PIQA question: its query id, goal, correct and wrong solution texts, and the correct doc id."""

    query_id: str
    goal: str
    positive: str
    negative: str
    doc_id: str


def part_of(goal: str, seed: int, eval_fraction: float, dev_fraction: float) -> str:
    """``eval``, ``dev`` or ``train`` for a goal text, by :func:`~contrastkit.data.holdout.unit_hash`."""
    u = unit_hash(seed, goal)
    if u < eval_fraction:
        return "eval"
    return "dev" if u < eval_fraction + dev_fraction else "train"


def read_questions(source: str | Path) -> list[Question]:
    """The questions of a shared ``piqa`` folder, checked against its qrels (a DataError names file and line)."""
    source = Path(source)
    data = load_beir(source, "test", title=False)
    original = source / "original" / "valid.jsonl"
    labels_path = source / "original" / "valid-labels.lst"
    for path in (original, labels_path):
        if not path.is_file():
            raise DataError(f"{path}: file not found (the PIQA folder keeps the original files in original/)")
    rows = [line for line in original.read_text(encoding="utf-8").splitlines() if line.strip()]
    labels = [line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(rows) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(rows)} questions in {original}")
    questions = []
    for i, (line, label) in enumerate(zip(rows, labels, strict=True)):
        where = f"{original}:{i + 1}"
        row = json.loads(line)
        if label not in ("0", "1") or not all(isinstance(row.get(k), str) for k in ("goal", "sol1", "sol2")):
            raise DataError(f"{where}: expected goal, sol1, sol2 strings and a label 0 or 1 (got label {label!r})")
        query_id = f"piqa-val-{i}"
        judged = data.qrels.get(query_id)
        if data.queries.get(query_id, "").strip() != row["goal"].strip() or not judged:
            raise DataError(f"{where}: query {query_id!r} is missing or differs in {source / 'queries.jsonl'}")
        doc_id = next(iter(judged))
        sol1, sol2 = row["sol1"].strip(), row["sol2"].strip()  # the corpus keeps the texts stripped
        good, bad = (sol1, sol2) if label == "0" else (sol2, sol1)
        if data.corpus[doc_id] != good:
            raise DataError(f"{where}: the judged document {doc_id!r} is not the labelled solution")
        questions.append(Question(query_id, data.queries[query_id], good, bad, doc_id))
    return questions


def split_piqa(
    source: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    eval_fraction: float = 0.5,
    dev_fraction: float = 0.1,
) -> dict[str, int]:
    """Write the split of ``source`` to ``out`` (see the module docstring); returns each part's question count."""
    if not (0 < eval_fraction < 1 and 0 <= dev_fraction < 1 - eval_fraction):
        raise ValueError(f"need 0 < eval_fraction < 1 and 0 <= dev_fraction < 1 - eval_fraction, got "
                         f"{eval_fraction}, {dev_fraction}")  # fmt: skip
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    source = Path(source)
    questions = read_questions(source)
    parts: dict[str, list[Question]] = {p: [] for p in PARTS}
    for q in questions:
        parts[part_of(q.goal, seed, eval_fraction, dev_fraction)].append(q)
    counts = {p: len(parts[p]) for p in PARTS}

    def write(tmp: Path) -> None:
        with (tmp / "train.jsonl").open("w", encoding="utf-8") as f:
            for q in parts["train"]:
                f.write(json.dumps({"anchor": q.goal, "positive": q.positive, "negative": q.negative}) + "\n")
        for name, split in (("eval", "test"), ("dev", "dev")):
            _write_beir(source, tmp / name, parts[name], split)
        meta = {
            "source": str(source.resolve()),
            "seed": seed,
            "eval_fraction": eval_fraction,
            "dev_fraction": dev_fraction,
            "split_key": "sha256(seed, goal text): questions sharing a goal stay together",
            "questions": counts,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    write_atomically(out, write)
    return counts


def _write_beir(source: Path, folder: Path, questions: Sequence[Question], split: str) -> None:
    (folder / "qrels").mkdir(parents=True)
    shutil.copyfile(source / "corpus.jsonl", folder / "corpus.jsonl")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for q in questions:
            f.write(json.dumps({"_id": q.query_id, "text": q.goal}) + "\n")
    with (folder / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as f:
        f.write("\t".join(QRELS_HEADER) + "\n")
        for q in questions:
            f.write(f"{q.query_id}\t{q.doc_id}\t1\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m contrastkit.data.piqa_split SOURCE OUT [--seed N]``; exit 2 on bad input, nothing written."""
    p = argparse.ArgumentParser(prog="python -m contrastkit.data.piqa_split", description=__doc__.split("\n")[0])
    p.add_argument("source", help="the shared PIQA folder (BEIR layout plus original/)")
    p.add_argument("out", help="output folder: train.jsonl, dev/, eval/, meta.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-fraction", type=float, default=0.5)
    p.add_argument("--dev-fraction", type=float, default=0.1)
    args = p.parse_args(argv)
    try:
        counts = split_piqa(
            args.source, args.out, seed=args.seed, eval_fraction=args.eval_fraction, dev_fraction=args.dev_fraction
        )
    except (DataError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
