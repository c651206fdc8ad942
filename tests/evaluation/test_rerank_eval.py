"""Rerank evaluation: TREC runs, reranking, metrics before/after (checked against pytrec_eval), two stages, CLI."""

from __future__ import annotations

import json
import random

import pytest
from tests.encoders.encoder_helpers import WORDS, tiny_bert_folder
from tests.evaluation.task_helpers import write_beir

from contrastkit.cli import main as cli_main
from contrastkit.data.errors import DataError
from contrastkit.encoders.cross import load_cross_encoder
from contrastkit.encoders.text import TextEncoder
from contrastkit.evaluation.rerank import (
    TwoStage,
    bm25_rankings,
    dense_rankings,
    evaluate_rerank,
    read_trec_run,
    rerank,
    write_trec_run,
)
from contrastkit.evaluation.retrieval import evaluate_retrieval


def _data(seed: int = 0):
    rng = random.Random(seed)
    corpus = {f"d{i}": " ".join(rng.choices(WORDS[:30], k=rng.randint(3, 12))) for i in range(30)}
    queries = {f"q{i}": " ".join(rng.choices(WORDS[:30], k=3)) for i in range(8)}
    qrels = {q: {d: rng.choice([1, 2]) for d in rng.sample(sorted(corpus), rng.randint(1, 3))} for q in queries}
    qrels["q7"] = {}  # a query without a relevant document is not evaluated
    return corpus, queries, qrels


@pytest.fixture(scope="module")
def body(tmp_path_factory):
    return tiny_bert_folder(tmp_path_factory.mktemp("body"))


@pytest.fixture(scope="module")
def cross(body):
    return load_cross_encoder(body, seed=1)


def _first_stage(corpus, queries, seed=3):
    rng = random.Random(seed)
    return {q: [(d, rng.random()) for d in rng.sample(sorted(corpus), 12)] for q in queries}


def test_trec_run_round_trip_and_located_errors(tmp_path):
    rankings = {"q1": [("d2", 3.0), ("d1", 1.5)], "q2": [("d9", -0.25)]}
    path = write_trec_run(tmp_path / "run.trec", rankings)
    assert read_trec_run(path) == rankings
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1 2.0 tag\nq1 Q0 d2 2 high tag\n")
    with pytest.raises(DataError, match=r"bad.trec, line 2: score 'high' is not a number"):
        read_trec_run(bad)
    bad.write_text("q1 Q0 d1 1 2.0\n")
    with pytest.raises(DataError, match="line 1: expected 6 fields"):
        read_trec_run(bad)


def test_rerank_sorts_the_top_k_by_the_cross_encoder(cross):
    corpus, queries, _ = _data()
    first = _first_stage(corpus, queries)
    out = rerank(cross, queries, corpus, first, top_k=5, batch_size=4)
    for qid, ranking in out.items():
        docs = [d for d, _ in first[qid][:5]]
        assert sorted(d for d, _ in ranking) == sorted(docs)  # only the top 5, all of them
        expected = cross.score([(queries[qid], corpus[d]) for d in docs])
        by_doc = dict(zip(docs, expected.tolist(), strict=True))
        scores = [s for _, s in ranking]
        assert scores == sorted(scores, reverse=True)
        assert all(abs(by_doc[d] - s) < 1e-5 for d, s in ranking)


def test_alpha_zero_keeps_the_first_stage_order(cross):
    corpus, queries, _ = _data()
    first = {q: sorted(r, key=lambda x: -x[1]) for q, r in _first_stage(corpus, queries).items()}
    out = rerank(cross, queries, corpus, first, top_k=8, alpha=0.0)
    assert {q: [d for d, _ in r] for q, r in out.items()} == {q: [d for d, _ in r[:8]] for q, r in first.items()}
    with pytest.raises(ValueError, match="alpha"):
        rerank(cross, queries, corpus, first, alpha=1.5)


def test_metrics_before_and_after_agree_with_pytrec_eval(cross):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    corpus, queries, qrels = _data()
    first = _first_stage(corpus, queries)
    result = evaluate_rerank(cross, queries, corpus, qrels, first, top_k=10, k_values=(1, 5, 10))
    assert result.num_queries == 7 and result.pairs_scored == 70
    judged = {q: dict(r) for q, r in qrels.items() if r}
    measures = {"ndcg_cut.1,5,10", "recall.1,5,10", "map", "recip_rank"}
    for prefix, ranking in (("", result.rankings), ("first_stage/", {q: r[:10] for q, r in first.items()})):
        run = {q: {d: float(-rank) for rank, (d, _) in enumerate(r)} for q, r in ranking.items() if q in judged}
        theirs = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(run)
        top10 = {q: {d: s for d, s in docs.items() if s > -10} for q, docs in run.items()}
        rr10 = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top10)
        for ours, key, source in (
            ("ndcg@10", "ndcg_cut_10", theirs),
            ("ndcg@5", "ndcg_cut_5", theirs),
            ("recall@5", "recall_5", theirs),
            ("recall@10", "recall_10", theirs),
            ("map", "map", theirs),
            ("mrr@10", "recip_rank", rr10),
        ):
            expected = sum(v[key] for v in source.values()) / len(source)
            assert result.metrics[prefix + ours] == pytest.approx(expected, abs=1e-9), prefix + ours


def test_two_stage_equals_dense_first_stage_then_rerank(body, cross):
    corpus, queries, qrels = _data(1)
    bi = TextEncoder.from_folder(body)
    evaluated = {q: t for q, t in queries.items() if qrels[q]}
    first = dense_rankings(bi, evaluated, corpus, top_k=6)
    exact = evaluate_retrieval(bi, evaluated, corpus, qrels, k_values=(6,)).rankings
    assert {q: [d for d, _ in r] for q, r in first.items()} == {q: [d for d, _ in r] for q, r in exact.items()}
    expected = rerank(cross, evaluated, corpus, first, top_k=6)
    got = TwoStage(bi, cross, top_k=6).search(evaluated, corpus)
    assert {q: [d for d, _ in r] for q, r in got.items()} == {q: [d for d, _ in r] for q, r in expected.items()}


def test_bm25_first_stage_finds_the_exact_match():
    pytest.importorskip("bm25s")
    corpus = {"a": "the cat sat on the mat", "b": "a dog runs fast", "c": "hello world"}
    rankings = bm25_rankings({"q": "dog runs"}, corpus, top_k=3)
    assert rankings["q"][0][0] == "b" and all(d in corpus for d, _ in rankings["q"])


@pytest.fixture()
def _eval_command(monkeypatch):
    monkeypatch.setitem(cli_main.COMMANDS, "eval", ("evaluate a model", "contrastkit.cli.eval"))


@pytest.mark.usefixtures("_eval_command")
def test_cli_reranks_a_run_file_and_reports_both_stages(cross, tmp_path, capsys):
    corpus, queries, qrels = _data()
    folder = write_beir(tmp_path / "beir", corpus, queries, qrels)
    cross.save(tmp_path / "ce")
    run = write_trec_run(tmp_path / "first.trec", _first_stage(corpus, queries))
    out = tmp_path / "reranked.trec"
    argv = ["eval", str(tmp_path / "ce"), "--task", "rerank", "--data", str(folder), "--json", "-",
            "--option", f"run={run}", "--option", "top_k=10", "--option", f"save_run={out}"]  # fmt: skip
    assert cli_main.main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    direct = evaluate_rerank(cross, queries, corpus, qrels, read_trec_run(run), top_k=10)
    assert metrics == pytest.approx(direct.metrics)
    assert "first_stage/ndcg@10" in metrics and read_trec_run(out).keys() == direct.rankings.keys()


@pytest.mark.usefixtures("_eval_command")
def test_cli_bad_run_file_exits_2_naming_the_line(cross, tmp_path, capsys):
    corpus, queries, qrels = _data()
    folder = write_beir(tmp_path / "beir", corpus, queries, qrels)
    cross.save(tmp_path / "ce")
    (tmp_path / "bad.trec").write_text("q1 Q0 d1 1 0.5 t\nq1 Q0 nope\n")
    argv = ["eval", str(tmp_path / "ce"), "--task", "rerank", "--data", str(folder), "--option",
            f"run={tmp_path / 'bad.trec'}"]  # fmt: skip
    assert cli_main.main(argv) == 2
    assert "bad.trec, line 2" in capsys.readouterr().err
