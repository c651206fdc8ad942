"""Held-out dev queries of a BEIR split: deterministic, disjoint by query text, other splits untouched."""

from __future__ import annotations

import json
from pathlib import Path

from contrastkit.data.beir import load_beir
from contrastkit.data.holdout import hold_out_queries, main


def beir(folder: Path, n: int = 40) -> Path:
    """n train queries (every 5th repeats an earlier text), each judging two docs; 3 test queries."""
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "text": f"document {i}"} for i in range(2 * n)]
    queries = [{"_id": f"q{i}", "text": f"query {i // 2 if i % 5 == 4 else i}"} for i in range(n + 3)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    train = [f"q{i}\td{2 * i}\t1\nq{i}\td{2 * i + 1}\t1\n" for i in range(n)]
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(train))
    test = "".join(f"q{n + i}\td{i}\t1\n" for i in range(3))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + test)
    return folder


def test_dev_queries_are_held_out_deterministically_and_by_text(tmp_path):
    src = beir(tmp_path / "src")
    counts = hold_out_queries(src, tmp_path / "a", fraction=0.3, seed=1)
    hold_out_queries(src, tmp_path / "b", fraction=0.3, seed=1)
    for name in ("train", "dev", "test"):
        assert (tmp_path / "a" / "qrels" / f"{name}.tsv").read_text() == (
            tmp_path / "b" / "qrels" / f"{name}.tsv"
        ).read_text()
    train, dev = load_beir(tmp_path / "a", "train"), load_beir(tmp_path / "a", "dev")
    assert counts == {"train": len(train.qrels), "dev": len(dev.qrels)} and counts["dev"] > 0
    assert len(train.qrels) + len(dev.qrels) == 40 and not set(train.qrels) & set(dev.qrels)
    assert not set(train.queries.values()) & set(dev.queries.values())  # same text, same side
    assert all(len(docs) == 2 for docs in dev.qrels.values())  # every judgement of a query goes with it
    assert load_beir(tmp_path / "a", "test").qrels == load_beir(src, "test").qrels
    other = hold_out_queries(src, tmp_path / "c", fraction=0.3, seed=2)
    assert load_beir(tmp_path / "c", "dev").qrels.keys() != dev.qrels.keys() or other != counts


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    src = beir(tmp_path / "src")
    assert main([str(src), str(tmp_path / "out"), "--fraction", "1.5"]) == 2
    assert main([str(src), str(tmp_path / "out"), "--split", "test"]) == 2  # would overwrite qrels/train.tsv
    assert "would overwrite" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))
