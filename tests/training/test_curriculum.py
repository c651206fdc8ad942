"""Curricula: planning and errors, chained stages, uniform weight averaging, resume at the unfinished stage, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from training_helpers import WORDS, assert_bitwise_equal, make_pairs, tiny_bert, write_jsonl

from contrastkit.cli.main import main as contrastkit_main
from contrastkit.encoders import load_encoder
from contrastkit.training import Callback
from contrastkit.training.curriculum import (
    STATE_FILE,
    average_state_dicts,
    load_curriculum,
    plan_curriculum,
    run_curriculum,
)
from contrastkit.training.schema import ConfigError

QUIET = {"progress": False, "tensorboard": False, "log_every": 1, "steps": 2}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("curriculum")
    sentences = root / "sentences.txt"
    sentences.write_text("\n".join(" ".join(WORDS[i : i + 6] + WORDS[: i % 4]) for i in range(12)) + "\n")
    return {
        "bert": tiny_bert(root / "bert"),
        "sentences": sentences,
        "pairs": write_jsonl(make_pairs(16), root / "p.jsonl"),
    }


def _data(files: dict[str, Path], out: Path, **train) -> dict:
    return {
        "model": {"path": str(files["bert"]), "pooling": "mean"},
        "data": {"batch_size": 4},
        "objective": {"name": "clip", "temperature": 0.05},
        "optim": {"lr": 1e-3},
        "train": {**QUIET, "output_dir": str(out), "checkpoint_every": 1, **train},
        "stages": [
            {
                "name": "perturbed",
                "data": {"train": str(files["sentences"])},
                "average": [{"views": {"transform": "typos", "typo_rate": 0.2}}, {"views": {"transform": "shuffle"}}],
            },
            {"name": "pairs", "data": {"train": str(files["pairs"])}, "optim": {"lr": 5e-4}},
        ],
    }


def test_plan_chains_stages_and_applies_overrides(files, tmp_path) -> None:
    data = _data(files, tmp_path / "run")
    data["stages"][1]["repeat"] = 2
    plan = plan_curriculum(data, ["train.steps=3"])
    assert [s.key for s in plan.stages] == ["00-perturbed", "01-pairs", "02-pairs-2"]
    runs = [r for s in plan.stages for r in s.runs]
    assert [r.key for r in runs] == ["00-perturbed/run-0", "00-perturbed/run-1", "01-pairs", "02-pairs-2"]
    assert all(r.config.train.steps == 3 for r in runs)  # the command line wins, in every run
    assert [r.config.views.transform for r in runs] == ["typos", "shuffle", None, None]
    assert runs[0].config.model.path == str(files["bert"]) and runs[0].config.model.pooling == "mean"
    assert runs[2].config.model.path == str(tmp_path / "run" / "00-perturbed" / "final")
    assert runs[2].config.model.pooling is None  # the saved folder says how it pools
    assert runs[3].config.model.path == str(tmp_path / "run" / "01-pairs" / "final")
    assert runs[2].config.optim.lr == 5e-4 and runs[0].config.optim.lr == 1e-3
    assert runs[1].config.train.output_dir == str(tmp_path / "run" / "00-perturbed" / "run-1")
    assert plan.final_model == tmp_path / "run" / "02-pairs-2" / "final"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(stages=[]), "stages: expected a non-empty list"),
        (lambda d: d["stages"][1].update(optimm={"lr": 1}), r"stages\[1\]\.optimm: unknown key; did you mean 'optim'"),
        (lambda d: d["stages"][1].update(repeat=0), r"stages\[1\]\.repeat: expected an int >= 1"),
        (lambda d: d["stages"][0].update(name="a/b"), r"stages\[0\]\.name: expected a folder-safe name"),
        (
            lambda d: d["stages"][0]["average"][1]["views"].update(transform="typo"),
            r"stages\[0\]\.average\[1\]\.views\.transform: expected one of",
        ),
        (lambda d: d["optim"].update(lr="fast"), r"^optim\.lr: expected float"),
    ],
)
def test_plan_errors_name_the_stage(files, tmp_path, edit, message) -> None:
    data = _data(files, tmp_path / "run")
    edit(data)
    with pytest.raises(ConfigError, match=message):
        plan_curriculum(data)


def test_average_state_dicts() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "ids": torch.tensor([0, 1]), "h": torch.tensor([1.0], dtype=torch.float16)}
    b = {"w": torch.tensor([3.0, 5.0]), "ids": torch.tensor([0, 1]), "h": torch.tensor([2.0], dtype=torch.float16)}
    avg = average_state_dicts([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 3.5])) and torch.equal(avg["ids"], a["ids"])
    assert avg["h"].dtype == torch.float16 and float(avg["h"]) == 1.5
    with pytest.raises(ValueError, match="ids is not floating point and differs"):
        average_state_dicts([a, {**b, "ids": torch.tensor([1, 0])}])
    with pytest.raises(ValueError, match="other tensors"):
        average_state_dicts([a, {"w": b["w"]}])
    with pytest.raises(ValueError, match="different shapes"):
        average_state_dicts([a, {**b, "w": torch.zeros(3)}])


def _state(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load_encoder(path).state_dict().items()}


class Interrupt(Callback):
    """Raises in stage ``stage`` at ``step`` (after the checkpoint of the step before)."""

    def __init__(self, stage: str, step: int) -> None:
        self.stage, self.step = stage, step

    def on_step_end(self, ctx) -> None:
        if self.stage in str(ctx.output_dir) and ctx.step == self.step:
            raise RuntimeError("interrupted")


def test_run_average_chain_and_resume(files, tmp_path) -> None:
    whole = run_curriculum(plan_curriculum(_data(files, tmp_path / "whole")))
    root = tmp_path / "whole"
    assert [r.steps for r in whole.trained] == [2, 2, 2] and whole.skipped == ()
    # the stage-0 model is the uniform mean of its two runs' final weights
    runs = [_state(root / "00-perturbed" / f"run-{j}" / "final") for j in range(2)]
    averaged = _state(root / "00-perturbed" / "final")
    assert averaged.keys() == runs[0].keys()
    for k, v in averaged.items():
        if v.is_floating_point():
            assert torch.allclose(v, (runs[0][k] + runs[1][k]) / 2, atol=1e-7), k
    assert any(not torch.equal(runs[0][k], runs[1][k]) for k in runs[0])  # two different runs were averaged
    stage1 = yaml.safe_load((root / "01-pairs" / "config.yaml").read_text())
    assert stage1["model"]["path"] == str(root / "00-perturbed" / "final")
    state = json.loads((root / STATE_FILE).read_text())
    assert state["done"] == ["00-perturbed/run-0", "00-perturbed/run-1", "00-perturbed/final", "01-pairs"]
    assert whole.final_model == root / "01-pairs" / "final"

    # interrupted in stage 1 after its first step, then resumed: stage 0 is not retrained
    broken = _data(files, tmp_path / "broken")
    with pytest.raises(RuntimeError, match="interrupted"):
        run_curriculum(plan_curriculum(broken), callbacks=[Interrupt("01-pairs", 2)])
    assert json.loads((tmp_path / "broken" / STATE_FILE).read_text())["done"][-1] == "00-perturbed/final"
    with pytest.raises(ConfigError, match="holds an earlier curriculum"):
        run_curriculum(plan_curriculum(broken))
    resumed = run_curriculum(plan_curriculum(broken, ["train.resume=true"]))
    assert resumed.skipped == ("00-perturbed/run-0", "00-perturbed/run-1", "00-perturbed/final")
    assert [r.steps for r in resumed.trained] == [2]
    assert_bitwise_equal(_state(tmp_path / "broken" / "01-pairs" / "final"), _state(root / "01-pairs" / "final"))


def test_bad_data_stops_before_training(files, tmp_path) -> None:
    data = _data(files, tmp_path / "run")
    data["stages"][1]["data"]["train"] = str(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        run_curriculum(plan_curriculum(data))
    assert not (tmp_path / "run").exists()
    data = _data(files, tmp_path / "run")
    data["stages"][1]["views"] = {"transform": "wikispan"}  # pairs cannot be cut into spans
    with pytest.raises(ConfigError, match=r"stages\[1\]\.views\.transform: 'wikispan' makes pairs from sentences"):
        run_curriculum(plan_curriculum(data))
    assert not (tmp_path / "run").exists()


def test_cli_prints_the_plan_and_rejects_bad_stages(files, tmp_path, capsys) -> None:
    path = tmp_path / "curriculum.yaml"
    path.write_text(yaml.safe_dump(_data(files, tmp_path / "run")))
    assert load_curriculum(path) is not None
    assert contrastkit_main(["train", str(path), "train.steps=7", "--print-config"]) == 0
    plan = yaml.safe_load(capsys.readouterr().out)
    assert [s["name"] for s in plan["stages"]] == ["perturbed", "pairs"]
    assert plan["stages"][1]["runs"][0]["config"]["train"]["steps"] == 7
    data = _data(files, tmp_path / "run")
    data["stages"][0]["repeat"] = "twice"
    path.write_text(yaml.safe_dump(data))
    assert contrastkit_main(["train", str(path)]) == 2
    assert "stages[0].repeat: expected an int >= 1" in capsys.readouterr().err
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({k: v for k, v in data.items() if k != "stages"}))
    assert load_curriculum(plain) is None
