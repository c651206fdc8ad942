"""LoRA adapters (``peft``) on any encoder: add them, train only them, merge them back before saving.

:func:`add_lora` injects LoRA layers (``peft.inject_adapter_in_model``) into
the encoder's linear layers named by ``model.lora.target_modules`` (default:
the attention query/key/value projections it has, see
:data:`QKV_NAMES`) and freezes every other parameter of the encoder, heads
included. The encoder keeps its class and behaviour: each targeted layer
computes ``W x + b + (alpha / r) B A dropout(x)`` with ``B`` zero at the
start, so training starts from the base model exactly. Checkpoints hold the
adapted module's state (base and adapter weights), so resuming rebuilds
the same structure and continues bitwise.

:func:`merge_lora` folds ``(alpha / r) B A`` into each base weight and puts
the plain layer back in place of the LoRA layer, in place: the encoder is
then an ordinary model again, and ``encoder.save(path)`` writes a folder that
``SentenceTransformer(path)`` loads without ``peft``. The trainer merges
after the final checkpoint, just before writing ``final/``.

``peft`` is an optional dependency (``pip install 'contrastkit[lora]'``);
asking for LoRA without it raises :class:`ConfigError` on
``model.lora.enabled`` saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from contrastkit.training.config import LoraConfig
from contrastkit.training.schema import ConfigError

QKV_NAMES = (
    "query",
    "key",
    "value",
    "q_proj",
    "k_proj",
    "v_proj",
    "query_proj",
    "key_proj",
    "value_proj",
    "qkv_proj",
    "c_attn",
    "query_key_value",
    "Wqkv",
    "q",
    "k",
    "v",
)
"""Leaf names of attention query/key/value projections across architectures (BERT, Llama/Qwen, GPT-2, T5...)."""


@dataclass(frozen=True)
class LoraSummary:
    """What :func:`add_lora` did: the adapted layers and the trainable / total parameter counts."""

    layers: tuple[str, ...]
    trainable: int
    total: int

    def describe(self) -> str:
        share = 100 * self.trainable / max(self.total, 1)
        counts = f"{self.trainable:,} trainable of {self.total:,} parameters ({share:.2f}%)"
        return f"LoRA on {len(self.layers)} layers: {counts}"


def import_peft() -> Any:
    """The ``peft`` module, or a :class:`ConfigError` explaining how to install it."""
    try:
        import peft
    except ImportError:
        raise ConfigError(
            "model.lora.enabled",
            "LoRA needs the optional package peft, which is not installed: "
            "pip install 'contrastkit[lora]' (or pip install 'peft>=0.11,<1')",
        ) from None
    return peft


def _projection_kinds() -> tuple[type, ...]:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a dependency
        return (nn.Linear,)
    return (nn.Linear, Conv1D)


def default_target_modules(encoder: nn.Module) -> tuple[str, ...]:
    """The :data:`QKV_NAMES` that name linear layers of ``encoder``; a ConfigError when there are none."""
    kinds = _projection_kinds()
    leaves = {name.rsplit(".", 1)[-1] for name, m in encoder.named_modules() if isinstance(m, kinds)}
    found = tuple(n for n in QKV_NAMES if n in leaves)
    if not found:
        shown = ", ".join(sorted(leaves)[:12]) or "none"
        example = sorted(leaves)[0] if leaves else "q_proj"
        raise ConfigError(
            "model.lora.target_modules",
            f"found no attention query/key/value projection in {type(encoder).__name__} (its linear layers: "
            f"{shown}); name the layers to adapt, e.g. model.lora.target_modules=[{example}]",
        )
    return found


def is_adapter_parameter(name: str) -> bool:
    """Whether parameter ``name`` belongs to a LoRA adapter (``...lora_A.default.weight`` and the like)."""
    return any(part.startswith("lora_") for part in name.split("."))


def add_lora(encoder: nn.Module, config: LoraConfig) -> LoraSummary:
    """Inject LoRA layers into ``encoder`` (in place) and freeze everything else; see the module docstring.

    Raises :class:`ConfigError` when peft is missing, the encoder already has
    adapters, or no layer matches ``config.target_modules``.
    """
    peft = import_peft()
    from peft.tuners.tuners_utils import BaseTunerLayer

    if any(isinstance(m, BaseTunerLayer) for m in encoder.modules()):
        raise ConfigError("model.lora.enabled", f"the {type(encoder).__name__} already has adapters")
    targets = config.target_modules or default_target_modules(encoder)
    conv1d = _targets_conv1d(encoder, targets)
    peft_config = peft.LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(targets),
        fan_in_fan_out=conv1d,  # GPT-2's Conv1D stores weights transposed
        bias="none",
    )
    try:
        peft.inject_adapter_in_model(peft_config, encoder)
    except ValueError as err:
        raise ConfigError("model.lora.target_modules", f"{list(targets)}: {err}") from None
    if "peft_config" in encoder.__dict__:  # bookkeeping peft leaves on the root module; nothing reads it
        del encoder.__dict__["peft_config"]
    for name, param in encoder.named_parameters():
        param.requires_grad_(is_adapter_parameter(name))
    layers = tuple(name for name, m in encoder.named_modules() if isinstance(m, BaseTunerLayer))
    params = list(encoder.parameters())
    return LoraSummary(layers, sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))


def _targets_conv1d(encoder: nn.Module, targets: tuple[str, ...]) -> bool:
    kinds = _projection_kinds()
    if len(kinds) < 2:
        return False
    return any(
        isinstance(m, kinds[1]) and any(name == t or name.endswith("." + t) for t in targets)
        for name, m in encoder.named_modules()
    )


def has_lora(encoder: nn.Module) -> bool:
    """Whether ``encoder`` holds LoRA (peft tuner) layers."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return False
    return any(isinstance(m, BaseTunerLayer) for m in encoder.modules())


def merge_lora(encoder: nn.Module) -> int:
    """Fold every LoRA layer of ``encoder`` into its base layer and put the base layer back (in place).

    Returns the number of layers merged (0 when there are none). The merge
    checks the result for NaN/inf (peft's ``safe_merge``). Parameters keep
    their ``requires_grad`` (the base weights stay frozen).
    """
    if not has_lora(encoder):
        return 0
    from peft.tuners.tuners_utils import BaseTunerLayer

    outer: list[tuple[str, BaseTunerLayer]] = []
    for name, module in encoder.named_modules():
        if isinstance(module, BaseTunerLayer) and not any(name.startswith(o + ".") for o, _ in outer):
            outer.append((name, module))
    for name, module in outer:
        module.merge(safe_merge=True)
        parent_name, _, child = name.rpartition(".")
        parent = encoder.get_submodule(parent_name) if parent_name else encoder
        setattr(parent, child, module.get_base_layer())
    return len(outer)
