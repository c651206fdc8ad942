"""Hubness: how unevenly points occur in each other's k-nearest-neighbour lists (Radovanović et al., JMLR 2010).

``N_k(x)`` (the *k-occurrence*) counts the points that have ``x`` among their
k nearest neighbours by cosine similarity, the point itself excluded. Its mean
is always k; in high-dimensional spaces its distribution grows a long right
tail: a few *hubs* appear in very many neighbour lists while *anti-hubs*
appear in none. Hubness is the skewness of that distribution.

Example::

    >>> import torch
    >>> x = torch.eye(4)                                   # symmetric: nobody is special ...
    >>> hub = torch.ones(1, 4) / 2                         # ... until a point near all of them is added
    >>> k_occurrence(torch.cat([x, hub]), k=1).tolist()    # everyone's nearest neighbour is the hub
    [1, 0, 0, 0, 4]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Hubness:
    """The k-occurrence distribution of a point set, summarised.

    Attributes:
        k: neighbours per point.
        skewness: ``E[(N_k - k)^3] / std(N_k)^3`` (population moments; 0 when
            every point occurs equally often).
        max_occurrence: the largest ``N_k`` (the biggest hub), at most ``n - 1``.
        hub_share: share of points with ``N_k > 2k`` (hubs, a common threshold).
        antihub_share: share of points with ``N_k = 0`` (never anyone's neighbour).
    """

    k: int
    skewness: float
    max_occurrence: int
    hub_share: float
    antihub_share: float


def k_occurrence(x: Tensor, *, k: int = 10, block: int = 1024) -> Tensor:
    """``N_k`` (n,) int64: how often each row of ``x`` (n, d) is among the other rows' k nearest neighbours.

    Neighbours are ranked by cosine similarity, the row itself excluded; ties
    go to the lower index (a stable sort), so the result is deterministic.
    Rows are processed ``block`` at a time: memory O(block x n). Needs
    ``1 <= k < n``.
    """
    if x.dim() != 2:
        raise ValueError(f"k_occurrence: expected x of shape (n, d), got {tuple(x.shape)}")
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k_occurrence: need 1 <= k < n, got k={k}, n={n}")
    u = F.normalize(x.detach().to(torch.float64), dim=-1)
    counts = torch.zeros(n, dtype=torch.int64)
    for start in range(0, n, block):
        sim = u[start : start + block] @ u.T
        rows = torch.arange(start, start + sim.shape[0])
        sim[torch.arange(sim.shape[0]), rows] = float("-inf")
        top = sim.sort(dim=1, descending=True, stable=True).indices[:, :k]
        counts += torch.bincount(top.reshape(-1), minlength=n)
    return counts


def skewness(values: Tensor) -> float:
    """Population skewness ``m3 / m2^1.5`` of a 1-d tensor (0 when the variance is 0)."""
    v = values.detach().to(torch.float64)
    centred = v - v.mean()
    m2 = centred.pow(2).mean()
    if float(m2) <= 0:
        return 0.0
    return float(centred.pow(3).mean() / m2.pow(1.5))


def hubness(x: Tensor, *, k: int = 10) -> Hubness:
    """The k-occurrence skewness of ``x`` (n, d) and its hub / anti-hub shares; see :class:`Hubness`.

    How to read it: skewness near 0 means neighbourhoods are shared fairly;
    above about 1 the space has hubs, which hurt nearest-neighbour retrieval
    (the same few documents come back for every query). Isotropic, uniform
    embeddings have lower hubness than anisotropic ones.
    """
    counts = k_occurrence(x, k=k)
    n = counts.numel()
    return Hubness(
        k=k,
        skewness=skewness(counts),
        max_occurrence=int(counts.max()),
        hub_share=float((counts > 2 * k).sum()) / n,
        antihub_share=float((counts == 0).sum()) / n,
    )
