"""Encoders: texts (and later images) in, embeddings out. See :class:`contrastkit.encoders.base.Encoder`.

- :func:`load_encoder`: any local sentence-transformers / Hugging Face folder (or the offline MiniLM alias).
- :class:`TextEncoder`: transformer + pooling (mean, cls, last, weighted_mean) + optional normalisation.
- :class:`DecoderEncoder` + :class:`PromptTemplate`: decoder LMs through prompt templates (PromptEOL,
  hierarchical, rationale-then-embed, E5-Mistral, GritLM formats).
- :class:`StaticEncoder`: mean of token embeddings, e.g. initialised from a transformer's input embeddings.
- :class:`ProjectionHead`, :class:`MultiHead`: projection head(s) on any encoder.
- :class:`CrossEncoderModel` (+ :class:`DecoderReranker`, :func:`load_cross_encoder`): rerankers that score
  (query, document) pairs, saved in sentence-transformers' ``CrossEncoder`` format.
- :class:`DualEncoder`: two towers (anchor, candidate) behind one encoder, e.g. pixel-text or image-text.
- :class:`PixelEncoder` (rendered text) and :class:`ImageEncoder` (images): a :class:`VisionTower` (ViT or CNN)
  with Pixel Linguist's head; :func:`build_pixel_encoder` / :func:`build_image_encoder` start from scratch.

Every savable encoder writes a sentence-transformers folder (safetensors only, atomically).
"""

from contrastkit.encoders.auto import load_encoder
from contrastkit.encoders.base import Encoder, Features, split_features
from contrastkit.encoders.cross import CrossEncoderModel, DecoderReranker, load_cross_encoder
from contrastkit.encoders.decoder import DecoderEncoder
from contrastkit.encoders.dual import DualEncoder
from contrastkit.encoders.heads import MultiHead, ProjectionHead
from contrastkit.encoders.io import ModelFolderError
from contrastkit.encoders.pixel import (
    ImageEncoder,
    PixelEncoder,
    build_image_encoder,
    build_pixel_encoder,
    load_perception_encoder,
)
from contrastkit.encoders.prompt_template import PromptTemplate
from contrastkit.encoders.static import StaticEncoder
from contrastkit.encoders.text import TextEncoder
from contrastkit.encoders.unpad import supports_unpadded
from contrastkit.encoders.vision import VisionConfig, VisionTower

__all__ = [
    "CrossEncoderModel",
    "DecoderEncoder",
    "DecoderReranker",
    "DualEncoder",
    "Encoder",
    "Features",
    "ImageEncoder",
    "ModelFolderError",
    "MultiHead",
    "PixelEncoder",
    "ProjectionHead",
    "PromptTemplate",
    "StaticEncoder",
    "TextEncoder",
    "VisionConfig",
    "VisionTower",
    "build_image_encoder",
    "build_pixel_encoder",
    "load_cross_encoder",
    "load_encoder",
    "load_perception_encoder",
    "split_features",
    "supports_unpadded",
]
