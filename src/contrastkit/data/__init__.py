"""Data: typed examples, batches, readers, samplers, views, rendered text and images."""

from contrastkit.data.beir import BeirDataset, load_beir
from contrastkit.data.errors import DataError
from contrastkit.data.examples import Batch, Example, collate
from contrastkit.data.images import ImageInput, load_digits_images, load_image, load_mnist_idx, to_pixel_values
from contrastkit.data.laser import LaserViews, elongate, max_repeats, split_sentences, tokenizer_counter
from contrastkit.data.readers import load_examples, read_examples
from contrastkit.data.render import Augment, Renderer, normalize_text
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
    "Augment",
    "Batch",
    "BatchSampler",
    "BeirDataset",
    "DataError",
    "Example",
    "ImageInput",
    "LaserViews",
    "Renderer",
    "ViewTransform",
    "augment",
    "collate",
    "dropout_examples",
    "elongate",
    "identity",
    "load_beir",
    "load_digits_images",
    "load_examples",
    "load_image",
    "load_mnist_idx",
    "max_repeats",
    "normalize_text",
    "propensity_examples",
    "read_examples",
    "span_cutoff",
    "split_sentences",
    "to_pixel_values",
    "tokenizer_counter",
    "view_columns",
    "whitened_views",
    "with_ratio",
    "word_deletion",
    "word_shuffle",
]
