"""Distillation from the SciFact reranker: settings chosen on held-out train queries, then the recipe on test.

``--dev`` (the choice): SciFact's train queries are split (seeded, as in
bench/retrieval_objectives.py) into 80% for training and 20% held out; SciFact
*test* is never touched. Candidates and teacher scores are made exactly as
the recipe's ``# prepare:`` line makes them (all-MiniLM-L6-v2's top ``--depth``,
rescored by ``--teacher``, negatives at least ``--margin`` teacher logits below
the lowest positive, ``--num-negatives`` of them, every text scored), for the
80% only. Each variant trains ``configs/recipes/retrieval_scifact_distilled.yaml``
with a few keys changed and is scored by nDCG@10 of the dev queries over
``--dev-corpus`` documents; the rows ``infonce`` (the same data, the teacher's
scores unused) and ``infonce, MiniLM-filtered negatives`` (retrieval_scifact's
mining: ranks 10-50, 5% relative margin, 2 negatives) are the references.

``--test`` (the result): the recipe as written, trained on all 809 train queries
(its prepared file must exist), scored on bench/quality.py's sets (STS-B dev,
SICK-R trial, STS12-14, SciFact test, PIQA).

Usage::

    python bench/distill.py --dev --out bench/results/distill_dev.md
    python bench/distill.py --test --out bench/results/distill_test.md
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import machine_info, report_head, save_report
from _quality_work import DATA, EVAL_SETS, ROOT, write_beir_subset, write_jsonl_atomic
from quality import cached, run_job, train_and_score

RECIPE = ROOT / "configs" / "recipes" / "retrieval_scifact_distilled.yaml"
TEACHER = ROOT / "runs" / "recipes" / "reranker_scifact" / "final"
# (label, overrides of the recipe, data: "teacher" = teacher-cleaned and scored, "minilm" = retrieval_scifact's)
VARIANTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("infonce, MiniLM-filtered negatives", ("objective.name=infonce", "objective.hparams={}"), "minilm"),
    ("infonce", ("objective.name=infonce", "objective.hparams={}"), "teacher"),
    ("listwise_kl + infonce (recipe)", (), "teacher"),
    ("listwise_kl only", ("objective.hparams.infonce_weight=0.0",), "teacher"),
    ("listwise_kl + infonce, teacher tau 2", ("objective.hparams.teacher_temperature=2.0",), "teacher"),
    ("margin_mse + infonce", ("objective.name=margin_mse", "objective.hparams.teacher_temperature=20.0"), "teacher"),
)


def prepare_dev(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Teacher-cleaned, teacher-scored grouped rows of the 80% train queries; the 20% as a BEIR dev folder."""
    from contrastkit.encoders import load_encoder
    from contrastkit.encoders.teacher import ScoreCache, load_teacher
    from contrastkit.evaluation.cache import CachedEncoder, EmbeddingCache
    from contrastkit.mining import FilterConfig, MiningConfig, load_data, mine, to_grouped_records

    data = load_data(DATA / "scifact", split="train")
    encoder = CachedEncoder(load_encoder("all-MiniLM-L6-v2", max_length=256), EmbeddingCache(args.cache))
    teacher, identity = load_teacher(args.teacher, max_length=args.teacher_max_length)
    cache = ScoreCache(args.teacher_cache, identity)
    filters = FilterConfig(range_min=0, range_max=args.depth, absolute_margin=args.margin, relative_margin=None)
    config = MiningConfig(method="dense", num_negatives=args.num_negatives, filters=filters, depth=args.depth)
    result = mine(data, config, encoder=encoder, rescorer=lambda pairs: cache.score(teacher, pairs, save=False))
    cache.save()
    records = to_grouped_records(data, result.negatives, scores=(result.positive_scores, result.negative_scores))
    order = list(range(len(data.queries)))
    random.Random(0).shuffle(order)
    n_dev = round(args.dev_fraction * len(order))
    dev, kept = sorted(order[:n_dev]), sorted(order[n_dev:])
    write_jsonl_atomic(work / "train_teacher.jsonl", [records[q] for q in kept])
    write_beir_subset(DATA / "scifact", [data.query_ids[q] for q in dev], work / "dev", corpus_size=args.dev_corpus)
    return {
        "queries": len(kept),
        "dev": len(dev),
        "no_negative": sum(1 for q in kept if not result.negatives[q]),
        "teacher_false_negative_rate": result.quality["false_negative_rate"],
        "teacher": str(args.teacher),
    }


def run_dev(args: argparse.Namespace, work: Path) -> str:
    prepared = cached(work / "prepared.json", False, lambda: prepare_dev(args, work))
    minilm = cached(work / "prepared_minilm.json", False, lambda: run_job("prepare_mined", {
        "scifact": str(DATA / "scifact"), "model": "all-MiniLM-L6-v2", "cache_dir": str(args.cache),
        "num_negatives": 2, "range_min": 10, "range_max": 50, "relative_margin": 0.05, "seed": 0,
        "dev_fraction": args.dev_fraction, "dev_corpus": args.dev_corpus, "pairs": str(work / "train_pairs.jsonl"),
        "grouped": str(work / "train_minilm.jsonl"), "dev": str(work / "dev"),
    }, args.timeout))  # fmt: skip
    files = {"teacher": work / "train_teacher.jsonl", "minilm": work / "train_minilm.jsonl"}
    sets = [["SciFact train-dev", "retrieval", str(work / "dev"), "dev", "ndcg@10", {}]]
    base = cached(work / "base.json", False, lambda: run_job("evaluate", {
        "model": "all-MiniLM-L6-v2", "sets": sets, "cache_dir": str(args.cache)}, args.timeout))  # fmt: skip
    rows = [("all-MiniLM-L6-v2 (untrained)", "-", base["scores"]["SciFact train-dev"], None)]
    for label, overrides, layout in VARIANTS:
        if args.only and label not in args.only:
            continue
        slug = "".join(c if c.isalnum() else "_" for c in label)
        spec = {"config": str(RECIPE), "overrides": [
            *overrides, f"data.train={json.dumps([str(files[layout])])}", f"train.output_dir={work / slug}",
            "train.progress=false", "train.tensorboard=false"]}  # fmt: skip
        trained, scored = train_and_score(work, slug, spec, sets, args.timeout)
        rows.append((label, layout, scored["scores"]["SciFact train-dev"], trained["train_s"]))
    lines = [
        f"Train: {prepared['queries']} SciFact train queries ({prepared['no_negative']} without a negative that the "
        f"teacher leaves), teacher {prepared['teacher']} (its false-negative estimate of the mined negatives "
        f"{prepared['teacher_false_negative_rate']:.3f}); MiniLM-filtered layout: {minilm['queries']} queries. Dev: "
        f"the other {prepared['dev']} train queries, nDCG@10 x 100 over {args.dev_corpus} documents.",
        "",
        "| variant | negatives | dev nDCG@10 | train s |",
        "|---|---|---:|---:|",
    ]
    for label, layout, score, seconds in rows:
        lines.append(f"| {label} | {layout} | {score:.2f} | {'-' if seconds is None else f'{seconds:.0f}'} |")
    return "\n".join(lines)


def run_test(args: argparse.Namespace, work: Path) -> str:
    spec = {"config": str(RECIPE), "overrides": [
        f"train.output_dir={work / 'recipe'}", "train.progress=false", "train.tensorboard=false"]}  # fmt: skip
    sets = [list(s) for s in EVAL_SETS]
    trained, scored = train_and_score(work, "recipe", spec, sets, args.timeout)
    head = "| model | " + " | ".join(s[0] for s in EVAL_SETS) + " | train s |"
    row = " | ".join(f"{scored['scores'][s[0]]:.2f}" for s in EVAL_SETS)
    return "\n".join(
        [head, "|---|" + "---:|" * (len(EVAL_SETS) + 1), f"| distilled | {row} | {trained['train_s']:.0f} |"]
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dev", action="store_true", help="choose settings on held-out train queries")
    p.add_argument("--test", action="store_true", help="train the recipe and score it on the quality sets")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "distill")
    p.add_argument("--cache", type=Path, default=ROOT / "runs" / "quality" / "cache" / "base")
    p.add_argument("--teacher", type=Path, default=TEACHER)
    p.add_argument("--teacher-cache", type=Path, default=ROOT / "runs" / "recipes" / "data" / "teacher_cache")
    p.add_argument("--teacher-max-length", type=int, default=128, help="the reranker's training length")
    p.add_argument("--depth", type=int, default=30)
    p.add_argument("--margin", type=float, default=1.0)
    p.add_argument("--num-negatives", type=int, default=3)
    p.add_argument("--dev-fraction", type=float, default=0.2)
    p.add_argument("--dev-corpus", type=int, default=2000)
    p.add_argument("--only", nargs="*", default=None, help="variant labels to run (default: all)")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.dev == args.test:
        p.error("give one of --dev, --test")
    os.chdir(ROOT)
    work = args.work.resolve() / ("dev" if args.dev else "test")
    work.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "bench/distill.py", *(argv or sys.argv[1:])])
    title = "## Distillation from the reranker: " + ("settings on held-out train queries" if args.dev else "test")
    body = run_dev(args, work) if args.dev else run_test(args, work)
    text = "\n".join([*report_head(title, command, machine_info()), body, ""])
    print(text)
    save_report(text, args.out)


if __name__ == "__main__":
    main()
