"""Exact tiled contrastive loss: never holds the A x C similarity matrix.

For any row-separable objective (a :class:`RowReducer` with a streamed form),
the loss of row i is ``f(stats_i)`` where the statistics (log-sum-exps over
the valid / positive / negative sets, weighted sums, BCE sums) merge across
column tiles: log-sum-exps with ``logaddexp`` (a streaming log-sum-exp), sums
by addition. Gradients follow from the chain rule through the statistics::

    dLoss/dL_ic = sum_k (dLoss/dstat_k,i) * (dstat_k,i / dL_ic)

where ``dLSE_X/dL_ic = [c in X] exp(L_ic - LSE_X)``, ``dsum(W L)/dL_ic =
W_ic`` and ``dBCE/dL_ic = sigmoid(L_ic) - W_ic``; ``dLoss/dstat`` comes from
autograd on the tiny per-row function ``f``. Then ``dLoss/da = scale * dL @ c``
and ``dLoss/dc = scale * dL^T @ a`` tile by tile.

The gradients are computed during the forward pass (when any input requires
grad) and scaled by the incoming gradient in backward, so nothing of size
A x C is saved. With one column tile per row tile (``tile_cols=None``, the
default) each tile's logits are used for statistics and gradients at once: 3
matmuls in all, as in the dense path, and peak memory
O(tile_rows x C + (A + C) x d). With ``tile_cols`` set, each row tile makes two
passes over the columns (statistics, then recomputed gradients), and peak
memory is O(tile_rows x tile_cols + (A + C) x d).

Double backward is not supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.objectives.reducers import LossParts, RowReducer, Stat
from contrastkit.objectives.targets import Targets

_LSE = {Stat.LSE_ALL, Stat.LSE_POS, Stat.LSE_NEG, Stat.LSE_NEGPOS}
_DIFFERENTIABLE = _LSE | {Stat.WL, Stat.BCE}
_NEG_INF = float("-inf")


@dataclass(frozen=True)
class _Plan:
    targets: Targets
    reducer: RowReducer
    tile_rows: int
    tile_cols: int | None
    grad_scale: bool
    grad_bias: bool


@dataclass
class _Exp:
    """``E = exp(values - m)`` on one LSE set of a tile, with ``m`` and ``sum(E)`` per row."""

    E: Tensor
    m: Tensor
    total: Tensor


class _Tile:
    """Logits of one block with its targets, built lazily: dense ``W`` only when a statistic needs it.

    ``M`` is None when every entry is valid. Single-index targets keep their
    positive as (local column, weight) and never build ``W`` for R1.
    """

    def __init__(self, L: Tensor, B: Tensor | None, targets: Targets, rows: slice, cols: slice) -> None:
        self.L, self.B = L, B
        self.M = targets.valid_block(rows, cols, device=L.device)
        self.index = targets.index_block(rows, cols, self.M) if targets.single_index else None
        self._targets, self._rows, self._cols = targets, rows, cols
        self._W: Tensor | None = None
        self.exps: dict[Stat, _Exp] = {}

    @property
    def W(self) -> Tensor:
        if self._W is None:
            if self.index is not None:
                local, weight = self.index
                W = torch.zeros_like(self.L)
                self._W = W.scatter_(1, local, weight.to(W.dtype))
            else:
                self._W = self._targets.block(self._rows, self._cols, dtype=self.L.dtype, device=self.L.device).pos
        return self._W

    def set_of(self, stat: Stat) -> Tensor | None:
        """The boolean set an LSE statistic runs over; None means every column."""
        if stat is Stat.LSE_ALL:
            return self.M
        pos = self.W > 0
        if stat in (Stat.LSE_POS, Stat.LSE_NEGPOS):
            return pos
        return ~pos if self.M is None else self.M & ~pos

    def exp(self, stat: Stat) -> _Exp:
        """Unnormalised softmax pieces of an LSE statistic (``-L`` for ``LSE_NEGPOS``)."""
        values = -self.L if stat is Stat.LSE_NEGPOS else self.L
        subset = self.set_of(stat)
        if subset is not None:
            values = values.masked_fill(~subset, _NEG_INF)
        m = values.amax(-1)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        E = (values - m[:, None]).exp_()
        return _Exp(E, m, E.sum(-1))

    def weighted_logits(self) -> Tensor:
        if self.index is not None:
            local, weight = self.index
            return (self.L.gather(1, local) * weight).sum(-1)
        return (self.W * self.L).sum(-1)

    def weights(self) -> tuple[Tensor, Tensor]:
        """Per-row ``sum W`` and ``|P|``."""
        if self.index is not None:
            weight = self.index[1].to(self.L.dtype)
            return weight.sum(-1), (weight > 0).sum(-1)
        return self.W.sum(-1), (self.W > 0).sum(-1)

    def negatives(self, npos: Tensor) -> Tensor:
        valid = self.L.shape[1] if self.M is None else self.M.sum(-1)
        return valid - npos


def _init_stats(needs: frozenset[Stat], rows: int, like: Tensor) -> dict[Stat, Tensor]:
    fill = {s: _NEG_INF if s in _LSE else 0.0 for s in needs}
    return {s: torch.full((rows,), v, dtype=like.dtype, device=like.device) for s, v in fill.items()}


def _update_stats(stats: dict[Stat, Tensor], tile: _Tile, keep_exp: bool) -> None:
    """Merge one column tile into the running per-row statistics (streaming log-sum-exp)."""
    weights: tuple[Tensor, Tensor] | None = None  # (wsum, npos) of the tile, computed once when needed
    for stat in stats:
        if stat in _LSE:
            e = tile.exp(stat)
            part = e.m + e.total.log()
            stats[stat] = torch.logaddexp(stats[stat], part)
            if keep_exp:
                tile.exps[stat] = e
        elif stat is Stat.WL:
            stats[stat] += tile.weighted_logits()
        elif stat in (Stat.WSUM, Stat.NPOS, Stat.NNEG):
            weights = tile.weights() if weights is None else weights
            wsum, npos = weights
            stats[stat] += wsum if stat is Stat.WSUM else npos if stat is Stat.NPOS else tile.negatives(npos)
        elif stat is Stat.BCE:
            bce = F.binary_cross_entropy_with_logits(tile.L, tile.W, reduction="none")
            stats[stat] += (bce if tile.M is None else bce.masked_fill(~tile.M, 0.0)).sum(-1)


def _grad_logits(tile: _Tile, stats: dict[Stat, Tensor], coefs: dict[Stat, Tensor]) -> Tensor:
    """``dLoss/dL`` on one tile from the per-row coefficients ``dLoss/dstat``.

    ``dLSE_X/dL = exp(L - LSE_X)`` on X: the tile's cached ``E`` times
    ``exp(m - LSE_X)`` (equal to ``1 / sum(E)`` when the row has one tile).
    """
    grad: Tensor | None = None
    for stat, coef in coefs.items():
        if stat not in _LSE:
            continue
        e = tile.exps.pop(stat, None) or tile.exp(stat)
        lse = stats[stat]
        lse = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
        factor = coef * (e.m - lse).exp() * (-1.0 if stat is Stat.LSE_NEGPOS else 1.0)
        part = e.E.mul_(factor[:, None])
        grad = part if grad is None else grad.add_(part)
    if grad is None:
        grad = torch.zeros_like(tile.L)
    if Stat.WL in coefs:
        if tile.index is not None:
            local, weight = tile.index
            grad.scatter_add_(1, local, coefs[Stat.WL][:, None] * weight.to(grad.dtype))
        else:
            grad.add_(tile.W * coefs[Stat.WL][:, None])
    if Stat.BCE in coefs:
        bce = torch.sigmoid(tile.L).sub_(tile.W)
        if tile.M is not None:
            bce.masked_fill_(~tile.M, 0.0)
        grad.add_(bce.mul_(coefs[Stat.BCE][:, None]))
    return grad


def _row_coefficients(
    reducer: RowReducer, stats: dict[Stat, Tensor], want_grad: bool
) -> tuple[Tensor, Tensor, dict[Stat, Tensor]]:
    """Sum of kept row losses, number of kept rows, and ``d(sum)/dstat`` per differentiable stat."""
    with torch.enable_grad():
        leaves = {s: v.detach().requires_grad_(want_grad and s in _DIFFERENTIABLE) for s, v in stats.items()}
        rows = reducer.from_stats(leaves)
        total = torch.where(rows.keep, rows.loss, torch.zeros_like(rows.loss)).sum()
        diff = [s for s, v in leaves.items() if v.requires_grad]
        coefs: dict[Stat, Tensor] = {}
        if diff and total.requires_grad:
            grads = torch.autograd.grad(total, [leaves[s] for s in diff], allow_unused=True)
            coefs = {s: g for s, g in zip(diff, grads, strict=True) if g is not None}
    return total.detach(), rows.keep.sum(), coefs


class _Grads:
    """Accumulators for ``dLoss/d(anchors, candidates, scale, bias)``."""

    def __init__(self, a: Tensor, c: Tensor) -> None:
        self.a = torch.zeros_like(a)
        self.c = torch.zeros_like(c)
        self.scale = torch.zeros((), dtype=torch.float64, device=a.device)
        self.bias = torch.zeros((), dtype=torch.float64, device=a.device)

    def add(self, rows: slice, cols: slice, tile: _Tile, dL: Tensor, ctx: _Inputs) -> None:
        """``dLoss/da = s dL c``, ``dLoss/dc = dL^T (s a)``, ``dLoss/ds = sum dL S``, ``dLoss/db = sum dL``."""
        self.a[rows].addmm_(dL, ctx.c[cols], alpha=float(ctx.s))
        self.c[cols].addmm_(dL.T, ctx.a_scaled[rows])
        if ctx.plan.grad_scale or ctx.plan.grad_bias:
            dsum = dL.sum(dtype=torch.float64)
            self.bias += dsum
            if ctx.plan.grad_scale:  # S = (L - b - B) / s
                dot = torch.dot(dL.reshape(-1), tile.L.reshape(-1)).double()
                if ctx.b is not None:
                    dot = dot - float(ctx.b) * dsum
                if tile.B is not None:
                    dot = dot - torch.dot(dL.reshape(-1), tile.B.reshape(-1)).double()
                self.scale += dot / float(ctx.s)


@dataclass
class _Inputs:
    a: Tensor
    c: Tensor
    a_scaled: Tensor
    s: Tensor
    b: Tensor | None
    plan: _Plan

    def tile(self, rows: slice, cols: slice) -> _Tile:
        L = self.a_scaled[rows] @ self.c[cols].T
        B = self.plan.targets.block(rows, cols, dtype=L.dtype, device=L.device).bias if self._has_bias else None
        if self.b is not None:
            L += self.b
        if B is not None:
            L += B
        return _Tile(L, B, self.plan.targets, rows, cols)

    @property
    def _has_bias(self) -> bool:
        t = self.plan.targets
        return t.bias is not None or t.bias_index is not None


def _run(ctx: _Inputs, want_grad: bool) -> tuple[Tensor, _Grads | None, Tensor]:
    """Sum of kept row losses, unnormalised gradients of that sum, and the kept count."""
    n_rows, n_cols = ctx.a.shape[0], ctx.c.shape[0]
    plan = ctx.plan
    tile_cols = plan.tile_cols or n_cols
    col_slices = [slice(c0, min(c0 + tile_cols, n_cols)) for c0 in range(0, n_cols, tile_cols)]
    single = len(col_slices) == 1
    total = torch.zeros((), dtype=torch.float64, device=ctx.a.device)
    kept = torch.zeros((), dtype=torch.long, device=ctx.a.device)
    grads = _Grads(ctx.a, ctx.c) if want_grad else None
    for r0 in range(0, n_rows, plan.tile_rows):
        rows = slice(r0, min(r0 + plan.tile_rows, n_rows))
        stats = _init_stats(plan.reducer.needs, rows.stop - rows.start, ctx.a)
        last: _Tile | None = None
        for cols in col_slices:
            last = ctx.tile(rows, cols)
            _update_stats(stats, last, keep_exp=single and want_grad)
        row_total, row_kept, coefs = _row_coefficients(plan.reducer, stats, want_grad)
        total += row_total
        kept += row_kept
        if grads is None or not coefs:
            continue
        for cols in col_slices:
            tile = last if single and last is not None else ctx.tile(rows, cols)  # one tile: reuse its cached exps
            grads.add(rows, cols, tile, _grad_logits(tile, stats, coefs), ctx)
    return total.to(ctx.a.dtype), grads, kept


class _TiledSum(torch.autograd.Function):
    """Forward: (sum of kept row losses, kept count); backward: the precomputed gradients of the sum."""

    @staticmethod
    def forward(ctx, a, c, scale, bias, plan: _Plan, want_grad: bool):
        a, c, s = a.detach(), c.detach(), scale.detach()
        inputs = _Inputs(a, c, a * s, s, None if bias is None else bias.detach(), plan)
        total, grads, kept = _run(inputs, want_grad)
        if grads is not None:
            dtype = a.dtype
            ctx.save_for_backward(grads.a, grads.c, grads.scale.to(dtype), grads.bias.to(dtype))
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(kept)
        return total, kept

    @staticmethod
    def backward(ctx, grad_total, _grad_kept):
        ga, gc, gs, gb = ctx.saved_tensors
        return (
            grad_total * ga,
            grad_total * gc,
            grad_total * gs,
            (grad_total * gb if ctx.has_bias else None),
            None,
            None,
        )


def tiled_parts(
    anchors: Tensor,
    candidates: Tensor,
    targets: Targets,
    reducer: RowReducer,
    *,
    scale: Tensor,
    bias: Tensor | None = None,
    tile_rows: int = 1024,
    tile_cols: int | None = None,
) -> LossParts:
    """Sum of kept row losses and kept count of ``reducer`` on ``L = scale * anchors @ candidates^T + bias + B``.

    Args:
        anchors: (A, d), already prepared for the similarity (unit rows for cosine).
        candidates: (C, d).
        targets: (A, C) targets; only (tile_rows, tile_cols) blocks are built.
        reducer: a streamable row reducer (``reducer.streamable``).
        scale: 0-d logit scale ``1 / tau`` (may require grad).
        bias: optional 0-d scalar added to every logit (may require grad).
        tile_rows, tile_cols: tile sizes; ``tile_cols=None`` takes every column at once.

    The total is differentiable (the same gradients as the dense computation
    up to floating-point rounding); the count is not.
    """
    if not reducer.streamable:
        raise ValueError(f"{type(reducer).__name__} with these options has no streamed form; use the dense path")
    if anchors.dim() != 2 or candidates.dim() != 2 or anchors.shape[1] != candidates.shape[1]:
        shapes = f"{tuple(anchors.shape)} and {tuple(candidates.shape)}"
        raise ValueError(f"tiled_loss: expected (A, d) and (C, d), got {shapes}")
    if targets.shape != (anchors.shape[0], candidates.shape[0]):
        raise ValueError(
            f"tiled_loss: targets shape {targets.shape} != (A, C) = {(anchors.shape[0], candidates.shape[0])}"
        )
    if tile_rows < 1 or (tile_cols is not None and tile_cols < 1):
        raise ValueError("tiled_loss: tile sizes must be >= 1")
    inputs = [anchors, candidates, scale] + ([bias] if bias is not None else [])
    want_grad = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
    scale = scale.to(anchors.dtype)
    bias = None if bias is None else bias.to(anchors.dtype)
    grad_scale, grad_bias = scale.requires_grad, bias is not None and bias.requires_grad
    plan = _Plan(targets, reducer, tile_rows, tile_cols, grad_scale, grad_bias)
    total, kept = _TiledSum.apply(anchors, candidates, scale, bias, plan, want_grad)
    return LossParts(total, kept)


def tiled_loss(
    anchors: Tensor,
    candidates: Tensor,
    targets: Targets,
    reducer: RowReducer,
    *,
    scale: Tensor,
    bias: Tensor | None = None,
    tile_rows: int = 1024,
    tile_cols: int | None = None,
) -> Tensor:
    """Mean over kept rows of :func:`tiled_parts`: the same value and gradients as the dense loss."""
    parts = tiled_parts(
        anchors, candidates, targets, reducer, scale=scale, bias=bias, tile_rows=tile_rows, tile_cols=tile_cols
    )
    return parts.mean()
