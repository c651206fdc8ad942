"""The single-process parts of FSDP support: which modules become units, the meta copy, the config check.

The two-process runs are in ``test_fsdp.py``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

from contrastkit.training import load_config
from contrastkit.training.schema import ConfigError
from contrastkit.training.sharding import meta_copy, transformer_blocks


def test_blocks_are_the_transformer_layers() -> None:
    bert = BertModel(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                intermediate_size=32))  # fmt: skip
    assert transformer_blocks(bert) == list(bert.encoder.layer)
    gpt2 = GPT2Model(GPT2Config(vocab_size=30, n_embd=16, n_layer=2, n_head=2))
    assert transformer_blocks(gpt2) == list(gpt2.h)


def test_blocks_skip_short_mixed_and_nested_lists() -> None:
    model = nn.Module()
    model.one = nn.ModuleList([nn.Linear(2, 2)])  # a single item is no repetition
    model.mixed = nn.ModuleList([nn.Linear(2, 2), nn.LayerNorm(2)])
    model.empty = nn.ModuleList([nn.ReLU(), nn.ReLU()])  # nothing to shard
    inner = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    outer = nn.Sequential(inner, nn.Linear(2, 2))
    model.stack = nn.ModuleList([outer, nn.Sequential(nn.ModuleList([nn.Linear(2, 2)] * 2), nn.Linear(2, 2))])
    assert transformer_blocks(model) == list(model.stack)  # the outer blocks only, not the lists inside them


def test_meta_copy_has_no_storage_and_fills_exactly() -> None:
    bert = BertModel(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32))  # fmt: skip
    copy = meta_copy(bert)
    assert all(p.device.type == "meta" for p in copy.parameters())
    assert all(p.device.type == "cpu" for p in bert.parameters())  # the original is untouched
    assert torch.equal(copy.embeddings.position_ids, bert.embeddings.position_ids)  # buffers are real copies
    copy.load_state_dict(bert.state_dict(), strict=True, assign=True)
    for (name, a), (_, b) in zip(copy.named_parameters(), bert.named_parameters(), strict=True):
        assert torch.equal(a, b) and a.data_ptr() == b.data_ptr(), name  # assigned, not copied
    ids = torch.tensor([[2, 5, 7, 3]])
    assert torch.equal(copy.eval()(input_ids=ids).last_hidden_state, bert.eval()(input_ids=ids).last_hidden_state)


def test_fsdp_with_lora_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^scale\.fsdp: does not combine with model\.lora"):
        load_config(None, ["scale.fsdp=true", "model.lora.enabled=true"])
    assert load_config(None, ["scale.fsdp=true"]).scale.fsdp
