"""``contrastkit mine``: BM25 and dense on tiny data, read-back, and bad input exiting 2 with nothing written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from contrastkit.cli import mine as mine_cli
from contrastkit.cli.main import COMMANDS, main
from contrastkit.data.readers import read_examples

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mining"))
from mining_helpers import BagEncoder

PAIRS = [
    ("which cat sat on a mat", "the cat sat on the mat"),
    ("why did stock markets fall", "stock markets fell sharply on monday"),
    ("what raised interest rates for stock markets", "the central bank raised interest rates"),
    ("pets at home", "a cat and a dog are common household pets"),
    ("yard in autumn", "the yard was full of autumn leaves"),
]


@pytest.fixture(autouse=True)
def _registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the command for these tests (the lead adds it to COMMANDS in cli/main.py)."""
    monkeypatch.setitem(COMMANDS, "mine", ("mine hard negatives", "contrastkit.cli.mine"))


def _pairs(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in PAIRS))
    return path


def test_bm25_mining_writes_triplets_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bm25s")
    out = tmp_path / "neg.jsonl"
    code = main(
        ["mine", "--data", str(_pairs(tmp_path)), "--method", "bm25", "--num-negatives", "2", "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    examples = list(read_examples(out, kind="triplet"))
    assert examples and all(ex.negatives and ex.positives[0] not in ex.negatives for ex in examples)
    assert json.loads((tmp_path / "neg.report.json").read_text())["quality"]["eci_status"] == "partial"
    assert "records" in capsys.readouterr().out


def test_dense_mining_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mine_cli, "_encoder", lambda model: BagEncoder())
    args = ["mine", "--data", str(_pairs(tmp_path)), "--model", "toy", "--method", "dense", "--sampling", "random"]
    args += ["--seed", "5", "--num-negatives", "2", "--range-max", "4"]
    assert main([*args, "--out", str(tmp_path / "a.jsonl")]) == 0
    assert main([*args, "--out", str(tmp_path / "b.jsonl")]) == 0
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    assert len(list(read_examples(tmp_path / "a.jsonl", kind="triplet"))) == len(PAIRS)


def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "neg.jsonl"
    assert main(["mine", "--data", str(tmp_path / "missing.jsonl"), "--method", "bm25", "--out", str(out)]) == 2
    assert "missing.jsonl" in capsys.readouterr().err
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "a doc"}) + "\n")
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "a query"}) + "\n")
    (beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td404\t1\n")
    assert main(["mine", "--data", str(beir), "--method", "bm25", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "d404" in err and "train.tsv" in err
    assert main(["mine", "--data", str(_pairs(tmp_path)), "--method", "dense", "--out", str(out)]) == 2
    assert "--model" in capsys.readouterr().err
    assert not out.parent.exists()


def test_default_margin_and_a_loud_false_negative_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(mine_cli, "_encoder", lambda model: BagEncoder())
    pairs = tmp_path / "near.jsonl"  # the second query's positive is a near-copy of the first query
    rows = [("a cat on a mat", "cat on mat"), ("a cat on a mat today", "a cat on a mat today"), ("dogs", "dogs bark")]
    pairs.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in rows))
    args = ["mine", "--data", str(pairs), "--model", "toy", "--num-negatives", "2", "--index", "torch"]
    assert main([*args, "--out", str(tmp_path / "safe.jsonl")]) == 0
    report = json.loads((tmp_path / "safe.report.json").read_text())
    assert report["config"]["filters"]["relative_margin"] == 0.05 and report["warnings"] == []
    assert "WARNING" not in capsys.readouterr().err
    assert main([*args, "--relative-margin", "none", "--out", str(tmp_path / "risky.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "contrastkit mine: WARNING: estimated false-negative rate" in err and "--relative-margin" in err
    report = json.loads((tmp_path / "risky.report.json").read_text())
    assert report["config"]["filters"]["relative_margin"] is None and report["warnings"]
    with pytest.raises(SystemExit) as stop:
        main([*args, "--relative-margin", "lots", "--out", str(tmp_path / "x.jsonl")])
    assert stop.value.code == 2
    assert "expected a number or 'none'" in capsys.readouterr().err
