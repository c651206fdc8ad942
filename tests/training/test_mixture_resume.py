"""Exact resume of a several-dataset run: SIGKILLed mid-epoch and resumed, it ends bitwise equal (CPU).

The real CLI trains a random 2-layer BERT (dropout on) on two datasets with
proportional mixing and length-grouped batches: pairs with InfoNCE and a
query prompt, triplets with supervised SimCSE, each with its own learnable
temperature. So the mixture's position, both dataset samplers' positions,
both losses' temperatures and their optimizer state all have to come back.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from training_helpers import Launcher, make_pairs, tiny_bert, write_jsonl

from contrastkit.training import faults
from contrastkit.training.checkpoint import latest_checkpoint, list_checkpoints
from contrastkit.training.logging import read_metrics

STEPS = 10


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("mixture_resume")
    pairs = write_jsonl(make_pairs(24, seed=2), root / "pairs.jsonl")
    triplets = write_jsonl(make_pairs(16, seed=4, negatives=True), root / "triplets.jsonl")
    own = {"name": "simcse_sup", "temperature": 0.1, "learnable_temperature": True}
    config = {
        "model": {"path": str(tiny_bert(root / "bert")), "pooling": "mean", "prompts": {"query": "alpha "}},
        "data": {
            "batch_size": 4,
            "seed": 3,
            "length_grouped": True,
            "mixing": "proportional",
            "datasets": [
                {"name": "pairs", "train": str(pairs), "weight": 2.0, "anchor_prompt_name": "query"},
                {"name": "triplets", "train": str(triplets), "weight": 1.0, "objective": own},
            ],
        },
        "objective": {"name": "infonce", "temperature": 0.05, "learnable_temperature": True},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "train": {"steps": STEPS, "checkpoint_every": 3, "keep_checkpoints": 2, "log_every": 1, "seed": 5},
    }
    path = root / "mixture.yaml"
    path.write_text(yaml.safe_dump(config))

    def job(name: str, env: dict[str, str], *extra: str) -> dict:
        cli = ["train", str(path), f"train.output_dir={root / name}", "train.progress=true", *extra]
        return {"name": name, "cli": cli, "env": env, "log": str(root / f"{name}-{len(extra)}.log")}

    launcher = Launcher()
    try:
        first = launcher.round(
            [
                job("full", {}),
                job("between", {faults.KILL_AT_STEP: "5"}),
                job("in_write", {faults.KILL_IN_CHECKPOINT: "6"}),
            ]
        )
        snapshots = {name: [s for s, _ in list_checkpoints(root / name)] for name in ("between", "in_write")}
        sampler_at_3 = torch.load(latest_checkpoint(root / "between") / "state.pt", weights_only=True)["sampler"]
        second = launcher.round([job(name, {}, "train.resume=true") for name in ("between", "in_write")])
    finally:
        launcher.close()
    logs = {p.stem: p.read_text() for p in root.glob("*.log")}
    return {"root": root, "first": first, "second": second, "snapshots": snapshots, "sampler": sampler_at_3,
            "logs": logs}  # fmt: skip


def weights(out: Path) -> dict:
    final = latest_checkpoint(out)
    assert final is not None and final.name == f"step-{STEPS:09d}"
    tensors = {f"model.{k}": v for k, v in load_file(final / "model.safetensors").items()}
    tensors.update({f"loss.{k}": v for k, v in load_file(final / "loss.safetensors").items()})
    tensors.update({f"final.{k}": v for k, v in load_file(out / "final" / "model.safetensors").items()})
    tensors.update({f"adam.{k}": v for k, v in flat_optimizer(final / "optimizer.pt").items()})
    return tensors


def flat_optimizer(path: Path) -> dict:
    state = torch.load(path, weights_only=True)["state"]
    return {f"{p}.{k}": v for p, entries in state.items() for k, v in entries.items()}


def test_runs_were_killed_and_resumed(runs) -> None:
    first, second, logs = runs["first"], runs["second"], runs["logs"]
    assert first["full"] == 0, logs["full-0"]
    assert first["between"] == first["in_write"] == -signal.SIGKILL
    assert runs["snapshots"] == {"between": [3], "in_write": [3]}
    assert second == {"between": 0, "in_write": 0}, logs
    assert "datasets (proportional): pairs 67% infonce, triplets 33% simcse_sup" in logs["full-0"]
    assert "resuming at step 3" in logs["between-1"]


def test_checkpoint_holds_the_mixture_position(runs) -> None:
    state = runs["sampler"]
    assert state["position"] == 3 and state["names"] == ["pairs", "triplets"] and state["weights"] == [2.0, 1.0]
    assert sum(s["epoch"] * 10 + s["batch"] for s in state["samplers"]) > 0  # mid-epoch of the datasets
    assert all(s["length_grouped"] for s in state["samplers"])


@pytest.mark.parametrize("name", ["between", "in_write"])
def test_resumed_mixture_run_is_bitwise_identical(runs, name) -> None:
    root = runs["root"]
    full, resumed = weights(root / "full"), weights(root / name)
    assert full.keys() == resumed.keys()
    assert {k.split(".")[1] for k in full if k.startswith("loss.")} == {"0", "1"}  # two losses, two temperatures
    for key in full:
        assert torch.equal(full[key], resumed[key]), f"{key} differs after resume"


@pytest.mark.parametrize("name", ["between", "in_write"])
def test_resumed_metrics_match_step_for_step(runs, name) -> None:
    keys = ("step", "loss", "lr", "grad_norm", "epoch", "dataset", "temperature/pairs", "temperature/triplets")
    root = runs["root"]
    full = [tuple(r.get(k) for k in keys) for r in read_metrics(root / "full" / "metrics.jsonl")]
    resumed = [tuple(r.get(k) for k in keys) for r in read_metrics(root / name / "metrics.jsonl")]
    assert resumed == full
    datasets = [r[5] for r in full]
    assert set(datasets) == {"pairs", "triplets"} and len(datasets) == STEPS
