"""The mining stages end to end on a toy corpus: loading, determinism, JSONL read back, reports, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mining_helpers import CORPUS, POSITIVES, QUERIES, BagEncoder, toy_data

from contrastkit.data.errors import DataError
from contrastkit.data.readers import read_examples
from contrastkit.mining import (
    DEFAULT_RELATIVE_MARGIN,
    FalseNegativeWarning,
    FilterConfig,
    MiningConfig,
    MiningData,
    from_beir,
    from_pairs,
    load_data,
    mine,
    quality_warnings,
    to_records,
)
from contrastkit.mining.pipeline import atomic_write, report, search_depth, write_jsonl, write_report


def _beir(folder: Path, qrels: str) -> Path:
    folder.mkdir()
    (folder / "qrels").mkdir()
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "title": "", "text": t}) + "\n" for i, t in enumerate(CORPUS))
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n" for i, t in enumerate(QUERIES))
    )
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return folder


def test_from_beir_and_missing_corpus_id(tmp_path: Path) -> None:
    lines = "".join(f"q{q}\td{d}\t1\n" for q, pos in enumerate(POSITIVES) for d in pos) + "q2\td3\t0\n"
    data = from_beir(_beir(tmp_path / "ok", lines), split="train")
    assert data.queries == QUERIES and data.positives == POSITIVES and data.corpus == CORPUS
    assert load_data(tmp_path / "ok").query_ids == ["q0", "q1", "q2"]
    with pytest.raises(DataError, match="d99"):
        from_beir(_beir(tmp_path / "bad", "q0\td99\t1\n"), split="train")
    with pytest.raises(FileNotFoundError):
        load_data(tmp_path / "nothing.jsonl")


def test_from_pairs_merges_anchors(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [{"anchor": "a", "positive": "x"}, {"anchor": "b", "positive": "y"}, {"anchor": "a", "positive": "z"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = from_pairs(path)
    assert data.queries == ["a", "b"] and data.corpus == ["x", "y", "z"] and data.positives == [[0, 2], [1]]


@pytest.mark.parametrize("method", ["bm25", "dense", "hybrid"])
def test_mined_output_reads_back_as_triplets_without_positives(method: str, tmp_path: Path) -> None:
    if method != "dense":
        pytest.importorskip("bm25s")
    data = toy_data()
    config = MiningConfig(method=method, num_negatives=2, filters=FilterConfig(range_max=6), index="torch")
    result = mine(data, config, encoder=BagEncoder())
    assert sum(map(len, result.negatives)) >= 2  # BM25: only lexical matches are candidates
    for q, negs in enumerate(result.negatives):
        assert not set(negs) & set(data.positives[q])
    out = tmp_path / "neg.jsonl"
    write_jsonl(to_records(data, result.negatives), out)
    examples = list(read_examples(out, kind="triplet"))
    assert len(examples) == sum(len(p) for p, n in zip(data.positives, result.negatives, strict=True) if n)
    for ex in examples:
        q = data.queries.index(ex.anchor)
        assert ex.group == data.query_ids[q]
        assert set(ex.negatives).isdisjoint(data.corpus[p] for p in data.positives[q])
        assert 1 <= len(ex.negatives) <= 2
    json_path, md_path = write_report(result, tmp_path / "neg.report")
    report = json.loads(json_path.read_text())
    assert report["config"]["method"] == method and report["quality"]["eci_status"] == "partial"
    assert "false_negative_rate" in md_path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["neg.jsonl", "neg.report.json", "neg.report.md"]


def test_random_mining_is_deterministic_by_seed() -> None:
    data = toy_data()

    def run(seed: int) -> list[list[int]]:
        config = MiningConfig(method="dense", num_negatives=2, sampling="random", seed=seed, depth=8, index="torch")
        return mine(data, config, encoder=BagEncoder()).negatives

    assert run(3) == run(3)
    assert len({str(run(s)) for s in range(8)}) > 1


def test_margin_filters_use_the_method_scores() -> None:
    data = toy_data()
    strict = MiningConfig(method="dense", num_negatives=5, filters=FilterConfig(absolute_margin=0.0), depth=8)
    result = mine(data, strict, encoder=BagEncoder())
    for pos, neg in zip(result.positive_scores, result.negative_scores, strict=True):
        assert (neg <= pos.min()).all()
    assert result.quality["false_negative_rate"] == 0.0  # margin 0: nothing scores above the positive
    with pytest.raises(ValueError, match="encoder"):
        mine(data, MiningConfig(method="dense"))


def test_search_depth_defaults_follow_sentence_transformers() -> None:
    data = toy_data()  # at most 2 positives per query
    assert search_depth(MiningConfig(num_negatives=3, filters=FilterConfig()), data) == 5
    assert search_depth(MiningConfig(num_negatives=3), data) == 32  # the default margin filters: 10 x k
    assert search_depth(MiningConfig(num_negatives=3, filters=FilterConfig(relative_margin=0.1)), data) == 32
    assert search_depth(MiningConfig(filters=FilterConfig(range_min=2, range_max=9)), data) == 11


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    atomic_write(target, "ok\n")
    with pytest.raises(TypeError):
        atomic_write(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "ok\n" and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_rescorer_scores_drive_the_filters() -> None:
    data = toy_data()

    def by_length(pairs: list[tuple[str, str]]) -> list[float]:  # a stand-in cross-encoder
        return [float(len(doc)) for _, doc in pairs]

    config = MiningConfig(method="dense", num_negatives=8, depth=8, filters=FilterConfig(absolute_margin=0.0))
    result = mine(data, config, encoder=BagEncoder(), rescorer=by_length)
    assert "rescore" in result.seconds
    for q, negs in enumerate(result.negatives):
        shortest_positive = min(len(data.corpus[p]) for p in data.positives[q])
        assert all(len(data.corpus[d]) <= shortest_positive for d in negs)
        assert [len(data.corpus[d]) for d in negs] == sorted((len(data.corpus[d]) for d in negs), reverse=True)


def _unlabelled_positive() -> MiningData:
    """One query whose corpus holds an unlabelled near-copy of the query scoring above the labelled positive."""
    corpus = ["cat on mat", "a cat on a mat today", "dogs bark", "stock prices"]
    return MiningData(["a cat on a mat"], ["q"], [[0]], corpus, [f"d{i}" for i in range(len(corpus))])


def test_default_mining_keeps_a_margin_and_a_high_false_negative_rate_warns() -> None:
    data = _unlabelled_positive()
    assert MiningConfig().filters.relative_margin == DEFAULT_RELATIVE_MARGIN == 0.05
    safe = mine(data, MiningConfig(num_negatives=2, index="torch"), encoder=BagEncoder())
    assert 1 not in safe.negatives[0] and safe.warnings == []
    assert (safe.negative_scores[0] <= safe.positive_scores[0].min() * 0.95).all()
    with pytest.warns(FalseNegativeWarning, match="false-negative rate 0.50 is above 0.10"):
        risky = mine(data, MiningConfig(num_negatives=2, filters=FilterConfig(), index="torch"), encoder=BagEncoder())
    assert 1 in risky.negatives[0] and risky.quality["false_negative_rate"] == 0.5
    assert risky.warnings and "--relative-margin" in risky.warnings[0]
    assert report(risky)["warnings"] == risky.warnings


def test_quality_warnings_threshold() -> None:
    assert quality_warnings({"false_negative_rate": 0.1}) == []  # at the threshold: quiet
    assert quality_warnings({"false_negative_rate": float("nan")}) == []  # no negatives mined
    assert len(quality_warnings({"false_negative_rate": 0.37})) == 1
