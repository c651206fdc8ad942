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

import torch
from torch import Tensor, nn

from contrastkit.objectives.targets import Targets


def append_columns(targets: Targets, k: int) -> Targets:
    """``targets`` (A, C) with ``k`` extra valid, non-positive, unbiased columns: :meth:`Targets.append_columns`."""
    return targets.append_columns(k)


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
