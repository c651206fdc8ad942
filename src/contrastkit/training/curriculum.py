"""Multi-stage training (curricula), each stage starting from the last one's model, and uniform weight averaging.

A curriculum is an ordinary config file with one more top-level key,
``stages``: a list of stages, each a mapping of section overrides (merged
into the file's sections like dotted overrides) plus three keys of its own:

* ``name`` (default ``stage<i>``): the stage's folder is
  ``<train.output_dir>/<NN>-<name>``;
* ``repeat`` (default 1): the stage runs that many times in a row
  (``<name>``, ``<name>-2``, ...), each from the previous one's model;
* ``average``: a list of override mappings, one run each, all from the
  stage's starting model (``<stage>/run-<j>``); the stage's model is the
  uniform average of their final weights (:func:`average_state_dicts`),
  written to ``<stage>/final``. Pixel Linguist's stage 0 averages its four
  perturbation families this way.

Stage ``i > 0`` starts from stage ``i - 1``'s final model: its ``model``
section becomes ``path: <previous final>`` (``kind: auto``; a saved folder
says what it is), keeping ``prompts``, the prompt names, ``lora`` and
``trust_remote_code``. Command-line overrides apply to every run, after
the stage's own overrides (so ``train.steps=5`` shortens every stage).

Example (``contrastkit train curriculum.yaml`` runs it)::

    model: {path: all-MiniLM-L6-v2}
    objective: {name: clip, temperature: 0.05}
    train: {output_dir: runs/two_stages}
    stages:
      - name: perturbed
        data: {train: sentences.txt}
        average: [{views: {transform: typos}}, {views: {transform: shuffle}}]
      - name: nli
        data: {train: nli.jsonl}
        optim: {lr: 3.0e-5}

Every run's config is resolved and validated, and every stage's data read,
before the first step; a problem is reported with its stage
(``stages[1].optim.lr: ...``). ``curriculum.json`` in the output folder
records the plan and the runs (and averages) that are done, rewritten
atomically after each. With ``train.resume=true`` finished runs are skipped
and the unfinished one continues from its latest checkpoint (exactly, as
:mod:`contrastkit.training.loop` resumes); without it an output folder
holding a curriculum is an error.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from contrastkit.evaluation.report import atomic_write
from contrastkit.training.build import build_encoder, build_views, load_training_examples, sentences, view_examples
from contrastkit.training.callbacks import Callback
from contrastkit.training.config import Config, ModelConfig, config_dict, yaml_location
from contrastkit.training.loop import TrainResult, train
from contrastkit.training.schema import ConfigError, build
from contrastkit.training.yamlio import apply_override, read_yaml

STATE_FILE = "curriculum.json"
_STAGE_KEYS = ("name", "repeat", "average")
_KEPT_MODEL_KEYS = ("prompts", "anchor_prompt_name", "candidate_prompt_name", "lora", "trust_remote_code")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Run:
    """One training run: ``key`` is its folder relative to the curriculum's output folder; ``where`` its stage key."""

    key: str
    config: Config
    where: str


@dataclass(frozen=True)
class Stage:
    """One stage: its runs (several when averaged) and the folder of its final model."""

    name: str
    key: str
    runs: tuple[Run, ...]
    averaged: bool
    final_model: Path


@dataclass(frozen=True)
class Curriculum:
    """A planned curriculum: every run's resolved config, in order."""

    output_dir: Path
    stages: tuple[Stage, ...]
    resume: bool

    @property
    def final_model(self) -> Path:
        return self.stages[-1].final_model

    def plan(self) -> dict[str, Any]:
        """The plan as plain data (``curriculum.json``, ``--print-config``)."""
        return {
            "output_dir": str(self.output_dir),
            "final_model": str(self.final_model),
            "stages": [
                {
                    "name": s.name,
                    "final_model": str(s.final_model),
                    "averaged": s.averaged,
                    "runs": [{"key": r.key, "config": config_dict(r.config)} for r in s.runs],
                }
                for s in self.stages
            ],
        }


@dataclass(frozen=True)
class CurriculumResult:
    """What :func:`run_curriculum` did: each stage's final model, the runs trained now and those skipped."""

    output_dir: Path
    final_model: Path
    stage_models: tuple[Path, ...]
    trained: tuple[TrainResult, ...]
    skipped: tuple[str, ...]


def load_curriculum(path: str | Path, overrides: Sequence[str] = ()) -> Curriculum | None:
    """The curriculum in YAML file ``path`` (with ``overrides``), or None when the file has no ``stages``."""
    lines: dict[str, int] = {}
    data = read_yaml(Path(path), lines)
    if "stages" not in data:
        return None
    try:
        return plan_curriculum(data, overrides)
    except ConfigError as err:  # each problem at its file and line (config.yaml_location)
        keys = [o.partition("=")[0].strip() for o in overrides]
        raise err.located(lambda key: yaml_location(key, path, lines, keys)) from None


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, mappings recursively (as dotted overrides would set them)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def chained_model(model: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The ``model`` section of a run that starts from the saved model at ``path``; see the module docstring."""
    return {**{k: copy.deepcopy(v) for k, v in model.items() if k in _KEPT_MODEL_KEYS}, "path": str(path)}


def _expand(stages: object) -> list[tuple[str, str, dict[str, Any], list[Mapping[str, Any]]]]:
    """(where, name, section overrides, average list) per stage run, repeats unrolled."""
    if not isinstance(stages, list) or not stages:
        raise ConfigError("stages", "expected a non-empty list of stages (mappings of section overrides)")
    out = []
    for i, stage in enumerate(stages):
        where = f"stages[{i}]"
        if not isinstance(stage, Mapping):
            raise ConfigError(where, f"expected a mapping of section overrides, got {type(stage).__name__}")
        name, repeat, average = stage.get("name", f"stage{i}"), stage.get("repeat", 1), stage.get("average", [])
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}.name", f"expected a folder-safe name (letters, digits, _ . -), got {name!r}")
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ConfigError(f"{where}.repeat", f"expected an int >= 1, got {repeat!r}")
        if not isinstance(average, list) or not all(isinstance(a, Mapping) for a in average):
            raise ConfigError(f"{where}.average", "expected a list of override mappings, one run each")
        sections = {k: v for k, v in stage.items() if k not in _STAGE_KEYS}
        for r in range(repeat):
            out.append((where, name if r == 0 else f"{name}-{r + 1}", sections, average))
    return out


def _build(data: dict[str, Any], where: str) -> Config:
    try:
        return build(Config, data)
    except ConfigError as err:
        raise err.under(where) from None


def plan_curriculum(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> Curriculum:
    """Resolve every run of the curriculum in ``data`` (a config mapping with ``stages``); see the module docstring."""
    base = {k: v for k, v in data.items() if k != "stages"}
    with_cli = copy.deepcopy(base)
    for override in overrides:
        apply_override(with_cli, override)
    root_config = build(Config, with_cli)  # the shared sections alone: their errors keep their own paths
    root = Path(root_config.train.output_dir)
    stages: list[Stage] = []
    previous: Path | None = None
    for n, (where, name, sections, average) in enumerate(_expand(data.get("stages"))):
        key = f"{n:02d}-{name}"
        runs = []
        for j, extra in enumerate(average or [{}]):
            run_where = f"{where}.average[{j}]" if average else where
            merged = _merge(_merge(base, sections), extra)
            for override in overrides:
                apply_override(merged, override)
            run_key = f"{key}/run-{j}" if average else key
            merged["train"] = {**merged.get("train", {}), "output_dir": str(root / run_key)}
            if previous is not None:
                merged["model"] = chained_model(merged.get("model") or {}, previous)
            runs.append(Run(run_key, _build(merged, run_where), run_where))
        previous = root / key / "final"
        stages.append(Stage(name, key, tuple(runs), bool(average), previous))
    return Curriculum(root, tuple(stages), root_config.train.resume)


def average_state_dicts(states: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The uniform average of several models' weights: ``mean_k states[k][name]`` for every floating tensor.

    Computed in float64 and cast back to each tensor's dtype. Integer and
    boolean tensors (position ids, counters) must be equal in every state and
    are kept. Raises ``ValueError`` naming the tensor when the states differ
    in names, shapes or such fixed values.
    """
    if not states:
        raise ValueError("average_state_dicts: no states to average")
    names = list(states[0])
    out = {}
    for k, state in enumerate(states[1:], start=1):
        if set(state) != set(names):
            diff = sorted(set(state) ^ set(names))
            raise ValueError(f"average_state_dicts: state {k} has other tensors than state 0 ({diff[:5]})")
    for name in names:
        tensors = [s[name] for s in states]
        if any(t.shape != tensors[0].shape for t in tensors):
            raise ValueError(f"average_state_dicts: {name} has different shapes {[tuple(t.shape) for t in tensors]}")
        if tensors[0].is_floating_point():
            out[name] = torch.stack([t.double() for t in tensors]).mean(0).to(tensors[0].dtype)
        elif all(torch.equal(t, tensors[0]) for t in tensors):
            out[name] = tensors[0].clone()
        else:
            raise ValueError(f"average_state_dicts: {name} is not floating point and differs between the states")
    return out


def average_models(paths: Sequence[Path], output: Path, model: Mapping[str, Any]) -> Path:
    """Load the models at ``paths`` (``model``: the loading keys of the model section), average, save at ``output``."""
    encoders = [build_encoder(build(ModelConfig, chained_model(model, Path(p)), "model")) for p in paths]
    averaged = average_state_dicts([e.state_dict() for e in encoders])
    encoders[0].load_state_dict(averaged)
    encoders[0].save(output)
    return output


def _read_state(root: Path) -> dict[str, Any] | None:
    path = root / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError("train.output_dir", f"{path}: unreadable curriculum state ({err})") from None
    if not isinstance(state, dict) or not isinstance(state.get("done"), list):
        raise ConfigError("train.output_dir", f"{path}: not a curriculum state (no 'done' list)")
    return state


def _check_data(curriculum: Curriculum) -> None:
    """Read every distinct ``data.train`` now and check its views, so that a bad file stops the curriculum at once.

    Perturbations are only checked (sentence data), not drawn: the run draws
    them. Several-dataset sections (``data.datasets``) are read when their
    stage starts.
    """
    read: list[tuple[Any, list[Any]]] = []
    checked: list[tuple[Any, Any]] = []
    for run in (r for stage in curriculum.stages for r in stage.runs):
        data, views = run.config.data, run.config.views
        if (data, views) in checked or (data.datasets and views.transform is None):
            continue
        checked.append((data, views))
        try:
            if data.datasets:
                view_examples(views, data, None)  # views on several datasets: an error
            found = next((ex for d, ex in read if d == data), None)
            if found is None:
                found = load_training_examples(data)
                read.append((data, found))
            if views.transform == "wikispan":
                build_views(views, found)
            elif views.transform is not None:
                sentences(views, found)
        except ConfigError as err:
            raise err.under(run.where) from None


def run_curriculum(curriculum: Curriculum, *, callbacks: Sequence[Callback] = ()) -> CurriculumResult:
    """Train every stage in order (skipping what ``curriculum.json`` says is done when resuming)."""
    root = curriculum.output_dir
    state = _read_state(root)
    if state is not None and not curriculum.resume:
        raise ConfigError(
            "train.output_dir",
            f"{root} holds an earlier curriculum ({STATE_FILE}); set train.resume=true to continue it, "
            "or choose another output_dir",
        )
    _check_data(curriculum)
    done: list[str] = list(state["done"]) if state else []
    trained, skipped = [], []

    def record(key: str) -> None:
        done.append(key)
        atomic_write(root / STATE_FILE, json.dumps({**curriculum.plan(), "done": done}, indent=1) + "\n")

    atomic_write(root / STATE_FILE, json.dumps({**curriculum.plan(), "done": done}, indent=1) + "\n")
    for stage in curriculum.stages:
        for run in stage.runs:
            if run.key in done:
                skipped.append(run.key)
                continue
            config = replace(run.config, train=replace(run.config.train, resume=curriculum.resume))
            trained.append(train(config, callbacks=callbacks))
            record(run.key)
        average_key = f"{stage.key}/final"
        if stage.averaged and average_key not in done:
            model = config_dict(stage.runs[0].config)["model"]
            average_models([root / r.key / "final" for r in stage.runs], stage.final_model, model)
            record(average_key)
        elif stage.averaged:
            skipped.append(average_key)
    return CurriculumResult(
        output_dir=root,
        final_model=curriculum.final_model,
        stage_models=tuple(s.final_model for s in curriculum.stages),
        trained=tuple(trained),
        skipped=tuple(skipped),
    )
