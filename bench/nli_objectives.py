"""Which objective for the NLI recipe: variants of configs/recipes/nli_supervised.yaml scored on dev sets only.

Each variant trains the recipe with only the objective (and its temperature)
changed, for each of ``--seeds`` (the data order and the training seed both),
and is scored on the two *dev* sets of bench/quality.py (STS-B dev, SICK-R
trial; Spearman x 100). The held-out sets (STS12-14, SciFact, PIQA) are
never read here, so the choice made from this table does not leak into
bench/quality.py's comparison.

Variants: the recipe's InfoNCE (premise against every entailment and
contradiction of the batch: what sentence-transformers' MNRL computes);
symmetric InfoNCE (``clip``: the same rows plus each entailment against every
premise); the hard contrastive loss (``hard_infonce``: only each row's 16
most similar negatives in the denominator); and the recipe at twice its
learning rate. All at temperature 0.05, the scale MiniLM was trained at.
The view objectives that leave the positive out of the denominator (DCL,
DHEL) take (anchor, positive) views only, not NLI's hard negative column,
so they are not in this table.

Usage::

    python bench/nli_objectives.py --out bench/results/nli_objectives.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import machine_info, report_head, save_report
from _quality_work import ROOT
from quality import cached, run_job, train_and_score

RECIPE = ROOT / "configs" / "recipes" / "nli_supervised.yaml"
DEV_SETS = (
    ["STS-B dev", "sts", "stsb", "dev", "spearman", {}],
    ["SICK-R trial", "sts", "sickr", "trial", "spearman", {}],
)
# (label, overrides of the recipe)
VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("infonce (recipe)", ("objective.name=infonce",)),
    ("clip (symmetric)", ("objective.name=clip", "objective.learnable_temperature=false")),
    ("hard_infonce k=16", ("objective.name=hard_infonce", "objective.hparams={k: 16}")),
    ("infonce lr 1e-4", ("objective.name=infonce", "optim.lr=1.0e-4")),
)


def variant_row(args: argparse.Namespace, label: str, overrides: tuple[str, ...], seed: int) -> tuple:
    """Train and score one variant at one seed: (label, seed, STS-B dev, SICK-R trial, train s)."""
    slug = f"{label.split(' (')[0].replace(' ', '_')}_seed{seed}"
    spec = {
        "config": str(RECIPE),
        "overrides": [*overrides, "objective.temperature=0.05", f"data.seed={seed}", f"train.seed={seed}",
                      f"train.output_dir={args.work / slug}", "train.progress=false", "train.tensorboard=false"],
    }  # fmt: skip
    trained, scored = train_and_score(args.work, slug, spec, list(DEV_SETS), args.timeout)
    scores = [scored["scores"][s[0]] for s in DEV_SETS]
    return (label, seed, *scores, trained["train_s"])


def report(rows: list[tuple], base: list[float], command: str) -> str:
    lines = [
        *report_head("## NLI recipe: which objective (dev sets only)", command, machine_info()),
        "Everything as configs/recipes/nli_supervised.yaml (batch 128, 45 steps, lr 5e-5) except the objective; "
        "temperature 0.05 for all. Spearman x 100; mean over the two dev sets and over seeds.",
        "",
        "| variant | seed | STS-B dev | SICK-R trial | mean | train s |",
        "|---|---:|---:|---:|---:|---:|",
        f"| all-MiniLM-L6-v2 (untrained) | - | {base[0]:.2f} | {base[1]:.2f} | {sum(base) / 2:.2f} | - |",
    ]
    for label, seed, stsb, sick, seconds in rows:
        lines.append(f"| {label} | {seed} | {stsb:.2f} | {sick:.2f} | {(stsb + sick) / 2:.2f} | {seconds:.0f} |")
    lines += ["", "| variant | mean over seeds |", "|---|---:|"]
    for label, _ in VARIANTS:
        means = [(r[2] + r[3]) / 2 for r in rows if r[0] == label]
        if means:
            lines.append(f"| {label} | {sum(means) / len(means):.2f} |")
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "nli_objectives")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--only", nargs="*", default=None, help="variant labels to run (default: all)")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    os.chdir(ROOT)
    args.work = args.work.resolve()
    base_scores = cached(args.work / "base.json", False, lambda: run_job("evaluate", {
        "model": "all-MiniLM-L6-v2", "sets": list(DEV_SETS)}, args.timeout))["scores"]  # fmt: skip
    rows = []
    for seed in args.seeds:  # every variant at the first seed before any at the next
        rows += [variant_row(args, label, overrides, seed) for label, overrides in VARIANTS
                 if not args.only or label in args.only]  # fmt: skip
    rows.sort(key=lambda r: ([v[0] for v in VARIANTS].index(r[0]), r[1]))
    command = " ".join(["python", "bench/nli_objectives.py", *(argv or sys.argv[1:])])
    text = report(rows, [base_scores[s[0]] for s in DEV_SETS], command)
    print(text)
    save_report(text, args.out)


if __name__ == "__main__":
    main()
