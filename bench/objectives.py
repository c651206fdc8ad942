"""Dense vs exact tiled contrastive loss + backward on CPU: time, peak extra memory, achieved GFLOP/s.

Workload: ``ContrastiveLoss("infonce", temperature=0.05, tile_size=None | T)``
on N query/document pairs (seeded random float32 embeddings, d = 384, cosine
similarity) with diagonal targets (``Targets.diagonal(N)``); one step is the
forward pass plus ``backward()`` into both embedding matrices. One
multi-positive objective (``summarglh``, 2 positives per row via
``Targets.from_lists``) is measured at one size as well.

FLOP accounting: both paths do three N x N x d matrix products per step
(``S = A C^T``, ``dA = dL C``, ``dC = dL^T A``; the tiled engine with one column
tile computes each tile's logits once and uses them for the statistics and the
gradients). Achieved GFLOP/s = ``3 * 2 * N^2 * d / time``; the O(N^2)
elementwise work (exp, masks, log-sum-exp) is not counted. The reference is
the best ``torch.mm`` GFLOP/s measured in the same run on two shapes of the
same kind (4096x384 @ 384x4096 and 4096x4096 @ 4096x384), before and after
the configurations.

Memory: every configuration runs in a fresh subprocess (``--one``); "peak
extra" is the resident-set high-water mark during the warm-up and timed steps
minus the RSS once the inputs are allocated (see ``_measure.PeakMemory``).
Dense is not run above ``--dense-max-n``; its memory there is extrapolated as
``bytes per N^2 entry`` of the largest dense run measured, times N^2.

Timing: one warm-up step (at N > 16,384 the warm-up runs at N = 2,048 so the
big step is not done twice), then the median of the timed steps (5 at
N <= 4,096, 3 at N <= 16,384, 1 above). ``others' CPU`` is the share of the
machine's CPU that other processes used during the timed steps: on a shared
machine, rows with a high value are slowed by contention, so a configuration
where it exceeds ``--max-others`` (15%) is rerun up to ``--retries`` times (2)
and the least contended run is kept; before each run the script waits up to
``--wait`` seconds (600) for the other processes' share to drop below that.

Usage::

    python bench/objectives.py                       # full run, several minutes on 2 cores
    python bench/objectives.py --quick               # smoke run, under 30 s
    python bench/objectives.py --sizes 4096 16384 --tile 256 --out /tmp/objectives.json
    python bench/objectives.py --one tiled 8192 --tile 256   # one configuration, JSON line (used internally)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from _measure import (
    CpuShare,
    PeakMemory,
    fmt_bytes,
    machine_info,
    matmul_gflops,
    median,
    run_json_subprocess,
    wait_for_quiet,
)
from contrastkit import ContrastiveLoss, Targets

D = 384
TEMPERATURE = 0.05
DEFAULT_TILE = 256
FULL_SIZES = (4096, 8192, 16384, 65536)
QUICK_SIZES = (1024, 2048)
SWEEP_TILES = (256, 512, 1024, 2048)
MATMUL_SHAPES = ((4096, D, 4096), (4096, 4096, D))
MULTIPOS = ("summarglh", 2)
MEMORY_TARGET_BYTES = 1.5e9
RATIO_TARGET = 1.25
THROUGHPUT_TARGET = 0.5


@dataclass(frozen=True)
class Config:
    """One measured configuration; ``warmup`` is "full" (one step at N), "small" (N = 2,048) or "none"."""

    mode: str
    n: int
    d: int = D
    tile: int | None = None
    objective: str = "infonce"
    positives: int = 1
    repeats: int = 1
    warmup: str = "full"
    seed: int = 0


def step_flops(n: int, d: int) -> float:
    """Matmul FLOPs of one forward + backward step: three (N x d) by (d x N)-sized products."""
    return 3 * 2.0 * n * n * d


def make_inputs(n: int, d: int, positives: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, Targets]:
    """Seeded queries and documents (n, d) requiring grad; row i's positives are columns i .. i+positives-1."""
    gen = torch.Generator().manual_seed(seed)
    queries = torch.randn(n, d, generator=gen).requires_grad_()
    docs = torch.randn(n, d, generator=gen).requires_grad_()
    if positives == 1:
        return queries, docs, Targets.diagonal(n)
    index = (torch.arange(n)[:, None] + torch.arange(positives)[None, :]) % n
    return queries, docs, Targets.from_lists(index, num_cols=n)


def _step(loss_fn: ContrastiveLoss, queries: torch.Tensor, docs: torch.Tensor, targets: Targets) -> float:
    queries.grad = None
    docs.grad = None
    loss = loss_fn(queries, docs, targets)
    loss.backward()
    return float(loss.detach())


def run_config(cfg: Config) -> dict[str, object]:
    """Warm up, then time ``cfg.repeats`` loss + backward steps; peak extra memory over warm-up and steps."""
    loss_fn = ContrastiveLoss(
        cfg.objective, temperature=TEMPERATURE, tile_size=cfg.tile if cfg.mode == "tiled" else None
    )
    if cfg.warmup == "small":
        _step(loss_fn, *make_inputs(min(cfg.n, 2048), cfg.d, cfg.positives, cfg.seed))
    queries, docs, targets = make_inputs(cfg.n, cfg.d, cfg.positives, cfg.seed)
    times: list[float] = []
    with PeakMemory() as mem:
        if cfg.warmup == "full":
            _step(loss_fn, queries, docs, targets)
        with CpuShare() as cpu:
            for _ in range(cfg.repeats):
                t0 = time.perf_counter()
                loss = _step(loss_fn, queries, docs, targets)
                times.append(time.perf_counter() - t0)
    t = median(times)
    return {
        **asdict(cfg),
        "times_s": times,
        "time_s": t,
        "min_time_s": min(times),
        "gflops": step_flops(cfg.n, cfg.d) / t / 1e9,
        "loss": loss,
        "grad_norms": [float(queries.grad.norm()), float(docs.grad.norm())],
        "peak_extra_bytes": mem.extra,
        "memory_method": mem.method,
        "cpu_others": cpu.others,
        "cpu_steal": cpu.steal,
    }


def _subprocess(cfg: Config) -> dict[str, object]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--one", cfg.mode, str(cfg.n), "--d", str(cfg.d)]
    argv += ["--objective", cfg.objective, "--positives", str(cfg.positives), "--repeats", str(cfg.repeats)]
    argv += ["--warmup", cfg.warmup, "--seed", str(cfg.seed)]
    if cfg.tile is not None:
        argv += ["--tile", str(cfg.tile)]
    return run_json_subprocess(argv)


def _schedule(n: int) -> tuple[int, str]:
    """(repeats, warm-up) for size ``n``."""
    if n <= 4096:
        return 5, "full"
    if n <= 16384:
        return 3, "full"
    return 1, "small"


class Runner:
    """Runs each distinct configuration once (in a subprocess) and prints a line as it finishes."""

    def __init__(self, d: int, repeats: int | None, max_others: float, retries: int, wait: float) -> None:
        self.d, self.repeats, self.max_others, self.retries, self.wait = d, repeats, max_others, retries, wait
        self.results: dict[Config, dict] = {}

    def get(self, mode: str, n: int, tile: int | None = None, objective: str = "infonce", positives: int = 1) -> dict:
        repeats, warmup = _schedule(n)
        cfg = Config(mode, n, self.d, tile if mode == "tiled" else None, objective, positives, repeats, warmup)
        if self.repeats is not None:
            cfg = replace(cfg, repeats=self.repeats)
        if cfg not in self.results:
            self.results[cfg] = self._measure(cfg)
        return self.results[cfg]

    def _measure(self, cfg: Config) -> dict:
        """Run ``cfg``; rerun (up to ``retries`` times) while others used > ``max_others`` of the CPU."""
        best = None
        for attempt in range(1 + self.retries):
            if self.wait > 0:
                waited, share = wait_for_quiet(self.max_others, self.wait)
                if waited > 5:
                    print(f"  waited {waited:.0f} s for a quiet machine (others' CPU now {100 * share:.0f}%)")
            res = _subprocess(cfg)
            others = res["cpu_others"]
            print(
                f"  {_label(res)}: {res['time_s']:.3f} s, {fmt_bytes(res['peak_extra_bytes'])}, "
                f"others' CPU {100 * others:.0f}%",
                flush=True,
            )
            if best is None or others < best["cpu_others"]:
                best = res
            best["attempts"] = attempt + 1
            if others <= self.max_others:
                break
        return best


def _label(r: dict) -> str:
    tile = f" tile={r['tile']}" if r["tile"] else ""
    return f"{r['objective']} N={r['n']} {r['mode']}{tile}"


def _row(r: dict, ref: float) -> str:
    tile = str(r["tile"]) if r["tile"] else "-"
    return (
        f"| {r['objective']} | {r['n']:,} | {r['mode']} | {tile} | {r['time_s']:.3f} | {r['min_time_s']:.3f} | "
        f"{len(r['times_s'])} | {r['gflops']:.1f} | {100 * r['gflops'] / ref:.0f}% | "
        f"{fmt_bytes(r['peak_extra_bytes'])} | {100 * r['cpu_others']:.0f}% | {r['loss']:.5f} |"
    )


_HEADER = (
    "| objective | N | path | tile | median s | min s | runs | GFLOP/s | % of matmul | peak extra mem "
    "| others' CPU | loss |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _skipped_row(n: int, estimate: float | None) -> str:
    est = f"skipped (est. {fmt_bytes(estimate)})" if estimate else "skipped"
    return f"| infonce | {n:,} | dense | - | - | - | 0 | - | - | {est} | - | - |"


def _check(name: str, ok: bool | None, detail: str) -> str:
    verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
    return f"- [{verdict}] {name}: {detail}"


def evaluate_targets(results: list[dict], ref: float, tile: int, ratio_n: int) -> list[str]:
    """The issue's three targets, each with its measured value and margin."""
    tiled = {r["n"]: r for r in results if r["objective"] == "infonce" and r["mode"] == "tiled" and r["tile"] == tile}
    dense = {r["n"]: r for r in results if r["objective"] == "infonce" and r["mode"] == "dense"}
    lines = []
    big = tiled.get(65536)
    mem = None if big is None else big["peak_extra_bytes"]
    lines.append(
        _check(
            "N = 65,536 tiled peak extra memory < 1.5 GB",
            None if mem is None else mem < MEMORY_TARGET_BYTES,
            "not measured" if mem is None else f"{fmt_bytes(mem)} ({mem / MEMORY_TARGET_BYTES:.2f}x the limit)",
        )
    )
    if ratio_n in tiled and ratio_n in dense:
        ratio = tiled[ratio_n]["time_s"] / dense[ratio_n]["time_s"]
        detail = f"tiled {tiled[ratio_n]['time_s']:.3f} s / dense {dense[ratio_n]['time_s']:.3f} s = {ratio:.2f}x"
        lines.append(_check(f"N = {ratio_n:,} tiled time <= 1.25x dense", ratio <= RATIO_TARGET, detail))
    else:
        lines.append(_check(f"N = {ratio_n:,} tiled time <= 1.25x dense", None, "not measured"))
    shares = {n: r["gflops"] / ref for n, r in sorted(tiled.items())}
    if shares:
        n_max = max(shares)
        detail = ", ".join(f"N={n:,}: {100 * s:.0f}%" for n, s in shares.items())
        lines.append(
            _check(
                f"tiled throughput >= 50% of matmul ({ref:.1f} GFLOP/s), at the largest N",
                shares[n_max] >= THROUGHPUT_TARGET,
                detail,
            )
        )
    return lines


def _dense_estimate(results: list[dict], n: int) -> float | None:
    measured = [r for r in results if r["mode"] == "dense" and r["objective"] == "infonce"]
    if not measured:
        return None
    biggest = max(measured, key=lambda r: r["n"])
    return biggest["peak_extra_bytes"] / biggest["n"] ** 2 * n**2


def benchmark(args: argparse.Namespace) -> dict[str, object]:
    """The whole comparison; prints markdown tables and returns everything as a dict."""
    info = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    print(f"matmul reference: best of 7 torch.mm per shape {list(MATMUL_SHAPES)}", flush=True)
    if args.wait > 0:
        wait_for_quiet(args.max_others, args.wait)
    with CpuShare() as cpu:
        mm_before = matmul_gflops(MATMUL_SHAPES)
    print(f"  others' CPU during the matmul reference: {100 * cpu.others:.0f}%", flush=True)
    runner = Runner(args.d, args.repeats, args.max_others, args.retries, args.wait)
    sweep_n = args.sweep_n
    print(f"tile sweep at N = {sweep_n:,}: tiles {args.sweep_tiles} and dense", flush=True)
    sweep = [runner.get("dense", sweep_n)] + [runner.get("tiled", sweep_n, t) for t in args.sweep_tiles]
    for n in args.sizes:
        if n <= args.dense_max_n:
            runner.get("dense", n)
        runner.get("tiled", n, args.tile)
    multi_name, multi_k = MULTIPOS
    multi = [runner.get(m, args.multi_n, args.tile, multi_name, multi_k) for m in ("dense", "tiled")]
    if args.wait > 0:
        wait_for_quiet(args.max_others, args.wait)
    with CpuShare() as cpu:
        mm_after = matmul_gflops(MATMUL_SHAPES)
    print(f"  others' CPU during the matmul reference (after): {100 * cpu.others:.0f}%", flush=True)
    ref = max(list(mm_before.values()) + list(mm_after.values()))
    results = list(runner.results.values())
    out = {"machine": info, "matmul_gflops": {"before": mm_before, "after": mm_after, "reference": ref}}
    out |= {"tile": args.tile, "results": results}

    print("\n### torch.mm GFLOP/s (best of 7)\n\n| shape | before | after |\n|---|---:|---:|")
    for shape in mm_before:
        print(f"| {shape} | {mm_before[shape]:.1f} | {mm_after[shape]:.1f} |")
    print(f"\nreference (best): {ref:.1f} GFLOP/s; FLOPs per step = 3 x 2 x N^2 x d (d = {args.d})")
    print(f"\n### InfoNCE, N pairs, d = {args.d}, tile = {args.tile}\n\n{_HEADER}")
    for n in args.sizes:
        if n > args.dense_max_n:
            print(_skipped_row(n, _dense_estimate(results, n)))
        print(_row(runner.get("tiled", n, args.tile), ref))
        if n <= args.dense_max_n:
            print(_row(runner.get("dense", n), ref))
    best = min(sweep[1:], key=lambda r: r["time_s"])
    print(f"\n### Tile sweep, N = {sweep_n:,} (best: tile {best['tile']}; used: tile {args.tile})\n\n{_HEADER}")
    for r in sweep:
        print(_row(r, ref))
    print(f"\n### Multi-positive: {multi_name}, {multi_k} positives per row\n\n{_HEADER}")
    for r in multi:
        print(_row(r, ref))
    agree = all(math.isclose(a["loss"], b["loss"], rel_tol=1e-4) for a, b in _pairs(results))
    print(f"\ndense and tiled losses agree (rel 1e-4) at every size: {agree}")
    targets = evaluate_targets(results, ref, args.tile, ratio_n=8192)
    print("\n### Targets\n\n" + "\n".join(targets))
    out |= {"best_tile": best["tile"], "targets": targets, "losses_agree": agree}
    return out


def _pairs(results: list[dict]) -> list[tuple[dict, dict]]:
    dense = {(r["objective"], r["n"]): r for r in results if r["mode"] == "dense"}
    return [(dense[(r["objective"], r["n"])], r) for r in results if (r["objective"], r["n"]) in dense]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=None, help=f"N values (default {FULL_SIZES})")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help="row-tile size of the tiled path")
    p.add_argument("--sweep-tiles", type=int, nargs="*", default=None, help=f"default {SWEEP_TILES}")
    p.add_argument("--sweep-n", type=int, default=None, help="N of the tile sweep and the time-ratio target (8192)")
    p.add_argument("--multi-n", type=int, default=None, help="N of the multi-positive rows (8192)")
    p.add_argument("--dense-max-n", type=int, default=16384, help="largest N run densely; above: skipped")
    p.add_argument("--d", type=int, default=D, help="embedding dimension")
    p.add_argument("--repeats", type=int, default=None, help="timed steps per configuration (default by N)")
    p.add_argument(
        "--max-others", type=float, default=0.15, help="rerun a configuration when other processes used more"
    )
    p.add_argument(
        "--retries", type=int, default=None, help="reruns of a contended configuration (keeps the least contended)"
    )
    p.add_argument(
        "--wait", type=float, default=None, help="seconds to wait for a quiet machine before each run (full: 600)"
    )
    p.add_argument("--quick", action="store_true", help=f"smoke run: N in {QUICK_SIZES}, two tiles, < 30 s")
    p.add_argument("--out", type=Path, default=None, help="also write all results to this JSON file")
    p.add_argument("--one", nargs=2, metavar=("MODE", "N"), help="internal: run one configuration, print JSON")
    p.add_argument("--objective", default="infonce", help="with --one")
    p.add_argument("--positives", type=int, default=1, help="with --one")
    p.add_argument("--warmup", default=None, choices=("full", "small", "none"), help="with --one (default by N)")
    p.add_argument("--seed", type=int, default=0, help="with --one")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.one:
        mode, n = args.one[0], int(args.one[1])
        repeats, warmup = _schedule(n)
        tile = args.tile if mode == "tiled" else None
        cfg = Config(
            mode,
            n,
            args.d,
            tile,
            args.objective,
            args.positives,
            args.repeats or repeats,
            args.warmup or warmup,
            args.seed,
        )
        print(json.dumps(run_config(cfg)))
        return
    small = args.quick
    args.sizes = args.sizes or list(QUICK_SIZES if small else FULL_SIZES)
    args.sweep_tiles = args.sweep_tiles or ([DEFAULT_TILE, 1024] if small else list(SWEEP_TILES))
    args.sweep_n = args.sweep_n or (max(QUICK_SIZES) if small else 8192)
    args.multi_n = args.multi_n or (min(QUICK_SIZES) if small else 8192)
    if small and args.repeats is None:
        args.repeats = 3
    if args.retries is None:
        args.retries = 0 if small else 2
    if args.wait is None:
        args.wait = 0.0 if small else 600.0
    t0 = time.perf_counter()
    out = benchmark(args)
    print(f"\ntotal wall time: {time.perf_counter() - t0:.0f} s")
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
