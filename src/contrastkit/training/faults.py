"""Fault-injection hooks for the crash-safety tests: the process kills itself with SIGKILL at a chosen point.

Two environment variables, read only here and only by the training loop and
the checkpoint writer (unset in normal use, where these are no-ops):

* ``CONTRASTKIT_TEST_KILL_AT_STEP=k``: after optimizer step ``k`` is complete
  (and its checkpoint written, when one is due), the process SIGKILLs itself.
* ``CONTRASTKIT_TEST_KILL_IN_CHECKPOINT=k``: while writing the checkpoint of
  step ``k``, after every file is written and fsynced but before the rename
  that publishes it, the process SIGKILLs itself.

SIGKILL cannot be caught: no ``finally`` block, atexit handler or buffered
write runs, exactly as when the machine loses power or the OOM killer fires.
"""

from __future__ import annotations

import os
import signal

KILL_AT_STEP = "CONTRASTKIT_TEST_KILL_AT_STEP"
KILL_IN_CHECKPOINT = "CONTRASTKIT_TEST_KILL_IN_CHECKPOINT"


def _requested(variable: str, step: int) -> bool:
    value = os.environ.get(variable)
    return value is not None and value.strip() == str(step)


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def step_done(step: int) -> None:
    """Called by the loop when step ``step`` is complete."""
    if _requested(KILL_AT_STEP, step):
        _kill()


def checkpoint_written(step: int) -> None:
    """Called by the checkpoint writer between writing the temp folder and renaming it."""
    if _requested(KILL_IN_CHECKPOINT, step):
        _kill()
