"""Build the pieces of a run from their config sections: the encoder, the examples, the run length.

Each builder takes only its own section (DESIGN.md section 6) and turns
problems into :class:`ConfigError` naming the key to fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from torch import nn

from contrastkit.data.examples import Example
from contrastkit.data.mixture import MixtureSampler
from contrastkit.data.perturb import perturbed_pairs, wikispan_pairs
from contrastkit.data.readers import load_examples
from contrastkit.data.render import Augment, Renderer
from contrastkit.data.sampler import BatchSampler
from contrastkit.encoders import DecoderEncoder, DualEncoder, ModelFolderError, TextEncoder, load_encoder
from contrastkit.encoders.base import Encoder
from contrastkit.encoders.cross import CrossEncoderModel, load_cross_encoder
from contrastkit.encoders.heads import ProjectionHead
from contrastkit.encoders.pixel import (
    ImageEncoder,
    PixelEncoder,
    build_image_encoder,
    build_pixel_encoder,
    load_perception_encoder,
)
from contrastkit.training.config import DataConfig, ModelConfig, TrainConfig, ViewsConfig
from contrastkit.training.schema import ConfigError, build

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
SCRATCH = "scratch"
"""``model.path: scratch`` (or null) with ``kind: pixel | image`` builds a new, randomly initialised model."""


def build_encoder(model: ModelConfig) -> Encoder:
    """The model section's encoder: ``load_encoder`` with its arguments, a new or saved pixel / image encoder
    (``kind: pixel | image``), or with ``model.candidate`` a :class:`~contrastkit.encoders.DualEncoder` of both."""
    anchor = _build_tower(model, "model")
    if model.candidate is None:
        return anchor
    candidate = _build_tower(model.candidate, "model.candidate")
    try:
        return DualEncoder(anchor, candidate)
    except ValueError as err:
        raise ConfigError("model.candidate", str(err)) from None


def _build_tower(model: ModelConfig, key: str) -> Encoder:
    tower = _load_tower(model, key)
    if model.save_max_length is not None:
        set_save_max_length(tower, model.save_max_length, f"{key}.save_max_length")
    return tower


def set_save_max_length(encoder: Encoder, length: int, key: str) -> None:
    """Make ``encoder`` (a text or decoder encoder, or a projection head on one) save ``max_seq_length: length``.

    A ConfigError at ``key`` when the encoder saves no length (static, pixel,
    image) or ``length`` exceeds the model's position embeddings.
    """
    inner = encoder.base if isinstance(encoder, ProjectionHead) else encoder
    if not isinstance(inner, TextEncoder | DecoderEncoder):
        raise ConfigError(key, f"a {type(inner).__name__} has no token length to save (text and decoder models only)")
    positions = getattr(inner.model.config.get_text_config(), "max_position_embeddings", None)
    if isinstance(positions, int) and length > positions:
        raise ConfigError(key, f"{length} exceeds the model's {positions} position embeddings")
    inner.save_max_length = length


def _load_tower(model: ModelConfig, key: str) -> Encoder:
    kind = model.kind
    if kind == "pixel" or kind == "image":
        return _build_perception(model, key)
    if model.path is None or model.path == SCRATCH:
        raise ConfigError(f"{key}.path", "required: a model folder or an alias such as all-MiniLM-L6-v2")
    if kind == "cross":
        # the trainer holds a cross-encoder where it holds an Encoder (pair objectives route it through
        # training.rerank); one typed trainable model is issue 15 item 4's
        return _load_cross(model, model.path, key)  # type: ignore[return-value]
    try:
        encoder = load_encoder(
            model.path,
            kind=kind,
            pooling=model.pooling,
            normalize=model.normalize,
            max_length=model.max_length,
            prompts=dict(model.prompts) or None,
            template=model.template,
            trust_remote_code=model.trust_remote_code,
        )
    except ModelFolderError as err:
        raise ConfigError(f"{key}.path", str(err)) from None
    check_max_length(encoder, model.max_length, f"{key}.max_length")
    return encoder


def position_limit(encoder: Encoder) -> int | None:
    """The most tokens ``encoder``'s transformer can embed, or None when it states no position limit.

    A learned position table (``position_embeddings``, GPT-2's ``wpe``) gives
    its size, less the ids a ``padding_idx`` offset skips (RoBERTa's positions
    start at ``padding_idx + 1``); otherwise (rotary positions) the config's
    ``max_position_embeddings``.
    """
    model = getattr(encoder, "model", None)
    if not isinstance(model, nn.Module):
        return None
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) and name.rsplit(".", 1)[-1] in ("position_embeddings", "wpe"):
            offset = 0 if module.padding_idx is None else module.padding_idx + 1
            return module.num_embeddings - offset
    config = getattr(model, "config", None)
    get_text_config = getattr(config, "get_text_config", None)
    text = get_text_config() if callable(get_text_config) else config
    positions = getattr(text, "max_position_embeddings", None)
    return positions if isinstance(positions, int) and positions > 0 else None


def check_max_length(encoder: Encoder, max_length: int | None, key: str) -> None:
    """A ConfigError at ``key`` when ``max_length`` exceeds the loaded model's :func:`position_limit`
    (at build time, before any run file is written: past it the forward fails mid-run)."""
    limit = position_limit(encoder)
    if max_length is not None and limit is not None and max_length > limit:
        raise ConfigError(
            key, f"{max_length} is more tokens than the model has positions for ({limit}); use <= {limit}"
        )


def _load_cross(model: ModelConfig, path: str, key: str) -> CrossEncoderModel:
    """A cross-encoder (``kind: cross``): a saved one, a causal LM as a yes/no reranker, or an encoder body with a
    new one-logit head drawn from the run's seeded RNG."""
    if model.candidate is not None or model.lora.enabled:
        raise ConfigError(f"{key}.kind", "a cross-encoder has one tower and trains every weight (no candidate, lora)")
    try:
        return load_cross_encoder(
            path, max_length=model.max_length, seed=None, trust_remote_code=model.trust_remote_code
        )
    except (ModelFolderError, ValueError) as err:
        raise ConfigError(f"{key}.path", str(err)) from None


def _build_perception(model: ModelConfig, key: str) -> PixelEncoder | ImageEncoder:
    """A saved pixel / image encoder (``path``), or a new one (``path`` null or ``scratch``) from ``vision`` etc."""
    cls = PixelEncoder if model.kind == "pixel" else ImageEncoder
    if model.path not in (None, SCRATCH):
        extra = [k for k in ("vision", "renderer", "augment") if getattr(model, k)]
        if extra:
            raise ConfigError(f"{key}.{extra[0]}", f"builds a new model: set {key}.path to null or scratch")
        try:
            encoder = load_perception_encoder(model.path, normalize=model.normalize, prompts=dict(model.prompts))
        except ModelFolderError as err:
            raise ConfigError(f"{key}.path", str(err)) from None
        if not isinstance(encoder, cls):
            raise ConfigError(f"{key}.kind", f"{model.path} holds a {type(encoder).__name__}, not a {cls.__name__}")
        return encoder
    taken = sorted({"renderer", "augment", "prompts", "normalize"} & set(model.vision))
    if taken:
        raise ConfigError(f"{key}.vision.{taken[0]}", f"set {key}.{taken[0]} instead")
    kwargs = dict(model.vision)
    if model.normalize is not None:
        kwargs["normalize"] = model.normalize
    if cls is PixelEncoder:
        kwargs["prompts"] = dict(model.prompts) or None
        kwargs["renderer"] = _section(Renderer, model.renderer, f"{key}.renderer") if model.renderer else None
        kwargs["augment"] = _section(Augment, model.augment, f"{key}.augment") if model.augment else None
    try:
        return build_pixel_encoder(**kwargs) if cls is PixelEncoder else build_image_encoder(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}.vision", str(err)) from None


def _section(cls: type[T], data: dict[str, Any], key: str) -> T:
    """Dataclass ``cls`` from ``data`` with the config's strict checks; errors name ``key``'s sub-keys."""
    try:
        return build(cls, data, key)
    except ValueError as err:  # ConfigError (a ValueError) keeps its path; the dataclass' own checks get ``key``
        raise err if isinstance(err, ConfigError) else ConfigError(key, str(err)) from None


def load_training_examples(data: DataConfig) -> list[Example]:
    """Every example of ``data.train`` (read and validated before anything is written)."""
    if not data.train:
        raise ConfigError("data.train", "required: one training file or a list of them")
    examples = load_examples(
        list(data.train),
        format=data.format,
        columns=data.columns,
        kind=data.kind,
        quoting=data.quoting,
        split=data.split,
    )
    return teacher_scored(examples, data) if data.teacher else examples


def teacher_scored(examples: list[Example], data: DataConfig) -> list[Example]:
    """``examples`` with ``data.teacher``'s score of every text still unscored, through its on-disk cache
    (``examples`` as they are without a teacher)."""
    from contrastkit.encoders.teacher import ScoreCache, load_teacher, score_examples

    if data.teacher is None:
        return examples

    try:
        teacher, identity = load_teacher(data.teacher)
    except (ModelFolderError, FileNotFoundError) as err:
        raise ConfigError("data.teacher", str(err)) from None
    folder = data.teacher_cache or Path(data.train[0]).parent / ".teacher_cache"
    return score_examples(examples, teacher, cache=ScoreCache(folder, identity))


def sentences(views: ViewsConfig, examples: Sequence[Example]) -> list[str]:
    """The anchors of ``examples``, which ``views.transform`` needs to be sentences only (else a ConfigError)."""
    paired = sum(bool(ex.positives or ex.negatives) for ex in examples)
    if paired:
        raise ConfigError(
            "views.transform",
            f"{views.transform!r} makes pairs from sentences, but {paired} of the {len(examples)} examples already "
            "have positives or negatives (train on sentence data, e.g. a .txt file)",
        )
    return [ex.anchor for ex in examples]


def build_views(views: ViewsConfig, examples: Sequence[Example]) -> list[Example]:
    """``examples`` as ``views.transform`` pairs them (unchanged when it is null); see :class:`ViewsConfig`.

    The examples must be sentences only (anchor, no positives or negatives).
    ``wikispan`` documents never span two files (``Example.source``).
    """
    if views.transform is None:
        return list(examples)
    texts = sentences(views, examples)
    if views.transform != "wikispan":
        return perturbed_pairs(texts, views.transform, rate=views.typo_rate, seed=views.seed)
    lo, hi = views.span_words
    sources = [ex.source for ex in examples]
    pairs = wikispan_pairs(
        texts, doc_lines=views.doc_lines, min_words=lo, max_words=hi, seed=views.seed, sources=sources
    )
    if not pairs:
        raise ConfigError(
            "views.doc_lines", f"no document of {views.doc_lines} lines has the {2 * lo} words two spans need"
        )
    return pairs


def view_examples(views: ViewsConfig, data: DataConfig, examples: Sequence[Example] | None) -> list[Example] | None:
    """The run's ready examples after ``views`` (:func:`build_views` of ``examples`` or of ``data.train``'s).

    None (read ``data`` as usual) when ``views.transform`` is null and no
    examples are given. Views pair the sentences of one dataset, not of ``data.datasets``.
    """
    if views.transform is None:
        return None if examples is None else list(examples)
    if data.datasets:
        raise ConfigError("views.transform", "pairs the sentences of data.train (one dataset), not data.datasets")
    return build_views(views, examples if examples is not None else load_training_examples(data))


def build_sampler(data: DataConfig, examples: Sequence[Example]) -> BatchSampler:
    """The batch sampler over ``examples`` (global batches of ``data.batch_size``)."""
    try:
        return BatchSampler(
            examples,
            data.batch_size,
            seed=data.seed,
            drop_last=data.drop_last,
            length_grouped=data.length_grouped,
            duplicates=data.duplicates,
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
