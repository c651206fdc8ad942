"""A memory queue of past embeddings: extra negatives without extra encoder passes.

MoCo-style training scores each anchor against the current batch's
candidates plus the last K detached candidate embeddings. :class:`MemoryQueue`
holds those K embeddings (FIFO) and appends them to a batch as extra columns
that are valid and never positive (:func:`append_columns`), so any
``ContrastiveLoss`` objective, dense or tiled, sees them as negatives. MoCHi
(:mod:`contrastkit.objectives.mochi`) takes the queue tensor itself
(:meth:`MemoryQueue.tensor`).

Example::

    >>> import torch
    >>> from contrastkit import ContrastiveLoss, Targets
    >>> queue = MemoryQueue(size=64, dim=16)
    >>> a, c = torch.randn(8, 16), torch.randn(8, 16)
    >>> cands, targets = queue.extend(c, Targets.diagonal(8))  # 8 columns, then the queue's
    >>> loss = ContrastiveLoss("infonce")(a, cands, targets)
    >>> queue.enqueue(c)  # after the step
"""

from __future__ import annotations

from dataclasses import fields, replace

import torch
from torch import Tensor, nn

from contrastkit.objectives.targets import Targets


def _outside_ids(row_ids: Tensor, col_ids: Tensor, k: int) -> Tensor:
    """``k`` column ids equal to no row id (one less than every id in use)."""
    used = torch.cat([row_ids.reshape(-1), col_ids.reshape(-1).to(row_ids.device)])
    low = int(used.min()) - 1 if used.numel() else -1
    return torch.full((k,), low, dtype=col_ids.dtype, device=col_ids.device)


def _device_of(targets: Targets) -> torch.device:
    """The device of the targets' tensors (CPU when none)."""
    for f in fields(targets):
        value = getattr(targets, f.name)
        if isinstance(value, Tensor):
            return value.device
    return torch.device("cpu")


def _self_as_exclusion(targets: Targets) -> Tensor | None:
    """The self exclusion ``c == r + offset`` (columns inside [0, C)) as an ``exclude_index`` (A, 1)."""
    rows, cols = targets.shape
    col = torch.arange(rows, device=_device_of(targets)) + targets.self_offset
    col = torch.where((col >= 0) & (col < cols), col, torch.full_like(col, -1))[:, None]
    return (
        col if targets.exclude_index is None else torch.cat([targets.exclude_index, col.to(targets.exclude_index)], 1)
    )


def append_columns(targets: Targets, k: int) -> Targets:
    """``targets`` (A, C) with ``k`` extra columns C..C+k-1 that are valid, not positive and unbiased.

    Compact forms stay compact: index lists are unchanged, the new columns get
    ids matching no row (so neither id positives nor id masks touch them),
    and self exclusion ``c == r + offset`` becomes an explicit exclusion list
    so it can never fall on a new column. Dense fields are padded.
    """
    if k < 0:
        raise ValueError(f"append_columns: k must be >= 0, got {k}")
    if k == 0:
        return targets
    rows, cols = targets.shape
    changes: dict[str, object] = {"num_cols": cols + k}
    if targets.pos is not None:
        changes["pos"] = torch.cat([targets.pos, targets.pos.new_zeros(rows, k)], 1)
    if targets.valid is not None:
        changes["valid"] = torch.cat([targets.valid, targets.valid.new_ones(rows, k)], 1)
    if targets.bias is not None:
        changes["bias"] = torch.cat([targets.bias, targets.bias.new_zeros(rows, k)], 1)
    for row_name, col_name in (("pos_row_ids", "pos_col_ids"), ("mask_row_ids", "mask_col_ids")):
        row_ids, col_ids = getattr(targets, row_name), getattr(targets, col_name)
        if row_ids is not None:
            changes[col_name] = torch.cat([col_ids, _outside_ids(row_ids, col_ids, k)])
    if targets.self_offset is not None:
        changes["exclude_index"] = _self_as_exclusion(targets)
        changes["self_offset"] = None
    return replace(targets, **changes)


class MemoryQueue(nn.Module):
    """A FIFO of the last ``size`` detached embeddings of dimension ``dim``.

    Args:
        size: capacity K (>= 1).
        dim: embedding dimension d.
        dtype: storage dtype (float32 by default; inputs are cast to it).

    The contents (``bank``, write position ``ptr`` and fill ``count``) are
    buffers: ``state_dict()`` / ``load_state_dict()`` save and restore the
    queue exactly for checkpoints, and ``.to(device)`` moves it. Entries are
    returned oldest first.
    """

    bank: Tensor
    ptr: Tensor
    count: Tensor

    def __init__(self, size: int, dim: int, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"MemoryQueue: size and dim must be >= 1, got size={size}, dim={dim}")
        self.size, self.dim = size, dim
        self.register_buffer("bank", torch.zeros(size, dim, dtype=dtype))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.count)

    def tensor(self) -> Tensor:
        """The current entries (len, dim), oldest first, detached."""
        n, ptr = int(self.count), int(self.ptr)
        if n < self.size:
            return self.bank[:n].detach()
        return torch.cat([self.bank[ptr:], self.bank[:ptr]]).detach()

    @torch.no_grad()
    def enqueue(self, x: Tensor) -> None:
        """Append the rows of ``x`` (n, dim), detached; the oldest entries are overwritten when full."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MemoryQueue.enqueue: expected (n, {self.dim}), got {tuple(x.shape)}")
        x = x.detach().to(device=self.bank.device, dtype=self.bank.dtype)[-self.size :]
        n, ptr = x.shape[0], int(self.ptr)
        first = min(n, self.size - ptr)
        self.bank[ptr : ptr + first] = x[:first]
        self.bank[: n - first] = x[first:]
        self.ptr.fill_((ptr + n) % self.size)
        self.count.fill_(min(int(self.count) + n, self.size))

    def extend(self, candidates: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        """``candidates`` (C, d) plus the queue as extra rows, and ``targets`` (A, C) with matching columns.

        The queue columns come after the batch's, valid and never positive
        (:func:`append_columns`); they carry no gradient. With an empty queue
        the inputs come back unchanged.
        """
        if candidates.dim() != 2 or candidates.shape[1] != self.dim:
            raise ValueError(f"MemoryQueue.extend: expected candidates (C, {self.dim}), got {tuple(candidates.shape)}")
        if targets.shape[1] != candidates.shape[0]:
            raise ValueError(
                f"MemoryQueue.extend: targets have {targets.shape[1]} columns, candidates {candidates.shape[0]}"
            )
        queued = self.tensor()
        if queued.shape[0] == 0:
            return candidates, targets
        queued = queued.to(device=candidates.device, dtype=candidates.dtype)
        return torch.cat([candidates, queued]), append_columns(targets, queued.shape[0])

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.dim}, filled={len(self)}"
