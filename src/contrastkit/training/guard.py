"""Non-finite steps: skip them, count them, stop the run when too many come in a row.

A step is *bad* when its loss or its gradient norm is NaN or infinite. The
loop then applies no update (gradients are dropped, the optimizer and the
queue are not touched, no checkpoint is written), logs the step as skipped
and moves on to the next batch. ``max_bad_steps`` bad steps in a row raise
:class:`TrainingDivergedError`; the last checkpoint on disk is the last good one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class TrainingDivergedError(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


@dataclass
class BadStepGuard:
    """Counts bad steps: :meth:`record` says if a step is good; :attr:`exhausted` after ``max_bad_steps`` in a row."""

    max_bad_steps: int = 5
    streak: int = 0
    total: int = 0
    streak_steps: list[int] = field(default_factory=list)
    last_values: tuple[float, float] = (0.0, 0.0)

    def record(self, step: int, loss: float, grad_norm: float) -> bool:
        """True for a good step (ends any streak); False for a bad one (counted)."""
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.streak = 0
            self.streak_steps = []
            return True
        self.streak += 1
        self.total += 1
        self.streak_steps.append(step)
        self.last_values = (loss, grad_norm)
        return False

    @property
    def exhausted(self) -> bool:
        """Whether the current streak reached ``max_bad_steps``."""
        return self.streak >= self.max_bad_steps

    def error(self, last_checkpoint: str | None) -> TrainingDivergedError:
        """The error to raise when :attr:`exhausted`, naming the steps and the last good checkpoint."""
        loss, grad_norm = self.last_values
        where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written"
        return TrainingDivergedError(
            f"training diverged: {self.streak} consecutive steps with a non-finite loss or gradient "
            f"(steps {self.streak_steps[0]}-{self.streak_steps[-1]}; last loss {loss}, gradient norm {grad_norm}); "
            f"{where}. Lower optim.lr, raise objective.temperature, check the data, or use train.precision=fp32."
        )

    def state_dict(self) -> dict[str, int]:
        return {"total": self.total}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.total = int(state["total"])
        self.streak = 0
        self.streak_steps = []
