"""Temperature: fixed or learnable, as a module that yields the logit scale ``1 / tau``.

Logits are ``L = S * scale`` with ``scale = 1 / tau`` (``objectives.md`` 0.1).
A learnable temperature is stored as ``log(scale)`` (the CLIP/SigLIP
parametrisation ``scale = exp(t)``), optionally capped at ``max_scale``
(CLIP caps it at 100).

The cap never blocks the gradient. ``scale()`` returns ``min(exp(t),
max_scale)`` with the derivative ``d scale / dt`` equal to that value (the
derivative of ``exp`` at the cap), so a temperature at the cap moves back
below it as soon as the loss asks. The parameter itself is kept at the cap
by :meth:`Temperature.clamp_`, called after each optimizer step (the trainer
does it through :func:`clamp_temperatures`; a hand-written loop should too),
as open_clip clamps its ``logit_scale`` after the step.

A fixed temperature is used exactly as given; a value beyond ``max_scale`` is
refused, never silently capped.

Example::

    >>> round(Temperature(0.05).scale().item(), 6)
    20.0
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_CAP_TOLERANCE = 1e-6  # float32 rounding of log(1 / tau): 1 / 0.01 may start a hair above a cap of 100


class Temperature(nn.Module):
    """``tau`` as a module; ``scale()`` returns the 0-d tensor ``1 / tau``.

    Args:
        value: the (initial) temperature tau > 0, finite.
        learnable: train ``log(1 / tau)`` as a parameter.
        max_scale: cap ``1 / tau`` from above (e.g. 100 for CLIP), keeping
            the gradient live (see the module docstring). ``1 / value`` must
            not exceed it: a value below ``1 / max_scale`` is refused.
    """

    def __init__(self, value: float = 0.05, *, learnable: bool = False, max_scale: float | None = None) -> None:
        super().__init__()
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"temperature must be a finite number > 0, got {value}")
        if max_scale is not None:
            if not (max_scale > 0 and math.isfinite(max_scale)):
                raise ValueError(f"max_scale must be a finite number > 0, got {max_scale}")
            if 1.0 / value > max_scale * (1 + _CAP_TOLERANCE):
                raise ValueError(
                    f"temperature {value:g} is below its floor 1/max_scale = {1 / max_scale:g} "
                    f"(max_scale={max_scale:g}); pass a temperature >= {1 / max_scale:g}, or a larger max_scale "
                    "(max_scale=None: no cap)"
                )
        # float64 for a fixed tau, so that float64 computations see 1/tau exactly
        log_scale = torch.tensor(math.log(1.0 / value), dtype=torch.float32 if learnable else torch.float64)
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self.learnable = learnable
        self.max_scale = max_scale

    def scale(self) -> Tensor:
        """The logit scale ``1 / tau`` (0-d), at most ``max_scale``; its derivative in ``log_scale`` is its value."""
        t = self.log_scale
        scale = t.exp()
        if self.max_scale is None:
            return scale
        capped = scale.detach().clamp(max=self.max_scale)
        # value: capped exactly (t - t.detach() is 0); d/dt: capped, which is exp(t) below the cap
        return capped * (1 + (t - t.detach()))

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp a learnable ``log_scale`` to ``log(max_scale)`` in place; call it after each optimizer step."""
        if self.learnable and self.max_scale is not None:
            self.log_scale.clamp_(max=math.log(self.max_scale))

    @property
    def value(self) -> float:
        """The current tau as a float."""
        return float(1.0 / self.scale().detach())

    def extra_repr(self) -> str:
        return f"tau={self.value:.4g}, learnable={self.learnable}"


def clamp_temperatures(module: nn.Module) -> None:
    """:meth:`Temperature.clamp_` on every temperature inside ``module`` (after each optimizer step)."""
    for sub in module.modules():
        if isinstance(sub, Temperature):
            sub.clamp_()


def as_temperature(value: float | Temperature) -> Temperature:
    """Accept a float or a ready :class:`Temperature`."""
    return value if isinstance(value, Temperature) else Temperature(float(value))
