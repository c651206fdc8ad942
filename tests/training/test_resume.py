"""Exact resume: a run SIGKILLed at any step and resumed ends bitwise identical to an uninterrupted run (CPU).

Each run is a separate process (``tiny_run.py``: the in-test encoder with
dropout, a learnable temperature and a memory queue, so weights, optimizer,
RNG, sampler position and queue all have to come back exactly). The kill
comes from the loop's fault hook, as SIGKILL: nothing gets to clean up.
Kill points: right after a checkpoint (also an epoch boundary), between
checkpoints, and inside a checkpoint write before its rename.
"""

import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from training_helpers import Launcher, TinyEncoder, make_pairs, tiny_bert, write_jsonl

from contrastkit.training import faults
from contrastkit.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from contrastkit.training.logging import read_metrics

HERE = Path(__file__).parent
STEPS = 10
BERT_STEPS = 5
OVERRIDES = [
    f"train.steps={STEPS}",
    "train.checkpoint_every=3",
    "train.keep_checkpoints=2",
    "train.log_every=1",
    "train.seed=5",
    "data.batch_size=8",  # 24 examples: 3 batches per epoch, so the run crosses epochs
    "data.seed=3",
    "optim.lr=5e-3",
    "optim.warmup_steps=2",
    "objective.learnable_temperature=true",
    "objective.temperature=0.1",
    "scale.queue_size=12",
]


def job(root: Path, name: str, data: Path, env: dict[str, str], *extra: str) -> dict:
    log = root / f"{name}-{len(list(root.glob(name + '-*.log')))}.log"
    return {"name": name, "output_dir": str(root / name), "data": str(data), "overrides": [*OVERRIDES, *extra],
            "env": env, "log": str(log)}  # fmt: skip


def weights(out: Path, steps: int = STEPS) -> dict:
    final = latest_checkpoint(out)
    assert final is not None and final.name == f"step-{steps:09d}"
    tensors = {f"model.{k}": v for k, v in load_file(final / "model.safetensors").items()}
    tensors.update({f"loss.{k}": v for k, v in load_file(final / "loss.safetensors").items()})
    tensors.update({f"final.{k}": v for k, v in load_file(out / "final" / "model.safetensors").items()})
    return tensors


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"


def comparable(records: list[dict]) -> list[tuple]:
    keys = ("step", "loss", "lr", "grad_norm", "temperature", "epoch")
    return [tuple(r.get(k) for k in keys) for r in records]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, int, str]]:
    """Round 1 (in parallel): uninterrupted, killed at 3, at 5, inside the checkpoint write of 6. Round 2: resumes."""
    root = tmp_path_factory.mktemp("resume")
    data = write_jsonl(make_pairs(24, seed=2), root / "pairs.jsonl")
    plan = {
        "full": {},
        "after_checkpoint": {faults.KILL_AT_STEP: "3"},
        "between": {faults.KILL_AT_STEP: "5"},
        "in_checkpoint": {faults.KILL_IN_CHECKPOINT: "6"},
    }
    bert_config = root / "bert.yaml"
    bert_config.write_text(
        yaml.safe_dump(
            {
                "model": {"path": str(tiny_bert(root / "bert")), "pooling": "mean"},
                "data": {"train": str(data), "batch_size": 8},
                "objective": {"name": "infonce", "temperature": 0.05},
                "optim": {"lr": 1e-3},
                "train": {"steps": BERT_STEPS, "checkpoint_every": 2, "log_every": 1},
            }
        )
    )

    def bert(name: str, env: dict[str, str], *extra: str) -> dict:
        cli = ["train", str(bert_config), f"train.output_dir={root / name}", *extra]
        return {"name": name, "cli": cli, "env": env, "log": str(root / f"{name}-{len(extra)}.log")}

    launcher = Launcher()
    try:
        first = launcher.round(
            [job(root, name, data, env) for name, env in plan.items()]
            + [bert("bert_full", {}), bert("bert_killed", {faults.KILL_AT_STEP: "3"})]
        )
        snapshots = {name: [s for s, _ in list_checkpoints(root / name)] for name in plan}
        temps = {name: sorted(p.name for p in (root / name / "checkpoints").glob(".tmp-*")) for name in plan}
        # the interrupted write left the step-3 checkpoint complete: load it fully before resuming
        encoder = TinyEncoder()
        loaded = load_checkpoint(latest_checkpoint(root / "in_checkpoint"), modules={"model": encoder})
        intact = (loaded.step, loaded.state["sampler"]["epoch"], bool(torch.isfinite(encoder.proj.weight).all()))
        bert_snapshot = [s for s, _ in list_checkpoints(root / "bert_killed")]
        second = launcher.round(
            [job(root, name, data, {}, "train.resume=true") for name in plan if name != "full"]
            + [bert("bert_killed", {}, "train.resume=true")]
        )
    finally:
        launcher.close()
    logs = {p.stem: p.read_text() for p in root.glob("*.log")}
    return {
        "root": root,
        "first": first,
        "second": second,
        "snapshots": snapshots,
        "temps": temps,
        "intact": intact,
        "logs": logs,
        "bert_snapshot": bert_snapshot,
    }


def test_killed_runs_died_by_sigkill_where_asked(runs) -> None:
    first, logs = runs["first"], runs["logs"]
    assert first["full"] == 0, logs["full-0"]
    for name in ("after_checkpoint", "between", "in_checkpoint"):
        assert first[name] == -signal.SIGKILL, logs[f"{name}-0"]
    assert runs["snapshots"]["after_checkpoint"] == [3]
    assert runs["snapshots"]["between"] == [3]
    assert runs["snapshots"]["in_checkpoint"] == [3]  # step 6 was written but never published
    assert len(runs["temps"]["in_checkpoint"]) == 1 and "step-000000006" in runs["temps"]["in_checkpoint"][0]
    for name in ("after_checkpoint", "between", "in_checkpoint"):
        assert runs["second"][name] == 0, logs[f"{name}-1"]
        assert "resuming at step 3" in logs[f"{name}-1"]


@pytest.mark.parametrize("name", ["after_checkpoint", "between", "in_checkpoint"])
def test_resumed_run_is_bitwise_identical(runs, name) -> None:
    root = runs["root"]
    assert_identical(weights(root / name), weights(root / "full"))


@pytest.mark.parametrize("name", ["after_checkpoint", "between", "in_checkpoint"])
def test_resumed_metrics_match_without_duplicates(runs, name) -> None:
    root = runs["root"]
    full = comparable(read_metrics(root / "full" / "metrics.jsonl"))
    resumed = comparable(read_metrics(root / name / "metrics.jsonl"))
    assert [r[0] for r in resumed] == list(range(1, STEPS + 1))  # steps after the checkpoint were cut, then redone
    assert resumed == full


def test_interrupted_checkpoint_write_left_the_previous_one_loadable(runs) -> None:
    assert runs["intact"] == (3, 1, True)  # step 3 = the end of epoch 0: the sampler is at epoch 1
    out = runs["root"] / "in_checkpoint"
    assert not list((out / "checkpoints").glob(".tmp-*"))  # the resumed run cleaned the leftover
    assert [s for s, _ in list_checkpoints(out)] == [9, STEPS]


def test_tiny_bert_through_the_cli_resumes_bitwise(runs) -> None:
    """The real CLI on a random BERT with dropout, killed at step 3 (checkpoint at 2), resumed."""
    logs = runs["logs"]
    assert runs["first"]["bert_full"] == 0, logs["bert_full-0"]
    assert runs["first"]["bert_killed"] == -signal.SIGKILL, logs["bert_killed-0"]
    assert runs["bert_snapshot"] == [2]
    assert runs["second"]["bert_killed"] == 0, logs["bert_killed-1"]
    assert "resuming at step 2" in logs["bert_killed-1"]
    root = runs["root"]
    assert_identical(weights(root / "bert_killed", BERT_STEPS), weights(root / "bert_full", BERT_STEPS))
