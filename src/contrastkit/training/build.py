"""Build the pieces of a run from their config sections: the encoder, the examples, the run length.

Each builder takes only its own section (DESIGN.md section 6) and turns
problems into :class:`ConfigError` naming the key to fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from contrastkit.data.examples import Example
from contrastkit.data.mixture import MixtureSampler
from contrastkit.data.readers import load_examples
from contrastkit.data.sampler import BatchSampler
from contrastkit.encoders import ModelFolderError, load_encoder
from contrastkit.encoders.base import Encoder
from contrastkit.training.config import DataConfig, ModelConfig, TrainConfig
from contrastkit.training.schema import ConfigError


def build_encoder(model: ModelConfig) -> Encoder:
    """``contrastkit.encoders.load_encoder`` with the model section's arguments."""
    if model.path is None:
        raise ConfigError("model.path", "required: a model folder or an alias such as all-MiniLM-L6-v2")
    try:
        return load_encoder(
            model.path,
            kind=model.kind,
            pooling=model.pooling,
            normalize=model.normalize,
            max_length=model.max_length,
            prompts=dict(model.prompts) or None,
            template=model.template,
            trust_remote_code=model.trust_remote_code,
        )
    except ModelFolderError as err:
        raise ConfigError("model.path", str(err)) from None


def load_training_examples(data: DataConfig) -> list[Example]:
    """Every example of ``data.train`` (read and validated before anything is written)."""
    if not data.train:
        raise ConfigError("data.train", "required: one training file or a list of them")
    return load_examples(
        list(data.train),
        format=data.format,
        columns=data.columns,
        kind=data.kind,
        quoting=data.quoting,
        split=data.split,
    )


def build_sampler(data: DataConfig, examples: Sequence[Example]) -> BatchSampler:
    """The batch sampler over ``examples`` (global batches of ``data.batch_size``)."""
    try:
        return BatchSampler(
            examples, data.batch_size, seed=data.seed, drop_last=data.drop_last, length_grouped=data.length_grouped
        )
    except ValueError as err:
        raise ConfigError("data.batch_size", str(err)) from None


def count_steps(train: TrainConfig, sampler: BatchSampler | MixtureSampler, grad_accumulation: int) -> int:
    """Optimizer steps of the run: ``train.steps``, or ``train.epochs`` (default 1) of batches / accumulation.

    For several datasets an epoch is a mixture epoch (one pass over every dataset's batches).
    """
    if train.steps is not None:
        return train.steps
    epochs = train.epochs or 1
    batches = sum(sampler.num_batches(e) for e in range(epochs))
    if batches == 0:
        raise ConfigError("data.batch_size", "the sampler yields no batch")
    return math.ceil(batches / grad_accumulation)


def resolve_prompt(encoder: Encoder, name: str | None, key: str) -> str | None:
    """The encoder's prompt text named ``name`` (None for none); an unknown name is a ConfigError at ``key``."""
    if name is None:
        return None
    try:
        return encoder.resolve_prompt(None, name)
    except KeyError as err:
        raise ConfigError(key, str(err.args[0] if err.args else err)) from None
