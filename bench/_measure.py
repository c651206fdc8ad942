"""Shared measurement helpers for the benchmarks: peak memory, timing, CPU contention, machine info.

Peak memory (Linux): the resident-set high-water mark ``VmHWM`` of
``/proc/self/status``. :class:`PeakMemory` records the current RSS as the
baseline, resets the high-water mark to it (writing ``5`` to
``/proc/self/clear_refs``), and on exit reports ``VmHWM - baseline``: the peak
*extra* memory of the measured region. Where the reset is not allowed it falls
back to ``ru_maxrss - baseline``, which is exact only when nothing before the
baseline peaked higher; :attr:`PeakMemory.method` says which was used. Run one
configuration per fresh process so one run's peak cannot hide another's.

CPU contention: :class:`CpuShare` reads ``/proc/stat`` around a region and
reports the share of the machine's CPU time used by *other* processes (busy
time of all CPUs minus this process's own user + system time, over
``wall x cpus``), plus hypervisor steal. A benchmark on a shared machine
should print it next to its timings.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

# the public data pack beside the repository (../shared/data), or CONTRASTKIT_DATA
DATA = Path(os.environ.get("CONTRASTKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_PROC_STAT = Path("/proc/stat")


# ---------------------------------------------------------------------------- memory
def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """Current resident set size of this process."""
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb * 1024
    return peak_rss_bytes()  # no /proc: the best available upper bound


def peak_rss_bytes() -> int:
    """Resident-set high-water mark (``VmHWM``, else ``ru_maxrss``) in bytes."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


class PeakMemory:
    """Context manager: ``extra`` = peak RSS inside the block minus RSS on entry (bytes)."""

    def __enter__(self) -> PeakMemory:
        self.baseline = rss_bytes()
        self.method = "VmHWM reset via /proc/self/clear_refs" if reset_peak_rss() else "ru_maxrss delta"
        if self.method == "ru_maxrss delta":
            self.baseline = max(self.baseline, peak_rss_bytes())
        self.extra = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self.extra = max(0, peak_rss_bytes() - self.baseline)


# ---------------------------------------------------------------------------- CPU contention
def _cpu_jiffies() -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies summed over all CPUs, from the first line of /proc/stat."""
    try:
        fields = [int(x) for x in _PROC_STAT.read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal, sum(fields[:8])


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuShare:
    """Context manager: ``others`` and ``steal`` as fractions of ``wall x cpus`` during the block."""

    def __enter__(self) -> CpuShare:
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._start = (_cpu_jiffies(), _own_cpu_seconds(), time.perf_counter())
        self.others = float("nan")
        self.steal = float("nan")
        return self

    def __exit__(self, *exc: object) -> None:
        j0, own0, t0 = self._start
        j1, own1, t1 = _cpu_jiffies(), _own_cpu_seconds(), time.perf_counter()
        if j0 is None or j1 is None:
            return
        capacity = (t1 - t0) * (os.cpu_count() or 1)
        if capacity <= 0:
            return
        busy = (j1[0] - j0[0]) / self._tick
        self.others = min(1.0, max(0.0, (busy - (own1 - own0)) / capacity))
        self.steal = min(1.0, max(0.0, (j1[1] - j0[1]) / self._tick / capacity))


def wait_for_quiet(max_others: float, timeout: float, window: float = 2.0) -> tuple[float, float]:
    """Sleep until other processes use at most ``max_others`` of the CPU over ``window`` seconds.

    Gives up after ``timeout`` seconds. Returns (seconds waited, last measured share).
    """
    t0 = time.perf_counter()
    while True:
        with CpuShare() as cpu:
            time.sleep(window)
        waited = time.perf_counter() - t0
        if not cpu.others > max_others or waited >= timeout:
            return waited, cpu.others


# ---------------------------------------------------------------------------- timing
def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def matmul_gflops(shapes: Sequence[tuple[int, int, int]], repeats: int = 7, seed: int = 0) -> dict[str, float]:
    """Best-of-``repeats`` GFLOP/s of ``torch.mm`` for each (m, k, n) float32 product: ``2 m k n / t``."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for m, k, n in shapes:
        a = torch.randn(m, k, generator=gen)
        b = torch.randn(k, n, generator=gen)
        res = torch.empty(m, n)
        times = time_calls(lambda a=a, b=b, res=res: torch.mm(a, b, out=res), repeats=repeats, warmup=2)
        out[f"{m}x{k} @ {k}x{n}"] = 2.0 * m * k * n / min(times) / 1e9
    return out


# ---------------------------------------------------------------------------- processes and machine
def run_json_subprocess(argv: Sequence[str], timeout: float | None = None) -> dict:
    """Run ``argv`` (a Python command) and parse the JSON object on the last line of its stdout."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise RuntimeError(f"{' '.join(argv)} failed with exit code {proc.returncode}:\n{tail}")
    return json.loads(lines[-1])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def machine_info() -> dict[str, object]:
    """What the numbers were measured on."""
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": round((_total_memory_bytes() or 0) / 1e9, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "mkl": torch.backends.mkl.is_available(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def fmt_bytes(n: float | None) -> str:
    """Decimal units: 1 GB = 10^9 bytes."""
    if n is None:
        return "-"
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.0f} MB"


def report_head(title: str, command: str, info: dict[str, object]) -> list[str]:
    """A report's first lines: its title, the command that produced it and the machine (``machine_info()``)."""
    return [title, "", f"Command: `{command}`", "", "Machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), ""]


def save_report(text: str, out: Path | None) -> None:
    """Write a markdown report to ``out`` (its folder made) when one is given."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
