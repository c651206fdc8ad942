"""``--help`` of the commands a new user meets first: every option explained, every default shown."""

from __future__ import annotations

import argparse

import pytest

from contrastkit.cli.main import COMMANDS, build_parser


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize("command", sorted(COMMANDS))  # mine and analyze first of all
def test_every_option_has_help_and_its_default(command: str) -> None:
    parser = _subparser(command)
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[0] if action.option_strings else action.dest
        assert action.help, f"{command} {name} has no help"
        if action.default not in (None, False, [], ()) and not action.required:
            assert str(action.default) in text, f"{command} {name}: default {action.default!r} not shown"
