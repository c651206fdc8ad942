"""Hard-negative mining: candidates (BM25, dense, hybrid, rescoring), false-negative filters, sampling, quality.

See :mod:`contrastkit.mining.pipeline` for the stages and ``contrastkit mine`` for the command line.
``bm25s`` and ``faiss`` are optional (``pip install 'contrastkit[mining]'``); exact dense search works without them.
"""

from contrastkit.mining.candidates import BM25Index, Candidates, dense_candidates, hybrid_candidates, rescore
from contrastkit.mining.filters import DEFAULT_RELATIVE_MARGIN, FilterConfig, eligible
from contrastkit.mining.pipeline import (
    FalseNegativeWarning,
    MiningConfig,
    MiningData,
    MiningResult,
    default_filters,
    from_beir,
    from_pairs,
    load_data,
    mine,
    to_grouped_records,
    to_records,
    write_jsonl,
    write_report,
)
from contrastkit.mining.quality import false_negative_rate, hardness_gap, quality_warnings, summarize
from contrastkit.mining.sample import sample

__all__ = [
    "DEFAULT_RELATIVE_MARGIN",
    "BM25Index",
    "Candidates",
    "FalseNegativeWarning",
    "FilterConfig",
    "MiningConfig",
    "MiningData",
    "MiningResult",
    "default_filters",
    "dense_candidates",
    "eligible",
    "false_negative_rate",
    "from_beir",
    "from_pairs",
    "hardness_gap",
    "hybrid_candidates",
    "load_data",
    "mine",
    "quality_warnings",
    "rescore",
    "sample",
    "summarize",
    "to_grouped_records",
    "to_records",
    "write_jsonl",
    "write_report",
]
