"""Temperature: fixed or learnable, as a module that yields the logit scale ``1 / tau``.

Logits are ``L = S * scale`` with ``scale = 1 / tau`` (``objectives.md`` 0.1).
A learnable temperature is stored as ``log(scale)`` (the CLIP/SigLIP
parametrisation ``scale = exp(t)``), optionally clamped at ``max_scale``
(CLIP clips at 100).

Example::

    >>> round(Temperature(0.05).scale().item(), 6)
    20.0
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Temperature(nn.Module):
    """``tau`` as a module; ``scale()`` returns the 0-d tensor ``1 / tau``.

    Args:
        value: the (initial) temperature tau > 0.
        learnable: train ``log(1 / tau)`` as a parameter.
        max_scale: clamp ``1 / tau`` from above (e.g. 100 for CLIP).
    """

    def __init__(self, value: float = 0.05, *, learnable: bool = False, max_scale: float | None = None) -> None:
        super().__init__()
        if not value > 0:
            raise ValueError(f"temperature must be > 0, got {value}")
        # float64 for a fixed tau, so that float64 computations see 1/tau exactly
        log_scale = torch.tensor(math.log(1.0 / value), dtype=torch.float32 if learnable else torch.float64)
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self.learnable = learnable
        self.max_scale = max_scale

    def scale(self) -> Tensor:
        """The logit scale ``1 / tau`` (0-d)."""
        scale = self.log_scale.exp()
        return scale.clamp(max=self.max_scale) if self.max_scale is not None else scale

    @property
    def value(self) -> float:
        """The current tau as a float."""
        return float(1.0 / self.scale().detach())

    def extra_repr(self) -> str:
        return f"tau={self.value:.4g}, learnable={self.learnable}"


def as_temperature(value: float | Temperature) -> Temperature:
    """Accept a float or a ready :class:`Temperature`."""
    return value if isinstance(value, Temperature) else Temperature(float(value))
