"""Run outputs for people and tools: a progress line, ``metrics.jsonl``, TensorBoard, ``env.json``.

* :class:`ProgressLine`: ``step 40/100 | loss 1.2345 | lr 1.9e-05 | 812.4 pairs/s | ETA 0:00:07`` on
  stderr (redrawn in place on a terminal, one line per report otherwise).
* :class:`MetricsLog`: one JSON object per line in ``metrics.jsonl``
  (``{"step": 40, "loss": 1.23, ...}``), flushed at once so a killed run
  keeps every line written; on resume, lines after the checkpoint's step are
  dropped (they are about to be recomputed).
* :class:`TensorBoardLog`: the same scalars as TensorBoard events when
  ``torch.utils.tensorboard`` can be imported; otherwise a note, once, that they are skipped.
* :func:`environment_info`: versions, devices and the command line, for ``env.json``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import torch

from contrastkit import __version__
from contrastkit.encoders.progress import format_duration

Metrics = dict[str, Any]


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``1 step``, ``3 steps`` (``plural_noun`` for irregular plurals)."""
    return f"{count} {noun if count == 1 else plural_noun or noun + 's'}"


class ProgressLine:
    """Throughput and ETA since the run (or resume) started; prints to ``stream`` (stderr by default)."""

    def __init__(self, total_steps: int, start_step: int = 0, *, stream: TextIO | None = None) -> None:
        self.total = total_steps
        self.start_step = start_step
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.pairs = 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def count(self, pairs: int) -> None:
        """Record ``pairs`` more training examples processed."""
        self.pairs += pairs

    def rates(self, step: int) -> tuple[float, float]:
        """(examples per second, seconds left) at ``step``."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        done = step - self.start_step
        eta = elapsed / done * (self.total - step) if done > 0 else float("nan")
        return self.pairs / elapsed, eta

    def line(self, step: int, metrics: Metrics) -> str:
        speed, eta = self.rates(step)
        parts = [f"step {step}/{self.total}"]
        if "loss" in metrics:
            parts.append(f"loss {metrics['loss']:.4f}")
        if "lr" in metrics:
            parts.append(f"lr {metrics['lr']:.2e}")
        if metrics.get("bad_steps"):
            parts.append(f"skipped {metrics['bad_steps']}")
        parts += [f"{speed:.1f} pairs/s", f"ETA {format_duration(eta)}"]
        return " | ".join(parts)

    def show(self, step: int, metrics: Metrics) -> None:
        text = self.line(step, metrics)
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """A one-off line (a skipped step, a checkpoint), not overwritten by the next redraw."""
        self.stream.write(("\r\x1b[2K" if self.tty else "") + text + "\n")
        self.stream.flush()


def _json_default(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return str(value)


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # 'nan', 'inf': JSON has no such numbers
    return value


class MetricsLog:
    """Append-only ``metrics.jsonl``; each record has ``step`` plus scalar metrics."""

    def __init__(self, path: str | Path, *, resume_step: int | None = None) -> None:
        self.path = Path(path)
        if resume_step is not None and self.path.exists():
            self.truncate_after(resume_step)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the run

    def truncate_after(self, step: int) -> None:
        """Drop records with ``step`` greater than ``step`` (atomically rewrites the file)."""
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if isinstance(record, dict) and int(record.get("step", 0)) <= step:
                kept.append(line)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        os.replace(tmp, self.path)

    def write(self, step: int, metrics: Metrics) -> None:
        record = {"step": step, **{k: _finite(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record, default=_json_default) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(path: str | Path) -> list[Metrics]:
    """Every record of a ``metrics.jsonl``; a last line cut short by a killed process is left out."""
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    records = [json.loads(line) for line in lines[:-1]]
    if lines:
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(lines[-1]))
    return records


TENSORBOARD_MISSING = (
    "note: TensorBoard logging is skipped: the tensorboard package is not installed "
    "(pip install tensorboard; train.tensorboard=false silences this note); metrics.jsonl has every scalar"
)


class TensorBoardLog:
    """Scalars to TensorBoard under ``log_dir`` when ``torch.utils.tensorboard`` imports; else a no-op.

    When it is enabled but tensorboard is not installed, :data:`TENSORBOARD_MISSING` is written to ``stream``
    (stderr by default) once per process.
    """

    _missing_noted = False

    def __init__(self, log_dir: str | Path, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional: say so once
            if not TensorBoardLog._missing_noted:
                TensorBoardLog._missing_noted = True
                print(TENSORBOARD_MISSING, file=stream if stream is not None else sys.stderr, flush=True)
            return
        self.writer = SummaryWriter(log_dir=str(log_dir))

    @property
    def active(self) -> bool:
        return self.writer is not None

    def write(self, step: int, metrics: Metrics) -> None:
        if self.writer is None:
            return
        for key, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _version(distribution: str) -> str | None:
    """An installed distribution's version, without importing it."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def environment_info() -> dict[str, Any]:
    """Versions, platform, devices, thread count and command line of this process."""
    cuda = torch.cuda.is_available()
    return {
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "contrastkit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "sentence_transformers": _version("sentence-transformers"),
        "numpy": _version("numpy"),
        "cuda": torch.version.cuda if cuda else None,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else ["cpu"],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "argv": sys.argv,
    }
