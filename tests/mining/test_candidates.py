"""Candidate generators: exact dense search (torch, faiss), BM25, hybrid fusion, rescoring."""

from __future__ import annotations

import pytest
import torch
from mining_helpers import CORPUS, POSITIVES, QUERIES

from contrastkit.mining import candidates as cand


def _brute(q: torch.Tensor, d: torch.Tensor, k: int) -> tuple[list[list[int]], torch.Tensor]:
    rows, scores = [], []
    for i in range(q.shape[0]):
        s = [(float(q[i] @ d[j]), j) for j in range(d.shape[0])]
        s.sort(key=lambda t: (-t[0], t[1]))
        rows.append([j for _, j in s[:k]])
        scores.append([v for v, _ in s[:k]])
    return rows, torch.tensor(scores)


def test_pad_marks_missing_and_nonfinite() -> None:
    c = cand.pad(torch.tensor([[3, 1]]), torch.tensor([[0.5, float("-inf")]]), 4)
    assert c.index.tolist() == [[3, -1, -1, -1]]
    assert c.scores[0, 0] == 0.5 and torch.isinf(c.scores[0, 1:]).all()


@pytest.mark.parametrize("index", ["torch", "flat"])
def test_dense_exact_matches_brute_force(index: str) -> None:
    if index == "flat":
        pytest.importorskip("faiss")
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(13, 8, generator=g), dim=-1)
    found = cand.dense_candidates(q, d, 6, index=index)
    rows, scores = _brute(q, d, 6)
    assert found.index.tolist() == rows
    torch.testing.assert_close(found.scores, scores, atol=1e-5, rtol=0)


def test_dense_depth_beyond_corpus_is_padded() -> None:
    q, d = torch.eye(2), torch.eye(2)
    found = cand.dense_candidates(q, d, 4, index="torch")
    assert found.index.tolist() == [[0, 1, -1, -1], [1, 0, -1, -1]]
    assert torch.isinf(found.scores[:, 2:]).all()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_faiss_finds_exact_neighbour(kind: str) -> None:
    pytest.importorskip("faiss")
    d = torch.nn.functional.normalize(torch.randn(64, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    found = cand.dense_candidates(d[:4], d, 1, index=kind)
    assert found.index[:, 0].tolist() == [0, 1, 2, 3]


def test_bm25_ranks_lexical_match_first_and_scores_positives() -> None:
    pytest.importorskip("bm25s")
    bm25 = cand.BM25Index(CORPUS)
    found = bm25.search(QUERIES, 5)
    assert found.index[0, 0] == 0 and found.index[2, 0] == 7
    assert (found.scores[found.index >= 0] > 0).all()  # zero-score documents are not candidates
    pos = cand.bm25_positive_scores(bm25, QUERIES, POSITIVES)
    assert float(pos[0][0]) == pytest.approx(float(found.scores[0, 0]), rel=1e-5)
    assert [len(p) for p in pos] == [1, 2, 1]


def test_hybrid_rrf_by_hand() -> None:
    a = cand.Candidates(torch.tensor([[0, 1, -1]]), torch.tensor([[3.0, 2.0, float("-inf")]]))
    b = cand.Candidates(torch.tensor([[1, 2, 0]]), torch.tensor([[0.9, 0.5, 0.1]]))
    fused, pos = cand.hybrid_candidates(
        a, b, rrf_k=1, first_positive=[torch.tensor([3.0])], second_positive=[torch.tensor([0.1])]
    )
    want = {0: 0.5 / 2 + 0.5 / 4, 1: 0.5 / 3 + 0.5 / 2, 2: 0.5 / 3}
    assert fused.index[0, :3].tolist() == [1, 0, 2]
    torch.testing.assert_close(fused.scores[0, :3], torch.tensor([want[1], want[0], want[2]]))
    assert fused.index[0, 3:].eq(-1).all()
    torch.testing.assert_close(pos[0], torch.tensor([want[0]]))  # doc 0's scores map to doc 0's fused score


def test_hybrid_mix_min_max() -> None:
    a = cand.Candidates(torch.tensor([[0, 1]]), torch.tensor([[4.0, 2.0]]))
    b = cand.Candidates(torch.tensor([[1, 0]]), torch.tensor([[0.8, 0.4]]))
    fused, _ = cand.hybrid_candidates(a, b, fusion="mix", weight=0.75)
    assert fused.index[0, :2].tolist() == [0, 1]
    torch.testing.assert_close(fused.scores[0, :2], torch.tensor([0.75, 0.25]))
    with pytest.raises(ValueError, match="fusion"):
        cand.hybrid_candidates(a, b, fusion="nope")  # type: ignore[arg-type]


def test_rescore_reorders_and_scores_positives() -> None:
    found = cand.Candidates(torch.tensor([[1, 2, -1]]), torch.tensor([[0.9, 0.1, float("-inf")]]))
    texts = ["p", "short", "a much longer text"]

    def scorer(pairs: list[tuple[str, str]]) -> list[float]:
        return [float(len(doc)) for _, doc in pairs]

    out, pos = cand.rescore(found, ["q"], texts, scorer, positives=[[0]])
    assert out.index[0].tolist() == [2, 1, -1]
    assert out.scores[0, :2].tolist() == [18.0, 5.0]
    assert pos[0].tolist() == [1.0]
