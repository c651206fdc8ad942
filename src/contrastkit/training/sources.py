"""The datasets of a run, their sampler and their losses: one run, one or several datasets.

A run with ``data.train`` has one :class:`DataSource`; a run with
``data.datasets`` has one per entry, each with its own examples, objective
and prompt names. :func:`build_data_sampler` gives a plain
:class:`~contrastkit.data.sampler.BatchSampler` for one dataset and a
:class:`~contrastkit.data.mixture.MixtureSampler` over per-dataset samplers
for several (each batch from one dataset). :func:`build_routing` builds one
:class:`~contrastkit.training.batchloss.BatchLoss` per *distinct* objective
config (datasets with equal objectives share it, and its learnable
temperature and queue); every loss shares the encoder, and the optimizer
gets all of their parameters through :attr:`Routing.module`.

Configuration problems are :class:`ConfigError` on the dataset's key, e.g.
``data.datasets[1].train: no such data file: b.tsv`` or
``data.datasets[1].objective.name: unknown objective 'infonse'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from contrastkit.data.errors import DataError
from contrastkit.data.examples import Example
from contrastkit.data.mixture import MixtureSampler
from contrastkit.data.readers import load_examples
from contrastkit.data.sampler import BatchSampler
from contrastkit.encoders.base import Encoder
from contrastkit.objectives.temperature import Temperature
from contrastkit.training.batchloss import BatchLoss, label_index
from contrastkit.training.build import build_sampler, load_training_examples, resolve_prompt
from contrastkit.training.config import Config, DataConfig, DatasetConfig, ObjectiveConfig
from contrastkit.training.rerank import is_pair_scorer
from contrastkit.training.schema import ConfigError


@dataclass(frozen=True)
class DataSource:
    """One dataset of a run: ``name`` (None for ``data.train``), its config ``key``, examples and overrides.

    ``objective`` None uses the run's ``objective`` section; prompt names
    None use the model section's.
    """

    name: str | None
    key: str
    examples: Sequence[Example]
    objective: ObjectiveConfig | None = None
    anchor_prompt_name: str | None = None
    candidate_prompt_name: str | None = None
    weight: float | None = None


def load_sources(data: DataConfig, examples: Sequence[Example] | None = None) -> list[DataSource]:
    """The run's datasets, every example read and validated; ``examples`` replaces ``data.train`` (one dataset)."""
    if not data.datasets:
        ready = list(examples) if examples is not None else load_training_examples(data)
        return [DataSource(None, "data", ready)]
    if examples is not None:
        raise ConfigError("data.datasets", "ready examples stand for one dataset; leave data.datasets empty")
    return [_load(f"data.datasets[{i}]", ds) for i, ds in enumerate(data.datasets)]


def _load(key: str, ds: DatasetConfig) -> DataSource:
    try:
        examples = load_examples(
            list(ds.train), format=ds.format, columns=ds.columns, kind=ds.kind, quoting=ds.quoting, split=ds.split
        )
    except DataError:
        raise  # names the file and the line or row
    except FileNotFoundError as err:
        raise ConfigError(f"{key}.train", str(err)) from None
    except ValueError as err:
        raise ConfigError(key, str(err)) from None
    if not examples:
        raise ConfigError(f"{key}.train", "no training examples")
    return DataSource(
        ds.name, key, examples, ds.objective, ds.anchor_prompt_name, ds.candidate_prompt_name, weight=ds.weight
    )


def dataset_seed(seed: int, index: int) -> int:
    """The batch-order seed of dataset ``index`` of a mixture, derived from ``data.seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def build_data_sampler(data: DataConfig, sources: Sequence[DataSource]) -> BatchSampler | MixtureSampler:
    """A BatchSampler for one dataset; for several, a MixtureSampler over one BatchSampler each."""
    if len(sources) == 1 and sources[0].name is None:
        return build_sampler(data, sources[0].examples)
    samplers = []
    for i, source in enumerate(sources):
        try:
            samplers.append(
                BatchSampler(
                    source.examples,
                    data.batch_size,
                    seed=dataset_seed(data.seed, i),
                    drop_last=data.drop_last,
                    length_grouped=data.length_grouped,
                    duplicates=data.duplicates,
                )
            )
        except ValueError as err:
            raise ConfigError("data.batch_size", f"dataset {source.name!r} ({source.key}): {err}") from None
    given = [s.weight for s in sources if s.weight is not None]
    weights = given if len(given) == len(sources) else None
    names = [s.name or "" for s in sources]
    return MixtureSampler(
        samplers,
        names,
        data.mixing,
        weights=weights,
        seed=data.seed,
        temperature=data.mixing_temperature,
    )


@dataclass
class Routing:
    """Which loss and prompts each dataset's batches use; see the module docstring.

    ``losses`` holds one BatchLoss per distinct objective, ``loss_of[i]``
    the index of dataset ``i``'s loss, ``prompts[i]`` its (anchor,
    candidate) prompt texts. ``module`` is what the optimizer and the
    checkpoint see: the loss itself when there is one, else an
    ``nn.ModuleList`` of them.
    """

    losses: list[BatchLoss]
    loss_of: list[int]
    prompts: list[tuple[str | None, str | None]]
    module: nn.Module
    names: list[str | None]

    def loss_for(self, source: int) -> BatchLoss:
        """The loss of dataset ``source``'s batches, set to that dataset's prompts."""
        loss = self.losses[self.loss_of[source]]
        loss.anchor_prompt, loss.candidate_prompt = self.prompts[source]
        return loss

    def temperatures(self) -> dict[str, float]:
        """Learnable temperatures: ``temperature`` for one loss, else ``temperature/<first dataset using it>``."""
        out = {}
        for k, loss in enumerate(self.losses):
            found = [m for m in loss.loss.objective.modules() if isinstance(m, Temperature) and m.learnable]
            if found:
                key = "temperature" if len(self.losses) == 1 else f"temperature/{self.names[self.loss_of.index(k)]}"
                out[key] = found[0].value
        return out

    def describe(self, sampler: MixtureSampler) -> str:
        """One line for the run log: each dataset's objective and (weighted mixing) its share of batches."""
        parts = []
        for name, p, k in zip(sampler.names, sampler.probabilities(), self.loss_of, strict=True):
            share = f" {100 * p:.0f}%" if sampler.mixing != "round_robin" else ""
            parts.append(f"{name}{share} {self.losses[k].loss.objective.info.name}")
        return f"datasets ({sampler.mixing}): " + ", ".join(parts)

    def commit(self) -> None:
        for loss in self.losses:
            loss.commit()

    def discard(self) -> None:
        for loss in self.losses:
            loss.discard()


def build_routing(config: Config, sources: Sequence[DataSource], encoder: Encoder) -> Routing:
    """One BatchLoss per distinct objective of ``sources``, checked against the examples it will see."""
    objectives: list[ObjectiveConfig] = []
    loss_of: list[int] = []
    for source in sources:
        objective = source.objective or config.objective
        if objective not in objectives:
            objectives.append(objective)
        loss_of.append(objectives.index(objective))
    losses = []
    for k, objective in enumerate(objectives):
        users = [sources[i] for i, owner in enumerate(loss_of) if owner == k]
        labels = label_index([ex for source in users for ex in source.examples])
        try:
            loss = BatchLoss(objective, config.scale, dim=encoder.dim, labels=labels, pairs=is_pair_scorer(encoder))
        except ConfigError as err:
            raise _rekey(err, users[0]) from None
        for source in users:
            try:
                loss.check_examples(source.examples)
            except ConfigError as err:
                raise _rekey(err, source) from None
        losses.append(loss)
    prompts = [_prompts(config, source, encoder) for source in sources]
    module = losses[0] if len(losses) == 1 else nn.ModuleList(losses)
    return Routing(losses, loss_of, prompts, module, [source.name for source in sources])


def _prompts(config: Config, source: DataSource, encoder: Encoder) -> tuple[str | None, str | None]:
    model = config.model
    anchor_key = f"{source.key}.anchor_prompt_name" if source.anchor_prompt_name else "model.anchor_prompt_name"
    candidate_key = (
        f"{source.key}.candidate_prompt_name" if source.candidate_prompt_name else "model.candidate_prompt_name"
    )
    return (
        resolve_prompt(encoder, source.anchor_prompt_name or model.anchor_prompt_name, anchor_key),
        resolve_prompt(encoder, source.candidate_prompt_name or model.candidate_prompt_name, candidate_key),
    )


def _rekey(err: ConfigError, source: DataSource) -> ConfigError:
    """A loss's ConfigError moved to the dataset's key (its own objective, its train files), else tagged with it."""
    if source.name is None:
        return err
    if err.path.startswith("objective.") and source.objective is not None:
        return ConfigError(f"{source.key}.{err.path}", err.message)
    if err.path == "data.train":
        return ConfigError(f"{source.key}.train", err.message)
    return ConfigError(err.path, f"{err.message} (dataset {source.name!r}, {source.key})")
