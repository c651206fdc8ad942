"""Isotropy of a vector set: mean cosine, the partition-function score I(V), rogue-dimension shares.

All three take ``x`` (n, d) in any scale (rows are l2-normalised where the
measure is a cosine) and compute in float64; they return Python floats (or a
float64 tensor of shares). They apply to sentence embeddings and to one
layer's token vectors alike (:mod:`contrastkit.diagnostics.contextual` uses
:func:`mean_cosine` for the anisotropy baseline D1 and
:func:`rogue_dimensions` for D5).

Example::

    >>> import torch
    >>> round(mean_cosine(torch.eye(3)), 6)              # orthonormal: no shared direction
    0.0
    >>> round(mean_cosine(torch.ones(4, 3)), 6)          # identical vectors: fully anisotropic
    1.0
    >>> round(isotropy_score(torch.cat([torch.eye(3), -torch.eye(3)])), 6)   # +-basis: isotropic
    1.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _matrix(x: Tensor, name: str, *, min_rows: int = 1) -> Tensor:
    if x.dim() != 2 or x.shape[0] < min_rows:
        raise ValueError(f"{name}: expected a (n, d) matrix with n >= {min_rows}, got shape {tuple(x.shape)}")
    return x.detach().to(torch.float64)


def mean_cosine(x: Tensor) -> float:
    """Mean cosine similarity over the ordered pairs ``i != j``: ``sum_{i != j} cos(x_i, x_j) / (n (n - 1))``.

    Computed in closed form, ``(||sum_i u_i||^2 - sum_i ||u_i||^2) / (n (n - 1))``
    with ``u_i = x_i / ||x_i||`` (a zero row has cosine 0 with everything).
    Needs n >= 2.

    How to read it: 0 for directions spread evenly (an orthonormal basis, or
    random high-dimensional vectors), 1 when all vectors point the same way;
    Ethayarajh (2019) calls a clearly positive value *anisotropy*. A
    contrastively trained sentence encoder usually sits near 0 to 0.2; a
    pre-trained one without contrastive training often well above 0.3.
    """
    u = F.normalize(_matrix(x, "mean_cosine", min_rows=2), dim=-1)
    n = u.shape[0]
    total = u.sum(0).pow(2).sum() - u.pow(2).sum()
    return float(total / (n * (n - 1)))


def isotropy_score(x: Tensor) -> float:
    """Mu & Viswanath's partition-function isotropy ``I(V) = min_c Z(c) / max_c Z(c)`` over ``c in {+-w_k}``.

    ``Z(c) = sum_i exp(c . x_i)`` is the partition function of Arora et al.
    (2016); it is constant over unit vectors c exactly when the set has no
    preferred direction. As in Mu & Viswanath ("All-but-the-top", ICLR 2018,
    arXiv 1702.01417), the unit vectors c range over the eigenvectors
    ``w_1..w_d`` of ``x^T x``; we take both signs ``+-w_k`` so the score does
    not depend on the arbitrary sign an eigensolver returns. Computed with
    log-sum-exp, so large norms do not overflow. Uses ``x`` as given: pass
    l2-normalised rows to score directions only (``analyze`` does).

    How to read it: in (0, 1]; 1 is perfectly isotropic (e.g. the set
    ``{+-e_k}``), values near 0 mean one direction dominates. It depends on
    the scale of ``x``: for unit vectors every ``Z(c)`` lies in
    ``[n/e, n e]``, so the score is at least ``e^-2`` (about 0.135), reached
    when all vectors coincide.
    """
    x = _matrix(x, "isotropy_score")
    _, vectors = torch.linalg.eigh(x.T @ x)
    c = torch.cat([vectors, -vectors], dim=1)  # (d, 2d) unit directions
    log_z = torch.logsumexp(x @ c, dim=0)
    return float(torch.exp(log_z.min() - log_z.max()))


def rogue_dimensions(x: Tensor) -> Tensor:
    """Per-dimension share of the total cosine similarity (D5; Timkey & van Schijndel, EMNLP 2021), sorted.

    With ``u_i = x_i / ||x_i||``, dimension k's share is
    ``sum_ij u_ik u_jk / sum_ij cos(x_i, x_j)`` with ``i = j`` included (as in
    the authors' code), which equals ``(sum_i u_ik)^2 / ||sum_i u_i||^2``.
    The shares are non-negative and sum to 1; returned as a float64 tensor
    (d,), largest first. Raises ValueError when ``sum_i u_i = 0`` (the total
    is 0 and the shares are undefined).

    How to read it: with d dimensions an even split gives ``1/d`` each. A
    first share of, say, 0.5 means one *rogue* dimension drives half of every
    cosine similarity, so cosine mostly measures that one coordinate.
    """
    u = F.normalize(_matrix(x, "rogue_dimensions"), dim=-1)
    per_dim = u.sum(0).pow(2)
    total = per_dim.sum()
    if float(total) <= 1e-12 * u.shape[0] ** 2:
        raise ValueError("rogue_dimensions: the vectors sum to zero, so the total cosine similarity is 0")
    return (per_dim / total).sort(descending=True).values
