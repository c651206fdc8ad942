"""``contrastkit eval`` and ``contrastkit compare`` through the real entry point, on a tiny random BERT folder.

Malformed data folders exit non-zero with the reader's message and write nothing (the model is never loaded:
the data is checked first). The JSON layout is exactly {task, data, split, metrics}.
"""

import json
import os

import pytest

from contrastkit.cli import main as cli_main
from tiny_models import tiny_bert_folder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_WORD_LIST = "the a cat dog sat ran on mat big small red blue runs fast slow hello world is"
WORDS = _WORD_LIST.split()


@pytest.fixture(autouse=True)
def _commands(monkeypatch) -> None:
    """Register the two commands as the lead will (cli/main.py is not edited here)."""
    monkeypatch.setitem(cli_main.COMMANDS, "eval", ("evaluate a model", "contrastkit.cli.eval"))
    monkeypatch.setitem(cli_main.COMMANDS, "compare", ("compare two runs", "contrastkit.cli.compare"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random BERT with a WordPiece vocabulary over WORDS, as a Hugging Face folder."""
    folder = tiny_bert_folder(tmp_path_factory.mktemp("tiny_bert"), WORDS, max_length=64, intermediate_size=64)
    return str(folder)


def _sts_folder(root, rows=None):
    rows = rows or [
        ("the cat sat on the mat", "a cat sat on a mat", "4.8"),
        ("the dog runs fast", "a big dog ran", "3.5"),
        ('"hello world', "hello world", "4.0"),  # leading quote: TSV is read without quoting
        ("the red cat", "blue world is slow", "0.5"),
        ("a small dog", "the small dog", "4.5"),
        ("the mat is red", "hello", "0.2"),
    ]
    root.mkdir(parents=True, exist_ok=True)
    lines = ["sentence1\tsentence2\tscore", *("\t".join(r) for r in rows)]
    (root / "test.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_eval_sts_writes_the_json_layout_and_a_report(model, tmp_path, capsys) -> None:
    data = _sts_folder(tmp_path / "stsb")
    out, report = tmp_path / "out" / "stsb.json", tmp_path / "report"
    status = cli_main.main(["eval", model, "--task", "sts", "--data", str(data), "--json", str(out),
                            "--report", str(report), "--batch-size", "4"])  # fmt: skip
    assert status == 0
    obj = json.loads(out.read_text())
    assert list(obj) == ["task", "data", "split", "metrics"]
    assert obj["task"] == "sts" and obj["data"] == str(data) and obj["split"] == "test"
    assert set(obj["metrics"]) == {"spearman", "pearson"}
    assert all(isinstance(v, float) and -1 <= v <= 1 for v in obj["metrics"].values())
    assert json.loads((report / "results.json").read_text()) == obj
    assert (report / "report.md").is_file()
    stdout = capsys.readouterr().out
    assert f"sts on {data} (test):" in stdout and "spearman" in stdout


def test_eval_json_to_stdout_and_options(model, tmp_path, capsys) -> None:
    root = tmp_path / "pairs"
    root.mkdir()
    rows = ["sentence1\tsentence2\tlabel", "the cat\ta cat\t1", "the dog\tred world\t0", "big mat\tbig mat\t1"]
    (root / "dev.tsv").write_text("\n".join(rows) + "\n")
    status = cli_main.main(["eval", model, "--task", "pair_classification", "--data", str(root), "--split", "dev",
                            "--json", "-"])  # fmt: skip
    assert status == 0
    captured = capsys.readouterr()
    obj = json.loads(captured.out)
    assert obj["task"] == "pair-classification" and obj["split"] == "dev"
    assert set(obj["metrics"]) == {"ap", "accuracy", "f1", "precision", "recall"}
    assert "pair-classification on" in captured.err
    # a task option that the runner does not know is a user error (status 2)
    assert cli_main.main(["eval", model, "--task", "sts", "--data", str(_sts_folder(tmp_path / "s")),
                          "--option", "nonsense=3"]) == 2  # fmt: skip
    assert "nonsense" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no test.tsv"),
        ("sentence1\tscore\na\t1\n", "missing column 'positive' or 'positives' or 'sentence2'"),
        ("sentence1\tsentence2\tscore\na\tb\t1\nc\td\tvery\n", "row 2 (line 3): wrong type in column 'score'"),
    ],
    ids=["missing-file", "missing-column", "bad-score"],
)
def test_malformed_data_exits_2_and_writes_nothing(tmp_path, capsys, content, message) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if content is not None:
        (data / "test.tsv").write_text(content)
    out, report = tmp_path / "out.json", tmp_path / "report"
    # the model path does not even exist: the data error must come first
    status = cli_main.main(["eval", str(tmp_path / "no-model"), "--task", "sts", "--data", str(data),
                            "--json", str(out), "--report", str(report)])  # fmt: skip
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("contrastkit eval: error: ") and message in err and str(data) in err
    assert not out.exists() and not report.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_unknown_task_and_missing_folder_exit_2(tmp_path, capsys) -> None:
    assert cli_main.main(["eval", "m", "--task", "nli", "--data", str(tmp_path)]) == 2
    assert "unknown task type 'nli'" in capsys.readouterr().err
    assert cli_main.main(["eval", "m", "--task", "retrieval", "--data", str(tmp_path / "absent")]) == 2
    assert "absent" in capsys.readouterr().err


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return str(path)


def test_compare_shows_both_runs_and_differences(tmp_path, capsys) -> None:
    a = _write(tmp_path / "a.json", {"task": "sts", "data": "/x/stsb", "split": "test",
                                     "metrics": {"spearman": 0.8203, "pearson": 0.8274}})  # fmt: skip
    b_results = [
        {"task": "sts", "data": "../other/stsb", "split": "test", "metrics": {"spearman": 0.85, "pearson": 0.8}},
        {"task": "retrieval", "data": "scifact", "split": "test", "metrics": {"ndcg@10": 0.6451}},
    ]
    _write(tmp_path / "run_b" / "results.json", b_results)
    assert cli_main.main(["compare", a, str(tmp_path / "run_b")]) == 0
    out = capsys.readouterr().out
    lines = {tuple(line.split()[:4]): line.split()[4:] for line in out.splitlines() if line.startswith(("sts", "ret"))}
    assert lines[("sts", "stsb", "test", "spearman")] == ["0.8203", "0.8500", "+0.0297"]
    assert lines[("sts", "stsb", "test", "pearson")] == ["0.8274", "0.8000", "-0.0274"]
    assert lines[("retrieval", "scifact", "test", "ndcg@10")] == ["-", "0.6451", "-"]
    assert "2 metric(s) in both runs, 1 in one only." in out

    assert cli_main.main(["compare", a, str(tmp_path / "run_b"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[0] == {"task": "sts", "data": "stsb", "split": "test", "metric": "spearman", "A": 0.8203,
                       "B": 0.85, "B - A": pytest.approx(0.0297)}  # fmt: skip
    assert cli_main.main(["compare", a, a, "--markdown"]) == 0
    assert "| sts | stsb | test | spearman | 0.8203 | 0.8203 | +0.0000 |" in capsys.readouterr().out


def test_compare_bad_inputs_exit_2(tmp_path, capsys) -> None:
    good = _write(tmp_path / "a.json", {"task": "sts", "data": "d", "split": "test", "metrics": {"spearman": 1.0}})
    assert cli_main.main(["compare", good, str(tmp_path / "missing.json")]) == 2
    assert "no such results file" in capsys.readouterr().err
    bad = _write(tmp_path / "bad.json", {"task": "sts"})
    assert cli_main.main(["compare", good, bad]) == 2
    assert "expected an object with keys" in capsys.readouterr().err
