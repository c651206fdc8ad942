"""PNG plots of a :class:`~contrastkit.diagnostics.analyze.DiagnosticsReport` (matplotlib, no display needed).

Each function draws one figure with matplotlib's object API (``Figure``, no
``pyplot`` state, so it is safe in threads and headless runs), saves it to
``path`` and returns the path, or returns None when the report lacks the
data (no pairs, no token-level measures).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from contrastkit.diagnostics.analyze import DiagnosticsReport
from contrastkit.diagnostics.similarity import Histogram


def _density(hist: Histogram) -> tuple[list[float], list[float]]:
    total = sum(hist.counts) or 1
    width = hist.edges[1] - hist.edges[0]
    centres = [(lo + hi) / 2 for lo, hi in zip(hist.edges[:-1], hist.edges[1:], strict=True)]
    return centres, [c / (total * width) for c in hist.counts]


def similarity_histogram(report: DiagnosticsReport, path: Path) -> Path | None:
    """Positive vs negative cosine densities over [-1, 1]; the overlap is what retrieval pays for."""
    pairs = report.pairs
    if pairs is None or pairs.positive_histogram is None or pairs.negative_histogram is None:
        return None
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    width = pairs.positive_histogram.edges[1] - pairs.positive_histogram.edges[0]
    for hist, label, colour in (
        (pairs.negative_histogram, "negative pairs", "tab:red"),
        (pairs.positive_histogram, "positive pairs", "tab:blue"),
    ):
        x, y = _density(hist)
        ax.bar(x, y, width=width, alpha=0.5, label=label, color=colour)
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(f"{report.model}: positives vs negatives (AUC {pairs.auc:.3f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def layer_anisotropy(report: DiagnosticsReport, path: Path) -> Path | None:
    """Per layer: anisotropy baseline, adjusted self- and intra-sentence similarity (left), mean norm (right)."""
    if report.layers is None:
        return None
    layers = report.layers.layers
    x = [layer.layer for layer in layers]
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.plot(x, [la.anisotropy for la in layers], marker="o", label="anisotropy A (D1)")
    ax.plot(x, [la.adjusted_self_similarity for la in layers], marker="s", label="self-sim - A (D2)")
    ax.plot(x, [la.adjusted_intra_similarity for la in layers], marker="^", label="intra-sim - A (D3)")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("cosine")
    ax.set_xticks(x)
    norm_ax = ax.twinx()
    norm_ax.plot(x, [la.norm for la in layers], color="grey", linestyle="--", label="mean norm (D4)")
    norm_ax.set_ylabel("token norm")
    handles = ax.get_legend_handles_labels()[0] + norm_ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize="small")
    ax.set_title(f"{report.model}: per-layer anisotropy and contextualization")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def length_buckets(report: DiagnosticsReport, path: Path) -> Path | None:
    """Per length bucket: Spearman with the gold scores (bars) when scored, and the mean cosine (line)."""
    if report.pairs is None or not report.pairs.length_buckets:
        return None
    buckets = report.pairs.length_buckets
    labels = [f"{b.lo}-{b.hi}\n(n={b.count})" for b in buckets]
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    positions = list(range(len(buckets)))
    if any(b.spearman is not None for b in buckets):
        ax.bar(positions, [b.spearman or 0.0 for b in buckets], color="tab:blue", alpha=0.7, label="Spearman")
    ax.plot(positions, [b.mean_cosine for b in buckets], color="tab:orange", marker="o", label="mean cosine")
    ax.set_xticks(positions)
    ax.set_xticklabels(labels)
    ax.set_xlabel("pair length (mean words)")
    ax.set_ylim(min(0.0, *(b.mean_cosine for b in buckets)), 1.0)
    ax.legend()
    ax.set_title(f"{report.model}: score by length bucket")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
