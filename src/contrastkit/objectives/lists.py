"""List reducers of ``objectives.md`` section 0.2: Pearson, RankKL, PRO and CoSENT (CoDiEmb STS, section 18.2).

Each is a pure function of a 1-D vector of predicted pair similarities ``s``
(n,) (usually ``diag(S)``: one cosine per sentence pair) and gold scores ``y``
(n,), and returns a 0-d loss. Unlike the row reducers R1-R5 they are not
row-separable: every term couples the whole list.

Degenerate lists (``n < 2``, or a constant gold vector, which carries no
order) give a zero that keeps ``s``'s graph, never NaN.

Source: the released CoDiEmb code (``TencentCloudADP/youtu-embedding``,
``training/CoDiEmb/train/loss.py``), re-derived from ``objectives.md``.

Example::

    >>> import torch
    >>> s, y = torch.tensor([0.9, 0.1, 0.5]), torch.tensor([5.0, 1.0, 3.0])
    >>> float(pearson_loss(s, y)) < 1e-6
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrastkit.objectives.base import zero_loss


def _check(name: str, s: Tensor, y: Tensor) -> None:
    if s.dim() != 1 or y.shape != s.shape:
        raise ValueError(
            f"{name}: expected pred and gold of the same shape (n,), got {tuple(s.shape)} and {tuple(y.shape)}"
        )


def _degenerate(y: Tensor) -> bool:
    return y.numel() < 2 or bool(y.max() == y.min())


def average_rank_desc(y: Tensor) -> Tensor:
    """0-based descending rank of each entry, ties given their average rank (``rankdata(-y, 'average') - 1``).

    ``rank_k = #{j : y_j > y_k} + (#{j : y_j = y_k} - 1) / 2``; O(n^2) memory.
    """
    greater = (y[None, :] > y[:, None]).sum(-1)
    equal = (y[None, :] == y[:, None]).sum(-1)
    return greater.to(y.dtype) + (equal - 1).to(y.dtype) / 2


def pearson_loss(s: Tensor, y: Tensor, *, eps: float = 1e-12) -> Tensor:
    """``1 - r(s, y)``, with population (biased) variances.

    ``r = mean((s - s_bar)(y - y_bar)) / (sqrt(var(s)) sqrt(var(y)))``. ``var(s)``
    is clamped at ``eps`` so that a constant prediction gives ``r = 0`` (loss 1)
    instead of NaN (the released code divides by zero there). Range [0, 2].
    """
    _check("pearson_loss", s, y)
    if _degenerate(y):
        return zero_loss(s)
    y = y.to(s.dtype)
    ds, dy = s - s.mean(), y - y.mean()
    cov = (ds * dy).mean()
    var_s = (ds * ds).mean().clamp_min(eps)
    var_y = (dy * dy).mean()
    return 1 - cov / (var_s.sqrt() * var_y.sqrt())


def rankkl_loss(s: Tensor, y: Tensor, *, tau: float = 0.05) -> Tensor:
    """``KL(q || p) / n`` with ``q = softmax(((n-1-rank_desc(y))/(n-1)) / tau)`` and ``p = softmax(s / tau)``.

    ``rank_desc`` is 0 for the largest gold score; ties get their average rank
    (:func:`average_rank_desc`). ``/ n`` is PyTorch's ``"batchmean"`` on a 1-D
    list. ``q`` is a constant of ``y`` (no gradient). A constant gold vector
    returns 0 (library rule for degenerate lists; the released code would
    compute the KL to the uniform distribution there).
    """
    _check("rankkl_loss", s, y)
    if _degenerate(y):
        return zero_loss(s)
    n = s.numel()
    ideal = (n - 1 - average_rank_desc(y.detach().to(s.dtype))) / (n - 1)
    log_q = torch.log_softmax(ideal / tau, dim=0)
    log_p = torch.log_softmax(s / tau, dim=0)
    return (log_q.exp() * (log_q - log_p)).sum() / n


def pro_loss(s: Tensor, y: Tensor, *, tau: float = 0.05, eps: float = 1e-8) -> Tensor:
    """Listwise PRO: for each item k, a softmax of k against the items ranked clearly below it.

    With the list sorted by ``y`` descending, the negatives of position k are
    the later items j with ``y_k - y_j > eps``; their weights are
    ``w_j = y_k - y_j`` and ``w_k = max_j w_j``. The term is
    ``-log softmax([w_k s_k / tau, w_j s_j / tau, ...])_0``; the loss is the mean
    over the positions that have negatives. With ``eps >= 0`` "later with a gap
    > eps" equals "any j with ``y_j < y_k - eps``", so the sort is implicit and
    tie order does not matter. Weights are constants of ``y``.
    """
    _check("pro_loss", s, y)
    if _degenerate(y):
        return zero_loss(s)
    y = y.detach().to(s.dtype)
    gap = y[:, None] - y[None, :]  # gap[k, j] = y_k - y_j
    neg = gap > eps
    has = neg.any(-1)
    if not bool(has.any()):
        return zero_loss(s)
    w_neg = torch.where(neg, gap, torch.zeros_like(gap))
    w_k = w_neg.amax(-1)
    logit_k = w_k * s / tau
    logits_neg = (w_neg * s[None, :] / tau).masked_fill(~neg, float("-inf"))
    lse = torch.logsumexp(torch.cat([logit_k[:, None], logits_neg], dim=1), dim=1)
    terms = lse - logit_k
    return torch.where(has, terms, torch.zeros_like(terms)).sum() / has.sum()


def cosent_loss(s: Tensor, y: Tensor, *, tau: float = 0.05) -> Tensor:
    """CoSENT: ``log(1 + sum_{(a,b): y_a > y_b} exp((s_b - s_a) / tau))``.

    Every ordered pair whose gold order is strict contributes; tied gold pairs
    do not. Equals R4 (``PairwiseLSE``) on one row. No pair gives 0.
    """
    _check("cosent_loss", s, y)
    if _degenerate(y):
        return zero_loss(s)
    y = y.detach()
    diff = (s[None, :] - s[:, None]) / tau  # diff[a, b] = (s_b - s_a) / tau
    ordered = y[:, None] > y[None, :]
    terms = torch.cat([diff[ordered], diff.new_zeros(1)])
    return torch.logsumexp(terms, dim=0)
