"""Encoders: texts (and later images) in, embeddings out. See :class:`contrastkit.encoders.base.Encoder`."""

from contrastkit.encoders.base import Encoder, Features, split_features

__all__ = ["Encoder", "Features", "split_features"]
