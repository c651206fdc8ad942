"""The PIQA training/dev/evaluation split: deterministic by seed, disjoint by goal text, triplets that follow the
labels, BEIR folders that load, and refusals that write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contrastkit.data.beir import load_beir
from contrastkit.data.piqa_split import main, split_piqa

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "piqa"


def fake_piqa(folder: Path, n: int = 60) -> Path:
    """A PIQA folder in the shared layout: n questions (every 7th repeats an earlier goal), labels alternating."""
    (folder / "original").mkdir(parents=True)
    (folder / "qrels").mkdir()
    rows, labels, corpus, queries, qrels = [], [], [], [], ["query-id\tcorpus-id\tscore"]
    for i in range(n):
        goal = f"goal {i // 2}" if i % 7 == 6 else f"goal {i}"
        row = {"goal": goal, "sol1": f"first way {i} ", "sol2": f"second way {i}"}
        rows.append(json.dumps(row))
        labels.append(str(i % 2))
        corpus += [{"_id": f"d{2 * i}", "title": "", "text": f"first way {i}"},
                   {"_id": f"d{2 * i + 1}", "title": "", "text": f"second way {i}"}]  # fmt: skip
        queries.append({"_id": f"piqa-val-{i}", "text": goal})
        qrels.append(f"piqa-val-{i}\td{2 * i + i % 2}\t1")
    (folder / "original" / "valid.jsonl").write_text("\n".join(rows) + "\n")
    (folder / "original" / "valid-labels.lst").write_text("\n".join(labels) + "\n")
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return folder


def read_tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_split_is_deterministic_and_changes_with_the_seed(tmp_path):
    src = fake_piqa(tmp_path / "piqa")
    split_piqa(src, tmp_path / "a", seed=3)
    split_piqa(src, tmp_path / "b", seed=3)
    split_piqa(src, tmp_path / "c", seed=4)
    assert read_tree(tmp_path / "a") == read_tree(tmp_path / "b")
    assert read_tree(tmp_path / "a")["train.jsonl"] != read_tree(tmp_path / "c")["train.jsonl"]


def test_parts_are_disjoint_by_goal_and_cover_every_question(tmp_path):
    src = fake_piqa(tmp_path / "piqa")
    counts = split_piqa(src, tmp_path / "out", seed=0)
    train = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    evals = {name: load_beir(tmp_path / "out" / name, split) for name, split in (("eval", "test"), ("dev", "dev"))}
    goals = {"train": {t["anchor"] for t in train}} | {k: set(v.queries.values()) for k, v in evals.items()}
    assert not goals["train"] & goals["eval"] and not goals["train"] & goals["dev"] and not goals["eval"] & goals["dev"]
    assert sum(counts.values()) == 60 and counts["train"] == len(train)
    assert all(len(v.queries) == counts[k] for k, v in evals.items()) and min(counts.values()) > 0
    ids = [q for v in evals.values() for q in v.queries]
    assert len(ids) == len(set(ids))
    for t in train:  # the positive is the labelled solution, the negative the other one (label = index parity)
        i = int(t["positive"].split()[-1])
        assert t["positive"] == ("first way" if i % 2 == 0 else "second way") + f" {i}"
        assert t["negative"] == ("second way" if i % 2 == 0 else "first way") + f" {i}"
    assert len(evals["eval"].corpus) == 120  # the whole corpus: every solution competes


def test_bad_source_exits_2_and_writes_nothing(tmp_path, capsys):
    src = fake_piqa(tmp_path / "piqa")
    (src / "original" / "valid-labels.lst").write_text("0\n" * 59)
    assert main([str(src), str(tmp_path / "out")]) == 2
    assert "59 labels for 60 questions" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared PIQA folder is not present")
def test_the_shared_piqa_splits_into_disjoint_halves(tmp_path):
    counts = split_piqa(SHARED, tmp_path / "out")
    assert sum(counts.values()) == 1838 and 0.4 < counts["eval"] / 1838 < 0.6
