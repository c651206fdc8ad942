"""Weights are never non-finite on disk: updates that go non-finite are undone, writers refuse NaN, skipped
steps are reported with or without progress, and runs that end on (or only make) skipped steps say so."""

import argparse

import pytest
import torch
from torch import nn
from training_helpers import PoisonedEncoder, TinyEncoder, assert_bitwise_equal, make_pairs, state_of

from contrastkit.cli import train as train_cli
from contrastkit.training import TrainingDivergedError, load_config, train
from contrastkit.training.checkpoint import Checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from contrastkit.training.guard import NonFiniteWeightsError, UpdateSnapshot, nonfinite
from contrastkit.training.logging import read_metrics
from contrastkit.training.loop import TrainResult

BASE = ["data.batch_size=8", "objective.temperature=0.1", "train.progress=false"]


def config(tmp_path, *overrides: str):
    return load_config(None, [f"train.output_dir={tmp_path / 'run'}", *BASE, *overrides])


def with_huge_lr(cfg):
    """``cfg`` with optim.lr 1e38, set behind the config's back: load_config refuses it (lr <= 1), and the
    weight guard must still hold when such a rate reaches the optimizer (e.g. a schedule or a Python caller)."""
    object.__setattr__(cfg.optim, "lr", 1e38)
    return cfg


def test_nonfinite_names_nan_and_inf_but_not_huge_finite_values() -> None:
    big = torch.full((4,), 3e38)  # its 2-norm overflows: confirmed finite element-wise
    tensors = [torch.ones(3), torch.tensor([1.0, float("nan")]), big, torch.tensor([float("-inf")]), torch.arange(3)]
    assert nonfinite(tensors) == [1, 3]
    assert nonfinite([torch.ones(2, dtype=torch.bfloat16), torch.zeros(0)]) == []


def _adamw(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Linear(4, 3)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)  # overflows to inf, not an error


def _grads(model: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    model.zero_grad()
    model(torch.randn(5, 4)).pow(2).sum().backward()


@pytest.mark.parametrize("first", [True, False])
def test_snapshot_restore_undoes_a_nonfinite_update_exactly(first) -> None:
    """After restore, the next good step is bit for bit the one of an optimizer that never saw the bad step
    (also on the first step, where AdamW creates its moments)."""
    model, opt = _adamw()
    twin, twin_opt = _adamw()
    if not first:
        for m, o in ((model, opt), (twin, twin_opt)):
            _grads(m, 1)
            o.step()
    snapshot = UpdateSnapshot(opt)
    _grads(model, 2)
    snapshot.take()
    opt.param_groups[0]["lr"] = 1e38  # step_size lr / (1 - beta1) overflows: inf weights
    opt.step()
    assert not snapshot.updated_finite()
    snapshot.restore()
    opt.param_groups[0]["lr"] = 1e-2
    assert snapshot.updated_finite()
    for m, o in ((model, opt), (twin, twin_opt)):
        _grads(m, 3)
        o.step()
    assert_bitwise_equal(state_of(model), state_of(twin))
    a, b = opt.state_dict()["state"], twin_opt.state_dict()["state"]
    assert a.keys() == b.keys() and all(torch.equal(a[k][n], b[k][n]) for k in a for n in a[k])


@pytest.mark.parametrize("lr", [1e-3, 1e30, 1e35, 1e36, 3e36, 1e37, 3e37, 1e38])
def test_the_copy_is_skipped_only_when_the_update_cannot_overflow(lr) -> None:
    """``needed`` is False only where the update provably stays finite: checked against the real update, at
    learning rates on both sides of float32's limit, after a first checked step (whose copy is always taken)."""
    model, opt = _adamw()
    snapshot = UpdateSnapshot(opt)
    assert snapshot.needed(1.0)  # nothing checked yet
    _grads(model, 1)
    opt.step()
    assert snapshot.updated_finite()
    _grads(model, 2)
    opt.param_groups[0]["lr"] = lr
    needed = snapshot.needed(1.0)
    assert needed == (lr > 1e35)  # norms of a few units: the bound (about 73 lr) nears float32's max / 10
    opt.step()
    assert needed or snapshot.updated_finite()
    assert snapshot.needed(float("inf")) and snapshot.needed(1e19)  # gradients whose squares could overflow


def test_a_huge_learning_rate_never_reaches_disk(tmp_path, capsys) -> None:
    """An lr of 1e38 makes each update non-finite: undone and skipped, the run ends as diverged with nothing
    written (before: step 1 counted as good and final/ held NaN)."""
    cfg = with_huge_lr(config(tmp_path, "train.steps=2", "train.checkpoint_every=1", "train.max_bad_steps=5"))
    with pytest.raises(TrainingDivergedError, match=r"no step made an update: all 2 steps were skipped"):
        train(cfg, encoder=TinyEncoder(), examples=make_pairs(24))
    out = tmp_path / "run"
    assert list_checkpoints(out) == [] and not (out / "final").exists()
    records = read_metrics(out / "metrics.jsonl")
    assert [(r["step"], r["skipped"], r.get("nonfinite_update")) for r in records] == [(1, True, True), (2, True, True)]
    err = capsys.readouterr().err
    assert "step 1: the update made weights non-finite (lr 1e+38): update undone and skipped (1/5 in a row)" in err


def test_an_optimizer_step_that_raises_on_overflow_is_undone(tmp_path, monkeypatch) -> None:
    """torch's per-tensor AdamW raises (some parameters already updated) where the fused one writes inf."""
    from contrastkit.training import loop

    def per_tensor(config, model, loss):
        params = [p for p in (*model.parameters(), *loss.parameters()) if p.requires_grad]
        return torch.optim.AdamW([{"params": params, "initial_lr": config.lr}], lr=config.lr, foreach=False)

    monkeypatch.setattr(loop, "build_optimizer", per_tensor)
    cfg = with_huge_lr(config(tmp_path, "train.steps=2"))
    with pytest.raises(TrainingDivergedError, match="no step made an update"):
        train(cfg, encoder=TinyEncoder(), examples=make_pairs(24))


def test_a_nonfinite_update_is_undone_and_training_goes_on(tmp_path, monkeypatch) -> None:
    """One step's update poisoned on purpose (as a huge learning rate would): undone, skipped, and the run
    continues from the previous weights; every checkpoint and final/ are finite."""
    from contrastkit.training import loop

    real = loop.Trainer._update

    def poison_step_3(self, grad_norm):
        if self.step != 3:
            return real(self, grad_norm)
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        for g in self.optimizer.param_groups:
            g["lr"] = 1e38
        try:
            return real(self, grad_norm)
        finally:
            for g, lr in zip(self.optimizer.param_groups, lrs, strict=True):
                g["lr"] = lr

    monkeypatch.setattr(loop.Trainer, "_update", poison_step_3)
    states = {}

    class Spy(loop.Callback):
        def on_step_end(self, ctx) -> None:
            states[ctx.step] = state_of(ctx.encoder)

    cfg = config(tmp_path, "optim.lr=1e-2", "train.steps=5", "train.checkpoint_every=1", "train.keep_checkpoints=9")
    result = train(cfg, encoder=TinyEncoder(), examples=make_pairs(24), callbacks=[Spy()])
    assert result.skipped_steps == 1 and not result.last_step_skipped
    assert_bitwise_equal(states[2], states[3])  # the undone update left the weights as they were
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [1, 2, 4, 5]  # none for the skipped step
    fresh = TinyEncoder(seed=4)
    load_checkpoint(result.last_checkpoint, modules={"model": fresh})
    assert not nonfinite(list(state_of(fresh).values()))
    opt = torch.load(result.last_checkpoint / "optimizer.pt", weights_only=True)
    assert {int(s["step"]) for s in opt["state"].values()} == {4}  # AdamW's count excludes the undone step


def test_writers_refuse_nonfinite_tensors(tmp_path) -> None:
    model, opt = _adamw()
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteWeightsError, match=r"checkpoint step 1: 1 tensors hold NaN or inf \(model\.weight\)"):
        save_checkpoint(tmp_path, Checkpoint(1), modules={"model": model}, optimizer=opt)
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_skip_warnings_reach_stderr_and_the_log_without_progress(tmp_path, capsys) -> None:
    cfg = config(tmp_path, "optim.lr=1e-2", "train.steps=4", "train.log_every=1")  # train.progress=false
    train(cfg, encoder=PoisonedEncoder({2}), examples=make_pairs(24))  # call 2 = step 2
    err = capsys.readouterr().err
    text = "step 2: non-finite loss (nan) or gradient norm (nan): update skipped (1/5 in a row)"
    assert text in err
    records = {r["step"]: r for r in read_metrics(tmp_path / "run" / "metrics.jsonl")}
    assert records[2]["skipped"] is True and records[2]["warning"] == text
    assert "step 4/4" not in err  # progress itself stays silent


def test_a_skipped_last_step_gets_no_checkpoint_and_says_so(tmp_path, capsys) -> None:
    cfg = config(tmp_path, "optim.lr=1e-2", "train.steps=4", "train.checkpoint_every=3")
    states = {}
    encoder = PoisonedEncoder({6})  # call 6 = step 4, the last

    result = train(cfg, encoder=encoder, examples=make_pairs(24))
    assert result.last_step_skipped and result.steps == 4
    out = tmp_path / "run"
    assert [s for s, _ in list_checkpoints(out)] == [3]  # before: a step-4 checkpoint of the skipped step
    assert result.last_checkpoint == out / "checkpoints" / "step-000000003"
    states["ckpt"] = TinyEncoder(seed=3)
    load_checkpoint(result.last_checkpoint, modules={"model": states["ckpt"]})
    assert_bitwise_equal(state_of(TinyEncoder.load(out / "final")), state_of(states["ckpt"]))
    assert "the last step (4) was skipped" in capsys.readouterr().err


def test_a_run_whose_every_step_was_skipped_fails(tmp_path) -> None:
    cfg = config(tmp_path, "optim.lr=1e-2", "train.steps=3", "train.checkpoint_every=1")
    with pytest.raises(TrainingDivergedError, match="no step made an update: all 3 steps were skipped"):
        train(cfg, encoder=PoisonedEncoder(range(1000)), examples=make_pairs(24))
    assert not (tmp_path / "run" / "final").exists() and list_checkpoints(tmp_path / "run") == []


def test_the_cli_exits_3_when_the_last_step_was_skipped(tmp_path, monkeypatch, capsys) -> None:
    result = TrainResult(tmp_path, tmp_path / "final", 4, 0.5, 1, None, last_step_skipped=True)
    monkeypatch.setattr(train_cli, "train", lambda config: result)
    args = argparse.Namespace(config=None, overrides=[f"train.output_dir={tmp_path}"], print_config=False)
    assert train_cli.run(args) == 3
    assert f"the last step (4) of {tmp_path} was skipped" in capsys.readouterr().err


def test_the_cli_exits_3_when_a_curriculum_run_ended_on_a_skipped_step(tmp_path, monkeypatch, capsys) -> None:
    from contrastkit.training.curriculum import CurriculumResult

    runs = [
        TrainResult(tmp_path / "a", tmp_path / "a" / "final", 4, 0.5, 0, None),
        TrainResult(tmp_path / "b", tmp_path / "b" / "final", 6, 0.5, 1, None, last_step_skipped=True),
    ]
    result = CurriculumResult(tmp_path, tmp_path / "final", (tmp_path / "final",), tuple(runs), ())
    monkeypatch.setattr(train_cli, "load_curriculum", lambda path, overrides: object())
    monkeypatch.setattr(train_cli, "run_curriculum", lambda curriculum: result)
    args = argparse.Namespace(config=str(tmp_path / "stages.yaml"), overrides=[], print_config=False)
    assert train_cli.run(args) == 3
    assert f"the last step (6) of {tmp_path / 'b'} was skipped" in capsys.readouterr().err
