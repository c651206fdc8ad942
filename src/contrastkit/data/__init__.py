"""Data: typed examples, batches, readers, samplers, views."""

from contrastkit.data.beir import BeirDataset, load_beir
from contrastkit.data.errors import DataError
from contrastkit.data.examples import Batch, Example, collate
from contrastkit.data.readers import load_examples, read_examples
from contrastkit.data.sampler import BatchSampler

__all__ = [
    "Batch",
    "BatchSampler",
    "BeirDataset",
    "DataError",
    "Example",
    "collate",
    "load_beir",
    "load_examples",
    "read_examples",
]
