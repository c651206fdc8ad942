"""Data: typed examples, batches, readers, samplers, views."""

from contrastkit.data.examples import Batch, Example, collate

__all__ = ["Batch", "Example", "collate"]
