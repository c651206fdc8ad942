"""``mine --out`` and ``eval --json/--report`` are checked before any work: a located message, exit 2, nothing
read or written (the data paths here do not exist, so a later failure would name them instead)."""

import errno
import os

import pytest

from contrastkit import outputs
from contrastkit.cli.main import COMMANDS, main
from contrastkit.outputs import output_problem


@pytest.fixture(autouse=True)
def _commands(monkeypatch) -> None:
    monkeypatch.setitem(COMMANDS, "mine", ("mine hard negatives", "contrastkit.cli.mine"))
    monkeypatch.setitem(COMMANDS, "eval", ("evaluate a model", "contrastkit.cli.eval"))


def test_mine_out_that_is_a_folder_is_refused_first(tmp_path, capsys) -> None:
    out = tmp_path / "negatives"
    out.mkdir()
    code = main(["mine", "--data", str(tmp_path / "missing.jsonl"), "--method", "bm25", "--out", str(out)])
    assert code == 2
    assert f"--out: {out} is a folder, not a file" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_mine_report_path_that_is_a_folder_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "neg.report.json").mkdir()
    out = tmp_path / "neg.jsonl"
    assert main(["mine", "--data", str(tmp_path / "missing.jsonl"), "--method", "bm25", "--out", str(out)]) == 2
    assert "neg.report.json is a folder, not a file" in capsys.readouterr().err
    assert not out.exists()


def test_eval_report_that_is_a_file_is_refused_first(tmp_path, capsys) -> None:
    report = tmp_path / "report"
    report.write_text("x")
    code = main(["eval", "no-such-model", "--task", "sts", "--data", str(tmp_path / "nodata"), "--report", str(report)])
    assert code == 2
    assert f"--report: {report} is a file, not a folder" in capsys.readouterr().err
    assert report.read_text() == "x"


def test_eval_json_under_a_file_is_refused_first(tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "results.json"
    code = main(["eval", "no-such-model", "--task", "sts", "--data", str(tmp_path / "nodata"), "--json", str(out)])
    assert code == 2
    assert f"--json: cannot create {out}: its parent {tmp_path / 'file'} is a file" in capsys.readouterr().err


def test_output_problem_probes_the_disk(tmp_path, monkeypatch) -> None:
    assert output_problem(tmp_path / "new" / "out.jsonl", folder=False) is None
    assert output_problem(tmp_path / "new" / "dir", folder=True) is None
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == []  # the probe leaves nothing

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs.os, "fsync", full)
    assert output_problem(tmp_path / "out.jsonl", folder=False) == (
        f"no space left on the device of {tmp_path} (the file system is full)"
    )
