"""Retrieval metrics against values computed by hand (trec_eval definitions, graded gains, log2 discount)."""

import math

import pytest

from contrastkit.evaluation.metrics import (
    average_precision,
    mean_metrics,
    mrr_at_k,
    ndcg_at_k,
    per_query_metrics,
    query_metrics,
    rank_by_score,
    recall_at_k,
)

L3 = math.log2(3)  # discount of rank 2; rank 1 -> 1, rank 3 -> 2, rank 4 -> log2(5)

# ranking d3, d1, d2, d4 with grades 0, 2, 1, 3; d5 judged non-relevant; 3 relevant documents
RANKING = ["d3", "d1", "d2", "d4"]
QRELS = {"d1": 2, "d2": 1, "d4": 3, "d5": 0}


def test_ndcg_graded_by_hand() -> None:
    # DCG@3 = 0 + 2/log2(3) + 1/2; ideal grades 3, 2, 1 -> IDCG@3 = 3 + 2/log2(3) + 1/2
    assert ndcg_at_k(RANKING, QRELS, 3) == pytest.approx((2 / L3 + 0.5) / (3 + 2 / L3 + 0.5), abs=1e-12)
    assert ndcg_at_k(RANKING, QRELS, 3) == pytest.approx(0.369994, abs=1e-6)
    # @4 adds 3/log2(5) to DCG and nothing to IDCG (only three relevant documents)
    assert ndcg_at_k(RANKING, QRELS, 4) == pytest.approx(
        (2 / L3 + 0.5 + 3 / math.log2(5)) / (3 + 2 / L3 + 0.5), abs=1e-12
    )
    assert ndcg_at_k(RANKING, QRELS, 1) == 0.0
    # gain is the grade itself, not 2**grade - 1: one grade-2 document at rank 2 of a single-judgement query
    assert ndcg_at_k(["x", "a"], {"a": 2}, 10) == pytest.approx(1 / L3, abs=1e-12)
    assert ndcg_at_k(["x", "a"], {"a": 2}, 10) == pytest.approx(0.6309297535714575, abs=1e-12)


def test_mrr_recall_ap_graded_by_hand() -> None:
    assert [mrr_at_k(RANKING, QRELS, k) for k in (1, 2, 10)] == [0.0, 0.5, 0.5]
    assert [recall_at_k(RANKING, QRELS, k) for k in (1, 2, 3, 4)] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    # relevant at ranks 2, 3, 4: precisions 1/2, 2/3, 3/4, over 3 relevant documents
    assert average_precision(RANKING, QRELS) == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3, abs=1e-12)


def test_relevant_documents_missing_from_ranking_count_in_the_denominator() -> None:
    ranking, qrels = ["x", "a"], {"a": 1, "b": 1}
    assert average_precision(ranking, qrels) == 0.25  # (1/2) / 2
    assert recall_at_k(ranking, qrels, 10) == 0.5
    assert ndcg_at_k(ranking, qrels, 10) == pytest.approx((1 / L3) / (1 + 1 / L3), abs=1e-12)


def test_k_larger_than_the_ranking() -> None:
    ranking, qrels = ["a"], {"a": 1, "b": 1}
    # IDCG@100 uses both relevant documents although the ranking has one entry
    assert ndcg_at_k(ranking, qrels, 100) == pytest.approx(1 / (1 + 1 / L3), abs=1e-12)
    assert recall_at_k(ranking, qrels, 100) == 0.5
    assert mrr_at_k(ranking, qrels, 100) == 1.0
    assert ndcg_at_k(["a", "b"], qrels, 100) == pytest.approx(1.0)


def test_ties_in_grades_and_in_scores() -> None:
    # equal grades: either order is ideal
    assert ndcg_at_k(["b", "a"], {"a": 1, "b": 1}, 2) == pytest.approx(1.0)
    # equal scores: ties go to the smaller document id
    scores = {"b": 0.5, "c": 0.9, "a": 0.5, "d": 0.1}
    assert rank_by_score(scores) == ["c", "a", "b", "d"]
    assert rank_by_score(scores, k=2) == ["c", "a"]
    assert mrr_at_k(rank_by_score(scores), {"b": 1}, 10) == pytest.approx(1 / 3)


def test_negative_grades_count_as_non_relevant() -> None:
    assert ndcg_at_k(["n", "a"], {"n": -2, "a": 1}, 10) == pytest.approx(1 / L3, abs=1e-12)
    assert recall_at_k(["n", "a"], {"n": -2, "a": 1}, 1) == 0.0


def test_perfect_ranking_scores_one() -> None:
    qrels = {"a": 3, "b": 2, "c": 1, "z": 0}
    m = query_metrics(["a", "b", "c", "z"], qrels, (1, 3, 10))
    assert m == pytest.approx({**{f"{n}@{k}": 1.0 for n in ("ndcg", "mrr") for k in (1, 3, 10)},
                               "recall@1": 1 / 3, "recall@3": 1.0, "recall@10": 1.0, "map": 1.0})  # fmt: skip


def test_queries_without_relevant_documents_are_excluded_from_the_mean() -> None:
    rankings = {"q1": ["a", "b"], "q2": ["b", "a"], "q_zero": ["a"], "q_unjudged": ["a"], "q_empty": []}
    qrels = {"q1": {"a": 1}, "q2": {"a": 1}, "q_zero": {"a": 0, "b": 0}, "q_empty": {"c": 1}, "q_norank": {"a": 1}}
    per_query = per_query_metrics(rankings, qrels, k_values=(1, 10))
    # q_zero (only grade 0), q_unjudged (no qrels) and q_norank (no ranking) are left out; q_empty scores 0
    assert set(per_query) == {"q1", "q2", "q_empty"}
    assert per_query["q_empty"] == {"ndcg@1": 0, "mrr@1": 0, "recall@1": 0, "ndcg@10": 0, "mrr@10": 0,
                                    "recall@10": 0, "map": 0}  # fmt: skip
    mean = mean_metrics(per_query)
    assert mean["mrr@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert mean["ndcg@10"] == pytest.approx((1 + 1 / L3 + 0) / 3)
    assert mean["recall@1"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no relevant document"):
        ndcg_at_k(["a"], {"a": 0}, 10)
    with pytest.raises(ValueError, match="no query"):
        mean_metrics(per_query_metrics({"q_zero": ["a"]}, qrels))


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        ndcg_at_k(["a"], {"a": 1}, 0)
    with pytest.raises(ValueError, match="more than once"):
        recall_at_k(["a", "b", "a"], {"a": 1}, 10)


def test_values_are_fractions() -> None:
    import random

    rng = random.Random(0)
    docs = [f"d{i}" for i in range(30)]
    for _ in range(200):
        ranking = rng.sample(docs, rng.randint(0, 30))
        qrels = {d: rng.choice([0, 0, 1, 2, 3]) for d in rng.sample(docs, 8)}
        if not any(qrels.values()):
            continue
        for value in query_metrics(ranking, qrels, (1, 5, 50)).values():
            assert 0.0 <= value <= 1.0 + 1e-12
