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

from contrastkit.objectives.reducers import RowReducer, Stat
from contrastkit.objectives.targets import Targets

_LSE = {Stat.LSE_ALL, Stat.LSE_POS, Stat.LSE_NEG, Stat.LSE_NEGPOS}
_DIFFERENTIABLE = _LSE | {Stat.WL, Stat.BCE}


@dataclass(frozen=True)
class _Plan:
    targets: Targets
    reducer: RowReducer
    tile_rows: int
    tile_cols: int | None


@dataclass
class _Tile:
    """One block of logits with its targets: ``L`` (r, c), ``S`` (r, c), ``W``, ``M``."""

    S: Tensor
    L: Tensor
    W: Tensor
    M: Tensor

    def set_of(self, stat: Stat) -> Tensor:
        if stat is Stat.LSE_ALL:
            return self.M
        pos = self.W > 0
        if stat in (Stat.LSE_POS, Stat.LSE_NEGPOS):
            return pos
        return self.M & ~pos


def _init_stats(needs: frozenset[Stat], rows: int, like: Tensor) -> dict[Stat, Tensor]:
    fill = {s: float("-inf") if s in _LSE else 0.0 for s in needs}
    return {s: torch.full((rows,), v, dtype=like.dtype, device=like.device) for s, v in fill.items()}


def _update_stats(stats: dict[Stat, Tensor], tile: _Tile) -> None:
    """Merge one column tile into the running per-row statistics."""
    for stat in stats:
        if stat in _LSE:
            values = -tile.L if stat is Stat.LSE_NEGPOS else tile.L
            part = torch.logsumexp(values.masked_fill(~tile.set_of(stat), float("-inf")), dim=-1)
            stats[stat] = torch.logaddexp(stats[stat], part)
        elif stat is Stat.WL:
            stats[stat] += (tile.W * tile.L).sum(-1)
        elif stat is Stat.WSUM:
            stats[stat] += tile.W.sum(-1)
        elif stat is Stat.NPOS:
            stats[stat] += (tile.W > 0).sum(-1)
        elif stat is Stat.NNEG:
            stats[stat] += (tile.M & ~(tile.W > 0)).sum(-1)
        elif stat is Stat.BCE:
            bce = F.binary_cross_entropy_with_logits(tile.L, tile.W, reduction="none")
            stats[stat] += bce.masked_fill(~tile.M, 0.0).sum(-1)


def _grad_logits(tile: _Tile, stats: dict[Stat, Tensor], coefs: dict[Stat, Tensor]) -> Tensor:
    """``dLoss/dL`` on one tile from the per-row coefficients ``dLoss/dstat``."""
    grad = torch.zeros_like(tile.L)
    for stat, coef in coefs.items():
        c = coef[:, None]
        if stat in _LSE:
            lse = stats[stat]
            lse = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))[:, None]
            sign = -1.0 if stat is Stat.LSE_NEGPOS else 1.0
            prob = (sign * tile.L).masked_fill(~tile.set_of(stat), float("-inf")).sub_(lse).exp_()
            grad.add_(prob.mul_(c * sign))
        elif stat is Stat.WL:
            grad.add_(tile.W * c)
        elif stat is Stat.BCE:
            grad.add_(torch.sigmoid(tile.L).sub_(tile.W).masked_fill_(~tile.M, 0.0).mul_(c))
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
        self.scale = torch.zeros((), dtype=a.dtype, device=a.device)
        self.bias = torch.zeros((), dtype=a.dtype, device=a.device)

    def add(self, rows: slice, cols: slice, tile: _Tile, dlogits: Tensor, a: Tensor, c: Tensor, s: Tensor) -> None:
        self.a[rows].addmm_(dlogits, c[cols], alpha=float(s))
        self.c[cols].addmm_(dlogits.T, a[rows], alpha=float(s))
        self.scale += (dlogits * tile.S).sum()
        self.bias += dlogits.sum()


def _tile(a: Tensor, c: Tensor, rows: slice, cols: slice, s: Tensor, b: Tensor | None, plan: _Plan) -> _Tile:
    S = a[rows] @ c[cols].T
    W, M, B = plan.targets.block(rows, cols, dtype=a.dtype, device=a.device)
    L = S * s
    if b is not None:
        L += b
    if B is not None:
        L += B
    return _Tile(S, L, W, M)


def _run(a: Tensor, c: Tensor, s: Tensor, b: Tensor | None, plan: _Plan, want_grad: bool):
    n_rows, n_cols = a.shape[0], c.shape[0]
    tile_cols = plan.tile_cols or n_cols
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    kept = torch.zeros((), dtype=torch.long, device=a.device)
    grads = _Grads(a, c) if want_grad else None
    for r0 in range(0, n_rows, plan.tile_rows):
        rows = slice(r0, min(r0 + plan.tile_rows, n_rows))
        col_slices = [slice(c0, min(c0 + tile_cols, n_cols)) for c0 in range(0, n_cols, tile_cols)]
        stats = _init_stats(plan.reducer.needs, rows.stop - rows.start, a)
        cached = None
        for cols in col_slices:
            cached = _tile(a, c, rows, cols, s, b, plan)
            _update_stats(stats, cached)
        row_total, row_kept, coefs = _row_coefficients(plan.reducer, stats, want_grad)
        total += row_total
        kept += row_kept
        if grads is None or not coefs:
            continue
        for cols in col_slices:
            tile = cached if len(col_slices) == 1 else _tile(a, c, rows, cols, s, b, plan)
            grads.add(rows, cols, tile, _grad_logits(tile, stats, coefs), a, c, s)
    denom = kept.clamp(min=1).to(a.dtype)
    return (total.to(a.dtype) / denom), grads, denom


class _TiledLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, c, scale, bias, plan: _Plan, want_grad: bool):
        b = None if bias is None else bias.detach()
        loss, grads, denom = _run(a.detach(), c.detach(), scale.detach(), b, plan, want_grad)
        if grads is not None:
            ctx.save_for_backward(grads.a / denom, grads.c / denom, grads.scale / denom, grads.bias / denom)
        ctx.has_bias = bias is not None
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        ga, gc, gs, gb = ctx.saved_tensors
        return grad_out * ga, grad_out * gc, grad_out * gs, (grad_out * gb if ctx.has_bias else None), None, None


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
    """Mean over kept rows of ``reducer`` on ``L = scale * anchors @ candidates^T + bias + B``.

    Args:
        anchors: (A, d), already prepared for the similarity (unit rows for cosine).
        candidates: (C, d).
        targets: (A, C) targets; only (tile_rows, tile_cols) blocks are built.
        reducer: a streamable row reducer (``reducer.streamable``).
        scale: 0-d logit scale ``1 / tau`` (may require grad).
        bias: optional 0-d scalar added to every logit (may require grad).
        tile_rows, tile_cols: tile sizes; ``tile_cols=None`` takes every column at once.

    Returns the same value and gradients as the dense computation up to
    floating-point rounding.
    """
    if not reducer.streamable:
        raise ValueError(f"{type(reducer).__name__} with these options has no streamed form; use the dense path")
    if anchors.dim() != 2 or candidates.dim() != 2 or anchors.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"tiled_loss: expected (A, d) and (C, d), got {tuple(anchors.shape)}, {tuple(candidates.shape)}"
        )
    if targets.shape != (anchors.shape[0], candidates.shape[0]):
        raise ValueError(
            f"tiled_loss: targets shape {targets.shape} != (A, C) = ({anchors.shape[0]}, {candidates.shape[0]})"
        )
    if tile_rows < 1 or (tile_cols is not None and tile_cols < 1):
        raise ValueError("tiled_loss: tile sizes must be >= 1")
    inputs = [anchors, candidates, scale] + ([bias] if bias is not None else [])
    want_grad = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
    scale = scale.to(anchors.dtype)
    bias = None if bias is None else bias.to(anchors.dtype)
    plan = _Plan(targets, reducer, tile_rows, tile_cols)
    return _TiledLoss.apply(anchors, candidates, scale, bias, plan, want_grad)
