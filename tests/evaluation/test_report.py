"""Results JSON (one object or a list), loading files and folders, the Markdown report and its PNG plots."""

import json
import sys

import pytest
from task_helpers import VectorEncoder, polar, write_tsv

from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.report import load_results, markdown_report, write_report, write_results
from contrastkit.evaluation.tasks import EvalOptions, TaskResult, run_task

PNG = b"\x89PNG\r\n\x1a\n"


def _sts_result(tmp_path) -> TaskResult:
    table = {f"a{i}": polar(0) for i in range(6)} | {f"b{i}": polar(15 * i) for i in range(6)}
    rows = [(f"a{i}", f"b{i}", 5 - i) for i in range(6)]
    write_tsv(tmp_path / "stsb" / "test.tsv", ("sentence1", "sentence2", "score"), rows)
    return run_task("sts", VectorEncoder(table), tmp_path / "stsb", options=EvalOptions(cache=EmbeddingCache()))


def test_write_and_load_results(tmp_path) -> None:
    one = TaskResult("sts", "d/stsb", "test", {"spearman": 0.8})
    two = TaskResult("retrieval", "d/scifact", "test", {"ndcg@10": 0.6, "map": 0.5})
    write_results(one, tmp_path / "one.json")
    assert json.loads((tmp_path / "one.json").read_text()) == one.to_json()  # a single object, not a list
    write_results([one, two], tmp_path / "sub" / "both.json")
    assert json.loads((tmp_path / "sub" / "both.json").read_text()) == [one.to_json(), two.to_json()]
    assert load_results(tmp_path / "one.json") == [one]
    assert load_results(tmp_path / "sub") == [one, two]  # a folder: every *.json
    write_results([two], tmp_path / "sub" / "results.json")
    assert load_results(tmp_path / "sub") == [two]  # results.json wins when present
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("text", "match"),
    [("{", "not a results JSON file"), ("[]", "empty"), ('{"task": "sts"}', "expected an object with keys")],
)
def test_load_results_rejects_bad_files(tmp_path, text, match) -> None:
    (tmp_path / "r.json").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_results(tmp_path / "r.json")


def test_load_results_missing_paths(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "nope.json")
    with pytest.raises(ValueError, match=r"no results\.json"):
        load_results(tmp_path)


def test_report_with_sts_scatter(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    result = _sts_result(tmp_path)
    report = write_report(result, tmp_path / "report", model="tiny")
    files = sorted(p.name for p in (tmp_path / "report").iterdir())
    assert files == ["01_sts_stsb_test_scatter.png", "report.md", "results.json"]
    assert (tmp_path / "report" / "01_sts_stsb_test_scatter.png").read_bytes().startswith(PNG)
    assert json.loads((tmp_path / "report" / "results.json").read_text()) == result.to_json()
    text = report.read_text()
    assert "Model: `tiny`" in text and "| spearman | 1.0000 | 100.00 |" in text
    assert "![01_sts_stsb_test_scatter](01_sts_stsb_test_scatter.png)" in text
    assert "6 pairs" in text


def test_report_plots_for_pairs_retrieval_and_classification(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    table = {f"t{i}": polar(90 * (i % 2) + 3 * i) for i in range(12)}
    write_tsv(tmp_path / "pairs" / "test.tsv", ("sentence1", "sentence2", "label"),
              [("t0", "t2", 1), ("t0", "t1", 0), ("t3", "t5", 1), ("t4", "t5", 0)])  # fmt: skip
    write_tsv(tmp_path / "cls" / "train.tsv", ("text", "label"), [(f"t{i}", i % 2) for i in range(8)])
    write_tsv(tmp_path / "cls" / "test.tsv", ("text", "label"), [(f"t{i}", i % 2) for i in range(8, 12)])
    options = EvalOptions(cache=EmbeddingCache())
    results = [
        run_task("pair-classification", VectorEncoder(table), tmp_path / "pairs", options=options),
        run_task("classification", VectorEncoder(table), tmp_path / "cls", options=options),
        run_task("clustering", VectorEncoder(table), tmp_path / "cls", options=options),
    ]
    write_report(results, tmp_path / "out")
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pngs == ["01_pair-classification_pairs_test_cosine_hist.png", "02_classification_cls_test_confusion.png"]
    assert len(json.loads((tmp_path / "out" / "results.json").read_text())) == 3
    text = (tmp_path / "out" / "report.md").read_text()
    assert text.count("\n## ") == 3 and "best accuracy at" in text


def test_report_without_matplotlib_says_so(tmp_path, monkeypatch) -> None:
    result = _sts_result(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    write_report(result, tmp_path / "plain")
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["report.md", "results.json"]
    assert "Plots skipped: matplotlib is not installed" in (tmp_path / "plain" / "report.md").read_text()


def test_markdown_report_lists_every_metric() -> None:
    results = [TaskResult("retrieval", "x/scifact", "test", {"ndcg@10": 0.6451, "map": 0.6})]
    text = markdown_report(results, plots=[["a.png"]])
    assert text.startswith("# Evaluation report\n")
    assert "## retrieval: `x/scifact` (test)" in text and "| ndcg@10 | 0.6451 | 64.51 |" in text
    assert "![a](a.png)" in text
