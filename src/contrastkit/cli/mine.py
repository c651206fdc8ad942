"""``contrastkit mine``: mine hard negatives for a BEIR folder or a pairs file; JSONL for training plus a report.

Example::

    contrastkit mine --data ../shared/data/scifact --split train --model all-MiniLM-L6-v2 --method dense \\
        --num-negatives 5 --range-min 10 --range-max 50 --out negatives.jsonl

writes ``negatives.jsonl`` (one ``{"anchor", "positive", "negative": [...], "group"}`` per
(query, positive)) and ``negatives.report.json`` / ``.md`` (timings, false-negative rate,
hardness gap, partial ECI terms). A candidate must score at least 5% below the
query's positive unless ``--relative-margin none``; an estimated false-negative rate above
:data:`~contrastkit.mining.quality.FALSE_NEGATIVE_WARN_RATE` prints a warning (and is in the
report). Bad input (a missing file, a qrels id not in the corpus)
stops with the reader's message, exit status 2 and nothing written.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from contrastkit.mining.filters import DEFAULT_RELATIVE_MARGIN

if TYPE_CHECKING:
    from torch import Tensor

    from contrastkit.encoders.base import Encoder
    from contrastkit.encoders.teacher import ScoreCache


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "mine",
        help="mine hard negatives (BM25, dense or hybrid) into a training JSONL",
        description=(
            "Mine hard negatives for a BEIR folder or a pairs file. By default a candidate must score at least "
            f"{DEFAULT_RELATIVE_MARGIN:.0%} below the query's positive (--relative-margin), so unlabelled positives "
            "are not mined as negatives; a high estimated false-negative rate is reported as a warning."
        ),
    )
    p.add_argument("--data", required=True, help="a BEIR folder or a pairs file (JSONL/CSV/TSV with anchor, positive)")
    p.add_argument("--split", default="train", help="qrels split of a BEIR folder (default: %(default)s)")
    p.add_argument(
        "--model", help="encoder folder or alias (e.g. all-MiniLM-L6-v2); needed for dense and hybrid, not bm25"
    )
    p.add_argument(
        "--method", choices=["bm25", "dense", "hybrid"], default="dense",
        help="candidate search: BM25 (needs bm25s: pip install 'contrastkit[mining]'), dense, or both fused "
        "(default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--num-negatives", type=int, default=3, help="negatives per query (default: %(default)s)")
    p.add_argument(
        "--range-min", type=int, default=0, help="skip the first N eligible candidates (default: %(default)s)"
    )
    p.add_argument(
        "--range-max", type=int, default=None, help="consider eligible candidates up to rank N (default: no limit)"
    )
    p.add_argument(
        "--margin", type=_optional_float, default=None,
        help="absolute margin: keep a negative only if its score <= positive - margin (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--relative-margin", type=_optional_float, default=DEFAULT_RELATIVE_MARGIN,
        help="relative margin: keep a negative only if its score <= positive - |positive| * m; 'none' turns it "
        "off (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--max-score", type=_optional_float, default=None, help="drop candidates scoring above this (default: none)"
    )
    p.add_argument(
        "--sampling", choices=["top", "random"], default="top",
        help="take the best eligible candidates, or a seeded random draw of them (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of --sampling random (default: %(default)s)")
    p.add_argument(
        "--depth", type=int, default=None,
        help="candidates retrieved per query (default: derived from --range-max, the margins and --num-negatives)",
    )  # fmt: skip
    p.add_argument(
        "--index", choices=["auto", "torch", "flat", "hnsw", "ivf"], default="auto",
        help="dense search index: exact torch, or faiss flat/hnsw/ivf; auto picks by corpus size (default: "
        "%(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--fusion", choices=["rrf", "mix"], default="rrf",
        help="hybrid: reciprocal rank fusion or score mixing (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=64, help="encoding batch size (default: %(default)s)")
    p.add_argument(
        "--rescore", metavar="TEACHER",
        help="a teacher folder (a cross-encoder, or a bi-encoder: cosine) that rescores every candidate and "
        "positive: the margins, --max-score and the rank window then judge by the teacher's scores (drop what it "
        "finds relevant), the report's false-negative estimate uses them, and each record gets positive_scores / "
        "negative_scores for distillation (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--teacher-max-length", type=int, default=None,
        help="truncate each (query, document) pair the teacher reads to N tokens, as it was trained (default: the "
        "teacher's own limit)",
    )  # fmt: skip
    p.add_argument(
        "--teacher-cache", metavar="DIR",
        help="keep the teacher's scores in DIR (keyed by teacher identity and texts) so a rerun scores only new "
        "pairs (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--layout", choices=["pairs", "grouped"], default="pairs",
        help="pairs: one record per (query, positive), queries without negatives left out; grouped: one record per "
        "query with all its positives, every query kept (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--out", required=True, help="output JSONL; the report goes to OUT's stem + .report.json/.md")
    p.set_defaults(run=run)


def _optional_float(text: str) -> float | None:
    """A float, or None for ``none``/``off`` (a filter switched off)."""
    if text.strip().lower() in ("none", "off", "null"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from contrastkit.cli.main import CliError
    from contrastkit.mining import (
        FalseNegativeWarning,
        FilterConfig,
        MiningConfig,
        load_data,
        mine,
        to_grouped_records,
        to_records,
        write_jsonl,
        write_report,
    )

    if args.method != "bm25" and not args.model:
        raise CliError(f"--method {args.method} needs --model")
    _check_outputs(Path(args.out))  # before any reading or mining
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
        rescorer, cache = _rescorer(args, args.rescore) if args.rescore else (None, None)
        with warnings.catch_warnings():  # printed below, louder, after the summary
            warnings.simplefilter("ignore", FalseNegativeWarning)
            result = mine(data, config, encoder=encoder, rescorer=rescorer)
        if cache is not None:
            cache.save()
    except (FileNotFoundError, ImportError) as err:
        raise CliError(str(err)) from None
    scores = (result.positive_scores, result.negative_scores) if args.rescore else None
    layout = to_grouped_records if args.layout == "grouped" else to_records
    records = layout(data, result.negatives, scores=scores)
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
    for text in result.warnings:
        print(f"contrastkit mine: WARNING: {text}", file=sys.stderr)
    return 0


def _rescorer(
    args: argparse.Namespace, folder: str
) -> tuple[Callable[[list[tuple[str, str]]], Tensor], ScoreCache | None]:
    """(pairs -> scores of the teacher in ``folder``, its score cache or None); FileNotFoundError for a bad folder."""
    from contrastkit.encoders import ModelFolderError
    from contrastkit.encoders.teacher import ScoreCache, load_teacher

    try:
        teacher, identity = load_teacher(folder, max_length=args.teacher_max_length)
    except ModelFolderError as err:
        raise FileNotFoundError(f"--rescore: {err}") from None
    if args.teacher_cache is None:
        return (lambda pairs: teacher.score(pairs, batch_size=args.batch_size)), None
    cache = ScoreCache(args.teacher_cache, identity)
    return (lambda pairs: cache.score(teacher, pairs, args.batch_size, save=False)), cache


def _check_outputs(out: Path) -> None:
    """Refuse an ``--out`` (or its report files) that cannot be written, naming the path and why."""
    from contrastkit.outputs import require_writable

    for path in (out, out.with_name(out.stem + ".report.json"), out.with_name(out.stem + ".report.md")):
        require_writable("--out", path)


def _encoder(model: str) -> Encoder:
    from contrastkit.encoders import ModelFolderError, load_encoder

    try:
        return load_encoder(model)
    except ModelFolderError as err:
        raise FileNotFoundError(str(err)) from None
