"""``contrastkit mine``: mine hard negatives for a BEIR folder or a pairs file; JSONL for training plus a report.

Example::

    contrastkit mine --data scifact --split train --model all-MiniLM-L6-v2 --method dense \\
        --num-negatives 5 --range-min 10 --range-max 50 --relative-margin 0.05 --out negatives.jsonl

writes ``negatives.jsonl`` (one ``{"anchor", "positive", "negative": [...], "group"}`` per
(query, positive)) and ``negatives.report.json`` / ``.md`` (timings, false-negative rate,
hardness gap, partial ECI terms). Bad input (a missing file, a qrels id not in the corpus)
stops with the reader's message, exit status 2 and nothing written.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("mine", help="mine hard negatives (BM25, dense or hybrid) into a training JSONL")
    p.add_argument("--data", required=True, help="a BEIR folder or a pairs file (JSONL/CSV/TSV with anchor, positive)")
    p.add_argument("--split", default="train", help="qrels split of a BEIR folder (default: train)")
    p.add_argument("--model", help="encoder folder or alias, needed for dense and hybrid")
    p.add_argument("--method", choices=["bm25", "dense", "hybrid"], default="dense")
    p.add_argument("--num-negatives", type=int, default=3)
    p.add_argument("--range-min", type=int, default=0, help="skip the first N eligible candidates")
    p.add_argument("--range-max", type=int, default=None, help="consider eligible candidates up to rank N")
    p.add_argument("--margin", type=float, default=None, help="absolute margin: negative <= positive - margin")
    p.add_argument("--relative-margin", type=float, default=None, help="negative <= positive - |positive| * m")
    p.add_argument("--max-score", type=float, default=None, help="drop candidates scoring above this")
    p.add_argument("--sampling", choices=["top", "random"], default="top")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--depth", type=int, default=None, help="candidates retrieved per query (default: derived)")
    p.add_argument("--index", choices=["auto", "torch", "flat", "hnsw", "ivf"], default="auto")
    p.add_argument("--fusion", choices=["rrf", "mix"], default="rrf", help="hybrid: rank fusion or score mixing")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", required=True, help="output JSONL; the report goes to OUT's stem + .report.json/.md")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from contrastkit.cli.main import CliError
    from contrastkit.mining import FilterConfig, MiningConfig, load_data, mine, to_records, write_jsonl, write_report

    if args.method != "bm25" and not args.model:
        raise CliError(f"--method {args.method} needs --model")
    filters = FilterConfig(
        range_min=args.range_min,
        range_max=args.range_max,
        absolute_margin=args.margin,
        relative_margin=args.relative_margin,
        max_score=args.max_score,
    )
    config = MiningConfig(
        method=args.method,
        num_negatives=args.num_negatives,
        filters=filters,
        sampling=args.sampling,
        seed=args.seed,
        depth=args.depth,
        index=args.index,
        fusion=args.fusion,
        batch_size=args.batch_size,
    )
    try:
        data = load_data(args.data, split=args.split)
        encoder = _encoder(args.model) if args.method != "bm25" else None
        result = mine(data, config, encoder=encoder)
    except (FileNotFoundError, ImportError) as err:
        raise CliError(str(err)) from None
    records = to_records(data, result.negatives)
    if not records:
        raise CliError("no negatives were mined (every candidate was filtered out): nothing written")
    out = Path(args.out)
    write_jsonl(records, out)
    json_path, _ = write_report(result, out.with_name(out.stem + ".report"))
    q = result.quality
    print(
        f"{len(records)} records for {q['queries']} queries ({q['queries_short']} with fewer than "
        f"{args.num_negatives} negatives) -> {out}; estimated false-negative rate {q['false_negative_rate']:.4f}; "
        f"report {json_path}"
    )
    return 0


def _encoder(model: str):  # type: ignore[no-untyped-def]
    from contrastkit.encoders import ModelFolderError, load_encoder

    try:
        return load_encoder(model)
    except ModelFolderError as err:
        raise FileNotFoundError(str(err)) from None
