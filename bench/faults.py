"""Fault study of ``contrastkit train``: damaged checkpoints, bad output folders, and SIGKILL + resume trials.

Everything runs through the real CLI (``contrastkit train CONFIG key=value``)
on a tiny random BERT (2 layers, 32 wide, dropout 0.1) and 24 pairs, each
run in a child process forked from this one (which imports contrastkit once
and computes nothing itself, so forking is safe and a run starts in
milliseconds). Three tables, in Markdown:

(a) damaged checkpoints: a run with checkpoints at steps 2 and 4 is copied,
    its step-4 checkpoint damaged one way per case, and resumed to step 6:
    the exit status and the first warning or error line;
(b) output folders: ``train.output_dir`` a file, under a file, read-only,
    on a full file system, locked by a running run, and a disk that fills
    during a checkpoint (then resumed while still full, then with space):
    the exit status, the message, and the temp folders left behind. The
    read-only and full file systems are real (small tmpfs mounts), which
    needs root; without it those cases are reported as not run;
(c) kill/resume trials: an uninterrupted run, then N runs each SIGKILLed at
    a random point (after a random step, or inside a random checkpoint's
    write before its rename, by the loop's fault hooks), resumed, and
    compared bit for bit (every tensor of ``final/`` and of the last
    checkpoint) with the uninterrupted run;
(d) the cost of keeping non-finite weights out, on all-MiniLM-L6-v2 (the
    offline package) with its fused AdamW: every step, the overflow bound
    (``UpdateSnapshot.needed``) and the fused finite check after the update;
    only when the bound fails, the pre-update copy (``take``); next to the
    optimizer step and a training step (forward + backward of 32 pairs of
    about 20 tokens, in-batch InfoNCE), median of repeated timings in this
    process after the forked runs (2 threads).

Usage::

    .venv/bin/python bench/faults.py [--trials 20] [--seed 0] [--out bench/results/faults.md]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["OMP_NUM_THREADS"] = "1"

from contrastkit.cli.main import main as contrastkit_main
from contrastkit.training import faults

WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu",
         "xi", "omicron", "pi", "rho", "sigma", "tau")  # fmt: skip
STEPS = 8


def fork(job: dict) -> int:
    """Run ``job`` (``argv`` for ``contrastkit``, or ``call``: a function name here) in a child; its status
    (minus the signal number when killed)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.environ.update(job.get("env", {}))
            import torch

            torch.set_num_threads(1)
            code = contrastkit_main(job["argv"]) if "argv" in job else globals()[job["call"]](*job["args"])
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    raw = os.waitpid(pid, 0)[1]
    return -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)


def build_tiny_bert(folder: str) -> int:
    """A 2-layer, 32-wide random BERT and a WordPiece vocabulary over WORDS (run in a child process)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = Path(folder)
    path.mkdir(parents=True)
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(str(path / "vocab.txt"), model_max_length=32)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=32)  # fmt: skip
    BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return 0


def write_setup(root: Path) -> Path:
    """The tiny model, 24 pairs and a config; returns the config file."""
    rng = random.Random(2)
    lines = []
    for _ in range(24):
        words = rng.sample(WORDS, 4)
        lines.append(json.dumps({"anchor": " ".join(words), "positive": " ".join([*words[:2], rng.choice(WORDS)])}))
    (root / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    status = fork({"call": "build_tiny_bert", "args": [str(root / "bert")], "log": str(root / "build.log")})
    assert status == 0, (root / "build.log").read_text()
    config = root / "tiny.yaml"
    config.write_text(
        f"model: {{path: {root / 'bert'}, pooling: mean}}\n"
        f"data: {{train: {root / 'pairs.jsonl'}, batch_size: 8, seed: 3}}\n"
        "objective: {name: infonce, temperature: 0.05}\n"
        "optim: {lr: 1.0e-3, warmup_steps: 2}\n"
        f"train: {{steps: {STEPS}, checkpoint_every: 2, keep_checkpoints: 3, log_every: 1, seed: 5, progress: false}}\n"
    )
    return config


class Runner:
    """Runs ``contrastkit train`` jobs; remembers each log."""

    def __init__(self, root: Path, config: Path) -> None:
        self.root, self.config, self.count = root, config, 0

    def train(self, out: Path, *overrides: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        self.count += 1
        log = self.root / f"run-{self.count}.log"
        argv = ["train", str(self.config), f"train.output_dir={out}", *overrides]
        status = fork({"argv": argv, "env": env or {}, "log": str(log)})
        return status, log.read_text(errors="replace")


ROOT = ""  # the run's temp folder, shown as $TMP


def first_line(log: str, *markers: str) -> str:
    """The first line of ``log`` containing one of ``markers`` (else its last line), shortened."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    hit = next((line for line in lines if any(m in line for m in markers)), lines[-1] if lines else "")
    hit = hit.replace(ROOT, "$TMP") if ROOT else hit
    return hit if len(hit) <= 260 else hit[:257] + "..."


LEFTOVERS = (".tmp-", ".final.", ".old-", ".pruned-")


def leftovers(out: Path) -> int:
    """Hidden temp folders under a run folder (checkpoint writes, prunes, the final model's)."""
    places = [d for d in (out, out / "checkpoints") if d.is_dir()]
    return sum(1 for d in places for p in d.iterdir() if p.name.startswith(LEFTOVERS))


# ---------------------------------------------------------------------- (a) damaged checkpoints
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGE = [
    ("state.pt truncated", "state.pt", _truncate),
    ("state.pt empty", "state.pt", lambda p: p.write_bytes(b"")),
    ("state.pt a folder", "state.pt", _folder),
    ("optimizer.pt truncated", "optimizer.pt", _truncate),
    ("optimizer.pt empty", "optimizer.pt", lambda p: p.write_bytes(b"")),
    ("optimizer.pt a folder", "optimizer.pt", _folder),
    ("model.safetensors truncated", "model.safetensors", _truncate),
    ("model.safetensors empty", "model.safetensors", lambda p: p.write_bytes(b"")),
    ("model.safetensors one byte flipped", "model.safetensors", _flip),
    ("model.safetensors a folder", "model.safetensors", _folder),
    ("model.safetensors missing", "model.safetensors", os.unlink),
    ("trainer_state.json emptied", "trainer_state.json", lambda p: p.write_bytes(b"")),
    ("manifest.json missing (older checkpoint)", "manifest.json", os.unlink),
]


def damaged_checkpoints(runner: Runner, root: Path) -> list[tuple[str, int, str]]:
    base = root / "base"
    status, log = runner.train(base, "train.steps=4")
    assert status == 0, log
    rows = []
    for case, name, damage in DAMAGE:
        out = root / f"damaged-{len(rows)}"
        shutil.copytree(base, out)
        damage(out / "checkpoints" / "step-000000004" / name)
        status, log = runner.train(out, "train.steps=6", "train.resume=true")
        rows.append((case, status, first_line(log, "warning", "note: checkpoint", "error", "Error")))
    out = root / f"damaged-{len(rows)}"
    shutil.copytree(base, out)
    for ck in (out / "checkpoints").glob("step-*"):
        (ck / "manifest.json").unlink()
    _truncate(out / "checkpoints" / "step-000000004" / "state.pt")
    status, log = runner.train(out, "train.steps=6", "train.resume=true")
    rows.append(("no manifests (older checkpoints), state.pt truncated", status, first_line(log, "warning")))
    out = root / f"damaged-{len(rows)}"
    shutil.copytree(base, out)
    for ck in (out / "checkpoints").glob("step-*"):
        _truncate(ck / "state.pt")
    status, log = runner.train(out, "train.steps=6", "train.resume=true")
    rows.append(("every checkpoint's state.pt truncated", status, first_line(log, "error", "Error")))
    return rows


# ---------------------------------------------------------------------- (b) output folders
def _mount(point: Path, size: str, *, read_only: bool = False) -> bool:
    point.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True)
    return done.returncode == 0


def _umount(point: Path) -> None:
    subprocess.run(["umount", str(point)], capture_output=True)


def _fill(point: Path, leave: int) -> None:
    """Fill the tmpfs at ``point`` until ``leave`` bytes are free."""
    free = shutil.disk_usage(point).free
    with open(point / "filler", "wb") as f:
        f.write(b"\0" * max(free - leave, 0))


def output_folders(runner: Runner, root: Path) -> list[tuple[str, int, str, int]]:
    rows: list[tuple[str, int, str, int]] = []

    def case(name: str, out: Path, *overrides: str) -> None:
        status, log = runner.train(out, *overrides)
        rows.append((name, status, first_line(log, "error", "Error", "warning"), leftovers(out) if out.is_dir() else 0))

    (root / "a-file").write_text("x")
    case("output_dir is a file", root / "a-file")
    case("output_dir's parent is a file", root / "a-file" / "run")
    base = root / "base"
    holder = _hold_lock(base)
    try:
        before = sorted(p.name for p in base.rglob("*"))
        case("a second run on a folder whose run is still going (lock held)", base, "train.resume=true")
        if sorted(p.name for p in base.rglob("*")) != before:
            rows[-1] = (*rows[-1][:2], rows[-1][2] + " (BUT THE FOLDER CHANGED)", rows[-1][3])
    finally:
        holder.kill()
        holder.wait()
    if os.geteuid() != 0 or not _mount(root / "ro", "4m", read_only=True):
        rows.append(("read-only / full file system", -1, "not run: mounting a tmpfs needs root", 0))
        return rows
    try:
        case("output_dir on a read-only file system", root / "ro" / "run")
    finally:
        _umount(root / "ro")
    full = root / "full"
    if _mount(full, "4m"):
        try:
            _fill(full, 0)
            case("output_dir on a full file system", full / "run")
            (full / "filler").unlink()
            size = sum(p.stat().st_size for p in (base / "checkpoints" / "step-000000004").iterdir())
            _fill(full, 64 * 1024 + size + size // 2)  # room for the run files and one checkpoint, not two
            case("disk fills during a checkpoint", full / "ck", "train.keep_checkpoints=2")
            case("... resumed while still full", full / "ck", "train.resume=true", "train.keep_checkpoints=2")
            (full / "filler").unlink()
            case("... resumed with space again", full / "ck", "train.resume=true", "train.keep_checkpoints=2")
        finally:
            _umount(full)
    return rows


def _hold_lock(base: Path) -> subprocess.Popen:
    """A separate process holding ``base``'s run lock as a running run does (until it is killed)."""
    code = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'pid {os.getpid()} (a running run)'.encode()); "
        "print('locked', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(base / ".contrastkit.lock")], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"locked"
    return holder


# ---------------------------------------------------------------------- (c) kill/resume trials
def tensors(out: Path) -> dict:
    from safetensors.torch import load_file

    found = {}
    checkpoints = sorted((out / "checkpoints").glob("step-*"))
    for path in [*sorted((out / "final").rglob("*.safetensors")), *sorted(checkpoints[-1].glob("*.safetensors"))]:
        for key, value in load_file(path).items():
            found[f"{path.relative_to(out)}:{key}"] = value
    return found


def kill_trials(runner: Runner, root: Path, trials: int, seed: int) -> tuple[list[tuple], float]:
    import torch

    reference = root / "reference"
    status, log = runner.train(reference)
    assert status == 0, log
    expected = tensors(reference)
    rng = random.Random(seed)
    rows = []
    started = time.perf_counter()
    for i in range(trials):
        if rng.random() < 0.7:
            point, env = rng.randint(1, STEPS - 1), faults.KILL_AT_STEP
            where = f"after step {point}"
        else:
            point, env = rng.choice(range(2, STEPS + 1, 2)), faults.KILL_IN_CHECKPOINT
            where = f"inside checkpoint {point}"
        out = root / f"trial-{i}"
        killed, _ = runner.train(out, env={env: str(point)})
        found = sorted((out / "checkpoints").glob("step-*"))
        resumed_at = int(found[-1].name.split("-")[1]) if found else 0
        resumed, _ = runner.train(out, "train.resume=true")
        got = tensors(out) if resumed == 0 else {}
        same = got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
        rows.append((i, where, killed, resumed, resumed_at, same, leftovers(out)))
    return rows, time.perf_counter() - started


# ---------------------------------------------------------------------- (d) cost
def update_check_cost(repeats: int = 7) -> tuple[list[tuple[str, float]], int]:
    """Median milliseconds of a training step, the optimizer step, the snapshot and the finite check (MiniLM)."""
    import statistics

    import torch

    from contrastkit import ContrastiveLoss, Targets
    from contrastkit.encoders import load_encoder
    from contrastkit.training.config import OptimConfig
    from contrastkit.training.guard import UpdateSnapshot
    from contrastkit.training.optim import build_optimizer

    torch.set_num_threads(2)
    encoder = load_encoder("all-MiniLM-L6-v2").train()
    optimizer = build_optimizer(OptimConfig(lr=2e-5), encoder, None)
    loss_fn = ContrastiveLoss("infonce", temperature=0.05)
    rng = random.Random(0)
    words = [*WORDS, "model", "search", "query", "document", "vector", "train", "data", "text", "score", "rank"]
    anchors = [" ".join(rng.choices(words, k=18)) for _ in range(32)]
    positives = [" ".join(rng.choices(words, k=18)) for _ in range(32)]

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        q = encoder(encoder.tokenize(anchors))
        d = encoder(encoder.tokenize(positives))
        loss_fn(q, d, Targets.diagonal(len(anchors))).backward()

    train_step()
    optimizer.step()  # AdamW's moments exist from here on
    snapshot = UpdateSnapshot(optimizer)
    snapshot.updated_finite()
    assert not snapshot.needed(1.0)  # at lr 2e-5 the bound holds: no copy

    def every_step() -> None:
        snapshot.needed(1.0)
        snapshot.updated_finite()

    timings = []
    for name, work in (
        ("training step (forward + backward, 32 pairs)", train_step),
        ("optimizer step (fused AdamW)", optimizer.step),
        ("guard, every step: overflow bound + fused finite check", every_step),
        ("copy of weights + moments (only when the bound fails)", snapshot.take),
    ):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            work()
            times.append((time.perf_counter() - started) * 1000)
        timings.append((name, statistics.median(times)))
    return timings, sum(p.numel() for p in encoder.parameters())


# ---------------------------------------------------------------------- report
def report(damaged, folders, trials, seconds, n, seed, measured) -> str:
    out = ["### (a) Resuming from a damaged latest checkpoint (checkpoints at steps 2 and 4, resumed to 6)", ""]
    out += ["| damage to step-4 | exit | first warning or error |", "|---|---|---|"]
    out += [f"| {case} | {status} | `{msg}` |" for case, status, msg in damaged]
    out += ["", "### (b) Output folders", "", "| case | exit | message | temp folders left |", "|---|---|---|---|"]
    out += [f"| {case} | {status} | `{msg}` | {left} |" for case, status, msg, left in folders]
    same = sum(1 for row in trials if row[5])
    out += ["", f"### (c) SIGKILL + resume: {same} of {n} bitwise identical to the uninterrupted run", ""]
    out += [f"{n} trials (seed {seed}), {seconds:.0f} s; each killed by SIGKILL, resumed, and every tensor of "
            "final/ and of the last checkpoint compared with torch.equal.", ""]  # fmt: skip
    out += ["| trial | killed | status | resume status | resumed at step | identical | temp folders left |"]
    out += ["|---|---|---|---|---|---|---|"]
    for i, where, killed, resumed, at, same_, left in trials:
        out.append(f"| {i} | {where} | {killed} | {resumed} | {at} | {'yes' if same_ else 'NO'} | {left} |")
    if measured is None:
        return "\n".join(out) + "\n"
    cost, count = measured
    params = f"{count / 1e6:.1f}M parameters"
    out += ["", f"### (d) Cost of the non-finite guard per step (all-MiniLM-L6-v2, {params}, 2 threads)", ""]
    out += ["| part | ms (median) |", "|---|---|"]
    out += [f"| {name} | {ms:.1f} |" for name, ms in cost]
    step = cost[0][1] + cost[1][1]
    guard, copy = 100 * cost[2][1] / step, 100 * cost[3][1] / step
    out += ["", f"Guard per step = {cost[2][1]:.1f} ms = {guard:.2f}% of a step (training step + optimizer step = "
            f"{step:.1f} ms); a step that needs the copy adds {copy:.1f}%."]  # fmt: skip
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="kill/resume trials (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill points (default 0)")
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    args = parser.parse_args()
    global ROOT
    root = Path(tempfile.mkdtemp(prefix="contrastkit-faults-"))
    ROOT = str(root)
    try:
        runner = Runner(root, write_setup(root))
        damaged = damaged_checkpoints(runner, root)
        folders = output_folders(runner, root)
        trials, seconds = kill_trials(runner, root, args.trials, args.seed)
        print(report(damaged, folders, trials, seconds, args.trials, args.seed, None), flush=True)
        cost = update_check_cost()  # last: this process computes with torch only after every fork
    finally:
        for point in (root / "ro", root / "full"):
            _umount(point)
    text = report(damaged, folders, trials, seconds, args.trials, args.seed, cost)
    print("### (d)" + text.split("### (d)", 1)[1])  # (a)-(c) were printed as soon as they were measured
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
