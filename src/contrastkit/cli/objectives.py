"""``contrastkit objectives``: list every registered objective, derived from the objects themselves."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from contrastkit import objectives
from contrastkit.objectives.base import ObjectiveInfo, Status


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("objectives", help="list the contrastive objectives with status, inputs and citation")
    p.add_argument("--status", choices=[s.value for s in Status], help="only objectives with this status")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--markdown", action="store_true", help="the catalogue as a Markdown table (docs/objectives.md)")
    p.add_argument("name", nargs="?", help="show one objective in full")
    p.set_defaults(run=run)


def _row(info: ObjectiveInfo) -> dict[str, object]:
    cls = objectives.REGISTRY.cls(info.name)
    row = asdict(info)
    row["status"] = info.status.value
    row["kind"] = info.kind.value
    row["tileable"] = _tileable(cls)
    return row


def _tileable(cls: type) -> bool:
    try:
        return bool(cls().row_separable)
    except TypeError:  # objectives that need constructor arguments are not matrix-tileable by default
        return False


def run(args: argparse.Namespace) -> int:
    infos = list(objectives.infos())
    if args.name:
        infos = [objectives.REGISTRY.cls(args.name).info]
    if args.status:
        infos = [i for i in infos if i.status.value == args.status]
    rows = [_row(i) for i in infos]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.markdown:
        print(markdown_catalogue(rows))
    elif args.name:
        for key, value in rows[0].items():
            print(f"{key:>20}: {value}")
    else:
        _print_table(rows)
    return 0


def _print_table(rows: list[dict[str, object]]) -> None:
    head = ("name", "status", "kind", "tiled", "inputs", "citation")
    table = [
        (r["name"], r["status"], r["kind"], "yes" if r["tileable"] else "no", r["inputs"], r["citation"]) for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table, strict=False)]
    widths[-1] = min(widths[-1], 70)
    widths[-2] = min(widths[-2], 48)
    for line in (head, *table):
        cells = [str(x)[: w - 1] + "…" if len(str(x)) > w else str(x) for x, w in zip(line, widths, strict=True)]
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    print(
        f"\n{len(rows)} objectives. Status: paper/code = checked against the source; "
        "partial = structure only; unavailable = hook only (see objectives.md)."
    )


_STATUS_NOTE = {
    "paper": "checked against the paper's definitions",
    "code": "checked against the authors' released code",
    "partial": "structure only: some terms unverified; not an exact reproduction",
    "unavailable": "formula not recovered: a documented hook only",
}


def markdown_catalogue(rows: list[dict[str, object]]) -> str:
    """The objective catalogue as Markdown, one table row per registered objective."""
    lines = [
        "# Objective catalogue",
        "",
        "Generated from the registry by `contrastkit objectives --markdown`; a test keeps this page in step.",
        "Status (from `objectives.md`): " + "; ".join(f"`{k}` = {v}" for k, v in _STATUS_NOTE.items()) + ".",
        "`tiled` = row-separable with default options: `ContrastiveLoss(name, tile_size=k)` computes it exactly",
        "without the A x C matrix.",
        "",
        "| name | title | status | kind | tiled | inputs | reducer | spec § | citation | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            f"`{r['name']}`", r["title"], f"`{r['status']}`", r["kind"], "yes" if r["tileable"] else "no",
            r["inputs"], r["reducer"], r["section"], r["citation"], r["notes"],
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)
