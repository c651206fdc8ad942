"""Write a :class:`~contrastkit.diagnostics.analyze.DiagnosticsReport`: JSON, a Markdown page and PNG plots.

``write_report(report, out_dir)`` creates ``out_dir`` and writes:

* ``diagnostics.json``: ``report.to_dict()`` (non-finite numbers as null);
* ``diagnostics.md``: headline table with how to read each number, pairs,
  length buckets, per-layer and token-class tables, plots embedded;
* ``similarity_histogram.png``, ``layer_anisotropy.png``, ``length_buckets.png``
  (each only when the report has the data; see :mod:`contrastkit.diagnostics.plots`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contrastkit.diagnostics import plots
from contrastkit.diagnostics.analyze import DiagnosticsReport

READING = {
    "mean_cosine": "anisotropy of the embeddings: 0 = no shared direction, 1 = all identical",
    "isotropy": "partition-function isotropy I(V): 1 = isotropic, e^-2 = one direction",
    "effective_rank": "directions really used (exp of singular-value entropy), out of the dimension",
    "uniformity": "Wang & Isola, log mean exp(-2 d^2): lower = spread more uniformly (min -4)",
    "hubness": "skewness of k-occurrence: above ~1 = hubs crowd neighbour lists",
    "tolerance": "mean same-label similarity: higher = classes kept together",
    "alignment": "mean squared distance of positive pairs: 0 = identical",
    "mean_positive": "mean cosine of positive pairs",
    "mean_negative": "mean cosine of non-matching pairs",
    "gap": "mean positive minus mean negative cosine",
    "auc": "P(positive pair more similar than negative pair): 1 = separated, 0.5 = chance",
    "spearman": "rank correlation of cosine with gold scores",
    "token_anisotropy": "last layer: cosine of random token pairs (D1)",
    "adjusted_self_similarity": "last layer: same token across contexts, minus D1 (D2)",
    "adjusted_intra_similarity": "last layer: tokens to their sentence mean, minus D1 (D3)",
}
PLOTS = {
    "similarity_histogram.png": plots.similarity_histogram,
    "layer_anisotropy.png": plots.layer_anisotropy,
    "length_buckets.png": plots.length_buckets,
}


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    json: Path
    markdown: Path
    plots: list[Path]


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(report: DiagnosticsReport, out_dir: str | Path) -> ReportFiles:
    """Write the JSON, Markdown and PNG files of ``report`` into ``out_dir`` (created); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [p for name, draw in PLOTS.items() if (p := draw(report, out / name)) is not None]
    json_path, md_path = out / "diagnostics.json", out / "diagnostics.md"
    _write_text(json_path, json.dumps(_clean(report.to_dict()), indent=2, allow_nan=False) + "\n")
    _write_text(md_path, markdown(report, [p.name for p in written]))
    return ReportFiles(json=json_path, markdown=md_path, plots=written)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown(report: DiagnosticsReport, plot_names: list[str]) -> str:
    """The Markdown page of ``report``; ``plot_names`` are the PNG files next to it."""
    emb = report.embedding
    lines = [f"# Embedding diagnostics: {report.model}", ""]
    lines += [f"{emb.n} texts, dimension {emb.dim}; uniformity on {emb.uniformity_n}, hubness at k = {emb.hubness.k}."]
    lines += ["", "| measure | value | how to read it |", "|---|---|---|"]
    lines += [f"| {k} | {_fmt(v)} | {READING.get(k, '')} |" for k, v in report.scalars().items()]
    lines += _pairs_section(report) + _layers_section(report) + _classes_section(report)
    if plot_names:
        lines += ["", "## Plots", ""] + [f"![{name[:-4]}]({name})" for name in plot_names]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    lines += ["", f"Seed {report.settings.seed}. Time: {timing or 'n/a'}.", ""]
    return "\n".join(lines)


def _pairs_section(report: DiagnosticsReport) -> list[str]:
    p = report.pairs
    if p is None:
        return []
    threshold = "" if p.positive_threshold is None else f" (gold score >= {p.positive_threshold})"
    lines = ["", "## Pairs", "", f"{p.n_pairs} pairs, {p.n_positive} positives{threshold}."]
    if p.length_buckets:
        lines += ["", "| length (words) | pairs | mean cosine | Spearman |", "|---|---|---|---|"]
        lines += [
            f"| {b.lo}-{b.hi} | {b.count} | {_fmt(b.mean_cosine)} | {_fmt(b.spearman)} |" for b in p.length_buckets
        ]
    return lines


def _layers_section(report: DiagnosticsReport) -> list[str]:
    c = report.layers
    if c is None:
        return []
    mode = "reference-compatible" if c.reference_compat else f"exclude_special={c.exclude_special}"
    head = "| layer | A (D1) | self-sim | adj. self-sim | intra-sim | adj. intra-sim | norm | top rogue share |"
    lines = ["", "## Per layer (token vectors)", ""]
    lines += [f"{c.sentences} sentences, D1 sample {c.anisotropy_sample}, {mode}, min_contexts={c.min_contexts}."]
    lines += ["", head, "|---|---|---|---|---|---|---|---|"]
    for la in c.layers:
        rogue = la.rogue_shares[0] if la.rogue_shares else None
        lines.append(
            f"| {la.layer} | {_fmt(la.anisotropy)} | {_fmt(la.self_similarity)} | {_fmt(la.adjusted_self_similarity)} "
            f"| {_fmt(la.intra_similarity)} | {_fmt(la.adjusted_intra_similarity)} | {_fmt(la.norm, 2)} "
            f"| {_fmt(rogue, 3)} |"
        )
    return lines


def _classes_section(report: DiagnosticsReport) -> list[str]:
    if report.token_classes is None:
        return []
    lines = ["", "## Token classes (D6, minus A)", ""]
    lines += ["| layer | function self-sim | content self-sim | entourage |", "|---|---|---|---|"]
    for t in report.token_classes:
        lines.append(
            f"| {t.layer} | {_fmt(t.function_self_similarity)} | {_fmt(t.content_self_similarity)} "
            f"| {_fmt(t.entourage)} |"
        )
    return lines
