"""``contrastkit`` entry point: a thin argparse shell; each subcommand lives in its own module.

Errors in user input raise :class:`CliError`: the message is printed to
stderr and the exit status is 2, with nothing written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from contrastkit import __version__
from contrastkit.cli import objectives as objectives_cmd
from contrastkit.cli import train as train_cmd


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contrastkit", description="Contrastive representation learning.")
    parser.add_argument("--version", action="version", version=f"contrastkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    objectives_cmd.add_parser(commands)
    train_cmd.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except (CliError, ValueError, KeyError, TypeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"contrastkit {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
