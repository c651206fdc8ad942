"""Devices, precision and data parallelism for the training loop.

* :func:`resolve_device`: ``auto`` is the local CUDA device when there is one
  (``cuda:<LOCAL_RANK>`` under torchrun), else the CPU.
* :class:`EmbedForward`: the encoder's forward under autocast (``bf16`` on
  CPU or CUDA, ``fp16`` on CUDA), returning float32 embeddings so the loss is
  always computed in float32. It is what DDP wraps, so GradCache sees the DDP
  module and reduces gradients once per step.
* :func:`init_distributed`: joins the torchrun process group (``gloo`` on
  CPU, ``nccl`` on CUDA) when ``WORLD_SIZE`` > 1.
"""

from __future__ import annotations

import os
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from contrastkit.encoders.base import Encoder, Features
from contrastkit.training.schema import ConfigError

Precision = Literal["fp32", "bf16", "fp16"]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> this process's CUDA device or CPU; otherwise ``name`` (checked to exist)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError("train.device", f"unknown device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu" and device.index not in (None, 0):
        raise ConfigError("train.device", f"{name!r}: there is one CPU device (cpu or cpu:0)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device", f"{name!r} requested but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(
            "train.device", f"{name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device", f"{name!r} requested but MPS is not available")
    return device


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None for fp32); fp16 needs CUDA."""
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision", f"fp16 needs a CUDA device (this run uses {device}); use bf16")
    return torch.bfloat16 if precision == "bf16" else torch.float16


class EmbedForward(nn.Module):
    """``features -> float32 embeddings`` of ``encoder`` under autocast (when ``dtype`` is set)."""

    def __init__(self, encoder: Encoder, dtype: torch.dtype | None, device_type: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.dtype = dtype
        self.device_type = device_type

    def forward(self, features: Features) -> Tensor:
        if self.dtype is None:
            return self.encoder(features).float()
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.encoder(features)
        return out.float()


def grad_scaler(precision: Precision, device: torch.device) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 (loss scaling against underflow); None otherwise."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def init_distributed(device: torch.device) -> bool:
    """Join the process group of a torchrun launch (``WORLD_SIZE`` > 1) unless one exists; whether it was created.

    The caller that created the group destroys it at the end of the run; a
    group the user initialised is left alone.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True
