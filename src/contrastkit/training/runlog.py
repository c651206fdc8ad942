"""Everything a run reports, in one place: progress line, ``metrics.jsonl``, TensorBoard, ``env.json``.

:class:`RunLog` is what the loop talks to. Every ``train.log_every`` steps
(and at the last step) it writes one record with the mean loss of the good
steps since the previous record, the learning rate, the gradient norm, the
epoch, throughput and (if learnable) the temperature. A skipped step gets a
record of its own at once (``"skipped": true``, the non-finite loss as the
string ``"nan"``/``"inf"``, and the ``"warning"`` text) and that warning on
stderr, with or without ``train.progress``: warnings (:meth:`RunLog.warn`)
always reach stderr, where ``train.progress=false`` silences the other
messages. Only rank 0 writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from contrastkit.scale.distributed import world
from contrastkit.training.config import Config
from contrastkit.training.logging import MetricsLog, ProgressLine, TensorBoardLog, environment_info, plural

METRICS_FILE = "metrics.jsonl"


def start_line(config: Config, output_dir: Path, total_steps: int, step: int, *, resumed: bool, processes: int) -> str:
    """The run's first line: ``contrastkit: training for 1 step on 2 processes, objective infonce, ...``."""
    verb = f"resuming at step {step} of" if resumed else "training for"
    where = f" on {processes} processes" if processes > 1 else ""
    return (
        f"contrastkit: {verb} {plural(total_steps, 'step')}{where}, objective {config.objective.name}, "
        f"batch {config.data.batch_size} x {config.optim.grad_accumulation}, output {output_dir}"
    )


class RunLog:
    """The run's reporting; see the module docstring. ``main`` is False on ranks other than 0 (silent)."""

    def __init__(self, config: Config, output_dir: Path, *, total_steps: int, main: bool = True) -> None:
        self.config = config
        self.output_dir = output_dir
        self.total_steps = total_steps
        self.main = main
        self.last_metrics: dict[str, Any] = {}
        self.last_loss = float("nan")
        self._loss_sum = 0.0
        self._loss_count = 0
        self.progress: ProgressLine | None = None
        self.metrics: MetricsLog | None = None
        self.tensorboard: TensorBoardLog | None = None

    def start(self, step: int, *, resumed: bool) -> None:
        """Open the outputs (``metrics.jsonl`` cut back to ``step`` on resume) and announce the run."""
        self.progress = ProgressLine(self.total_steps, step)
        if not self.main:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "env.json").write_text(json.dumps(environment_info(), indent=2), encoding="utf-8")
        self.metrics = MetricsLog(self.output_dir / METRICS_FILE, resume_step=step)
        self.tensorboard = TensorBoardLog(self.output_dir / "tensorboard", enabled=self.config.train.tensorboard)
        cfg = self.config
        self.message(start_line(cfg, self.output_dir, self.total_steps, step, resumed=resumed, processes=world()[1]))

    def message(self, text: str) -> None:
        """An informational line on stderr (only with ``train.progress``)."""
        if self.main and self.progress is not None and self.config.train.progress:
            self.progress.message(text)

    def warn(self, text: str) -> None:
        """A line on stderr whatever ``train.progress`` says (rank 0)."""
        if not self.main:
            return
        if self.progress is not None:
            self.progress.message(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def count(self, examples: int) -> None:
        if self.progress is not None:
            self.progress.count(examples)

    def step(self, step: int, metrics: dict[str, Any], *, good: bool, streak: int = 0) -> None:
        """Record step ``step``; writes a record every ``log_every`` steps, at the end, and for a skipped step."""
        self.last_metrics = {**metrics, "skipped": not good}
        if not good:
            limit = self.config.train.max_bad_steps
            if metrics.get("nonfinite_update"):
                cause = f"the update made weights non-finite (lr {metrics['lr']:.3g}): update undone and skipped"
            else:
                cause = f"non-finite loss ({metrics['loss']}) or gradient norm ({metrics['grad_norm']}): update skipped"
            text = f"step {step}: {cause} ({streak}/{limit} in a row)"
            self._write(step, {**metrics, "skipped": True, "warning": text})
            self.warn(text)
            return
        self._loss_sum += metrics["loss"]
        self._loss_count += 1
        if step % self.config.train.log_every and step != self.total_steps:
            return
        record = {**metrics, "loss": self._loss_sum / self._loss_count}
        self._loss_sum, self._loss_count = 0.0, 0
        self.last_loss = record["loss"]
        if self.progress is not None:
            speed, _ = self.progress.rates(step)
            record["examples_per_s"] = round(speed, 2)
            if self.main and self.config.train.progress:
                self.progress.show(step, record)
        self._write(step, record)

    def evaluation(self, step: int, results: dict[str, float]) -> None:
        self.last_metrics.update(results)
        self._write(step, results)
        self.message(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))

    def checkpoint(self, step: int, path: Path | None) -> None:
        self.message(f"step {step}: checkpoint written to {path}")

    def _write(self, step: int, record: dict[str, Any]) -> None:
        if self.metrics is not None:
            self.metrics.write(step, record)
        if self.tensorboard is not None:
            self.tensorboard.write(step, record)

    def close(self) -> None:
        if self.progress is not None and self.main and self.config.train.progress:
            self.progress.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
