"""Which objective for the SciFact retrieval recipe: the multi-positive family on held-out train queries.

SciFact's train queries are split (seeded) into 80% for training and 20% held
out as a dev set; SciFact *test* is never touched, so the choice made here does
not leak into bench/quality.py's comparison. Negatives are mined from the 80%
exactly as for the recipe (``_quality_work.prepare_mined``: all-MiniLM-L6-v2,
ranks 10-50, 5% relative margin below the lowest positive, up to
``--num-negatives`` per query). Each variant trains
``configs/recipes/retrieval_scifact.yaml`` with only the objective (and the
data layout) changed, and is scored by nDCG@10 of the dev queries over
``--dev-corpus`` SciFact documents (their relevant ones and a seeded sample), next to the untrained base model.

Variants: every multi-positive objective on the grouped layout (one row per
query, all its positives, 0..k negatives); ``infonce`` on that layout; and
``infonce`` on the peer's layout (one row per (query, positive) with one
negative, queries without a surviving negative left out), which isolates
what the layout itself is worth.

Usage::

    python bench/retrieval_objectives.py --out bench/results/retrieval_objectives.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import machine_info, report_head, save_report
from _quality_work import DATA, ROOT
from quality import cached, run_job, train_and_score

RECIPE = ROOT / "configs" / "recipes" / "retrieval_scifact.yaml"
# (label, objective, layout): layout "grouped" = the recipe's, "pairs" = the peer's
VARIANTS = (
    ("infonce, peer layout", "infonce", "pairs"),
    ("infonce", "infonce", "grouped"),
    ("jointlh", "jointlh", "grouped"),
    ("summarglh", "summarglh", "grouped"),
    ("lsepair", "lsepair", "grouped"),
    ("rand1lh", "rand1lh", "grouped"),
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "retrieval_objectives")
    p.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "runs" / "quality" / "cache" / "base",
        help="embedding cache of the base model (shared with bench/quality.py)",
    )
    p.add_argument("--num-negatives", type=int, default=2)
    p.add_argument("--dev-fraction", type=float, default=0.2)
    p.add_argument("--dev-corpus", type=int, default=2000, help="documents searched for the dev queries")
    p.add_argument("--only", nargs="*", default=None, help="variant labels to run (default: all)")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    os.chdir(ROOT)
    work = args.work.resolve()
    data = {"grouped": work / "train_grouped.jsonl", "pairs": work / "train_pairs.jsonl", "dev": work / "dev"}
    prepared = cached(work / "prepared.json", False, lambda: run_job("prepare_mined", {
        "scifact": str(DATA / "scifact"), "model": "all-MiniLM-L6-v2", "cache_dir": str(args.cache),
        "num_negatives": args.num_negatives, "range_min": 10, "range_max": 50, "relative_margin": 0.05,
        "seed": 0, "dev_fraction": args.dev_fraction, "dev_corpus": args.dev_corpus,
        "pairs": str(data["pairs"]), "grouped": str(data["grouped"]), "dev": str(data["dev"]),
    }, args.timeout))  # fmt: skip
    sets = [["SciFact train-dev", "retrieval", str(data["dev"]), "dev", "ndcg@10", {}]]
    rows = []
    base = cached(work / "base.json", False, lambda: run_job("evaluate", {
        "model": "all-MiniLM-L6-v2", "sets": sets, "cache_dir": str(args.cache)}, args.timeout))  # fmt: skip
    rows.append(("all-MiniLM-L6-v2 (untrained)", "-", "-", base["scores"]["SciFact train-dev"], None))
    for label, objective, layout in VARIANTS:
        if args.only and label not in args.only:
            continue
        slug = label.replace(", ", "_").replace(" ", "_")
        spec = {
            "config": str(RECIPE),
            "overrides": [f"objective.name={objective}", f"data.train={json.dumps([str(data[layout])])}",
                          f"train.output_dir={work / slug}", "train.progress=false", "train.tensorboard=false"],
        }  # fmt: skip
        trained, scored = train_and_score(work, slug, spec, sets, args.timeout)
        rows.append((label, objective, layout, scored["scores"]["SciFact train-dev"], trained["train_s"]))
    text = report(rows, prepared, args, " ".join(["python", "bench/retrieval_objectives.py", *(argv or sys.argv[1:])]))
    print(text)
    save_report(text, args.out)


def report(rows: list[tuple], prepared: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    lines = [
        *report_head("## SciFact retrieval recipe: which objective (held-out train queries)", command, machine_info()),
        f"Train: {prepared['queries']} SciFact train queries ({prepared['no_negative']} without a negative that "
        f"passes the filters; peer layout: {prepared['pairs']} rows), up to {args.num_negatives} mined negatives. "
        f"Dev: the other {prepared['dev']} train queries, nDCG@10 x 100 over {args.dev_corpus} documents (their "
        "relevant ones and a seeded sample of the rest of the corpus). Everything else as "
        "configs/recipes/retrieval_scifact.yaml.",
        "",
        "| variant | objective | layout | dev nDCG@10 | train s |",
        "|---|---|---|---:|---:|",
    ]
    for label, objective, layout, score, seconds in rows:
        lines.append(
            f"| {label} | {objective} | {layout} | {score:.2f} | {'-' if seconds is None else f'{seconds:.0f}'} |"
        )
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    main()
