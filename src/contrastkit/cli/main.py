"""``contrastkit`` entry point: a thin argparse shell; each subcommand lives in its own module.

Commands are listed in :data:`COMMANDS` (name, one-line help, module). Only
the module of the command being run is imported, so ``contrastkit
objectives`` does not pay for loading transformers. Each command module has
``add_parser(commands)`` and ``run(args) -> int``.

Errors in user input raise a :class:`~contrastkit.errors.ContrastkitError`
(:class:`CliError` here): the message is printed to stderr on one line and the
exit status is 2, with nothing written. A plain ValueError/KeyError/TypeError
from the library is reported the same way for now, with a note that
``CONTRASTKIT_DEBUG=1`` shows its traceback (it may be a bug, not bad input).
``eval``, ``mine`` and ``analyze`` turn on encode progress
(:mod:`contrastkit.encoders.progress`): any encode longer than a few seconds shows
a bar on a terminal, a line every 30 s otherwise, and a summary line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from contrastkit import __version__
from contrastkit.errors import ContrastkitError

COMMANDS: dict[str, tuple[str, str]] = {
    "objectives": ("list the contrastive objectives with status, inputs and citation", "contrastkit.cli.objectives"),
    "train": ("train an embedding model from a YAML config (plus key=value overrides)", "contrastkit.cli.train"),
    "quickstart": ("offline demo: fine-tune MiniLM on stdlib code search, before/after", "contrastkit.cli.quickstart"),
    "eval": (
        "evaluate a model on a task folder (sts, retrieval, reasoning, classification, clustering, "
        "pair-classification)",
        "contrastkit.cli.eval",
    ),
    "compare": ("show two evaluation runs side by side, with differences", "contrastkit.cli.compare"),
    "mine": ("mine hard negatives (BM25, dense or hybrid) into a training JSONL", "contrastkit.cli.mine"),
    "analyze": (
        "embedding diagnostics: isotropy, alignment/uniformity, effective rank, hubness, per-layer measures",
        "contrastkit.cli.analyze",
    ),
    "export": ("export a saved model to ONNX (and int8) for sentence-transformers' backend", "contrastkit.cli.export"),
    "merge": ("merge fine-tuned checkpoints (uniform, task-arithmetic, ties, delta-guided)", "contrastkit.cli.merge"),
}

# Commands whose encodes report progress on stderr (training reports through its own progress line).
ENCODE_PROGRESS = frozenset({"eval", "mine", "analyze"})


class CliError(ContrastkitError):
    """A user-facing error: printed without a traceback, exit status 2."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``command``'s own arguments are added when it is named (its module is imported)."""
    parser = argparse.ArgumentParser(prog="contrastkit", description="Contrastive representation learning.")
    parser.add_argument("--version", action="version", version=f"contrastkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, module) in COMMANDS.items():
        if name == command:
            importlib.import_module(module).add_parser(commands)
        else:
            commands.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command in ENCODE_PROGRESS:
            from contrastkit.encoders.progress import enabled_for

            with enabled_for(True):
                return int(args.run(args) or 0)
        return int(args.run(args) or 0)
    except ContrastkitError as err:  # input the user can fix: one line, status 2
        print(f"contrastkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, TypeError) as err:
        # Not (yet) a ContrastkitError: still reported as a user error, but CONTRASTKIT_DEBUG=1 shows where it came
        # from, since it may be a bug in contrastkit rather than in the input.
        if os.environ.get("CONTRASTKIT_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        hint = "(CONTRASTKIT_DEBUG=1 shows the traceback)"
        print(f"contrastkit {args.command}: error: {message} {hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
