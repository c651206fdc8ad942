"""``contrastkit export FOLDER --onnx [--int8]``: ONNX (and int8) graphs through sentence-transformers' backend.

A thin shell over :func:`contrastkit.encoders.export.export_onnx`: FOLDER (a saved
model, e.g. a run's ``final/``) gets an ``onnx/`` subfolder with
``model.onnx`` and, with ``--int8``, sentence-transformers' dynamic int8
quantization for ``--quantization`` (default avx2); ``--out DIR`` writes a
copy of the folder with ``onnx/`` there instead. Load the result with
``SentenceTransformer(FOLDER, backend="onnx")`` (int8: ``model_kwargs=
{"file_name": "onnx/<printed name>"}``). Needs the ``export`` extra; without
it, or for a folder that is not a text model, the command prints why and
exits with status 2, writing nothing. See ``docs/export.md``.

Example::

    contrastkit export runs/quickstart/final --onnx --int8
"""

from __future__ import annotations

import argparse
from pathlib import Path

from contrastkit.encoders.export import QUANTIZATION_CONFIGS, export_onnx


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "export",
        help="export a saved model to ONNX (and int8) for sentence-transformers' ONNX backend",
        description="Export a saved model through sentence-transformers' ONNX backend. "
        "Example: contrastkit export runs/quickstart/final --onnx --int8",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", help="a saved sentence-transformers folder (e.g. a run's final/)")
    p.add_argument("--onnx", action="store_true", help="write onnx/model.onnx (fp32)")
    p.add_argument("--int8", action="store_true", help="also write the dynamic int8 quantization (needs --onnx)")
    p.add_argument(
        "--quantization", choices=QUANTIZATION_CONFIGS, default="avx2", help="int8 configuration (CPU instruction set)"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="write a copy of the model with onnx/ here, instead of adding onnx/ to MODEL",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Export as asked; print the files written. Returns the exit status."""
    from contrastkit.cli.main import CliError

    if not args.onnx:
        raise CliError("nothing to export: pass --onnx (and --int8 for the quantized graph too)")
    files = export_onnx(args.model, args.out, int8=args.int8, quantization=args.quantization)
    root = Path(args.out or args.model)
    for path in files:
        print(f"wrote {path}")
    print(f'load it with SentenceTransformer("{root}", backend="onnx")')
    return 0
