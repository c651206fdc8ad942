"""The CLI's error contract: a ContrastkitError is the user's to fix (one line, exit 2); anything else may be a bug."""

import pytest

from contrastkit.cli import objectives as objectives_cli
from contrastkit.cli.main import main
from contrastkit.errors import ContrastkitError, UnknownNameError, UsageError
from contrastkit.evaluation.tasks import check_params, get_task
from contrastkit.objectives.registry import REGISTRY


def test_unknown_names_and_options_are_user_errors() -> None:
    with pytest.raises(UnknownNameError, match="unknown task type 'nope'") as task:
        get_task("nope")
    with pytest.raises(UnknownNameError, match="did you mean infonce") as objective:
        REGISTRY.cls("infonc")
    with pytest.raises(UsageError, match="valid options") as option:
        check_params("sts", {"foo": 1})
    for err in (task.value, objective.value, option.value):
        assert isinstance(err, ContrastkitError)
    assert isinstance(task.value, KeyError) and not str(task.value).startswith("'")  # a sentence, not a repr


def test_a_family_error_is_one_line_and_exit_2(capsys) -> None:
    assert main(["eval", "some-model", "--task", "no-such-task", "--data", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("contrastkit eval: error: unknown task type") and "\n" not in err
    assert "CONTRASTKIT_DEBUG" not in err


def test_a_plain_library_error_says_how_to_see_its_traceback(monkeypatch, capsys) -> None:
    def broken(args):
        raise ValueError("an internal invariant failed")

    monkeypatch.setattr(objectives_cli, "run", broken)
    assert main(["objectives"]) == 2
    assert "CONTRASTKIT_DEBUG=1 shows the traceback" in capsys.readouterr().err
    monkeypatch.setenv("CONTRASTKIT_DEBUG", "1")
    with pytest.raises(ValueError, match="internal invariant"):
        main(["objectives"])
