"""Held-out dev queries of a BEIR split: a seeded hash assigns each query to training or dev, once and for all.

Choosing checkpoints needs dev data that training never sees and that is not
the test set. :func:`hold_out_queries` copies a BEIR folder to ``out`` and
replaces the qrels of one split (default ``train``) with two files:
``qrels/train.tsv`` (the queries kept for training) and ``qrels/dev.tsv``
(the held-out ones, about ``fraction`` of them); other splits (``test``) are
copied unchanged. A query goes to dev when ``sha256(seed, query text)``,
read as a number in [0, 1), is below ``fraction``: queries with the same
text always go together, and the split is a pure function of the seed and
the texts. Mine negatives from ``out`` with ``--split train`` and evaluate
on ``--split dev`` (``eval.retrieval_sets`` in a training config).

Command line::

    python -m contrastkit.data.holdout ../shared/data/scifact runs/recipes/data/scifact_holdout --fraction 0.15
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from contrastkit.data.beir import QRELS_HEADER, load_beir
from contrastkit.data.errors import DataError


def unit_hash(seed: int, text: str) -> float:
    """A number in [0, 1) from ``sha256(seed, text.strip())``: the same for the same seed and text, everywhere."""
    digest = hashlib.sha256(f"{seed}\x00{text.strip()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def write_atomically(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling folder, then rename it to ``target`` (replacing it)."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def hold_out_queries(
    source: str | Path, out: str | Path, *, split: str = "train", fraction: float = 0.15, seed: int = 0
) -> dict[str, int]:
    """Write ``source`` with ``split``'s queries divided into ``train`` and ``dev`` qrels; returns both counts."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    source = Path(source)
    data = load_beir(source, split, title=False)
    for name in ("train", "dev"):
        if name != split and (source / "qrels" / f"{name}.tsv").exists():
            raise DataError(f"{source}: holding out from {split!r} would overwrite its qrels/{name}.tsv")
    parts: dict[str, list[str]] = {"train": [], "dev": []}
    for query_id in data.qrels:
        parts["dev" if unit_hash(seed, data.queries[query_id]) < fraction else "train"].append(query_id)

    def write(tmp: Path) -> None:
        shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(f"{split}.tsv"))
        for name, ids in parts.items():
            lines = ["\t".join(QRELS_HEADER)]
            lines += [f"{q}\t{d}\t{g}" for q in ids for d, g in data.qrels[q].items()]
            (tmp / "qrels" / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    write_atomically(out, write)
    return {name: len(ids) for name, ids in parts.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m contrastkit.data.holdout SOURCE OUT``; exit 2 on bad input, nothing written."""
    p = argparse.ArgumentParser(prog="python -m contrastkit.data.holdout", description=__doc__.split("\n")[0])
    p.add_argument("source", help="a BEIR folder")
    p.add_argument("out", help="the copy with qrels/train.tsv and qrels/dev.tsv")
    p.add_argument("--split", default="train", help="the qrels split to divide")
    p.add_argument("--fraction", type=float, default=0.15, help="share of the queries held out as dev")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        counts = hold_out_queries(args.source, args.out, split=args.split, fraction=args.fraction, seed=args.seed)
    except (DataError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: train {counts['train']}, dev {counts['dev']} queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
