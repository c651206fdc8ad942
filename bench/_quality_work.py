"""The work of bench/quality.py, one job per fresh process: prepare data, train (contrastkit or
sentence-transformers), evaluate, time encoding.

Every job is a function ``job(spec: dict) -> dict`` (JSON in, JSON out), run as
``python bench/_quality_work.py JOB '<json>'``, which prints the result as the
last line of stdout (:func:`_measure.run_json_subprocess` reads it). A fresh
process per job keeps one run's peak memory and thread state from leaking into
the next.

Evaluation (``evaluate``) is contrastkit's, for every model alike: Spearman x 100
of cosine similarity on the STS sets, nDCG@10 x 100 on SciFact test (exact
cosine search over the whole corpus) and on PIQA as retrieval (RAR-b full
setting, no instruction). Transformer models are read with ``max_length`` 256
(MiniLM's own) whatever length they were trained with; static models read
every token. Diagnostics: alignment (pairs scoring >= 4), uniformity, isotropy
and mean cosine of the STS-B dev sentences.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from _measure import DATA, peak_rss_bytes

ROOT = Path(__file__).resolve().parents[1]

# (label, task, folder, split, metric, task params)
EVAL_SETS: tuple[tuple[str, str, str, str, str, dict[str, Any]], ...] = (
    ("STS-B dev", "sts", "stsb", "dev", "spearman", {}),
    ("SICK-R trial", "sts", "sickr", "trial", "spearman", {}),
    ("STS12", "sts", "sts12", "test", "spearman", {}),
    ("STS13", "sts", "sts13", "test", "spearman", {}),
    ("STS14", "sts", "sts14", "test", "spearman", {}),
    ("SciFact", "retrieval", "scifact", "test", "ndcg@10", {}),
    ("PIQA", "reasoning", "piqa", "test", "ndcg@10", {"instruction": False}),
)
EVAL_MAX_LENGTH = 256


# ---------------------------------------------------------------------------- data preparation
def write_jsonl_atomic(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """The records as JSONL (temp file + rename, so a crash never leaves half a file)."""
    from contrastkit.mining.pipeline import write_jsonl

    write_jsonl(records, path)


def prepare_laser(spec: dict[str, Any]) -> dict[str, Any]:
    """LA(SER)^3 self-reference pairs of every wiki1m_head sentence: anchor x, positive x repeated m times.

    m is uniform over ``{1, ..., (max_length - 2) // n}`` with n the sentence's MiniLM token count
    (``LaserViews(split=False)``: each line is one sentence).
    """
    from contrastkit.data.laser import LaserViews, tokenizer_counter
    from contrastkit.data.readers import load_examples
    from contrastkit.encoders import load_encoder

    sentences = [ex.anchor for ex in load_examples(spec["sentences"])]
    tokenizer = load_encoder(spec["model"]).tokenizer
    views = LaserViews(
        max_length=spec["max_length"], split=False, seed=spec["seed"], count_tokens=tokenizer_counter(tokenizer)
    )
    examples = views(sentences)
    write_jsonl_atomic(Path(spec["out"]), [{"anchor": ex.anchor, "positive": ex.positives[0]} for ex in examples])
    return {"examples": len(examples), "out": spec["out"]}


def prepare_mined(spec: dict[str, Any]) -> dict[str, Any]:
    """Dense hard negatives for SciFact train queries from the base model, written in each tool's layout.

    ``grouped`` (the recipe's): one record per train query with all its positives and the negatives that
    passed the false-negative filters (0 to ``num_negatives``; contrastkit's batches take ragged rows).
    ``pairs`` (the peer's): one record per (query, positive) with the query's first negative, queries whose
    negatives were all filtered left out (MNRL needs the same columns in every row, as sentence-transformers'
    ``mine_hard_negatives`` triplets). ``dev_fraction`` > 0 also holds out that share of the queries
    (seeded): ``grouped`` and ``pairs`` then hold the rest and ``dev`` a BEIR folder of the held-out ones
    over the whole corpus. The corpus embeddings are read from / written to ``cache_dir``.
    """
    from contrastkit.encoders import load_encoder
    from contrastkit.evaluation.cache import CachedEncoder, EmbeddingCache
    from contrastkit.mining import FilterConfig, MiningConfig, mine
    from contrastkit.mining.pipeline import load_data, write_report

    data = load_data(spec["scifact"], split="train")
    encoder = CachedEncoder(load_encoder(spec["model"], max_length=EVAL_MAX_LENGTH), EmbeddingCache(spec["cache_dir"]))
    filters = FilterConfig(
        range_min=spec["range_min"], range_max=spec["range_max"], relative_margin=spec["relative_margin"]
    )
    config = MiningConfig(
        method="dense", num_negatives=spec["num_negatives"], filters=filters, sampling="random", seed=spec["seed"]
    )
    result = mine(data, config, encoder=encoder)
    order = list(range(len(data.queries)))
    random.Random(spec["seed"]).shuffle(order)
    n_dev = round(spec.get("dev_fraction", 0.0) * len(order))
    dev, kept = sorted(order[:n_dev]), sorted(order[n_dev:])
    grouped, pairs = mined_layouts(data, result.negatives, kept)
    write_jsonl_atomic(Path(spec["pairs"]), pairs)
    write_jsonl_atomic(Path(spec["grouped"]), grouped)
    write_report(result, Path(spec["pairs"]).with_suffix(".report"))
    if n_dev:
        ids = [data.query_ids[q] for q in dev]
        write_beir_subset(Path(spec["scifact"]), ids, Path(spec["dev"]), corpus_size=spec.get("dev_corpus"))
    no_negative = sum(1 for q in kept if not result.negatives[q])
    return {"queries": len(grouped), "pairs": len(pairs), "no_negative": no_negative, "dev": len(dev)}


def mined_layouts(data: Any, negatives: Sequence[Sequence[int]], queries: Sequence[int]) -> tuple[list, list]:
    """(grouped, pairs) records of ``queries`` (indices into ``data``, a ``MiningData``): see :func:`prepare_mined`."""
    grouped, pairs = [], []
    for q in queries:
        positives = [data.corpus[d] for d in data.positives[q]]
        mined = [data.corpus[d] for d in negatives[q]]
        grouped.append({"anchor": data.queries[q], "positive": positives, "negative": mined})
        if mined:
            pairs += [{"anchor": data.queries[q], "positive": p, "negative": mined[:1]} for p in positives]
    return grouped, pairs


def write_beir_subset(
    folder: Path, query_ids: Sequence[str], out: Path, *, corpus_size: int | None = None, seed: int = 0
) -> None:
    """A BEIR folder of ``query_ids`` of ``folder``'s train split, as split ``dev``.

    The corpus is ``folder``'s (linked), or with ``corpus_size`` the queries' relevant documents plus a
    seeded random sample of the others, ``corpus_size`` documents in all (a cheaper dev search).
    """
    from contrastkit.data.beir import load_beir

    data = load_beir(folder, split="train")
    out.mkdir(parents=True, exist_ok=True)
    if corpus_size is None:
        link = out / "corpus.jsonl"
        if not link.exists():
            link.symlink_to((folder / "corpus.jsonl").resolve())
    else:
        relevant = {d for q in query_ids for d in data.qrels[q]}
        others = sorted(set(data.corpus) - relevant)
        keep = relevant | set(random.Random(seed).sample(others, max(0, corpus_size - len(relevant))))
        rows = [json.loads(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
        write_jsonl_atomic(out / "corpus.jsonl", [r for r in rows if r["_id"] in keep])
    write_jsonl_atomic(out / "queries.jsonl", [{"_id": q, "text": data.queries[q]} for q in query_ids])
    (out / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{g}" for q in query_ids for d, g in data.qrels[q].items()]
    (out / "qrels" / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def prepare_static(spec: dict[str, Any]) -> dict[str, Any]:
    """One pairs file from several sources (anchor, positive), shuffled with ``seed``; negatives dropped."""
    from contrastkit.data.readers import load_examples

    rows = []
    for path in spec["sources"]:
        rows += [{"anchor": ex.anchor, "positive": p} for ex in load_examples(path) for p in ex.positives[:1]]
    random.Random(spec["seed"]).shuffle(rows)
    write_jsonl_atomic(Path(spec["out"]), rows)
    return {"examples": len(rows), "out": spec["out"]}


def save_static_init(spec: dict[str, Any]) -> dict[str, Any]:
    """The untrained static model: ``model``'s input embeddings and tokenizer, saved as a StaticEmbedding folder."""
    from contrastkit.encoders import load_encoder

    load_encoder(spec["model"], kind="static").save(spec["out"])
    return {"model": spec["out"]}


# ---------------------------------------------------------------------------- training
def train_contrastkit(spec: dict[str, Any]) -> dict[str, Any]:
    """``contrastkit train CONFIG overrides`` in this process: wall seconds, peak RSS, steps, last loss."""
    from contrastkit.training import load_config, train

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    config = load_config(spec["config"], spec["overrides"])
    start = time.perf_counter()
    result = train(config)
    return {
        "model": str(result.final_model),
        "steps": result.steps,
        "loss": result.loss,
        "train_s": time.perf_counter() - start,
        "peak_rss": peak_rss_bytes(),
    }


def plan_sampler(plan: Any) -> type:
    """A sentence-transformers batch sampler that yields ``plan(epoch)``: contrastkit's batches, in its order.

    ``plan`` maps an epoch to its batches (lists of row indices), e.g.
    ``lambda e: BatchSampler(examples, ...).plan(e).batches``; the trainer's ``set_epoch`` picks the epoch.
    """
    from sentence_transformers.base.sampler import DefaultBatchSampler

    class PlanSampler(DefaultBatchSampler):
        def __init__(self, dataset: Any, **kwargs: Any) -> None:
            super().__init__(dataset, **kwargs)
            self.next_epoch = 0

        def set_epoch(self, epoch: int) -> None:
            super().set_epoch(epoch)
            self.next_epoch = epoch

        def __iter__(self):
            epoch, self.next_epoch = self.next_epoch, self.next_epoch + 1
            for batch in plan(epoch):
                yield list(batch)

        def __len__(self) -> int:
            return len(plan(self.next_epoch))

    return PlanSampler


def st_rows(examples: Sequence[Any], negatives: int, same_text: bool) -> dict[str, list[str]]:
    """Columns for sentence-transformers: anchor, positive (the anchor itself when ``same_text``), negatives."""
    columns: dict[str, list[str]] = {"anchor": [ex.anchor for ex in examples]}
    columns["positive"] = [ex.anchor if same_text else ex.positives[0] for ex in examples]
    for k in range(negatives):
        columns[f"negative_{k + 1}"] = [ex.negatives[k] for ex in examples]
    return columns


def st_model(spec: dict[str, Any]) -> Any:
    """The peer's starting model: the transformer folder, or a StaticEmbedding initialised from its input embeddings."""
    from sentence_transformers import SentenceTransformer

    from contrastkit.encoders.auto import resolve_model_path

    path = str(resolve_model_path(spec["model"]))
    model = SentenceTransformer(path, device="cpu")
    if not spec.get("static"):
        if spec.get("max_seq_length"):
            model.max_seq_length = spec["max_seq_length"]
        return model
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    weights = model[0].auto_model.get_input_embeddings().weight.detach().clone()
    static = StaticEmbedding(model.tokenizer, embedding_weights=weights)
    return SentenceTransformer(modules=[static], device="cpu")


def st_trainer(spec: dict[str, Any]) -> tuple[Any, Any]:
    """(trainer, model): sentence-transformers' Trainer for the peer, rows in contrastkit's batches.

    The rows are the same examples contrastkit reads from ``spec["data"]``; the batch sampler yields
    ``BatchSampler(examples, batch_size, seed=seed).plan(epoch)`` (:func:`plan_sampler`). Loss: MNRL or
    CMNRL at ``scale``; optimizer and schedule: the Trainer's defaults (AdamW, no weight decay) with a
    linear warmup over ``warmup_ratio`` of the steps, then linear decay.
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    from contrastkit.data.readers import load_examples
    from contrastkit.data.sampler import BatchSampler

    examples = load_examples(spec["data"], kind=spec.get("kind"))
    sampler = BatchSampler(examples, spec["batch_size"], seed=spec["seed"], drop_last=True)
    dataset = Dataset.from_dict(st_rows(examples, spec.get("negatives", 0), spec.get("same_text", False)))
    model = st_model(spec)
    if spec["loss"] == "cmnrl":
        loss = CachedMultipleNegativesRankingLoss(model, scale=spec["scale"], mini_batch_size=spec["mini_batch_size"])
    else:
        loss = MultipleNegativesRankingLoss(model, scale=spec["scale"])
    args = SentenceTransformerTrainingArguments(
        output_dir=str(Path(spec["out"]).parent / "st-trainer"),
        per_device_train_batch_size=spec["batch_size"],
        max_steps=spec["steps"],
        learning_rate=spec["lr"],
        warmup_ratio=spec["warmup_ratio"],
        lr_scheduler_type="linear",
        seed=spec["seed"],
        batch_sampler=plan_sampler(lambda e: sampler.plan(e).batches),
        dataloader_num_workers=0,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=max(1, spec["steps"] // 10),
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    return SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss), model


def train_st(spec: dict[str, Any]) -> dict[str, Any]:
    """Train the peer (:func:`st_trainer`) and save it: wall seconds, peak RSS, steps, mean loss."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    start = time.perf_counter()  # from reading the data to the saved model, as for contrastkit
    trainer, model = st_trainer(spec)
    out = trainer.train()
    model.save(spec["out"])
    return {
        "model": spec["out"],
        "steps": out.global_step,
        "loss": out.training_loss,
        "train_s": time.perf_counter() - start,
        "peak_rss": peak_rss_bytes(),
    }


# ---------------------------------------------------------------------------- evaluation
def load_for_eval(model: str) -> Any:
    """The model as contrastkit reads it, transformers at ``EVAL_MAX_LENGTH`` tokens (static: every token)."""
    from contrastkit.encoders import load_encoder
    from contrastkit.encoders.static import StaticEncoder

    encoder = load_encoder(model)
    if isinstance(encoder, StaticEncoder):
        return encoder
    return load_encoder(model, max_length=EVAL_MAX_LENGTH)


def diagnostics(encoder: Any, cache: Any, seed: int = 0) -> dict[str, float]:
    """Alignment (STS-B dev pairs scoring >= 4), uniformity, isotropy, mean cosine (its distinct sentences)."""
    from contrastkit.diagnostics import embedding_stats, pair_stats
    from contrastkit.evaluation.cache import encode_cached
    from contrastkit.evaluation.sts import read_sts

    data = read_sts(DATA / "stsb", "dev")
    a = encode_cached(encoder, data.sentences1, cache=cache)
    b = encode_cached(encoder, data.sentences2, cache=cache)
    texts = list(dict.fromkeys([*data.sentences1, *data.sentences2]))
    x = encode_cached(encoder, texts, cache=cache)
    scores = torch.tensor(data.scores, dtype=torch.float64)
    pairs = pair_stats(a, b, scores=scores, positive_threshold=4.0)
    stats = embedding_stats(x, generator=torch.Generator().manual_seed(seed))
    return {
        "alignment": float(pairs.alignment),
        "uniformity": stats.uniformity,
        "isotropy": stats.isotropy,
        "mean_cosine": stats.mean_cosine,
    }


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Every set of :data:`EVAL_SETS` (x 100) and the diagnostics; ``only`` restricts the sets (labels),
    ``sets`` replaces them (same layout, folders absolute or under the data folder; no diagnostics)."""
    from contrastkit.evaluation.cache import EmbeddingCache
    from contrastkit.evaluation.tasks import EvalOptions, run_task

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    encoder = load_for_eval(spec["model"])
    cache = EmbeddingCache(spec.get("cache_dir"))
    scores: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for label, task, folder, split, metric, params in spec.get("sets") or EVAL_SETS:
        if spec.get("only") and label not in spec["only"]:
            continue
        start = time.perf_counter()
        options = EvalOptions(batch_size=spec.get("batch_size", 32), cache=cache, params=params)
        result = run_task(task, encoder, DATA / folder, split=split, options=options)
        scores[label] = 100 * result.metrics[metric]
        seconds[label] = time.perf_counter() - start
    diag = diagnostics(encoder, cache) if not (spec.get("only") or spec.get("sets")) else {}
    return {"model": spec["model"], "scores": scores, "seconds": seconds, "diagnostics": diag}


def encode_speed(spec: dict[str, Any]) -> dict[str, Any]:
    """Sentences per second of each model's ``Encoder.encode`` on the same distinct STS-B dev sentences.

    For every batch size of ``batch_sizes``: one untimed warm-up call per model, then ``repeats`` timed
    calls alternating the models; the median of each. ``per_s`` is each model at its faster batch size
    (``best_batch``), ``by_batch`` every measurement. First waits (up to ``wait`` seconds) until other
    processes use at most 15% of the CPU; ``cpu_others`` is their share during the timed calls.
    """
    import statistics

    from _measure import CpuShare, wait_for_quiet
    from contrastkit.evaluation.sts import read_sts

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    data = read_sts(DATA / "stsb", "dev")
    texts = list(dict.fromkeys([*data.sentences1, *data.sentences2]))
    encoders = {name: load_for_eval(path) for name, path in spec["models"].items()}
    by_batch: dict[str, dict[int, float]] = {name: {} for name in encoders}
    waited, _ = wait_for_quiet(0.15, spec.get("wait", 0.0))
    with CpuShare() as cpu:
        for batch_size in spec["batch_sizes"]:
            times: dict[str, list[float]] = {name: [] for name in encoders}
            for enc in encoders.values():
                enc.encode(texts[: 2 * batch_size], batch_size=batch_size)
            for _ in range(spec["repeats"]):
                for name, enc in encoders.items():
                    start = time.perf_counter()
                    enc.encode(texts, batch_size=batch_size)
                    times[name].append(time.perf_counter() - start)
            for name, t in times.items():
                by_batch[name][batch_size] = len(texts) / statistics.median(t)
    best = {name: max(rates, key=rates.get) for name, rates in by_batch.items()}
    return {
        "sentences": len(texts),
        "batch_sizes": spec["batch_sizes"],
        "per_s": {name: by_batch[name][b] for name, b in best.items()},
        "best_batch": best,
        "by_batch": by_batch,
        "cpu_others": cpu.others,
        "waited_s": waited,
    }


JOBS = {
    "prepare_laser": prepare_laser,
    "prepare_mined": prepare_mined,
    "prepare_static": prepare_static,
    "save_static_init": save_static_init,
    "train_contrastkit": train_contrastkit,
    "train_st": train_st,
    "evaluate": evaluate,
    "encode_speed": encode_speed,
}


def main(argv: Sequence[str]) -> None:
    if len(argv) != 2 or argv[0] not in JOBS:
        raise SystemExit(f"usage: _quality_work.py {{{','.join(JOBS)}}} '<json spec>'")
    print(json.dumps(JOBS[argv[0]](json.loads(argv[1]))))


if __name__ == "__main__":
    main(sys.argv[1:])
