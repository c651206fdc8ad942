"""Results files and reports: results JSON, a Markdown report and PNG plots.

* :func:`write_results` writes one :class:`~contrastkit.evaluation.tasks.TaskResult`
  as the object ``{"task", "data", "split", "metrics"}``, several as a list of
  such objects; :func:`load_results` reads either form back, from a file or a
  folder (its ``results.json``, else every ``*.json`` in it).
* :func:`write_report` writes ``results.json``, ``report.md`` and, where a
  picture says something, PNG plots (matplotlib, drawn without pyplot's global
  state): STS gold score vs cosine scatter, pair-classification cosine
  histograms of positive and negative pairs with the best-accuracy
  threshold, retrieval per-query nDCG@10 histogram, classification confusion
  matrix (up to 30 labels). Without matplotlib the report says that plots were
  skipped.

Every file is written to a temporary name and renamed, so a reader never sees
half a file.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contrastkit.data.errors import DataError
from contrastkit.data.formats import parse_json
from contrastkit.evaluation.tasks import TaskResult


def results_json(results: TaskResult | Sequence[TaskResult]) -> Any:
    """The JSON value: one result's object, or a list of objects."""
    if isinstance(results, TaskResult):
        return results.to_json()
    return [r.to_json() for r in results]


def atomic_write(path: str | Path, text: str | bytes) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename; parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = text.encode("utf-8") if isinstance(text, str) else text
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def write_results(results: TaskResult | Sequence[TaskResult], path: str | Path) -> Path:
    """Write the results JSON (see :func:`results_json`) atomically."""
    return atomic_write(path, json.dumps(results_json(results), indent=2) + "\n")


def load_results(path: str | Path) -> list[TaskResult]:
    """Results from a JSON file (object or list) or a folder (``results.json``, else all ``*.json``).

    Raises:
        ValueError: a file that is not valid JSON or not in the results layout, or a folder with no results.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if path.is_dir():
        files = [path / "results.json"] if (path / "results.json").is_file() else sorted(path.glob("*.json"))
        if not files:
            raise ValueError(f"{path}: no results.json or other *.json file in this folder")
        return [r for f in files for r in load_results(f)]
    if not path.exists():
        raise FileNotFoundError(f"no such results file or folder: {path}")
    try:
        value = parse_json(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, DataError) as err:  # DataError: bad syntax, nesting too deep, huge integers
        raise ValueError(f"{path}: not a results JSON file ({err})") from None
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError(f"{path}: the results list is empty")
    return [TaskResult.from_json(item, source=f"{path}[{i}]" if isinstance(value, list) else str(path))
            for i, item in enumerate(items)]  # fmt: skip


# ---------------------------------------------------------------- Markdown
def markdown_report(
    results: Sequence[TaskResult], *, model: str | None = None, plots: Sequence[Sequence[str]] = (), note: str = ""
) -> str:
    """The report text: per result its metrics (and x 100), task-specific extras and plot links."""
    lines = ["# Evaluation report", ""]
    if model:
        lines += [f"Model: `{model}`", ""]
    if note:
        lines += [note, ""]
    for i, result in enumerate(results):
        lines += [f"## {result.task}: `{result.data}` ({result.split})", ""]
        if result.seconds:
            lines += [f"{_size(result.details)}{result.seconds:.1f} s.", ""]
        lines += ["| metric | value | x 100 |", "|---|---|---|"]
        lines += [f"| {name} | {value:.4f} | {100 * value:.2f} |" for name, value in result.metrics.items()]
        lines += ["", *_extras(result)]
        for png in plots[i] if i < len(plots) else ():
            lines += [f"![{Path(png).stem}]({png})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _size(details: Any) -> str:
    for attr, unit in (
        ("num_queries", "queries"),
        ("cosine", "pairs"),
        ("labels", "pairs"),
        ("gold", "texts"),
        ("clusters", "texts"),
    ):
        value = getattr(details, attr, None)
        if value is not None:
            count = value if isinstance(value, int) else len(value)
            return f"{count} {unit}, "
    return ""


def _extras(result: TaskResult) -> list[str]:
    details, lines = result.details, []
    subsets = getattr(details, "subsets", None)
    if isinstance(subsets, dict) and subsets:
        lines += ["| subset | spearman x 100 | pearson x 100 |", "|---|---|---|"]
        lines += [f"| {k} | {100 * v['spearman']:.2f} | {100 * v['pearson']:.2f} |" for k, v in subsets.items()]
        lines.append("")
    thresholds = getattr(details, "thresholds", None)
    if isinstance(thresholds, dict) and thresholds:
        lines += ["Thresholds (cosine): " + ", ".join(f"best {k} at {v:.4f}" for k, v in thresholds.items()), ""]
    sets = getattr(details, "sets", None)
    if isinstance(sets, dict) and len(sets) > 1:
        lines += [f"{len(sets)} clustering sets; metrics are their means.", ""]
    for note in getattr(details, "notes", None) or ():
        lines += [f"Note: {note}", ""]
    return lines


# ---------------------------------------------------------------- plots
def plot_result(result: TaskResult, folder: str | Path, stem: str) -> list[Path]:
    """PNG plots of ``result`` in ``folder`` named ``<stem>_*.png`` (none when nothing fits); needs matplotlib."""
    from matplotlib.figure import Figure

    folder, out = Path(folder), []
    details = result.details
    if result.task == "sts" and getattr(details, "cosine", None):
        fig = Figure(figsize=(5, 4), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        ax.scatter(details.gold, details.cosine, s=4, alpha=0.4)
        ax.set(xlabel="gold score", ylabel="cosine similarity", title=_title(result, "spearman"))
        out.append(_save(fig, folder / f"{stem}_scatter.png"))
    elif result.task == "pair-classification" and getattr(details, "scores", None):
        fig = Figure(figsize=(5, 4), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        low, high = min(details.scores), max(details.scores)
        bins = [low + (high - low) * i / 40 for i in range(41)] if high > low else 1
        for label, name in ((1, "positive"), (0, "negative")):
            values = [s for s, y in zip(details.scores, details.labels, strict=True) if y == label]
            if values:
                ax.hist(values, bins=bins, alpha=0.5, label=f"{name} ({len(values)})")
        if math.isfinite(details.thresholds["accuracy"]):
            ax.axvline(details.thresholds["accuracy"], color="k", linestyle="--", label="best-accuracy threshold")
        ax.set(xlabel="cosine similarity", ylabel="pairs", title=_title(result, "ap"))
        ax.legend()
        out.append(_save(fig, folder / f"{stem}_cosine_hist.png"))
    elif result.task == "retrieval" and getattr(details, "per_query", None):
        values = [m["ndcg@10"] for m in details.per_query.values() if "ndcg@10" in m]
        if values:
            fig = Figure(figsize=(5, 4), dpi=100, layout="constrained")
            ax = fig.add_subplot()
            ax.hist(values, bins=20, range=(0, 1))
            ax.set(xlabel="nDCG@10 per query", ylabel="queries", title=_title(result, "ndcg@10"))
            out.append(_save(fig, folder / f"{stem}_ndcg_hist.png"))
    elif result.task == "classification" and getattr(details, "predictions", None):
        out += _confusion(result, folder / f"{stem}_confusion.png")
    return out


def _confusion(result: TaskResult, path: Path) -> list[Path]:
    from matplotlib.figure import Figure

    details = result.details
    method = "logreg" if "logreg" in details.predictions else next(iter(details.predictions))
    labels = list(dict.fromkeys(details.gold))
    if len(labels) > 30:
        return []
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(details.gold, details.predictions[method], strict=True):
        if p in index:
            matrix[index[g]][index[p]] += 1
    fig = Figure(figsize=(5, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(labels)), [str(x) for x in labels], rotation=90)
    ax.set_yticks(range(len(labels)), [str(x) for x in labels])
    ax.set(xlabel=f"predicted ({method})", ylabel="gold", title=_title(result, "accuracy"))
    return [_save(fig, path)]


def _title(result: TaskResult, metric: str) -> str:
    value = result.metrics.get(metric)
    name = Path(result.data).name or result.data
    return f"{name} ({result.split})" + (f": {metric} {value:.4f}" if value is not None else "")


def _save(fig: Any, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def write_report(results: TaskResult | Sequence[TaskResult], folder: str | Path, *, model: str | None = None) -> Path:
    """Write ``results.json``, the plots and ``report.md`` into ``folder``; returns the report's path."""
    results = [results] if isinstance(results, TaskResult) else list(results)
    folder = Path(folder)
    plots: list[list[str]] = []
    note = ""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        note = "Plots skipped: matplotlib is not installed (`pip install matplotlib`)."
    for i, result in enumerate(results):
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{i + 1:02d}_{result.task}_{Path(result.data).name}_{result.split}")
        pngs = [] if note else plot_result(result, folder, stem)
        plots.append([p.name for p in pngs])
    write_results(results if len(results) > 1 else results[0], folder / "results.json")
    return atomic_write(folder / "report.md", markdown_report(results, model=model, plots=plots, note=note))
