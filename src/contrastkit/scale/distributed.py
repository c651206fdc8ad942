"""Cross-device negatives: gather embeddings with gradient and normalise the loss over the global batch.

Data-parallel contrastive training (``torchrun``, DDP) wants every rank's
anchors scored against the candidates of *all* ranks, with the exact loss and
gradients of one process holding the whole global batch. The layout:

* The global batch has ``world * n`` examples; rank r holds global rows
  ``r*n .. (r+1)*n - 1`` (:func:`local_rows`) and encodes their anchors,
  positives and negatives.
* Candidates are gathered from every rank with :func:`gather_with_grad` (or
  :func:`gather_candidates`, which keeps the column order of the global
  :class:`contrastkit.data.Batch`: all positives, then all negatives).
* Targets are the global batch's ``Batch.targets()``, row-sliced to the
  rank's anchors with :func:`row_slice` (compact forms stay compact), so
  positives and same-group false-negative masks span ranks.
* The loss is :func:`global_parts_loss` of ``ContrastiveLoss.parts(...)``:
  each rank's sum of kept row losses divided by the kept count summed over
  ranks, times the world size. DDP averages parameter gradients over ranks,
  so the result is the exact gradient of the global-batch loss, even when
  ranks keep different numbers of rows.

Why the gradients are exact: with ``K`` the global kept count and ``T_r`` the
sum of kept row losses on rank r, the global loss is ``L = sum_r T_r / K``.
Rank r's loss is ``l_r = world * T_r / K``. The gather's backward sums, for
each rank's slice, the gradients from every rank's loss, so rank r's
parameters receive ``sum_s dl_s/dtheta`` through its own embeddings; DDP's
mean over ranks then gives ``(1/world) sum_r sum_s dl_s/dtheta_r = dL/dtheta``.

Without ``torch.distributed`` (or with one process) every function is the
identity / the single-process computation, so the same training code runs
everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from contrastkit.objectives.reducers import LossParts
from contrastkit.objectives.targets import Targets


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when ``torch.distributed`` is unavailable or not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_sizes(n: int, device: torch.device) -> list[int]:
    """Every rank's first-dimension size, in rank order."""
    _, size = world()
    mine = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(mine) for _ in range(size)]
    dist.all_gather(sizes, mine)
    return [int(s) for s in sizes]


class _GatherWithGrad(torch.autograd.Function):
    """Forward: concatenation over ranks; backward: the sum over ranks of the gradient of this rank's slice."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        rank, size = world()
        sizes = _all_sizes(x.shape[0], x.device)
        width = max(sizes)
        padded = x.detach().contiguous()
        if x.shape[0] < width:
            padded = torch.cat([padded, padded.new_zeros(width - x.shape[0], *x.shape[1:])])
        buffers = [torch.empty_like(padded) for _ in range(size)]
        dist.all_gather(buffers, padded)
        ctx.start, ctx.stop = sum(sizes[:rank]), sum(sizes[: rank + 1])
        return torch.cat([b[:s] for b, s in zip(buffers, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.start : ctx.stop]


def gather_with_grad(x: Tensor) -> Tensor:
    """``x`` (n_r, ...) from every rank concatenated in rank order: (sum_r n_r, ...), differentiable.

    Ranks may hold different ``n_r`` (the sizes are exchanged first). In
    backward, each rank receives the gradient of its own slice summed over
    all ranks' losses (an all-reduce), so every rank must call backward on a
    loss that uses the gathered tensor. The identity without distribution.
    """
    if world()[1] == 1:
        return x
    return _GatherWithGrad.apply(x)


def gather_candidates(candidates: Tensor, num_positives: int) -> Tensor:
    """The global batch's candidates in :class:`contrastkit.data.Batch` order, from each rank's local ones.

    A batch lays out its candidates as every example's positives, then every
    example's negatives. Rank r's local batch (global examples
    ``r*n .. (r+1)*n - 1``) has ``num_positives`` positive rows followed by
    its negatives; gathering the two parts separately and concatenating them
    gives exactly the global batch's column order, so ``row_slice(global_batch.targets(), local_rows(n))``
    indexes the result.
    """
    if not 0 <= num_positives <= candidates.shape[0]:
        raise ValueError(f"num_positives={num_positives} outside [0, {candidates.shape[0]}]")
    return torch.cat([gather_with_grad(candidates[:num_positives]), gather_with_grad(candidates[num_positives:])])


def rank_rows(total: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s rows of a global batch of ``total`` over ``size`` ranks: consecutive, sizes differing by <= 1."""
    base, extra = divmod(total, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def local_rows(n: int, rank: int | None = None) -> slice:
    """Rank ``rank``'s (default: this rank's) rows ``r*n .. (r+1)*n - 1`` of a global batch of ``world * n``."""
    rank = world()[0] if rank is None else rank
    return slice(rank * n, (rank + 1) * n)  # rank_rows(world * n, rank, world), for any rank


def no_sync(module: object, skip: bool) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync()`` (no gradient all-reduce in this backward) when ``skip``; for other modules nothing."""
    if skip and isinstance(module, nn.parallel.DistributedDataParallel):
        return module.no_sync()
    return contextlib.nullcontext()


def row_slice(targets: Targets, rows: slice) -> Targets:
    """The (rows, C) part of ``targets`` (A, C): :meth:`Targets.row_slice`."""
    return targets.row_slice(rows)


def global_parts_loss(parts: list[LossParts]) -> Tensor:
    """This rank's share of the global-batch loss, for DDP's gradient averaging.

    For each direction, ``world * total / K`` with ``K`` the kept count summed
    over ranks (one all-reduce); the directions are averaged as in
    :func:`contrastkit.objectives.reducers.combine_parts`. The mean over ranks
    of the returned value is the global loss (log it with
    :func:`mean_over_ranks`); its gradient, averaged over ranks by DDP, is the
    global loss's gradient. Multiply by ``objective.loss_factor()`` where the
    objective has one (SupCon). With one process it equals ``combine_parts(parts)``.
    """
    if not parts:
        raise ValueError("global_parts_loss: no parts")
    _, size = world()
    kept = torch.stack([p.kept.detach().to(torch.long) for p in parts])
    if size > 1:
        dist.all_reduce(kept, op=dist.ReduceOp.SUM)
    kept = kept.clamp(min=1)
    losses = [p.total * size / k.to(p.total.dtype) for p, k in zip(parts, kept, strict=True)]
    return sum(losses) / len(losses)


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Replace each parameter's ``.grad`` by its mean over ranks (one all-reduce); nothing in one process.

    For parameters outside the DDP-wrapped encoder, such as a loss module's
    learnable temperature. With :func:`global_parts_loss` rank r's loss is
    its share ``l_r`` and the global loss is ``mean_r l_r``, so the global
    gradient is the mean of the ranks' gradients; a loss computed whole on
    every rank has the same gradient everywhere, which the mean keeps. A
    gradient that is None on every rank stays None (an optimizer skips it);
    every rank must call this with the same parameters in the same order.
    """
    _, size = world()
    if size == 1:
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    flat = [p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1) for p in params]
    present = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)
    buffer = torch.cat([*flat, present.to(flat[0].dtype)])
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    counts = buffer[-len(params) :]
    for p, part, count in zip(params, buffer[: -len(params)].split([f.numel() for f in flat]), counts, strict=True):
        if count > 0:
            p.grad = (part / size).reshape(p.shape).to(p.dtype)


def mean_over_ranks(value: Tensor) -> Tensor:
    """The detached mean of a 0-d ``value`` over ranks (to log the global loss); ``value`` itself in one process."""
    value = value.detach().clone()
    _, size = world()
    if size > 1:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= size
    return value
