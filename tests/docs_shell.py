"""Run the docs' shell examples in a smoke variant: every path, command and flag checked, heavy work made small.

A page's ```bash blocks run in order, in a sandbox that mirrors the
repository root (``configs``, ``bench``, ``scripts``, ... linked) with the
shared data pack at ``../shared``, so relative paths resolve as they do for
a user at the repository root. A block whose first line is a comment
starting ``# template`` is a template (placeholders to fill in) and is not
run. Each command line is expanded by bash (quotes, ``$(...)``) and then:

* ``contrastkit eval | analyze | mine | compare | objectives`` (also as
  ``.venv/bin/contrastkit``, ``python -m contrastkit`` or under
  ``torchrun ... -m contrastkit``) run for real through the CLI's ``main``,
  with one change: the model is a tiny random BERT, loaded after the
  example's own model name was resolved (an unknown alias or a missing
  folder fails), so encoding takes a second, not minutes;
* ``contrastkit train`` resolves the config and every override
  (``--print-config``) and checks that the model and every training file
  exist; ``contrastkit quickstart`` resolves its overrides;
* ``python bench/X.py --flag ...`` checks that the script exists and defines
  each ``--flag``; ``bash scripts/X.sh`` that the script exists and parses.

A path under ``runs/`` that does not exist is taken to be the output of an
earlier step of the same page (a model a train line would write), so
following steps run on the tiny model in its place. Anything else is an
error naming the page and line.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
COMMAND_WORDS = ("contrastkit ", "torchrun ", "python ", "bash ", ".venv/", "pip ")
LINKED = ("configs", "bench", "scripts", "src", "docs", "tests", "pyproject.toml", "README.md")
RUN_FOR_REAL = ("eval", "analyze", "mine", "compare", "objectives")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its info string's language, its text, the page and line where it starts."""

    language: str
    text: str
    page: Path
    line: int

    @property
    def template(self) -> bool:
        return self.text.lstrip().startswith("# template")

    def commands(self) -> Iterator[tuple[int, str]]:
        """(line number, command) for each command, continuation lines joined; comment-only lines skipped."""
        lines = self.text.split("\n")
        k = 0
        while k < len(lines):
            start, command = k, lines[k]
            while command.endswith("\\") and k + 1 < len(lines):
                k += 1
                command = command[:-1] + " " + lines[k].strip()
            k += 1
            if command.strip() and not command.lstrip().startswith("#"):
                yield self.line + 1 + start, command


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a Markdown page."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^```([^\n]*)\n(.*?)^```", text, flags=re.S | re.M):
        language = (match.group(1).split() or [""])[0]
        found.append(Block(language, match.group(2), page, text.count("\n", 0, match.start()) + 1))
    return found


def shell_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.language in SHELL_LANGUAGES]


def untagged_commands(page: Path) -> list[str]:
    """Lines of blocks without a shell language that start like a command (they would escape the smoke run)."""
    out = []
    for block in blocks(page):
        if block.language in SHELL_LANGUAGES or block.language not in ("", "text"):
            continue
        for line, command in block.commands():
            if command.lstrip().startswith(COMMAND_WORDS):
                out.append(f"{page.name}:{line}: {command.strip()}")
    return out


def make_sandbox(root: Path) -> Path:
    """``root/repo`` mirroring the repository (links) and ``root/shared`` linking the shared data pack."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    for name in LINKED:
        (repo / name).symlink_to(ROOT / name)
    (root / "shared").symlink_to((ROOT / ".." / "shared").resolve())
    return repo


def expand(command: str, cwd: Path) -> list[str]:
    """The argv bash would run for ``command`` (quotes, ``$(...)`` expanded in ``cwd``)."""
    done = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {command}"], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise AssertionError(f"bash cannot expand it: {done.stderr.strip()}")
    return done.stdout.split("\0")[:-1]


def contrastkit_argv(argv: list[str]) -> list[str] | None:
    """The CLI arguments when ``argv`` runs contrastkit (directly, ``python -m`` or under ``torchrun``)."""
    head = Path(argv[0]).name
    if head == "contrastkit":
        return argv[1:]
    if head in ("python", "python3", "torchrun") and "-m" in argv:
        at = argv.index("-m")
        if argv[at + 1 : at + 2] == ["contrastkit"]:
            if head == "torchrun":
                _check_torchrun_options(argv[1:at])
            return argv[at + 2 :]
    return None


def _check_torchrun_options(options: list[str]) -> None:
    known = {"--nproc_per_node", "--nproc-per-node", "--nnodes", "--node_rank", "--master_addr", "--master_port"}
    flags = [o.split("=")[0] for o in options if o.startswith("--")]
    unknown = [f for f in flags if f not in known]
    assert not unknown, f"torchrun options not known to this check: {unknown}"


def produced_earlier(path: str | Path) -> bool:
    """A path under ``runs/``: an earlier step's output (see the module docstring)."""
    parts = Path(path).parts
    return bool(parts) and parts[0] == "runs"


def check_path(path: str | Path, what: str) -> None:
    assert Path(path).exists() or produced_earlier(path), f"{what} {path} does not exist"


def run_command(argv: list[str], main: Callable[[list[str]], int]) -> None:
    """Run one expanded command's smoke variant (see the module docstring); AssertionError when it fails."""
    cli = contrastkit_argv(argv)
    if cli is not None:
        _contrastkit(cli, main)
    elif Path(argv[0]).name in ("python", "python3") and argv[1:2] and argv[1].endswith(".py"):
        _python_script(Path(argv[1]), argv[2:])
    elif argv[0] == "bash" and argv[1:2]:
        check_path(argv[1], "script")
        done = subprocess.run(["bash", "-n", argv[1]], capture_output=True, text=True)
        assert done.returncode == 0, f"{argv[1]} does not parse: {done.stderr}"
    else:
        raise AssertionError(
            f"no smoke variant for {argv[0]!r}: mark the block '# template' or teach tests/docs_shell.py"
        )


def _python_script(script: Path, args: list[str]) -> None:
    check_path(script, "script")
    source = script.read_text(encoding="utf-8")
    for flag in (a.split("=")[0] for a in args if a.startswith("--")):
        assert f'"{flag}"' in source, f"{script} has no option {flag}"


def _contrastkit(cli: list[str], main: Callable[[list[str]], int]) -> None:
    from contrastkit.cli.main import COMMANDS, build_parser

    command = next((a for a in cli if not a.startswith("-")), None)
    assert command in COMMANDS, f"contrastkit has no command {command!r}"
    try:
        args = build_parser(command).parse_args(cli)  # an unknown flag or bad value exits here
    except SystemExit as stop:
        raise AssertionError(f"contrastkit {command} refuses these arguments (exit {stop.code})") from None
    if command in RUN_FOR_REAL:
        assert main(cli) == 0, f"contrastkit {command} failed"
    elif command == "train":
        _train(args, main, cli)
    elif command == "quickstart":
        from contrastkit.cli.quickstart import quickstart_config

        quickstart_config(list(args.overrides))
    else:
        raise AssertionError(f"no smoke variant for contrastkit {command}")


def _train(args, main: Callable[[list[str]], int], cli: list[str]) -> None:  # type: ignore[no-untyped-def]
    from contrastkit.encoders.auto import resolve_model_path
    from contrastkit.training.config import load_config
    from contrastkit.training.curriculum import load_curriculum

    assert main([*cli, "--print-config"]) == 0, "contrastkit train cannot resolve the config"
    path, overrides = args.config, list(args.overrides)
    if path is not None and "=" in path:
        path, overrides = None, [path, *overrides]
    if path is not None:
        check_path(path, "config")
        if load_curriculum(path, overrides) is not None:
            return  # every stage's config was resolved by --print-config
    config = load_config(path, overrides)
    if config.model.path != "scratch" and not produced_earlier(config.model.path):
        resolve_model_path(config.model.path)
    files = [*config.data.train, *(f for ds in config.data.datasets for f in ds.train)]
    for file in files:
        check_path(file, "training file")


def run_page(page: Path, sandbox: Path, main: Callable[[list[str]], int]) -> int:
    """Every non-template shell example of ``page``, in order, in ``sandbox`` (the caller's cwd); the count."""
    count = 0
    for block in shell_blocks(page):
        if block.template:
            continue
        for line, command in block.commands():
            where = f"{page.relative_to(ROOT)}:{line}: {command.strip()}"
            try:
                run_command(expand(command, sandbox), main)
            except AssertionError as err:
                raise AssertionError(f"{where}\n  {err}") from None
            except Exception as err:
                raise AssertionError(f"{where}\n  {type(err).__name__}: {err}") from err
            count += 1
    return count
