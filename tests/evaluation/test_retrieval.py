"""evaluate_retrieval on analytic embeddings with known rankings and metrics; blockwise search = full search."""

import math
from collections.abc import Sequence

import pytest
import torch
from torch import Tensor

from contrastkit.encoders.base import Encoder, Features
from contrastkit.evaluation.retrieval import evaluate_retrieval, search


class TableEncoder(Encoder):
    """Looks each (prompt + text) up in a fixed table of vectors: embeddings chosen by the test."""

    def __init__(self, table: dict[str, Sequence[float]], prompts: dict[str, str] | None = None) -> None:
        super().__init__(normalize=False, prompts=prompts)
        self.keys = {text: i for i, text in enumerate(table)}
        self.register_buffer("table", torch.tensor(list(table.values()), dtype=torch.float32))
        self.calls: list[list[str]] = []

    @property
    def dim(self) -> int:
        return self.table.shape[1]

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        full = [(prompt or "") + t for t in texts]
        self.calls.append(full)
        return {"index": torch.tensor([self.keys[t] for t in full], dtype=torch.long)}

    def forward(self, features: Features) -> Tensor:
        return self.table[features["index"]]


def _polar(degrees: float, norm: float = 1.0) -> list[float]:
    return [norm * math.cos(math.radians(degrees)), norm * math.sin(math.radians(degrees))]


# documents at 0, 30, 60, 90, 180 degrees (exact axes), with norms that would change a dot-product ranking
DOCS = {"a": [1.0, 0.0], "b": _polar(30, 5.0), "c": _polar(60, 0.2), "d": [0.0, 3.0], "e": [-7.0, 0.0]}
CORPUS = {doc: f"text {doc}" for doc in DOCS}
QUERIES = {"q1": "first", "q2": "second", "q_unjudged": "third", "q_zero": "fourth"}
QRELS = {"q1": {"c": 2, "d": 1}, "q2": {"e": 1, "a": 0}, "q_zero": {"a": 0}}


def _encoder() -> TableEncoder:
    table = {f"passage: {CORPUS[d]}": vector for d, vector in DOCS.items()}
    table["query: first"] = [2.0, 0.0]
    table["query: second"] = [0.0, 1.0]
    return TableEncoder(table, prompts={"query": "query: ", "doc": "passage: "})


def test_analytic_rankings_and_metrics() -> None:
    encoder = _encoder()
    result = evaluate_retrieval(
        encoder, QUERIES, CORPUS, QRELS, k_values=(1, 3, 10), batch_size=2, query_prompt_name="query",
        doc_prompt_name="doc",
    )  # fmt: skip
    # cosine, not dot: q1 (0 deg) ranks a, b, c, d, e; q2 (90 deg) ranks d, c, b, then a and e tie at 0 (id order)
    assert [d for d, _ in result.rankings["q1"]] == ["a", "b", "c", "d", "e"]
    assert [s for _, s in result.rankings["q1"]] == pytest.approx([1, math.sqrt(3) / 2, 0.5, 0, -1], abs=1e-6)
    assert [d for d, _ in result.rankings["q2"]] == ["d", "c", "b", "a", "e"]
    # only q1 and q2 have a relevant document: the other two are neither encoded nor averaged
    assert result.num_queries == 2 and result.num_docs == 5
    assert not any("third" in t or "fourth" in t for call in encoder.calls for t in call)

    L3 = math.log2(3)
    q1 = {"ndcg@1": 0, "ndcg@3": (2 / 2) / (2 + 1 / L3), "ndcg@10": (2 / 2 + 1 / math.log2(5)) / (2 + 1 / L3),
          "mrr@1": 0, "mrr@3": 1 / 3, "mrr@10": 1 / 3, "recall@1": 0, "recall@3": 1 / 2, "recall@10": 1,
          "map": (1 / 3 + 2 / 4) / 2}  # fmt: skip
    q2 = {"ndcg@1": 0, "ndcg@3": 0, "ndcg@10": 1 / math.log2(6), "mrr@1": 0, "mrr@3": 0, "mrr@10": 1 / 5,
          "recall@1": 0, "recall@3": 0, "recall@10": 1, "map": 1 / 5}  # fmt: skip
    assert result.per_query["q1"] == pytest.approx(q1, abs=1e-9)
    assert result.per_query["q2"] == pytest.approx(q2, abs=1e-9)
    assert result.metrics == pytest.approx({k: (q1[k] + q2[k]) / 2 for k in q1}, abs=1e-9)


def test_prompts_are_applied_and_batch_size_does_not_matter() -> None:
    with pytest.raises(KeyError):  # the table only knows prompted texts
        evaluate_retrieval(_encoder(), QUERIES, CORPUS, QRELS)
    kwargs = {"query_prompt_name": "query", "doc_prompt_name": "doc", "k_values": (2, 5)}
    one = evaluate_retrieval(_encoder(), QUERIES, CORPUS, QRELS, batch_size=1, **kwargs)
    many = evaluate_retrieval(_encoder(), QUERIES, CORPUS, QRELS, batch_size=64, **kwargs)
    assert one.metrics == many.metrics and one.rankings == many.rankings
    assert set(one.metrics) == {"ndcg@2", "mrr@2", "recall@2", "ndcg@5", "mrr@5", "recall@5", "map"}


def test_a_document_with_the_query_id_is_not_excluded() -> None:
    table = {"q": [1.0, 0.0], "doc q": [1.0, 0.0], "doc r": [1.0, 1.0]}
    result = evaluate_retrieval(TableEncoder(table), {"q": "q"}, {"q": "doc q", "r": "doc r"}, {"q": {"r": 1}})
    assert [d for d, _ in result.rankings["q"]] == ["q", "r"]
    assert result.metrics["mrr@10"] == 0.5


def test_errors_are_clear() -> None:
    enc = _encoder()
    kw = {"query_prompt_name": "query", "doc_prompt_name": "doc"}
    with pytest.raises(ValueError, match="not in the corpus"):
        evaluate_retrieval(enc, QUERIES, CORPUS, {"q1": {"zz": 1}}, **kw)
    with pytest.raises(ValueError, match="empty"):
        evaluate_retrieval(enc, QUERIES, {}, QRELS, **kw)
    with pytest.raises(ValueError, match="no query"):
        evaluate_retrieval(enc, QUERIES, CORPUS, {"q_zero": {"a": 0}}, **kw)
    with pytest.raises(ValueError, match="k_values"):
        evaluate_retrieval(enc, QUERIES, CORPUS, QRELS, k_values=(0,), **kw)
    broken = TableEncoder({"x": [float("nan"), 0.0], "y": [1.0, 0.0]})
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_retrieval(broken, {"q": "x"}, {"d": "y"}, {"q": {"d": 1}})


def _reference(q: Tensor, d: Tensor, k: int) -> tuple[list[list[float]], list[list[int]]]:
    """Full score matrix, each row sorted by (-score, column) with Python's sort."""
    full = (q @ d.T).tolist()
    index = [sorted(range(len(row)), key=lambda j, row=row: (-row[j], j))[:k] for row in full]
    return [[row[j] for j in idx] for row, idx in zip(full, index)], index


@pytest.mark.parametrize("top_k", [1, 4, 23, 500])
@pytest.mark.parametrize("blocks", [(1, 1), (5, 7), (8, 23), (100, 1000)])
def test_blockwise_search_equals_full_search_with_ties(top_k: int, blocks: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(top_k)
    # small integers: exact dot products and many ties, so tie-breaking is tested too
    q = torch.randint(-2, 3, (13, 4), generator=g).double()
    d = torch.randint(-2, 3, (45, 4), generator=g).double()
    scores, index = search(q, d, top_k=top_k, query_block=blocks[0], doc_block=blocks[1])
    ref_scores, ref_index = _reference(q, d, top_k)
    assert index.tolist() == ref_index
    assert scores.tolist() == ref_scores
    assert index.shape == (13, min(top_k, 45))


def test_blockwise_search_equals_full_search_float32() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(50, 16, generator=g), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=-1)
    full_scores, full_index = torch.sort(q @ d.T, dim=1, descending=True, stable=True)
    scores, index = search(q, d, top_k=20, query_block=7, doc_block=33)
    assert torch.equal(index, full_index[:, :20])
    torch.testing.assert_close(scores, full_scores[:, :20])


def test_search_edge_cases() -> None:
    scores, index = search(torch.zeros(0, 3), torch.ones(4, 3), top_k=2)
    assert scores.shape == index.shape == (0, 2)
    with pytest.raises(ValueError, match="dim"):
        search(torch.ones(1, 3), torch.ones(4, 2), top_k=2)
    with pytest.raises(ValueError, match=">= 1"):
        search(torch.ones(1, 3), torch.ones(4, 3), top_k=0)
