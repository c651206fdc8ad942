"""Atomic checkpoints: round trip, RNG states, interrupted writes, pruning."""

import os
import random

import numpy as np
import pytest
import torch
from torch import nn
from training_helpers import assert_bitwise_equal, state_of

from contrastkit.training import checkpoint as ckpt_mod
from contrastkit.training.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from contrastkit.training.rng import capture_rng, preserved_rng, restore_rng


def trained(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
    return model, opt


def save(tmp_path, step, model, opt, **state) -> os.PathLike:
    return save_checkpoint(tmp_path, Checkpoint(step, state, {"note": "x"}), modules={"model": model}, optimizer=opt)


def test_round_trip_restores_weights_optimizer_and_state(tmp_path) -> None:
    model, opt = trained()
    path = save(tmp_path, 3, model, opt, sampler={"epoch": 1, "batch": 2})
    assert path.name == "step-000000003" and latest_checkpoint(tmp_path) == path
    assert sorted(p.name for p in path.iterdir()) == [
        "manifest.json",
        "model.safetensors",
        "optimizer.pt",
        "state.pt",
        "trainer_state.json",
    ]

    other, other_opt = trained(seed=1)
    loaded = load_checkpoint(path, modules={"model": other}, optimizer=other_opt)
    assert (loaded.step, loaded.state, loaded.meta["note"]) == (3, {"sampler": {"epoch": 1, "batch": 2}}, "x")
    assert_bitwise_equal(state_of(model), state_of(other))
    a, b = opt.state_dict(), other_opt.state_dict()
    for key in a["state"]:
        for name, value in a["state"][key].items():
            assert torch.equal(value, b["state"][key][name])
    # the next optimizer step is identical too
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (other, other_opt)):
        m.eval()
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    assert_bitwise_equal(state_of(model), state_of(other))


def test_rng_capture_restore_covers_python_numpy_torch() -> None:
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    np.random.standard_normal()  # leaves a cached gaussian in NumPy's state
    state = capture_rng()
    first = (random.random(), np.random.standard_normal(), np.random.rand(), torch.rand(3))
    restore_rng(state)
    second = (random.random(), np.random.standard_normal(), np.random.rand(), torch.rand(3))
    assert first[:3] == second[:3] and torch.equal(first[3], second[3])

    # preserved_rng: a block's draws do not change what comes after
    restore_rng(state)
    with preserved_rng():
        torch.rand(100)
        random.random()
    assert random.random() == first[0]
    np.testing.assert_equal(np.random.standard_normal(), first[1])
    assert np.random.rand() == first[2]
    assert torch.equal(torch.rand(3), first[3])


def test_rng_state_survives_a_checkpoint(tmp_path) -> None:
    model, opt = trained()
    torch.manual_seed(7)
    path = save(tmp_path, 1, model, opt, rng=capture_rng())
    expected = torch.rand(4)
    torch.manual_seed(99)
    restore_rng(load_checkpoint(path, modules={"model": model}).state["rng"])
    assert torch.equal(torch.rand(4), expected)


def test_write_interrupted_before_the_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    model, opt = trained()
    first = save(tmp_path, 5, model, opt, marker=5)
    reference = state_of(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(ckpt_mod.os, "replace", crash)
    with pytest.raises(ckpt_mod.CheckpointWriteError, match="simulated crash") as info:
        save(tmp_path, 10, model, opt, marker=10)
    monkeypatch.undo()
    assert f"the last complete checkpoint is {first}" in str(info.value)

    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []  # the failed write removed its temp folder
    assert latest_checkpoint(tmp_path) == first
    fresh, _ = trained(seed=3)
    loaded = load_checkpoint(first, modules={"model": fresh})
    assert loaded.state["marker"] == 5
    assert_bitwise_equal(state_of(fresh), reference)

    save(tmp_path, 10, model, opt, marker=10)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 10]


def test_saving_a_step_again_replaces_it(tmp_path) -> None:
    model, opt = trained()
    save(tmp_path, 2, model, opt, marker="old")
    save(tmp_path, 2, model, opt, marker="new")
    assert load_checkpoint(latest_checkpoint(tmp_path), modules={"model": model}).state["marker"] == "new"
    assert len(list((tmp_path / "checkpoints").iterdir())) == 1


def test_prune_keeps_the_newest(tmp_path) -> None:
    model, opt = trained()
    for step in (1, 2, 10, 3):
        save(tmp_path, step, model, opt)
    removed = prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["step-000000001", "step-000000002"]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 10]


def test_incomplete_or_mismatched_checkpoint_is_an_error(tmp_path) -> None:
    model, opt = trained()
    path = save(tmp_path, 1, model, opt)
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        load_checkpoint(path, modules={"model": model})
    path = save(tmp_path, 2, model, opt)
    with pytest.raises(RuntimeError):
        load_checkpoint(path, modules={"model": nn.Linear(4, 2)})
