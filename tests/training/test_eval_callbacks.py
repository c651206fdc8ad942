"""Evaluation during training: the ``eval`` config section, retrieval (BEIR) and STS callbacks, Spearman.

A tiny BEIR folder and STS file are written in each test; the in-test
``TinyEncoder`` (hashing words, so a document with the query's exact text
scores cosine 1) keeps runs fast. The last tests read the shared data pack
(/work/shared/data) and are skipped where it is absent.
"""

import json
import math
from pathlib import Path

import pytest
import torch
from training_helpers import TinyEncoder, assert_bitwise_equal, make_pairs, state_of, write_jsonl

from contrastkit.evaluation.retrieval import evaluate_retrieval
from contrastkit.evaluation.sts import spearman
from contrastkit.training import ConfigError, load_config, train
from contrastkit.training.callbacks import CallbackContext
from contrastkit.training.config import ModelConfig, RetrievalEvalConfig, STSEvalConfig
from contrastkit.training.evaluation import (
    RetrievalEvaluation,
    STSEvaluation,
    build_evaluation_callbacks,
)
from contrastkit.training.logging import read_metrics

SHARED = Path("/work/shared/data")
DOCS = {
    "d1": "alpha beta gamma",
    "d2": "delta epsilon zeta",
    "d3": "eta theta iota",
    "d4": "kappa lambda mu",
    "d5": "nu xi omicron",
    "d6": "pi rho sigma tau",
}
QUERIES = {"q1": "alpha beta gamma", "q2": "delta epsilon zeta", "q3": "rho sigma", "q4": "nu xi omicron"}
QRELS = [("q1", "d1", 1), ("q2", "d2", 2), ("q2", "d3", 1), ("q3", "d6", 1), ("q4", "d5", 0)]  # q4: no relevant doc


def write_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for i, (d, text) in enumerate(DOCS.items()):
            record = (
                {"_id": d, "title": "", "text": text} if i % 2 else {"_id": d, "text": text}
            )  # empty title: text only
            f.write(json.dumps(record) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for q, text in QUERIES.items():
            f.write(json.dumps({"_id": q, "text": text}) + "\n")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in QRELS)
    )
    return folder


STS = [
    ("alpha beta gamma", "alpha beta gamma", 5.0),
    ("alpha beta gamma", "alpha beta delta", 4.0),
    ("delta epsilon", "delta zeta", 2.5),
    ("eta theta iota", "kappa lambda mu", 0.0),
    ("nu xi", "omicron pi", 0.5),
]


def write_sts(path: Path) -> Path:
    path.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in STS))
    return path


def context(encoder) -> CallbackContext:
    return CallbackContext(load_config(None, []), encoder, Path("."), step=1, total_steps=1)


# ---------------------------------------------------------------- Spearman


def test_spearman_against_a_hand_computation_with_ties() -> None:
    x = [0.1, 0.4, 0.4, 0.9, 0.3]
    y = [1.0, 3.0, 2.0, 5.0, 2.0]

    def ranks(v):
        return [sum(u < w for u in v) + (sum(u == w for u in v) + 1) / 2 for w in v]

    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / 5, sum(ry) / 5
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    assert spearman(torch.tensor(x), torch.tensor(y)) == pytest.approx(num / den, abs=1e-12)
    assert spearman(torch.tensor(x), torch.tensor(x) * 7 - 1) == pytest.approx(1.0)
    assert spearman(torch.tensor(x), -torch.tensor(x)) == pytest.approx(-1.0)
    assert math.isnan(spearman(torch.tensor(x), torch.ones(5), undefined=math.nan))  # how the callback logs it
    scipy_stats = pytest.importorskip("scipy.stats")
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 6, (40,), generator=gen).double(), torch.randn(40, generator=gen).double()
    assert spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-12)


# ---------------------------------------------------------------- config


def test_eval_section_parses_and_reports_mistakes(tmp_path) -> None:
    cfg = load_config(None, [f"eval.retrieval={{path: {tmp_path}, max_queries: 5}}", "train.eval_every=10"])
    assert cfg.eval.retrieval == RetrievalEvalConfig(path=str(tmp_path), max_queries=5)
    assert cfg.eval.retrieval.metrics == ("ndcg@10", "mrr@10", "recall@100") and cfg.eval.sts is None
    assert load_config(None, []).eval.retrieval is None
    with pytest.raises(ConfigError, match=r"^eval\.retrieval\.path: required"):
        load_config(None, ["eval.retrieval.split=dev"])
    with pytest.raises(ConfigError, match=r"^eval\.retrieval\.metrics: unknown \['ndcg10'\]"):
        load_config(None, [f"eval.retrieval.path={tmp_path}", "eval.retrieval.metrics=[ndcg10, map]"])
    with pytest.raises(ConfigError, match=r"^eval\.retrieval\.max_querys: unknown key; did you mean"):
        load_config(None, [f"eval.retrieval.path={tmp_path}", "eval.retrieval.max_querys=3"])
    with pytest.raises(ConfigError, match=r"^eval\.sts\.max_pairs: must be >= 2"):
        load_config(None, [f"eval.sts.path={tmp_path}", "eval.sts.max_pairs=1"])


def test_bad_paths_and_prompts_fail_before_training(tmp_path) -> None:
    data = write_jsonl(make_pairs(8), tmp_path / "pairs.jsonl")
    base = [f"data.train={data}", "data.batch_size=4", "train.steps=2", "train.progress=false"]
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"^eval\.retrieval\.path: BEIR folder .*nowhere: no corpus\.jsonl"):
        train(load_config(None, [*base, f"train.output_dir={out}", f"eval.retrieval.path={tmp_path / 'nowhere'}"]),
              encoder=TinyEncoder())  # fmt: skip
    with pytest.raises(ConfigError, match=r"^eval\.sts\.path: no such data file"):
        train(load_config(None, [*base, f"train.output_dir={out}", f"eval.sts.path={tmp_path / 'x.tsv'}"]),
              encoder=TinyEncoder())  # fmt: skip
    beir = write_beir(tmp_path / "beir")
    with pytest.raises(ConfigError, match=r"^eval\.retrieval\.query_prompt_name: unknown prompt name 'instruct'"):
        overrides = [f"eval.retrieval.path={beir}", "eval.retrieval.query_prompt_name=instruct"]
        train(load_config(None, [*base, f"train.output_dir={out}", *overrides]), encoder=TinyEncoder())
    assert not out.exists()  # nothing written


# ---------------------------------------------------------------- retrieval


def test_retrieval_callback_matches_evaluate_retrieval_and_cuts_the_data(tmp_path) -> None:
    beir = write_beir(tmp_path / "tinybeir")
    callback = RetrievalEvaluation.from_config(
        RetrievalEvalConfig(path=str(beir), metrics=("ndcg@10", "mrr@10", "recall@100", "map", "ndcg@1")),
        ModelConfig(anchor_prompt_name="query"),
    )
    assert callback.name == "tinybeir" and callback.k_values == (1, 10, 100)
    assert list(callback.queries) == ["q1", "q2", "q3"]  # q4 has no relevant document
    assert (callback.query_prompt_name, callback.doc_prompt_name) == ("query", None)
    encoder = TinyEncoder()
    got = callback.on_eval(context(encoder))
    want = evaluate_retrieval(encoder, QUERIES, DOCS, callback.qrels, k_values=(1, 10, 100), query_prompt_name="query")
    assert got == {f"tinybeir/{m}": want.metrics[m] for m in ("ndcg@10", "mrr@10", "recall@100", "map", "ndcg@1")}

    plain = RetrievalEvaluation.from_config(RetrievalEvalConfig(path=str(beir), name="t"), ModelConfig())
    scores = plain.on_eval(context(encoder))
    assert set(scores) == {"t/ndcg@10", "t/mrr@10", "t/recall@100"} and scores["t/recall@100"] == 1.0
    exact = RetrievalEvaluation.from_config(RetrievalEvalConfig(path=str(beir), max_queries=1), ModelConfig())
    assert exact.on_eval(context(encoder))["tinybeir/mrr@10"] == 1.0  # q1's document has its exact text

    small = RetrievalEvaluation.from_config(
        RetrievalEvalConfig(path=str(beir), max_queries=2, max_docs=4), ModelConfig()
    )
    assert list(small.queries) == ["q1", "q2"] and sorted(small.corpus) == ["d1", "d2", "d3", "d4"]  # judged + first
    tiny = RetrievalEvaluation.from_config(RetrievalEvalConfig(path=str(beir), max_docs=1), ModelConfig())
    assert sorted(tiny.corpus) == ["d1", "d2", "d3", "d6"]  # judged documents are always kept


def test_sts_callback_spearman_of_cosines(tmp_path) -> None:
    callback = STSEvaluation.from_config(STSEvalConfig(path=str(write_sts(tmp_path / "sick.tsv"))), ModelConfig())
    assert callback.name == "sick" and len(callback.pairs) == len(STS)
    encoder = TinyEncoder()
    a = encoder.encode([p[0] for p in STS])
    b = encoder.encode([p[1] for p in STS])
    want = spearman((a * b).sum(-1), torch.tensor([s for *_, s in STS]))
    assert callback.on_eval(context(encoder)) == {"sick/spearman": pytest.approx(want, abs=1e-6)}
    cut = STSEvaluation.from_config(
        STSEvalConfig(path=str(tmp_path / "sick.tsv"), max_pairs=3, name="s"), ModelConfig()
    )
    assert len(cut.pairs) == 3


def test_training_logs_evaluations_at_intervals_and_the_end_without_changing_training(tmp_path) -> None:
    beir, sts = write_beir(tmp_path / "tinybeir"), write_sts(tmp_path / "sts.tsv")
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(json.dumps({"anchor": e.anchor, "positive": e.positives[0]}) + "\n" for e in make_pairs(16))
    )
    base = [f"data.train={data}", "data.batch_size=4", "train.steps=5", "train.progress=false", "optim.lr=1e-2"]
    plain_encoder, eval_encoder = TinyEncoder(), TinyEncoder()
    train(load_config(None, [*base, f"train.output_dir={tmp_path / 'plain'}"]), encoder=plain_encoder)
    overrides = [f"train.output_dir={tmp_path / 'eval'}", "train.eval_every=2"]
    overrides += [f"eval.retrieval.path={beir}", f"eval.sts.path={sts}"]
    train(load_config(None, [*base, *overrides]), encoder=eval_encoder)
    assert_bitwise_equal(state_of(eval_encoder), state_of(plain_encoder))  # evaluating changed nothing

    records = [r for r in read_metrics(tmp_path / "eval" / "metrics.jsonl") if any(k.startswith("eval/") for k in r)]
    assert [r["step"] for r in records] == [2, 4, 5]
    keys = {"eval/tinybeir/ndcg@10", "eval/tinybeir/mrr@10", "eval/tinybeir/recall@100", "eval/sts/spearman"}
    assert all(keys <= r.keys() for r in records)
    assert all(0 <= r[k] <= 1 for r in records for k in keys if "tinybeir" in k)
    qrels: dict[str, dict[str, int]] = {}
    for q, d, g in QRELS:
        qrels.setdefault(q, {})[d] = g
    final = evaluate_retrieval(eval_encoder, QUERIES, DOCS, qrels, k_values=(10, 100))
    assert records[-1]["eval/tinybeir/ndcg@10"] == pytest.approx(final.metrics["ndcg@10"], abs=1e-6)
    assert not any(k.startswith("eval/") for k in read_metrics(tmp_path / "plain" / "metrics.jsonl")[-1])


# ---------------------------------------------------------------- the shared data pack


@pytest.mark.skipif(not (SHARED / "scifact").is_dir(), reason="the shared data pack is not here")
def test_retrieval_callback_loads_scifact() -> None:
    whole = RetrievalEvaluation.from_config(RetrievalEvalConfig(path=str(SHARED / "scifact")), ModelConfig())
    assert whole.name == "scifact" and len(whole.queries) == 300 and len(whole.corpus) == 5183
    callback = RetrievalEvaluation.from_config(
        RetrievalEvalConfig(path=str(SHARED / "scifact"), max_queries=20, max_docs=200), ModelConfig()
    )
    assert len(callback.queries) == 20 and len(callback.corpus) == 200
    scores = callback.on_eval(context(TinyEncoder()))
    assert set(scores) == {"scifact/ndcg@10", "scifact/mrr@10", "scifact/recall@100"}
    assert all(0 <= v <= 1 for v in scores.values())


@pytest.mark.skipif(not (SHARED / "sickr").is_dir(), reason="the shared data pack is not here")
def test_sts_callback_loads_sickr() -> None:
    callbacks = build_evaluation_callbacks(
        load_config(None, [f"eval.sts.path={SHARED / 'sickr' / 'trial.tsv'}", "eval.sts.max_pairs=50"]).eval,
        ModelConfig(),
        TinyEncoder(),
    )
    (callback,) = callbacks
    assert callback.name == "trial" and len(callback.pairs) == 50
    (value,) = callback.on_eval(context(TinyEncoder())).values()
    assert -1 <= value <= 1
