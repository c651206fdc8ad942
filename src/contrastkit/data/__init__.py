"""Data: typed examples, batches, readers, samplers, views."""

from contrastkit.data.beir import BeirDataset, load_beir
from contrastkit.data.errors import DataError
from contrastkit.data.examples import Batch, Example, collate
from contrastkit.data.laser import LaserViews, elongate, max_repeats, split_sentences, tokenizer_counter
from contrastkit.data.readers import load_examples, read_examples
from contrastkit.data.sampler import BatchSampler
from contrastkit.data.views import (
    ViewTransform,
    augment,
    dropout_examples,
    identity,
    propensity_examples,
    span_cutoff,
    view_columns,
    whitened_views,
    with_ratio,
    word_deletion,
    word_shuffle,
)

__all__ = [
    "Batch",
    "BatchSampler",
    "BeirDataset",
    "DataError",
    "Example",
    "LaserViews",
    "ViewTransform",
    "augment",
    "collate",
    "dropout_examples",
    "elongate",
    "identity",
    "load_beir",
    "load_examples",
    "max_repeats",
    "propensity_examples",
    "read_examples",
    "span_cutoff",
    "split_sentences",
    "tokenizer_counter",
    "view_columns",
    "whitened_views",
    "with_ratio",
    "word_deletion",
    "word_shuffle",
]
