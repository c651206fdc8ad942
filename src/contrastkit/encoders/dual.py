"""Dual encoders: one tower for anchors, another for candidates (pixel-text, image-text, query-document).

``DualEncoder(anchor, candidate)`` is itself an :class:`~contrastkit.encoders.base.Encoder`,
so the training loop, GradCache, the loss and evaluation take it like any
other. Which tower embeds a text is chosen when it is tokenized:

* ``tokenize(texts, prompt=None, side="anchor")`` runs the side's tower's
  tokenizer and adds one tensor, ``features["dual_side"]`` (n,) (0 anchor,
  1 candidate). It has the batch as its first dimension, so the tag survives
  :func:`~contrastkit.encoders.base.split_features` (GradCache chunks) and
  length-sorted sub-batches, and the tower's own keys (``attention_mask``)
  keep their names.
* ``forward(features)`` strips the tag and runs that side's tower; a batch
  mixing sides is an error.
* ``encode(texts, side="anchor")`` encodes with one tower (its own
  ``encode``). Evaluation that only calls ``encode`` (STS) therefore
  measures the anchor tower; retrieval encodes queries with the anchor tower
  and documents with the candidate tower (:func:`towers`).

The training loop tokenizes anchors with ``side="anchor"`` and candidates
(positives, negatives; for view objectives every view after the first) with
``side="candidate"`` through :func:`tokenize_side`, which leaves single
encoders' ``tokenize`` untouched. Both towers must give embeddings of the
same size; each normalises (or not) as it is configured. Prompt names are
looked up in both towers' prompts (the anchor's win).

``save(path)`` writes ``anchor/`` and ``candidate/`` (each the tower's own
folder, a sentence-transformers folder for text towers) and
``contrastkit_dual.json``, atomically (a temporary sibling, fsynced,
renamed). :func:`contrastkit.encoders.load_encoder` recognises the folder.

Example::

    >>> from contrastkit.encoders import load_encoder  # doctest: +SKIP
    >>> dual = DualEncoder(pixel_encoder, load_encoder("all-MiniLM-L6-v2"))  # doctest: +SKIP
    >>> dual.encode(["a sentence"], side="candidate").shape  # doctest: +SKIP
    torch.Size([1, 384])
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from contrastkit import __version__
from contrastkit.encoders.base import Encoder, Features
from contrastkit.encoders.io import save_atomically

Side = Literal["anchor", "candidate"]
SIDES: tuple[Side, ...] = ("anchor", "candidate")
SIDE_KEY = "dual_side"
DUAL_FILE = "contrastkit_dual.json"
"""The file that marks a saved :class:`DualEncoder` folder."""


def _side_index(side: str) -> int:
    if side not in SIDES:
        raise ValueError(f"unknown side {side!r}; choose 'anchor' or 'candidate'")
    return SIDES.index(side)


class DualEncoder(Encoder):
    """Two towers behind the encoder contract; see the module docstring.

    Args:
        anchor: the tower for anchors (queries, images, rendered text).
        candidate: the tower for candidates (documents, texts, labels). It
            may be the same object as ``anchor`` (one shared tower).
    """

    def __init__(self, anchor: Encoder, candidate: Encoder) -> None:
        if anchor.dim != candidate.dim:
            raise ValueError(
                f"DualEncoder: the towers' embedding sizes differ (anchor {anchor.dim}, candidate {candidate.dim}); "
                "add a projection head to one of them"
            )
        super().__init__(
            normalize=anchor.normalize and candidate.normalize, prompts={**candidate.prompts, **anchor.prompts}
        )
        self.anchor = anchor
        self.candidate = candidate

    @property
    def dim(self) -> int:
        return self.anchor.dim

    def tower(self, side: Side) -> Encoder:
        """The encoder of ``side`` (``"anchor"`` or ``"candidate"``)."""
        return (self.anchor, self.candidate)[_side_index(side)]

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None, side: Side = "anchor") -> Features:
        """The side's tower's features plus the ``dual_side`` tag (n,)."""
        index = _side_index(side)
        features = dict(self.tower(side).tokenize(texts, prompt=prompt))
        if SIDE_KEY in features:
            raise ValueError(f"the {side} tower's features already have a {SIDE_KEY!r} key (nested dual encoders?)")
        features[SIDE_KEY] = torch.full((len(texts),), index, dtype=torch.long)
        return features

    def forward(self, features: Features) -> Tensor:
        """(n, dim) embeddings from the tower named by ``features["dual_side"]``."""
        if SIDE_KEY not in features:
            raise KeyError(
                f"DualEncoder.forward: features have no {SIDE_KEY!r} tag; tokenize with DualEncoder.tokenize"
            )
        tags = features[SIDE_KEY]
        side = int(tags[0]) if tags.numel() else 0
        if tags.numel() and not bool((tags == side).all()):
            raise ValueError("DualEncoder.forward: one batch of features mixes anchor and candidate rows")
        inner = {k: v for k, v in features.items() if k != SIDE_KEY}
        return (self.anchor, self.candidate)[side](inner)

    @torch.no_grad()
    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        prompt: str | None = None,
        prompt_name: str | None = None,
        side: Side = "anchor",
    ) -> Tensor:
        """(len(texts), dim) float32 CPU embeddings by the ``side`` tower (its ``encode``)."""
        prompt = self.resolve_prompt(prompt, prompt_name)
        return self.tower(side).encode(texts, batch_size=batch_size, prompt=prompt)

    def save(self, path: str | Path) -> None:
        """Write ``anchor/``, ``candidate/`` and ``contrastkit_dual.json`` at ``path``, atomically."""

        def write(tmp: Path) -> None:
            self.anchor.save(tmp / "anchor")
            self.candidate.save(tmp / "candidate")
            meta = {
                "type": "DualEncoder",
                "anchor": "anchor",
                "candidate": "candidate",
                "dim": self.dim,
                "contrastkit": __version__,
            }
            (tmp / DUAL_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

        save_atomically(path, write)


def is_dual_folder(path: str | Path) -> bool:
    """Whether ``path`` is a saved :class:`DualEncoder` folder (it holds ``contrastkit_dual.json``)."""
    return os.path.isfile(Path(path) / DUAL_FILE)


def tokenize_side(encoder: Encoder, texts: Sequence[str], side: Side, prompt: str | None = None) -> Features:
    """``encoder.tokenize`` for ``side``: a :class:`DualEncoder` picks its tower; any other encoder ignores ``side``."""
    if isinstance(encoder, DualEncoder):
        return encoder.tokenize(texts, prompt=prompt, side=side)
    return encoder.tokenize(texts, prompt=prompt)


def towers(encoder: Encoder) -> tuple[Encoder, Encoder]:
    """(anchor encoder, candidate encoder): a dual encoder's towers, or the encoder twice."""
    if isinstance(encoder, DualEncoder):
        return encoder.anchor, encoder.candidate
    return encoder, encoder
