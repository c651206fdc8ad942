"""Pooling: token states (n, L, d) and a 0/1 mask (n, L) in, one vector per row (n, d) out.

The mask says which positions are pooled. It is usually the attention mask;
decoder templates pass a narrower one (for example only the input text's
tokens, see :mod:`contrastkit.encoders.decoder`). Every function works
whatever the padding side is:

| mode | formula (row i, pooled positions P_i) |
|---|---|
| ``mean`` | ``sum_{t in P_i} h_t / max(|P_i|, 1e-9)`` |
| ``cls`` | ``h_{min P_i}`` (the first pooled position) |
| ``last`` | ``h_{max P_i}`` (the last pooled position) |
| ``weighted_mean`` | ``sum_t w_t h_t / sum_t w_t`` with ``w_t = t - min P_i + 1`` on ``P_i`` |

A row with no pooled position gives the zero vector. These are exactly the
sentence-transformers ``Pooling`` modes ``mean``, ``cls``, ``lasttoken`` and
``weightedmean`` (same clamping, same position weights), so a saved encoder
reproduces its embeddings there. Half-precision states are accumulated in
float32 and returned in their own dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

import torch
from torch import Tensor

PoolingMode = Literal["mean", "cls", "last", "weighted_mean"]
POOLING_MODES: tuple[PoolingMode, ...] = ("mean", "cls", "last", "weighted_mean")
ModeT = TypeVar("ModeT", bound=str)


def _acc_dtype(x: Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of the pooled positions: (n, L, d), (n, L) -> (n, d)."""
    m = mask.unsqueeze(-1).to(_acc_dtype(hidden))
    total = (hidden.to(m.dtype) * m).sum(dim=1)
    return (total / m.sum(dim=1).clamp(min=1e-9)).to(hidden.dtype)


def cls_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """State at the first pooled position of each row (zeros when a row has none)."""
    first = mask.to(torch.int32).argmax(dim=1)
    out = hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
    return out * mask.any(dim=1, keepdim=True).to(hidden.dtype)


def last_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """State at the last pooled position of each row, left or right padding (zeros when a row has none)."""
    length = mask.shape[1]
    last = length - 1 - mask.to(torch.int32).flip(dims=(1,)).argmax(dim=1)
    out = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    return out * mask.any(dim=1, keepdim=True).to(hidden.dtype)


def weighted_mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Position-weighted mean: weight ``t - first + 1`` at pooled position t (SGPT's weighted mean)."""
    dtype = _acc_dtype(hidden)
    first = mask.to(torch.int32).argmax(dim=1, keepdim=True)
    positions = torch.arange(1, mask.shape[1] + 1, device=hidden.device).unsqueeze(0)
    weights = ((positions - first) * mask).to(dtype).unsqueeze(-1)
    total = (hidden.to(dtype) * weights).sum(dim=1)
    return (total / weights.sum(dim=1).clamp(min=1e-9)).to(hidden.dtype)


_POOLERS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mean": mean_pool,
    "cls": cls_pool,
    "last": last_pool,
    "weighted_mean": weighted_mean_pool,
}


def check_pooling(mode: str, allowed: tuple[str, ...] = POOLING_MODES) -> None:
    """Raise a ValueError naming the allowed modes when ``mode`` is not one of them."""
    choose_pooling(mode, allowed)


def choose_pooling(mode: str, allowed: tuple[ModeT, ...]) -> ModeT:
    """``mode`` as the member of ``allowed`` it equals (typed as that tuple's literal), else a ValueError."""
    for choice in allowed:
        if mode == choice:
            return choice
    raise ValueError(f"unknown pooling {mode!r}; choose one of {', '.join(allowed)}")


def pool(hidden: Tensor, mask: Tensor, mode: PoolingMode) -> Tensor:
    """Pool ``hidden`` (n, L, d) over the positions where ``mask`` (n, L) is nonzero, by ``mode``."""
    check_pooling(mode)
    if hidden.dim() != 3 or mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"pool: expected hidden (n, L, d) and mask (n, L), got {tuple(hidden.shape)}, {tuple(mask.shape)}"
        )
    return _POOLERS[mode](hidden, mask)
