"""``contrastkit compare RUN_A RUN_B``: two evaluation runs side by side, with the differences.

Each run is a results JSON file written by ``contrastkit eval --json`` (one
result or a list) or a folder (its ``results.json``, as written by ``--report``,
else every ``*.json`` in it). Results are matched by (task, data folder name,
split), so runs made from different working directories still line up. For
every metric of a matched result the table shows A, B and B - A; a result or
metric present in one run only is shown with ``-`` for the other.
``--markdown`` prints a Markdown table, ``--json`` the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from contrastkit.errors import UsageError
from contrastkit.evaluation.report import load_results
from contrastkit.evaluation.tasks import TaskResult

Key = tuple[str, str, str]
HEAD = ("task", "data", "split", "metric", "A", "B", "B - A")


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "compare",
        help="show two evaluation runs (results JSON files or folders) side by side",
        description="Compare two runs. Example: contrastkit compare runs/base/stsb.json runs/tuned/stsb.json",
    )
    p.add_argument("run_a", metavar="RUN_A", help="results JSON file or folder")
    p.add_argument("run_b", metavar="RUN_B", help="results JSON file or folder")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    fmt.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(run=run)


def _index(results: list[TaskResult], source: str) -> dict[Key, TaskResult]:
    out: dict[Key, TaskResult] = {}
    for r in results:
        key = (r.task, Path(r.data).name or r.data, r.split)
        if key in out:
            raise UsageError(f"{source}: two results for task {key[0]!r}, data {key[1]!r}, split {key[2]!r}")
        out[key] = r
    return out


def compare_rows(a: list[TaskResult], b: list[TaskResult]) -> list[dict[str, object]]:
    """One row per (task, data, split, metric) in either run: values (None when absent) and B - A."""
    index_a, index_b = _index(a, "RUN_A"), _index(b, "RUN_B")
    rows: list[dict[str, object]] = []
    for key in dict.fromkeys([*index_a, *index_b]):
        ma = index_a[key].metrics if key in index_a else {}
        mb = index_b[key].metrics if key in index_b else {}
        for metric in dict.fromkeys([*ma, *mb]):
            va, vb = ma.get(metric), mb.get(metric)
            diff = vb - va if va is not None and vb is not None else None
            rows.append(dict(zip(HEAD, (*key, metric, va, vb, diff), strict=True)))
    return rows


def _cell(value: object, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.4f}" if signed else f"{value:.4f}"
    return str(value)


def format_table(rows: list[dict[str, object]], *, markdown: bool = False) -> str:
    """The rows as an aligned text table, or a Markdown table."""
    cells = [[_cell(r[h], signed=h == "B - A") for h in HEAD] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(x) for x in col) for col in zip(HEAD, *cells, strict=True)]
    numeric = {"A", "B", "B - A"}
    lines = []
    for line in (HEAD, *cells):
        padded = (x.rjust(w) if h in numeric else x.ljust(w) for h, x, w in zip(HEAD, line, widths, strict=True))
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the comparison of RUN_A and RUN_B; returns the exit status."""
    try:
        a, b = load_results(args.run_a), load_results(args.run_b)
    except FileNotFoundError as err:  # a user error: status 2
        raise UsageError(str(err)) from None
    rows = compare_rows(a, b)
    if args.json:
        print(json.dumps({"A": str(args.run_a), "B": str(args.run_b), "rows": rows}, indent=2))
        return 0
    print(f"A: {args.run_a}\nB: {args.run_b}\n")
    print(format_table(rows, markdown=args.markdown))
    shared = sum(r["B - A"] is not None for r in rows)
    print(f"\n{shared} metric(s) in both runs, {len(rows) - shared} in one only.")
    return 0
