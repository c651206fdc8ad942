"""``contrastkit objectives`` lists what the registry holds."""

import json

from contrastkit import objectives
from contrastkit.cli.main import main


def test_lists_every_objective_as_json(capsys) -> None:
    assert main(["objectives", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(objectives.names())
    by_name = {r["name"]: r for r in rows}
    assert by_name["infonce"]["status"] == "paper"
    assert by_name["infonce"]["tileable"] is True
    assert all(r["citation"] for r in rows)


def test_status_filter(capsys) -> None:
    assert main(["objectives", "--status", "code", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["status"] == "code" for r in rows)


def test_table_and_unknown_name(capsys) -> None:
    assert main(["objectives"]) == 0
    out = capsys.readouterr().out
    assert "lsepair" in out and "status" in out
    assert main(["objectives", "nosuch"]) == 2
    assert "unknown objective 'nosuch'" in capsys.readouterr().err
