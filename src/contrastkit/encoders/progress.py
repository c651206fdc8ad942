"""Progress of long encodes: a bar on a terminal, a plain line now and then otherwise, a summary at the end.

Every encoder's ``encode`` loop reports through :class:`EncodeProgress`, so
``contrastkit eval``, ``mine`` and ``analyze`` (and anything else that
encodes) show progress without code of their own. Nothing is shown for an
encode that finishes within ``delay`` seconds (3 by default), so short
encodes stay quiet. A longer one shows, on stderr:

* on a terminal, a tqdm bar (``encoding: 45%|####5     | 4500/10000 [...]``);
* otherwise (a log file, CI), one line every ``every`` seconds (30 by
  default): ``encoding: 4,500/10,000 texts (45.0%), 85.3 texts/s, ETA 0:01:04``;

and, when it ends, one summary line: ``encoded 10,000 texts in 0:01:57 (85.5 texts/s)``.

Reporting is off by default in the library (a Python caller's ``encode``
prints nothing); the command line turns it on with :func:`set_enabled`, and
:func:`enabled_for` switches it for a block of code.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

_ENABLED = False
DELAY_S = 3.0  # an encode shorter than this shows nothing
EVERY_S = 30.0  # seconds between plain progress lines (not a terminal)


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (``?`` when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    return str(_dt.timedelta(seconds=round(seconds)))


def set_enabled(on: bool) -> None:
    """Turn encode progress reporting on or off for this process."""
    global _ENABLED
    _ENABLED = bool(on)


def is_enabled() -> bool:
    """Whether encodes report progress."""
    return _ENABLED


@contextlib.contextmanager
def enabled_for(on: bool) -> Iterator[None]:
    """Encode progress on (or off) inside the ``with`` block, restored after it."""
    before = _ENABLED
    set_enabled(on)
    try:
        yield
    finally:
        set_enabled(before)


class EncodeProgress:
    """Progress of one encode of ``total`` items; call :meth:`update` per batch and :meth:`close` at the end.

    Args:
        total: items to encode.
        unit: what an item is (``texts``, ``images``).
        stream: where to report (stderr by default).
        delay: seconds before anything is shown, a shorter encode prints nothing (default :data:`DELAY_S`).
        every: seconds between plain lines when ``stream`` is not a terminal (default :data:`EVERY_S`).
        enabled: report at all (default: :func:`is_enabled`).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        total: int,
        *,
        unit: str = "texts",
        stream: TextIO | None = None,
        delay: float | None = None,
        every: float | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.delay = DELAY_S if delay is None else delay
        self.every = EVERY_S if every is None else every
        self.enabled = is_enabled() if enabled is None else enabled
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.shown = False
        self._next_line = self.started + self.delay
        self._bar: Any = None
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, n: int) -> None:
        """``n`` more items encoded."""
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = self.clock()
        if now < self._next_line:
            return
        self.shown = True
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, initial=self.done, unit=f" {self.unit}", desc="encoding", file=self.stream
            )
            return
        self._write(self._line(now))
        self._next_line = now + self.every

    def close(self) -> None:
        """End the bar and, if anything was shown, write the summary line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.shown:
            elapsed = self.clock() - self.started
            rate = self._rate(elapsed)
            self._write(f"encoded {self.done:,} {self.unit} in {format_duration(elapsed)} ({rate:.1f} {self.unit}/s)")
        self.enabled = False

    def _rate(self, elapsed: float) -> float:
        return self.done / elapsed if elapsed > 0 else 0.0

    def _line(self, now: float) -> str:
        elapsed = now - self.started
        rate = self._rate(elapsed)
        eta = (self.total - self.done) / rate if rate > 0 else math.nan
        share = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"encoding: {self.done:,}/{self.total:,} {self.unit} ({share:.1f}%), {rate:.1f} {self.unit}/s, "
            f"ETA {format_duration(eta)}"
        )

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def __enter__(self) -> EncodeProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:  # a failed encode ends its bar but claims no summary
            self.shown = False
        self.close()
