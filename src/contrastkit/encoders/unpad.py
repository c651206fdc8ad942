"""Padding-free forward of BERT-family encoders: every dense layer runs on the real tokens only.

A padded batch of short sentences is mostly padding (about half of an SNLI
batch of 32), and a transformer's cost is its dense layers (Q/K/V, attention
output, feed-forward), which are per token. :func:`unpadded_token_states`
gathers the real tokens of ``(n, L)`` inputs into one ``(T, d)`` matrix,
runs the embeddings and each layer's dense parts on it, and pads only for
the attention itself (``scaled_dot_product_attention`` over ``(n, H, L, L)``
with the key padding mask), whose cost is small at these lengths.

The result equals the model's ``last_hidden_state`` at every attended
position (same weights, same operations; positions are the column index, as
in the padded model), and is zero at padded positions, which pooling never
reads. Dropout draws different random numbers than the padded forward (it
sees fewer elements), so under dropout the two agree in distribution, not
bitwise; each path is deterministic by seed.

Supported: ``transformers``' ``BertModel`` (BERT, MiniLM, BGE and E5 small /
base, all-MiniLM-L6-v2) with absolute positions, as an encoder (no cross
attention, no feed-forward chunking), with whole weights: under FSDP
(``scale.fsdp``) its blocks' weights are gathered by their own forward, which
this path does not call. :func:`supports_unpadded` says whether a model
qualifies; others run their own padded forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule


class _Embeddings(Protocol):
    """What this path reads of ``BertEmbeddings``."""

    word_embeddings: nn.Module
    token_type_embeddings: nn.Module
    position_embeddings: nn.Module
    LayerNorm: nn.Module
    dropout: nn.Module


class _SelfAttention(Protocol):
    """What this path reads of ``BertSelfAttention`` (``query``/``key``/``value`` may be adapter-wrapped)."""

    num_attention_heads: int
    attention_head_size: int
    training: bool
    dropout: nn.Dropout
    query: nn.Module
    key: nn.Module
    value: nn.Module


class _DenseOutput(Protocol):
    """``BertSelfOutput`` / ``BertOutput``: dense, dropout, residual LayerNorm."""

    dense: nn.Module
    dropout: nn.Module
    LayerNorm: nn.Module


class _Attention(Protocol):
    self: _SelfAttention
    output: _DenseOutput


class _Intermediate(Protocol):
    dense: nn.Module
    intermediate_act_fn: Callable[[Tensor], Tensor]


class _Layer(Protocol):
    attention: _Attention
    intermediate: _Intermediate
    output: _DenseOutput


class _Encoder(Protocol):
    layer: Iterable[_Layer]


class _Bert(Protocol):
    """The parts of a ``transformers`` ``BertModel`` that :func:`unpadded_token_states` runs."""

    config: Any
    embeddings: _Embeddings
    encoder: _Encoder


def supports_unpadded(model: nn.Module) -> bool:
    """Whether :func:`unpadded_token_states` reproduces ``model``'s forward (a plain ``BertModel`` encoder)."""
    if type(model).__name__ != "BertModel":
        return False
    bert = cast(_Bert, model)
    if any(isinstance(layer, FSDPModule) for layer in bert.encoder.layer):
        return False
    config = bert.config
    return (
        getattr(config, "position_embedding_type", "absolute") == "absolute"
        and not getattr(config, "is_decoder", False)
        and not getattr(config, "add_cross_attention", False)
        and not getattr(config, "chunk_size_feed_forward", 0)
    )


def unpadded_token_states(
    model: nn.Module, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
) -> Tensor:
    """Last-layer token states (n, L, d) of a :func:`supports_unpadded` model, computed on real tokens only.

    Args:
        model: a ``BertModel``.
        input_ids, attention_mask: (n, L) tokenizer output (any padding side).
        token_type_ids: (n, L) or None (zeros, as the model's default).

    Returns:
        (n, L, d): the model's ``last_hidden_state`` where ``attention_mask`` is 1, zeros elsewhere.
    """
    bert = cast(_Bert, model)  # the caller's contract: supports_unpadded(model)
    n, length = input_ids.shape
    keep = attention_mask.reshape(-1).nonzero().squeeze(1)  # flat indices of the real tokens, (T,)
    positions = torch.arange(length, device=input_ids.device).expand(n, length).reshape(-1)[keep]
    types = torch.zeros_like(positions) if token_type_ids is None else token_type_ids.reshape(-1)[keep]
    emb = bert.embeddings
    hidden = emb.word_embeddings(input_ids.reshape(-1)[keep])
    hidden = hidden + emb.token_type_embeddings(types) + emb.position_embeddings(positions)
    hidden = emb.dropout(emb.LayerNorm(hidden))
    key_mask = attention_mask.bool()[:, None, None, :]  # (n, 1, 1, L): which keys each row may attend to
    for layer in bert.encoder.layer:
        hidden = _layer(layer, hidden, keep, (n, length), key_mask)
    return _pad(hidden, keep, n * length).view(n, length, -1)


def _pad(rows: Tensor, keep: Tensor, total: int) -> Tensor:
    """(T, k) rows at flat positions ``keep`` of a zero (total, k) matrix (differentiable in ``rows``)."""
    return rows.new_zeros(total, rows.shape[-1]).index_copy(0, keep, rows)


def _layer(layer: _Layer, hidden: Tensor, keep: Tensor, shape: tuple[int, int], key_mask: Tensor) -> Tensor:
    """One ``BertLayer`` on (T, d) real-token states: attention, then the feed-forward block."""
    attention = layer.attention
    context = _self_attention(attention.self, hidden, keep, shape, key_mask)
    out = attention.output
    hidden = out.LayerNorm(out.dropout(out.dense(context)) + hidden)
    inner = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(hidden))
    out = layer.output
    return out.LayerNorm(out.dropout(out.dense(inner)) + hidden)


def _qkv(attn: _SelfAttention, hidden: Tensor) -> Tensor:
    """(T, 3 H dh): one product with the stacked weights when Q, K, V are plain linear layers, else each module's
    own forward (adapters such as LoRA wrap them)."""
    layers = (attn.query, attn.key, attn.value)
    linears = [layer for layer in layers if type(layer) is nn.Linear]
    if len(linears) == len(layers):
        weights: list[Tensor] = [layer.weight for layer in linears]
        biases: list[Tensor] = [layer.bias for layer in linears if layer.bias is not None]
        bias = torch.cat(biases) if biases else None  # BERT's Q/K/V all have one or none
        return F.linear(hidden, torch.cat(weights), bias)
    return torch.cat([layer(hidden) for layer in layers], dim=-1)


def _self_attention(
    attn: _SelfAttention, hidden: Tensor, keep: Tensor, shape: tuple[int, int], key_mask: Tensor
) -> Tensor:
    """``BertSelfAttention`` on (T, d) states: Q/K/V on real tokens, attention over the padded (n, L) layout."""
    n, length = shape
    heads, head_dim = attn.num_attention_heads, attn.attention_head_size
    qkv = _pad(_qkv(attn, hidden), keep, n * length)
    q, k, v = qkv.view(n, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)  # each (n, H, L, dh)
    dropout = attn.dropout.p if attn.training else 0.0
    scale = getattr(attn, "scaling", head_dim**-0.5)  # transformers < 5 has no attribute; the same value
    context = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=dropout, scale=scale)
    return context.transpose(1, 2).reshape(n * length, heads * head_dim)[keep]
