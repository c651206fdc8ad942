"""Less padding, same embeddings: length-sorted sub-batches and trimmed padding.

A batch of texts is tokenized padded to its longest text, so every short
text pays for the longest one. Embedding the rows in sub-batches of similar
length, each cut to its own longest text, removes most of that padding. The
result is the same function of the inputs: attention masks keep padded keys
out of every real token's state and pooling ignores padded positions, so
only trailing columns that are padding in *every* row of a sub-batch are
dropped (never leading ones, so left-padded decoders keep their positions).
Only floating-point summation order differs.

* :func:`trim_padding`: drop trailing all-padding columns.
* :func:`length_order`: the row order by decreasing length.
* :func:`embed_sub_batches`: ``forward`` over length-sorted, trimmed
  sub-batches, rows returned in input order, with gradient.

Features without a 2-D ``attention_mask`` (images, rendered text) pass
through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from contrastkit.encoders.base import Features


def _mask(features: Features) -> Tensor | None:
    mask = features.get("attention_mask")
    return mask if mask is not None and mask.ndim == 2 else None


def trim_padding(features: Features) -> Features:
    """``features`` without the trailing columns that are padding in every row.

    Every tensor whose first two dimensions equal the attention mask's
    (``input_ids``, ``token_type_ids``, ``pool_mask``, ...) is cut to the last
    column where some row has a real token; other tensors are kept as they are.
    """
    mask = _mask(features)
    if mask is None or mask.shape[1] == 0:
        return features
    used = mask.ne(0).any(dim=0).nonzero()
    width = int(used[-1]) + 1 if used.numel() else 1
    if width == mask.shape[1]:
        return features
    shape = mask.shape
    return {k: v[:, :width] if v.ndim >= 2 and v.shape[:2] == shape else v for k, v in features.items()}


def length_order(features: Features) -> Tensor | None:
    """Row indices by decreasing number of real tokens (stable); None without an attention mask."""
    mask = _mask(features)
    if mask is None:
        return None
    return torch.sort(mask.ne(0).sum(dim=1), descending=True, stable=True).indices


def select_rows(features: Features, rows: Tensor) -> Features:
    """Every tensor of ``features`` indexed by ``rows`` along dim 0."""
    return {k: v.index_select(0, rows.to(v.device)) for k, v in features.items()}


def embed_sub_batches(forward: Callable[[Features], Tensor], features: Features, size: int) -> Tensor:
    """``forward(features)`` computed over length-sorted, trimmed sub-batches of ``size`` rows.

    Returns (n, d) embeddings in the input row order, differentiable with
    respect to whatever ``forward`` is differentiable in. Without an attention
    mask this is one plain ``forward`` call.
    """
    if size < 1:
        raise ValueError(f"sub-batch size must be >= 1, got {size}")
    order = length_order(features)
    if order is None:
        return forward(features)
    ordered = select_rows(features, order)
    n = order.numel()
    parts = [forward(trim_padding({k: v[i : i + size] for k, v in ordered.items()})) for i in range(0, n, size)]
    out = torch.cat(parts)
    return out.index_select(0, inverse_permutation(order).to(out.device))


def inverse_permutation(order: Tensor) -> Tensor:
    """``inverse`` with ``inverse[order[i]] = i``: rows sorted by ``order``, indexed by it, are back in input order."""
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return inverse
