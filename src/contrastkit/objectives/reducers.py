"""Row reducers R1-R5 of ``objectives.md`` section 0.2, in two equivalent forms.

Each reducer maps logits ``L`` (A x C), positive weights ``W`` and validity
``M`` to one loss per row plus a ``keep`` flag. A row with no positive or no
valid negative is dropped, never NaN and never counted in the mean
(``objectives.md`` 0.4); R5 (pointwise) keeps every row, and R1 with soft
targets can keep rows whose every column carries weight
(``require_negative=False``):

* ``rows(L, W, M)``: the dense form, a direct transcription of the formula.
* ``needs`` and ``from_stats(stats)``: the streamed form. The row loss is a
  function of a few per-row statistics (:class:`Stat`) that can be merged
  across column tiles; ``contrastkit.scale.tiled`` uses it to compute exact
  losses without the A x C matrix. The two forms are written independently
  and tested against each other and against float64 loop oracles.

``P(i) = {c : W[i,c] > 0}``, ``N(i) = {c : M[i,c] and W[i,c] = 0}`` and
``LSE_X`` is ``-inf`` on an empty set. Masking uses ``-inf``, never a large
finite number. :func:`reduce_rows` takes the mean over kept rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class RowLoss(NamedTuple):
    """Per-row losses (A,) and which rows count (A,) bool."""

    loss: Tensor
    keep: Tensor


class Stat(Enum):
    """Per-row statistics that merge across column tiles."""

    LSE_ALL = "logsumexp of L over M"
    LSE_POS = "logsumexp of L over P"
    LSE_NEG = "logsumexp of L over N"
    LSE_NEGPOS = "logsumexp of -L over P"
    WL = "sum of W * L"
    WSUM = "sum of W"
    NPOS = "|P|"
    NNEG = "|N|"
    BCE = "sum over M of BCE(sigmoid(L), W)"


Stats = Mapping[Stat, Tensor]


def masked_lse(values: Tensor, mask: Tensor) -> Tensor:
    """``log sum_{c : mask} exp(values_c)`` per row; ``-inf`` for an empty row, with zero gradient there."""
    return torch.logsumexp(values.masked_fill(~mask, float("-inf")), dim=-1)


class LossParts(NamedTuple):
    """A reduced loss before its mean: ``total`` (0-d, sum of kept row losses) and ``kept`` (0-d count).

    The mean is ``total / max(kept, 1)``. Keeping the parts lets a caller
    divide by a count gathered elsewhere (all ranks of a distributed batch).
    """

    total: Tensor
    kept: Tensor

    def mean(self) -> Tensor:
        return self.total / self.kept.clamp(min=1).to(self.total.dtype)


def row_parts(rows: RowLoss) -> LossParts:
    """Sum of ``loss`` over kept rows and the number of kept rows."""
    total = torch.where(rows.keep, rows.loss, torch.zeros_like(rows.loss)).sum()
    return LossParts(total, rows.keep.sum())


def combine_parts(parts: list[LossParts]) -> Tensor:
    """The mean over directions (CLIP's two) of each direction's mean over kept rows."""
    if not parts:
        raise ValueError("combine_parts: no direction to combine")
    total = parts[0].mean()
    for p in parts[1:]:
        total = total + p.mean()
    return total / len(parts)


def reduce_rows(rows: RowLoss) -> Tensor:
    """Mean of ``loss`` over kept rows; 0 (with a graph) when no row is kept."""
    return row_parts(rows).mean()


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    return num / torch.where(den > 0, den, torch.ones_like(den))


class RowReducer:
    """A row reducer: a dense ``rows`` form and a streamed ``needs``/``from_stats`` form."""

    needs: ClassVar[frozenset[Stat]] = frozenset()

    def rows(self, L: Tensor, W: Tensor, M: Tensor) -> RowLoss:
        raise NotImplementedError

    def from_stats(self, stats: Stats) -> RowLoss:
        raise NotImplementedError

    @property
    def streamable(self) -> bool:
        """Whether the tiled engine can compute this reducer from streamed statistics."""
        return True


@dataclass(frozen=True)
class WeightedCE(RowReducer):
    """R1: ``l_i = -sum_c Wn[i,c] log softmax_M(L_i)_c``.

    ``normalize=True`` uses ``Wn = W / sum_c W[i,c]`` (InfoNCE, SupCon, soft
    targets); ``normalize=False`` uses ``W`` itself (JointLH: each positive is
    its own target). ``per_positive=True`` then divides by ``|P(i)|`` (the
    JointLH ``normalize_loss_by_positive`` flag).

    A row is kept when it has a positive and a valid negative. With a single
    positive and no negative its loss is 0 whatever the logits, so keeping it
    would only shrink the mean. ``require_negative=False`` keeps every row
    with a positive: for soft targets, where every column may carry weight
    and the loss is a cross-entropy against that distribution.
    """

    normalize: bool = True
    per_positive: bool = False
    require_negative: bool = True
    needs: ClassVar[frozenset[Stat]] = frozenset({Stat.LSE_ALL, Stat.WL, Stat.WSUM, Stat.NPOS, Stat.NNEG})

    def rows(self, L: Tensor, W: Tensor, M: Tensor) -> RowLoss:
        lse = masked_lse(L, M)
        pos = W > 0
        logp = torch.where(pos, L - lse[:, None], torch.zeros_like(L))
        nll = -(W * logp).sum(-1)
        wsum, npos = W.sum(-1), pos.sum(-1)
        keep = self._keep(npos, (M & ~pos).sum(-1))
        return RowLoss(torch.where(keep, self._scale(nll, wsum, npos), torch.zeros_like(nll)), keep)

    def from_stats(self, stats: Stats) -> RowLoss:
        keep = self._keep(stats[Stat.NPOS], stats[Stat.NNEG])
        lse = torch.where(keep, stats[Stat.LSE_ALL], torch.zeros_like(stats[Stat.LSE_ALL]))
        nll = stats[Stat.WSUM] * lse - stats[Stat.WL]
        loss = self._scale(nll, stats[Stat.WSUM], stats[Stat.NPOS])
        return RowLoss(torch.where(keep, loss, torch.zeros_like(loss)), keep)

    def _keep(self, npos: Tensor, nneg: Tensor) -> Tensor:
        return (npos > 0) & (nneg > 0) if self.require_negative else npos > 0

    def _scale(self, nll: Tensor, wsum: Tensor, npos: Tensor) -> Tensor:
        if self.normalize:
            nll = _safe_div(nll, wsum)
        if self.per_positive:
            nll = _safe_div(nll, npos.to(nll.dtype))
        return nll


@dataclass(frozen=True)
class PositiveMarginal(RowReducer):
    """R2: ``l_i = LSE_M(L_i) - LSE_P(L_i)`` (SumMargLH: the likelihood of the positive set).

    A row is kept when it has a positive and a valid negative (without one its loss is 0).
    """

    needs: ClassVar[frozenset[Stat]] = frozenset({Stat.LSE_ALL, Stat.LSE_POS, Stat.NPOS, Stat.NNEG})

    def rows(self, L: Tensor, W: Tensor, M: Tensor) -> RowLoss:
        pos = W > 0
        keep = pos.any(-1) & (M & ~pos).any(-1)
        loss = masked_lse(L, M) - masked_lse(L, pos)
        return RowLoss(torch.where(keep, loss, torch.zeros_like(loss)), keep)

    def from_stats(self, stats: Stats) -> RowLoss:
        keep = (stats[Stat.NPOS] > 0) & (stats[Stat.NNEG] > 0)
        loss = stats[Stat.LSE_ALL] - stats[Stat.LSE_POS]
        return RowLoss(torch.where(keep, loss, torch.zeros_like(loss)), keep)


@dataclass(frozen=True)
class Decoupled(RowReducer):
    """R3: ``l_i = -sum_{p in P(i)} Wn[i,p] L_ip + LSE_N(L_i)``; the positive is not in the denominator.

    DCL and DHEL. ``normalize=False`` uses ``W`` unnormalised.
    """

    normalize: bool = True
    needs: ClassVar[frozenset[Stat]] = frozenset({Stat.LSE_NEG, Stat.WL, Stat.WSUM, Stat.NPOS, Stat.NNEG})

    def rows(self, L: Tensor, W: Tensor, M: Tensor) -> RowLoss:
        pos = W > 0
        neg = M & ~pos
        keep = pos.any(-1) & neg.any(-1)
        align = (W * torch.where(pos, L, torch.zeros_like(L))).sum(-1)
        if self.normalize:
            align = _safe_div(align, W.sum(-1))
        loss = -align + masked_lse(L, neg)
        return RowLoss(torch.where(keep, loss, torch.zeros_like(loss)), keep)

    def from_stats(self, stats: Stats) -> RowLoss:
        keep = (stats[Stat.NPOS] > 0) & (stats[Stat.NNEG] > 0)
        align = stats[Stat.WL]
        if self.normalize:
            align = _safe_div(align, stats[Stat.WSUM])
        loss = -align + stats[Stat.LSE_NEG]
        return RowLoss(torch.where(keep, loss, torch.zeros_like(loss)), keep)


PosSelector = Literal["all", "min", "max"]
NegSelector = Literal["all", "max"]


@dataclass(frozen=True)
class PairwiseLSE(RowReducer):
    """R4: ``l_i = log(1 + sum_{p in P} sum_{n in N} exp(L_in - L_ip))``.

    Equals ``softplus(LSE_N(L_i) + LSE_P(-L_i))`` with the default selectors.
    ``neg="max"`` keeps only the hardest negative; ``pos="min"`` the weakest
    positive, ``pos="max"`` the strongest (LSEPair's code options).
    ``per_positive=True`` divides by ``|P(i)|``. Only ``all``/``all`` streams.
    """

    neg: NegSelector = "all"
    pos: PosSelector = "all"
    per_positive: bool = False
    needs: ClassVar[frozenset[Stat]] = frozenset({Stat.LSE_NEG, Stat.LSE_NEGPOS, Stat.NPOS, Stat.NNEG})

    def __post_init__(self) -> None:
        if self.neg not in ("all", "max"):
            raise ValueError(f"PairwiseLSE: neg must be 'all' or 'max', got {self.neg!r}")
        if self.pos not in ("all", "min", "max"):
            raise ValueError(f"PairwiseLSE: pos must be 'all', 'min' or 'max', got {self.pos!r}")

    @property
    def streamable(self) -> bool:
        return self.neg == "all" and self.pos == "all"

    def rows(self, L: Tensor, W: Tensor, M: Tensor) -> RowLoss:
        pos = W > 0
        neg = M & ~pos
        keep = pos.any(-1) & neg.any(-1)
        ninf = torch.full_like(L, float("-inf"))
        neg_term = masked_lse(L, neg) if self.neg == "all" else torch.where(neg, L, ninf).amax(-1)
        if self.pos == "all":
            pos_term = masked_lse(-L, pos)
        elif self.pos == "min":
            pos_term = torch.where(pos, -L, ninf).amax(-1)
        else:
            pos_term = -torch.where(pos, L, ninf).amax(-1)
        return self._finish(neg_term + pos_term, pos.sum(-1), keep)

    def from_stats(self, stats: Stats) -> RowLoss:
        keep = (stats[Stat.NPOS] > 0) & (stats[Stat.NNEG] > 0)
        return self._finish(stats[Stat.LSE_NEG] + stats[Stat.LSE_NEGPOS], stats[Stat.NPOS], keep)

    def _finish(self, inner: Tensor, npos: Tensor, keep: Tensor) -> RowLoss:
        inner = torch.where(keep, inner, torch.zeros_like(inner))
        loss = F.softplus(inner)
        if self.per_positive:
            loss = _safe_div(loss, npos.to(loss.dtype))
        return RowLoss(torch.where(keep, loss, torch.zeros_like(loss)), keep)


@dataclass(frozen=True)
class PointwiseSigmoid(RowReducer):
    """R5: ``l_i = sum_{c in M_i} BCE(sigmoid(L_ic), W_ic)``; every row is kept.

    With :func:`reduce_rows` this is the SigLIP reduction: the sum over valid
    pairs divided by the number of rows A.
    """

    needs: ClassVar[frozenset[Stat]] = frozenset({Stat.BCE})

    def rows(self, L: Tensor, W: Tensor, M: Tensor) -> RowLoss:
        bce = F.binary_cross_entropy_with_logits(L, W, reduction="none")
        loss = torch.where(M, bce, torch.zeros_like(bce)).sum(-1)
        return RowLoss(loss, torch.ones_like(loss, dtype=torch.bool))

    def from_stats(self, stats: Stats) -> RowLoss:
        loss = stats[Stat.BCE]
        return RowLoss(loss, torch.ones_like(loss, dtype=torch.bool))
