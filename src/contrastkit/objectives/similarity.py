"""Similarity functions: the ``s(i, c)`` of ``objectives.md`` section 0.1.

``similarity_matrix(a, b, kind)`` returns ``S`` of shape (A, C) for anchors
``a`` (A, d) and candidates ``b`` (C, d). ``cosine`` l2-normalises both sides
first (``z_i . z_c`` with unit vectors); ``dot`` is the raw inner product that
the multi-positive code (arXiv 2602.12727) uses.
"""

from __future__ import annotations

from enum import Enum

import torch.nn.functional as F
from torch import Tensor


class Similarity(str, Enum):
    """How a pair of embeddings is scored."""

    COSINE = "cosine"
    DOT = "dot"


def prepare(x: Tensor, kind: Similarity | str) -> Tensor:
    """Map embeddings so that a plain inner product gives ``kind``: unit rows for cosine."""
    kind = Similarity(kind)
    return F.normalize(x, dim=-1) if kind is Similarity.COSINE else x


def similarity_matrix(a: Tensor, b: Tensor, kind: Similarity | str = Similarity.COSINE) -> Tensor:
    """``S[i, c] = s(a_i, b_c)``; (A, d) x (C, d) -> (A, C)."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"similarity_matrix: expected (A, d) and (C, d), got {tuple(a.shape)} and {tuple(b.shape)}")
    return prepare(a, kind) @ prepare(b, kind).T
