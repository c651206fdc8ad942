"""Diagnostics: what an embedding space looks like, as pure functions on embeddings or token states.

Sentence embeddings (any encoder):

- :func:`mean_cosine` (anisotropy), :func:`isotropy_score` (partition-function I(V)),
  :func:`rogue_dimensions` (per-dimension share of cosine), :func:`effective_rank`,
  :func:`hubness` / :func:`k_occurrence`;
- :func:`pair_similarities`, :func:`separation_auc`, :func:`histogram`: positive vs negative pairs;
- :func:`score_by_length`, :func:`spearman`: quality by text-length bucket;
- :func:`embedding_stats`, :func:`pair_stats`: all of the above at once, with
  alignment, uniformity and tolerance from :mod:`contrastkit.objectives.hardness`.

Token vectors of every layer (transformer text encoders; thesis-methods section 1):

- :func:`token_states` -> :class:`TokenStates`; :func:`contextualization` (D1 anisotropy
  baseline, D2 self-similarity, D3 intra-sentence similarity, D4 norm, D5 rogue dimensions,
  per layer); :func:`token_classes` (D6: function vs content tokens, frequency deciles).

Everything together: :func:`analyze` -> :class:`DiagnosticsReport`, written by
:func:`contrastkit.diagnostics.report.write_report` as JSON, Markdown and PNG plots
(``contrastkit analyze`` on the command line). The report writer is not imported here, so
importing the package does not load matplotlib.
"""

from contrastkit.diagnostics.analyze import AnalyzeSettings, DiagnosticsReport, analyze
from contrastkit.diagnostics.buckets import LengthBucket, bucket_edges, score_by_length, spearman
from contrastkit.diagnostics.contextual import intra_similarity, mean_norm, self_similarity
from contrastkit.diagnostics.hubness import Hubness, hubness, k_occurrence
from contrastkit.diagnostics.isotropy import isotropy_score, mean_cosine, rogue_dimensions
from contrastkit.diagnostics.layerwise import Contextualization, LayerContext, contextualization
from contrastkit.diagnostics.rank import effective_rank
from contrastkit.diagnostics.similarity import Histogram, PairSimilarities, histogram, pair_similarities, separation_auc
from contrastkit.diagnostics.stats import EmbeddingStats, PairStats, embedding_stats, pair_stats
from contrastkit.diagnostics.token_classes import TokenClassLayer, function_token_ids, token_classes
from contrastkit.diagnostics.tokens import TokenStates, token_states

__all__ = [
    "AnalyzeSettings",
    "Contextualization",
    "DiagnosticsReport",
    "EmbeddingStats",
    "Histogram",
    "Hubness",
    "LayerContext",
    "LengthBucket",
    "PairSimilarities",
    "PairStats",
    "TokenClassLayer",
    "TokenStates",
    "analyze",
    "bucket_edges",
    "contextualization",
    "effective_rank",
    "embedding_stats",
    "function_token_ids",
    "histogram",
    "hubness",
    "intra_similarity",
    "isotropy_score",
    "k_occurrence",
    "mean_cosine",
    "mean_norm",
    "pair_similarities",
    "pair_stats",
    "rogue_dimensions",
    "score_by_length",
    "self_similarity",
    "separation_auc",
    "spearman",
    "token_classes",
    "token_states",
]
