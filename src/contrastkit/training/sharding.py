"""Fully sharded data parallelism (``scale.fsdp``): weights, gradients and optimizer state split over ranks.

Under ``torchrun``, DDP keeps a whole replica of the encoder, its gradients
and AdamW's two moments on every device. With ``scale.fsdp: true`` each rank
holds ``1/world`` of each instead (PyTorch's FSDP2, ``fully_shard``): every
transformer block is one unit, gathered just before its forward and backward
and freed after, and the encoder's remaining weights (embeddings, heads) are
the root unit. What a rank holds at a time is its shards plus the full
weights of the block being computed (and the next one, prefetched), so an
encoder that does not fit one device trains on several.

The loss is the same as under DDP: candidates are gathered with gradient
and FSDP's reduce-scatter averages the gradients, so training equals one
process on the global batch (tested with two CPU processes, gloo).

Whole-model moments go through :class:`Sharding`, each a collective that
every rank calls:

* checkpoints hold the *full* weights (gathered to rank 0's CPU, the same
  ``model.safetensors`` as an unsharded run's) and the full optimizer state
  (keyed by parameter name, so a checkpoint resumes under FSDP only); resume
  gives each rank its shards back;
* the final model and evaluation callbacks get :meth:`Sharding.full_encoder`:
  a copy of the encoder on rank 0's CPU holding the gathered weights (the
  copy is made before sharding with its parameters on the ``meta`` device,
  so it costs no memory until it is filled).

Not combined with LoRA adapters (they are merged into sharded weights at the
end); the padding-free BERT forward is off for sharded models (it calls the
blocks' layers directly, past FSDP's gathering hooks).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from contrastkit.encoders.base import Encoder
from contrastkit.scale.distributed import world

_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)
_SCATTER = StateDictOptions(full_state_dict=True)  # every rank holds the full state and keeps its shards
# parameters that never received a gradient (BERT's pooler under mean pooling) have no optimizer state
_SCATTER_OPTIMIZER = StateDictOptions(full_state_dict=True, strict=False)


def transformer_blocks(module: nn.Module) -> list[nn.Module]:
    """The repeated blocks of ``module``: the items of every ``nn.ModuleList`` of two or more same-class modules
    with parameters (BERT's ``encoder.layer``, GPT-2's ``h``, Llama's ``layers``), outermost lists only."""
    blocks: list[nn.Module] = []
    inside: set[int] = set()
    for sub in module.modules():
        if id(sub) in inside or not isinstance(sub, nn.ModuleList) or len(sub) < 2:
            continue
        if len({type(m) for m in sub}) == 1 and any(True for _ in sub[0].parameters()):
            blocks.extend(sub)
            inside.update(id(m) for block in sub for m in block.modules())
    return blocks


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def meta_copy(module: ModuleT) -> ModuleT:
    """A deep copy of ``module`` whose parameters are on the ``meta`` device (no storage); buffers are copied."""
    memo: dict[int, Any] = {
        id(p): nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
        for p in module.parameters()
    }
    return copy.deepcopy(module, memo)


class Sharding:
    """FSDP2 over ``encoder`` (sharded in place at construction) and the collectives to save and restore it.

    Args:
        encoder: the encoder, anywhere (the CPU: it may not fit the device);
            its blocks (:func:`transformer_blocks`) and then itself become
            FSDP units, and each rank's shards and the buffers move to ``device``.
        loss: the loss module (not sharded: a learnable temperature, a
            queue); named ``loss`` next to the encoder's ``model`` in the
            optimizer state, as in an unsharded checkpoint's files.
        device: this rank's device (``cuda:<LOCAL_RANK>`` or the CPU).

    Build the optimizer *after* this (its parameters are the shards).
    """

    def __init__(self, encoder: Encoder, loss: nn.Module, device: torch.device) -> None:
        self.template = meta_copy(encoder)
        mesh = init_device_mesh(device.type, (world()[1],))
        blocks = transformer_blocks(encoder)
        for block in blocks:
            fully_shard(block, mesh=mesh)
        self.blocks = len(blocks)
        fully_shard(encoder, mesh=mesh)
        self.encoder = encoder
        self.modules = nn.ModuleDict({"model": encoder, "loss": loss})

    def describe(self) -> str:
        """A log line: units, and how many of the encoder's parameters this rank holds."""
        params = list(self.encoder.parameters())
        total = sum(p.numel() for p in params)
        local = sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in params)
        return (
            f"FSDP: the encoder is sharded over {world()[1]} processes ({self.blocks} blocks + root); "
            f"this process holds {local:,} of its {total:,} parameters"
        )

    def model_state(self) -> dict[str, Any]:
        """The encoder's full state dict on rank 0's CPU (``{}`` on other ranks). Collective."""
        return get_model_state_dict(self.encoder, options=_GATHER)

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's full state, keyed by parameter name, on rank 0's CPU (``{}`` elsewhere). Collective."""
        return get_optimizer_state_dict(self.modules, optimizer, options=_GATHER)

    def load(self, model_state: Mapping[str, Tensor], optimizer: torch.optim.Optimizer, optimizer_state: dict) -> None:
        """Keep this rank's shards of the full ``model_state`` and ``optimizer_state`` (every rank passes both)."""
        set_model_state_dict(self.encoder, dict(model_state), options=_SCATTER)
        set_optimizer_state_dict(self.modules, optimizer, optimizer_state, options=_SCATTER_OPTIMIZER)

    def full_encoder(self) -> Encoder | None:
        """On rank 0, a CPU copy of the encoder with the current full weights, in the encoder's train/eval mode;
        None on other ranks. Collective."""
        state = self.model_state()
        if world()[0] != 0:
            return None
        full = copy.deepcopy(self.template)
        full.load_state_dict(state, strict=True, assign=True)
        return full.to("cpu").train(self.encoder.training)
