"""Callbacks: code run by the training loop at fixed points (evaluation, diagnostics, early stopping).

Subclass :class:`Callback` and override the hooks you need (all are no-ops
by default); pass instances to ``train(config, callbacks=[...])``:

* ``on_step_end(ctx)``: after every optimizer step (skipped steps included;
  ``ctx.metrics["skipped"]`` says so).
* ``on_eval(ctx)``: every ``train.eval_every`` steps and once at the end;
  return a dict of scalars to log them as ``eval/<name>`` in
  ``metrics.jsonl`` (and TensorBoard). It runs with the encoder in eval mode,
  without gradient, and with every random generator restored afterwards, so
  evaluating never changes the training trajectory.
* ``on_train_end(ctx)``: once, after the final model is saved.

Raising :class:`StopTraining` from ``on_step_end`` or ``on_eval`` ends the
run cleanly after the current step (final checkpoint and model written).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from contrastkit.encoders.base import Encoder
from contrastkit.training.config import Config
from contrastkit.training.rng import preserved_rng


class StopTraining(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a callback to end the run after the current step."""


@dataclass
class CallbackContext:
    """What a callback sees: the config, the (unwrapped) encoder, the run folder, the step and its metrics."""

    config: Config
    encoder: Encoder
    output_dir: Path
    step: int
    total_steps: int
    metrics: dict[str, Any] = field(default_factory=dict)


class Callback:
    """Base class of training callbacks; see the module docstring."""

    def on_step_end(self, ctx: CallbackContext) -> None:
        """After optimizer step ``ctx.step``."""

    def on_eval(self, ctx: CallbackContext) -> Mapping[str, float] | None:
        """Evaluate; returned scalars are logged as ``eval/<name>``."""
        return None

    def on_train_end(self, ctx: CallbackContext) -> None:
        """After the final model is written to ``ctx.output_dir / 'final'``."""


def run_evaluation(callbacks: Sequence[Callback], ctx: CallbackContext) -> dict[str, float]:
    """Every callback's ``on_eval`` with the encoder in eval mode, no gradient and RNG restored after.

    Returns the scalars as ``{"eval/<name>": value}``; the encoder is put
    back in training mode even when a callback raises.
    """
    results: dict[str, float] = {}
    if not callbacks:
        return results
    with preserved_rng(), torch.no_grad():
        ctx.encoder.eval()
        try:
            for cb in callbacks:
                out = cb.on_eval(ctx)
                results.update({f"eval/{k}": float(v) for k, v in (out or {}).items()})
        finally:
            ctx.encoder.train()
    return results
