"""``contrastkit analyze MODEL --data PATH [--split S] [--out DIR]``: embedding-space diagnostics of a model.

Reads PATH with :func:`contrastkit.diagnostics.inputs.load_inputs` (an STS
folder gives pairs with gold scores: positives for alignment and the
histograms, Spearman by length bucket; a sentence file gives texts), runs
:func:`contrastkit.diagnostics.analyze` and writes ``diagnostics.json``,
``diagnostics.md`` and PNG plots into DIR (default
``analysis/<model name>``). Data problems exit with status 2 before the
model is loaded.

Example: ``contrastkit analyze all-MiniLM-L6-v2 --data ../shared/data/stsb --split test``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contrastkit.data.errors import DataError
from contrastkit.diagnostics.analyze import AnalyzeSettings, analyze
from contrastkit.diagnostics.inputs import load_inputs
from contrastkit.diagnostics.report import write_report
from contrastkit.encoders import load_encoder


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "analyze",
        help="embedding diagnostics: isotropy, alignment/uniformity, effective rank, hubness, per-layer measures",
        description="Diagnose a model's embedding space on a data set; writes JSON, Markdown and PNG plots.",
    )
    p.add_argument("model", help="model folder or alias (e.g. all-MiniLM-L6-v2)")
    p.add_argument("--data", required=True, help="STS or pairs folder/file, BEIR folder, or a sentence file")
    p.add_argument("--split", default=None, help="split file to read (default: test, or the folder's only file)")
    p.add_argument("--out", default=None, help="output folder (default: analysis/<model name>)")
    p.add_argument(
        "--positive-score", type=float, default=4.0,
        help="gold score at or above which a pair is positive (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--max-texts", type=int, default=2000, help="texts embedded and measured; a seeded random subset beyond "
        "(default: %(default)s)"
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="encoding batch size (default: %(default)s)")
    p.add_argument(
        "--no-token-level", action="store_true", help="skip the per-layer token measures (default: measured)"
    )
    p.add_argument(
        "--reference-compat", action="store_true", help="token measures exactly as the paper's code (default: off)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the data (first), the model, analyze, write the report; returns the exit status."""
    try:
        inputs = load_inputs(args.data, split=args.split)
    except (DataError, FileNotFoundError) as err:
        print(f"contrastkit analyze: error: {err}", file=sys.stderr)
        return 2
    name = Path(str(args.model).rstrip("/")).name
    settings = AnalyzeSettings(
        max_texts=args.max_texts,
        positive_threshold=args.positive_score,
        token_level=not args.no_token_level,
        reference_compat=args.reference_compat,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    encoder = load_encoder(args.model)
    report = analyze(
        encoder, inputs.texts, pairs=inputs.pairs, scores=inputs.scores, labels=inputs.labels, settings=settings,
        name=name,
    )  # fmt: skip
    files = write_report(report, Path(args.out) if args.out else Path("analysis") / name)
    print(f"{name} on {inputs.source}:")
    for key, value in report.scalars().items():
        print(f"  {key:>26}: {value:.4f}")
    print(f"report: {files.markdown} (+ {files.json.name}, {len(files.plots)} plots)")
    return 0
