"""Hard-negative mining: candidates (BM25, dense, hybrid, rescoring), false-negative filters, sampling, quality.

See :mod:`contrastkit.mining.pipeline` for the stages and ``contrastkit mine`` for the command line.
``bm25s`` and ``faiss`` are optional (``pip install 'contrastkit[mining]'``); exact dense search works without them.
"""

from contrastkit.mining.candidates import BM25Index, Candidates, dense_candidates, hybrid_candidates, rescore
from contrastkit.mining.filters import FilterConfig, eligible
from contrastkit.mining.pipeline import (
    MiningConfig,
    MiningData,
    MiningResult,
    from_beir,
    from_pairs,
    load_data,
    mine,
    to_records,
    write_jsonl,
    write_report,
)
from contrastkit.mining.quality import false_negative_rate, hardness_gap, summarize
from contrastkit.mining.sample import sample

__all__ = [
    "BM25Index",
    "Candidates",
    "FilterConfig",
    "MiningConfig",
    "MiningData",
    "MiningResult",
    "dense_candidates",
    "eligible",
    "false_negative_rate",
    "from_beir",
    "from_pairs",
    "hardness_gap",
    "hybrid_candidates",
    "load_data",
    "mine",
    "rescore",
    "sample",
    "summarize",
    "to_records",
    "write_jsonl",
    "write_report",
]
