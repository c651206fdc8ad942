"""``contrastkit train CONFIG.yaml [key=value ...]``: the same ``load_config`` + ``train`` a Python user calls.

Overrides use dotted keys and YAML values: ``optim.lr=1e-4``,
``scale.matryoshka_dims=[384,128]``, ``train.resume=true``. ``--print-config``
shows the resolved config and exits without training. Configuration and
data errors print one line (with the dotted key or the file and line) and
exit with status 2 before anything is written; so do an unusable or busy
``train.output_dir`` (checked before the model and data are loaded) and a
disk that refuses a checkpoint or the final model (the partial write is
removed). A diverged run, a run whose every step was skipped, and a run
whose last step was skipped (``final/`` then holds the last good step's
weights) exit with 3.
Under ``torchrun --nproc_per_node N -m contrastkit train ...`` every process
runs this command and the run is data-parallel. A config file with a
top-level ``stages`` list is a curriculum (:mod:`contrastkit.training.curriculum`):
its stages run in order, and ``--print-config`` shows every run's config.
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml

from contrastkit.training.config import Config, config_dict, load_config
from contrastkit.training.curriculum import CurriculumResult, load_curriculum, run_curriculum
from contrastkit.training.guard import NonFiniteWeightsError, TrainingDivergedError
from contrastkit.training.logging import plural
from contrastkit.training.loop import train


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train",
        help="train an embedding model from a YAML config (plus key=value overrides)",
        description="Train an embedding model. Example: contrastkit train configs/example.yaml train.steps=100",
    )
    p.add_argument("config", nargs="?", help="YAML config file (omit to use defaults + overrides only)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=1e-4")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(run=run)


def _resolved(config: Config | None) -> Config:
    """The config read when the file is not a curriculum (``run`` reads one or the other)."""
    assert config is not None, "a config is read whenever there is no curriculum"
    return config


def run(args: argparse.Namespace) -> int:
    """Resolve the config, train, print where the model is; returns the exit status."""
    path, overrides = args.config, list(args.overrides)
    if path is not None and "=" in path:  # no file, only overrides
        path, overrides = None, [path, *overrides]
    curriculum = load_curriculum(path, overrides) if path is not None else None
    config = load_config(path, overrides) if curriculum is None else None
    if args.print_config:
        plan = curriculum.plan() if curriculum is not None else config_dict(_resolved(config))
        print(yaml.safe_dump(plan, sort_keys=False), end="")
        return 0
    try:
        result = run_curriculum(curriculum) if curriculum is not None else train(_resolved(config))
    except (TrainingDivergedError, NonFiniteWeightsError) as err:
        print(f"contrastkit train: {err}", file=sys.stderr)
        return 3
    except OSError as err:  # a missing file, a full or read-only disk (checkpoint writes say which and clean up)
        print(f"contrastkit train: error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0:  # one line per run, not per torchrun process
        return 0
    if isinstance(result, CurriculumResult):
        done = f"{plural(len(result.trained), 'run')} trained now, {len(result.skipped)} done before"
        stages = plural(len(result.stage_models), "stage")
        print(f"trained a curriculum of {stages} ({done}); model: {result.final_model}")
        runs = list(result.trained)
    else:
        print(f"trained {plural(result.steps, 'step')} (loss {result.loss:.4f}); model: {result.final_model}")
        runs = [result]
    for skipped in (r for r in runs if r.last_step_skipped):
        print(
            f"contrastkit train: the last step ({skipped.steps}) of {skipped.output_dir} was skipped (non-finite); "
            f"its model {skipped.final_model} holds the last good step's weights: exit status 3",
            file=sys.stderr,
        )
    return 3 if any(r.last_step_skipped for r in runs) else 0
