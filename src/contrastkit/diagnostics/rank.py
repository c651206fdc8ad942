"""Effective rank of a set of vectors (Roy & Vetterli, EUSIPCO 2007).

``effective_rank(x) = exp(H(p))`` with ``p_k = sigma_k / sum_j sigma_j`` the
normalised singular values of ``x`` (n, d) and ``H(p) = -sum_k p_k log p_k``
(``0 log 0 = 0``): the exponential of the entropy of the singular-value
distribution. It lies in ``[1, min(n, d)]``.

Example::

    >>> import torch
    >>> round(effective_rank(torch.ones(5, 4)), 6)   # identical rows: one direction
    1.0
    >>> round(effective_rank(torch.eye(4)), 6)        # orthonormal basis: all four directions used equally
    4.0
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def singular_value_entropy(x: Tensor, *, center: bool = False) -> float:
    """``H(p)`` of the normalised singular values of ``x`` (nats); ``center`` subtracts the column means first."""
    if x.dim() != 2 or x.numel() == 0:
        raise ValueError(f"effective_rank: expected a non-empty (n, d) matrix, got shape {tuple(x.shape)}")
    x = x.detach().to(torch.float64)
    if center:
        x = x - x.mean(0, keepdim=True)
    sigma = torch.linalg.svdvals(x)
    total = sigma.sum()
    if float(total) <= 0:
        raise ValueError("effective_rank: the matrix is zero (no singular value above 0)")
    p = sigma / total
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def effective_rank(x: Tensor, *, center: bool = False) -> float:
    """Roy & Vetterli's effective rank ``exp(H(p))`` of ``x`` (n, d); see the module docstring.

    ``center=False`` (default) measures the vectors as they are, so a shared
    offset counts as a direction (identical vectors give exactly 1);
    ``center=True`` measures the spread around the mean (a matrix whose rows
    are all equal then raises ValueError, being zero after centring).

    How to read it: how many directions the embeddings really use. Compare it
    with the dimension ``d`` (``effective_rank / d`` is a utilisation ratio):
    a low value is *dimensional collapse*, the space folded onto a few
    directions, which contrastive training (uniformity) tends to undo.
    """
    return math.exp(singular_value_entropy(x, center=center))
