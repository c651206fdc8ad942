"""The bench/ scripts as modules in the tests (they import their siblings by name, so bench/ joins sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def load_bench(name: str, file: str, mp: pytest.MonkeyPatch) -> ModuleType:
    """``bench/<file>`` imported as module ``name``; ``mp`` undoes its sys.path entry and sys.modules record."""
    mp.syspath_prepend(str(BENCH_DIR))
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / file)
    module = importlib.util.module_from_spec(spec)
    mp.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module
