"""``contrastkit eval MODEL --task TYPE --data PATH``: score a model on one evaluation folder.

TYPE is a registered task type (:mod:`contrastkit.evaluation.tasks`: sts,
retrieval, reasoning, classification, clustering, pair-classification; and
from :mod:`contrastkit.evaluation.image_tasks`: visual-sts,
image-classification, image-clustering, zero-shot-classification, whose PATH
is ``digits`` or an MNIST folder for the image types); PATH
a folder in the layout of the shared data pack. The data folder is read and
checked first: a missing file, a missing column or a bad value prints the
reader's message (file, row, problem) and exits with status 2 before the
model is loaded or anything is written. Then MODEL (a local folder or the
``all-MiniLM-L6-v2`` alias, never downloaded) is loaded and scored; the
metrics are printed, and written as the results JSON
``{"task", "data", "split", "metrics"}`` with ``--json OUT`` (``-`` for
stdout) and as a Markdown report with plots with ``--report DIR``.

Example::

    contrastkit eval all-MiniLM-L6-v2 --task sts --data ../shared/data/stsb --json runs/minilm/stsb.json
    contrastkit eval runs/pixel/final --task visual-sts --data ../shared/data/stsb --option text_model=all-MiniLM-L6-v2
    contrastkit eval runs/image/final --task image-classification --data ../shared/data/mnist_test
    contrastkit eval runs/reranker/final --task rerank --data ../shared/data/scifact --option first_stage=bm25

For ``--task rerank`` MODEL is a cross-encoder (a saved one, or an encoder body with a new head) and
``--option`` picks the first stage: ``first_stage=bm25`` (default) or a bi-encoder, ``run=FILE`` (a TREC
run), ``top_k=100``, ``alpha=1.0`` (interpolation with the first stage), ``save_run=FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from contrastkit.errors import UsageError
from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.tasks import (
    EvalOptions,
    TaskResult,
    check_params,
    get_task,
    load_task_data,
    run_task,
    task_names,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "eval",
        help="evaluate a model on a task folder (sts, retrieval, reasoning, classification, ...)",
        description="Evaluate an embedding model. Example: contrastkit eval all-MiniLM-L6-v2 --task sts --data DIR",
    )
    p.add_argument("model", help="model folder, or the alias all-MiniLM-L6-v2 (offline package)")
    p.add_argument("--task", required=True, help=f"task type: {', '.join(task_names())}")
    p.add_argument("--data", required=True, help="data folder (shared data pack layout)")
    p.add_argument("--split", default=None, help="split to evaluate (default: the task's, usually test)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the results JSON here ('-' for stdout)")
    p.add_argument("--report", metavar="DIR", help="write results.json, report.md and PNG plots into DIR")
    p.add_argument("--batch-size", type=int, default=64, help="encoding batch size (default 64)")
    p.add_argument("--max-length", type=int, default=None, help="truncate inputs to N tokens (default: the model's)")
    p.add_argument("--prompt", metavar="NAME", help="prompt name for symmetric tasks (sts, classification, ...)")
    p.add_argument("--query-prompt", metavar="NAME", help="query prompt name (retrieval, reasoning)")
    p.add_argument("--doc-prompt", metavar="NAME", help="document prompt name (retrieval, reasoning)")
    p.add_argument("--cache-dir", metavar="DIR", help="on-disk embedding cache (reused across runs)")
    p.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="task-specific argument, YAML value (e.g. k=10, instruction=false, methods=[knn]); repeatable",
    )  # fmt: skip
    p.set_defaults(run=run)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["k=10", "methods=[knn]"]`` -> ``{"k": 10, "methods": ["knn"]}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--option expects KEY=VALUE with a Python identifier key, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise UsageError(f"--option {pair!r}: bad value ({err})") from None
    return out


def format_metrics(result: TaskResult) -> str:
    """One header line, then one ``name  value`` line per metric (4 decimals)."""
    width = max((len(k) for k in result.metrics), default=0)
    lines = [f"{result.task} on {result.data} ({result.split}):"]
    lines += [f"  {name:<{width}}  {value:.4f}" for name, value in result.metrics.items()]
    return "\n".join(lines)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse a ``--json`` file or a ``--report`` folder that cannot be written, naming the path and why."""
    from contrastkit.outputs import require_writable

    for option, path, folder in (("--json", args.json_out, False), ("--report", args.report, True)):
        if path and path != "-":
            require_writable(option, path, folder=folder)


def run(args: argparse.Namespace) -> int:
    """Check the outputs and the data, load the model, evaluate, print and write; returns the exit status."""
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    spec = get_task(args.task)
    params = parse_options(args.option)
    check_params(spec.name, params)  # before the data and the model: list the valid options
    _check_outputs(args)  # before the data and the model are read
    split = args.split or spec.default_split
    loaded = load_task_data(spec.name, args.data, split)  # a malformed folder stops here, nothing written

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # contrastkit never downloads models
    from transformers.utils import logging as hf_logging

    from contrastkit.encoders import load_encoder

    hf_logging.disable_progress_bar()

    encoder = (spec.load_model or load_encoder)(args.model, max_length=args.max_length)
    if args.max_length is not None:  # past the model's positions the forward fails mid-encode
        from contrastkit.training.build import check_max_length

        check_max_length(encoder, args.max_length, "--max-length")
    options = EvalOptions(
        batch_size=args.batch_size,
        prompt_name=args.prompt,
        query_prompt_name=args.query_prompt,
        doc_prompt_name=args.doc_prompt,
        cache=EmbeddingCache(args.cache_dir),  # this invocation's cache, on disk with --cache-dir
        params=params,
    )
    result = run_task(spec.name, encoder, args.data, split=split, options=options, loaded=loaded)

    info = sys.stderr if args.json_out == "-" else sys.stdout  # stdout carries only the JSON then
    print(format_metrics(result), file=info)
    print(f"evaluated in {result.seconds:.1f} s", file=sys.stderr)
    from contrastkit.evaluation.report import write_report, write_results

    try:
        if args.json_out == "-":
            print(json.dumps(result.to_json(), indent=2))
        elif args.json_out:
            print(f"results: {write_results(result, args.json_out)}", file=info)
        if args.report:
            print(f"report: {write_report(result, Path(args.report), model=str(args.model))}", file=info)
    except OSError as err:  # e.g. an output path that is a folder or not writable: a user error, status 2
        raise UsageError(f"cannot write the results: {err}") from None
    return 0
