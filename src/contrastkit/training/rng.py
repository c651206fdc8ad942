"""Random-number state: seed everything, capture and restore it exactly (for checkpoints), or shield a block from it.

The training loop draws randomness from Python's ``random``, NumPy's legacy
global generator, and torch's CPU and CUDA generators (dropout). A checkpoint
stores all four with :func:`capture_rng`; :func:`restore_rng` puts them back
so that the resumed run draws the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """Every generator's state as tensors, lists and ints (loadable with ``torch.load(weights_only=True)``)."""
    legacy = np.random.get_state()
    assert isinstance(legacy, tuple), "the global RandomState's legacy state is a tuple"
    kind, keys, pos, has_gauss, gauss = legacy
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    state["numpy"].update(has_gauss=int(has_gauss), gauss=float(gauss))
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back a state from :func:`capture_rng` (CUDA states only where CUDA is available)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (evaluation, diagnostics) without changing any generator's state for what follows."""
    state = capture_rng()
    try:
        yield
    finally:
        restore_rng(state)
