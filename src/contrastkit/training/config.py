"""The training configuration: typed, frozen sections merged as defaults <- YAML <- ``a.b=value`` overrides.

Example::

    >>> cfg = load_config(None, ["model.path=all-MiniLM-L6-v2", "data.train=pairs.jsonl", "optim.lr=1e-5"])
    >>> cfg.optim.lr
    1e-05

Each section is given only to the component it configures. Unknown keys,
wrong types and invalid values raise :class:`ConfigError` naming the dotted
path (``optim.lr: expected float, got str 'fast'``); an unknown key also gets
the closest valid key (``optim.lrr: unknown key; did you mean 'optim.lr'?``).
:func:`dump_config` writes the resolved config (the run folder's
``config.yaml``), which :func:`load_config` reads back to an equal config.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from contrastkit.training.config_eval import EvalConfig, RetrievalEvalConfig, STSEvalConfig
from contrastkit.training.config_model import LoraConfig, ModelConfig
from contrastkit.training.schema import ConfigError, build, to_plain
from contrastkit.training.schema import require as _check
from contrastkit.training.yamlio import apply_override, read_yaml

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "DatasetConfig",
    "EvalConfig",
    "LoraConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "RetrievalEvalConfig",
    "STSEvalConfig",
    "ScaleConfig",
    "TrainConfig",
    "ViewsConfig",
    "apply_override",
    "dump_config",
    "load_config",
]


MAX_LR = 1.0
"""The largest ``optim.lr`` / ``temperature_lr``: AdamW moves every weight by about lr per step, so 1 already
destroys a model; larger values (``1e38``) are typing errors that would make every weight non-finite."""
_DEVICE = re.compile(r"auto|cpu(?::0)?|cuda(?::[0-9]+)?|mps(?::0)?")

_Format = Literal["jsonl", "csv", "tsv", "text", "parquet", "hf"]
_Kind = Literal["sentence", "pair", "triplet", "graded", "labelled", "multilabel", "image_text"]


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset of a several-dataset run (an entry of ``data.datasets``).

    ``name`` (required, unique) labels the dataset in logs and checkpoints;
    ``train``, ``format``, ``split``, ``columns``, ``kind`` and ``quoting``
    read it as in :class:`DataConfig`. ``weight`` is its share under
    ``mixing: proportional`` (default: its size). ``objective`` (default: the
    run's ``objective`` section) is the loss of its batches; datasets with
    equal objectives share one loss (and its learnable temperature).
    ``anchor_prompt_name`` / ``candidate_prompt_name`` default to the model's.
    """

    name: str | None = None
    train: tuple[str, ...] = ()
    format: _Format | None = None
    split: str | None = None
    columns: dict[str, str | tuple[str, ...]] | None = None
    kind: _Kind | None = None
    quoting: bool | None = None
    weight: float | None = None
    objective: ObjectiveConfig | None = None
    anchor_prompt_name: str | None = None
    candidate_prompt_name: str | None = None

    def __post_init__(self) -> None:
        _check(bool(self.name and self.name.strip()), "name", "required: a short name for logs")
        _check(len(self.train) > 0, "train", "required: one training file (or folder) or a list of them")
        _check(self.weight is None or self.weight > 0, "weight", f"must be > 0, got {self.weight}")


@dataclass(frozen=True)
class DataConfig:
    """Training data (``contrastkit.data.readers.load_examples``) and batching (``BatchSampler``).

    ``train`` is one path or a list of paths, read in order and concatenated.
    ``format`` (default: from the path; a folder is a Hugging Face dataset),
    ``split`` (Hugging Face datasets), ``columns`` (role -> column or
    columns), ``kind`` and ``quoting`` are ``load_examples``'s arguments.
    ``batch_size`` is the global batch: with N data-parallel processes each
    takes ``batch_size / N`` examples of every batch. ``length_grouped``
    forms batches of similar-length examples (less padding). ``duplicates``:
    an example sharing a text with its batch is deferred to a later batch
    (``defer``) or sits out the epoch (``skip``); see ``BatchSampler``.

    ``teacher`` (a model folder: a cross-encoder, or a bi-encoder scoring by
    cosine) scores every positive and negative that has no
    ``positive_scores`` / ``negative_scores`` before training, for the
    distillation objectives; its scores are kept in ``teacher_cache``
    (default: ``.teacher_cache`` beside the first training file), keyed by the
    teacher's identity and the texts, so a rerun scores nothing again.

    ``datasets`` (instead of ``train`` and its reading keys) trains on several
    datasets (:class:`DatasetConfig`), each batch from one of them, chosen by
    ``mixing``: ``proportional`` (seeded draws by weight; with
    ``mixing_temperature`` T by weight^(1/T): T > 1 flattens toward uniform),
    ``round_robin`` or ``codiemb`` (every mixture epoch exactly each dataset's
    batches, or its whole-number weight, in a seeded shuffle); see
    ``contrastkit.data.mixture``.
    """

    train: tuple[str, ...] = ()
    format: _Format | None = None
    split: str | None = None
    columns: dict[str, str | tuple[str, ...]] | None = None
    kind: _Kind | None = None
    quoting: bool | None = None
    batch_size: int = 32
    seed: int = 0
    drop_last: bool = True
    length_grouped: bool = False
    duplicates: Literal["defer", "skip"] = "defer"
    datasets: tuple[DatasetConfig, ...] = ()
    mixing: Literal["proportional", "round_robin", "codiemb"] = "proportional"
    mixing_temperature: float = 1.0
    teacher: str | None = None
    teacher_cache: str | None = None

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        _check(not (self.teacher and self.datasets), "teacher", "not with data.datasets (score each file first)")
        _check(self.teacher_cache is None or bool(self.teacher), "teacher_cache", "needs data.teacher")
        t = self.mixing_temperature
        _check(t > 0 and t != float("inf"), "mixing_temperature", f"must be a finite number > 0, got {t}")
        _check(t == 1.0 or self.mixing == "proportional", "mixing_temperature", "applies to mixing: proportional")
        if not self.datasets:
            return
        for key in ("train", "format", "split", "columns", "kind", "quoting"):
            _check(getattr(self, key) in ((), None), key, "set it per dataset (data.datasets[i]) with data.datasets")
        seen: set[str] = set()
        for i, ds in enumerate(self.datasets):
            _check(ds.name not in seen, f"datasets[{i}].name", f"{ds.name!r} names two datasets")
            seen.add(ds.name or "")
        weighted = [ds.weight is not None for ds in self.datasets]
        if any(weighted):
            first = weighted.index(True)
            _check(self.mixing != "round_robin", f"datasets[{first}].weight", "weights apply to mixing: proportional")
            if self.mixing == "codiemb":
                frac = next((i for i, ds in enumerate(self.datasets) if not float(ds.weight or 1).is_integer()), -1)
                _check(frac < 0, f"datasets[{frac}].weight", "codiemb weights are whole batches per epoch")
            missing = weighted.index(False) if not all(weighted) else -1
            _check(missing < 0, f"datasets[{missing}].weight", "give every dataset a weight, or none (by size)")


@dataclass(frozen=True)
class ViewsConfig:
    """Pairs made from anchor-only training data before training (``views``; ``contrastkit.data.perturb``).

    ``transform`` null keeps the examples as read. A perturbation family
    (``typos``, ``shuffle``, ``conditional_shuffle``, ``words_and_chars``:
    Pixel Linguist's stage 0) pairs every sentence with a perturbed copy
    (``typo_rate``: probability of each of the four edits per word);
    ``wikispan`` (stage 1) pairs two disjoint spans of ``span_words``
    (min, max) words from each document of ``doc_lines`` consecutive lines.
    The examples must be sentences only (e.g. a ``.txt`` file); ``seed``
    draws the views.
    """

    transform: Literal["typos", "shuffle", "conditional_shuffle", "words_and_chars", "wikispan"] | None = None
    typo_rate: float = 0.1
    doc_lines: int = 8
    span_words: tuple[int, int] = (5, 64)
    seed: int = 0

    def __post_init__(self) -> None:
        _check(0 <= self.typo_rate <= 0.25, "typo_rate", f"must be in [0, 0.25], got {self.typo_rate}")
        _check(self.doc_lines >= 1, "doc_lines", f"must be >= 1, got {self.doc_lines}")
        _check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        lo, hi = self.span_words
        _check(1 <= lo <= hi, "span_words", f"expected 1 <= min <= max, got {list(self.span_words)}")


@dataclass(frozen=True)
class ObjectiveConfig:
    """The loss: a registered objective (``contrastkit objectives`` lists them) and its hyperparameters.

    ``temperature`` None keeps the objective's default; ``learnable_temperature``
    None keeps the objective's default too (fixed for most, learnable for
    ``clip`` and ``siglip``), true/false trains or freezes it (SigLIP's bias
    with it); ``hparams`` holds the objective's other keyword arguments,
    passed through unchanged.
    """

    name: str = "infonce"
    temperature: float | None = None
    learnable_temperature: bool | None = None
    similarity: Literal["cosine", "dot"] = "cosine"
    hparams: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.temperature is None or self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class ScaleConfig:
    """How the loss scales: GradCache chunks, loss tiles, a memory queue, Matryoshka dimensions.

    ``gradcache_chunk`` None embeds the whole batch with gradient at once;
    an int embeds it in chunks of that many texts (exact full-batch
    gradients, memory of one chunk). ``tile_size`` None computes the loss
    densely. ``queue_size`` 0 disables the queue. ``matryoshka_dims`` empty
    disables Matryoshka; ``matryoshka_weights`` defaults to all ones.
    ``sub_batch`` (without GradCache) embeds each side in length-sorted
    sub-batches of that many texts, each cut to its own longest text: the
    same embeddings with less padding (``encoders.subbatch``); None embeds
    each side in one call. GradCache chunks are always length-sorted and trimmed.
    ``fsdp`` shards the encoder's weights, gradients and optimizer state over
    the ranks of a ``torchrun`` launch instead of replicating them (DDP);
    see :mod:`contrastkit.training.sharding`. One process ignores it.
    """

    gradcache_chunk: int | None = None
    sub_batch: int | None = None
    tile_size: int | None = None
    queue_size: int = 0
    matryoshka_dims: tuple[int, ...] = ()
    matryoshka_weights: tuple[float, ...] | None = None
    fsdp: bool = False

    def __post_init__(self) -> None:
        _check(self.gradcache_chunk is None or self.gradcache_chunk >= 1, "gradcache_chunk", "must be >= 1")
        _check(self.tile_size is None or self.tile_size >= 1, "tile_size", "must be >= 1")
        _check(self.sub_batch is None or self.sub_batch >= 1, "sub_batch", "must be >= 1")
        _check(
            self.sub_batch is None or self.gradcache_chunk is None,
            "sub_batch",
            "conflicts with scale.gradcache_chunk (its chunks are length-sorted and trimmed already): set one",
        )
        _check(self.queue_size >= 0, "queue_size", "must be >= 0")
        _check(all(d >= 1 for d in self.matryoshka_dims), "matryoshka_dims", "must be >= 1")
        w = self.matryoshka_weights
        _check(w is None or len(w) == len(self.matryoshka_dims), "matryoshka_weights", "needs one weight per dim")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with warmup and a decay schedule, gradient clipping and accumulation.

    Warmup is ``warmup_steps`` optimizer steps, or ``ceil(warmup_ratio *
    steps)`` when ``warmup_steps`` is 0. The schedule then keeps the rate
    (``constant``) or decays it linearly / by a half cosine to
    ``min_lr_ratio * lr``. Biases, norm weights and the temperature get no
    weight decay; a learnable temperature uses ``temperature_lr`` (default
    ``lr``). ``grad_clip`` None disables clipping (max global l2 norm).
    ``grad_accumulation`` micro-batches make one optimizer step (their
    losses averaged; for in-batch negatives this is not a larger batch: use
    ``scale.gradcache_chunk`` for that).
    """

    lr: float = 2e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    schedule: Literal["constant", "linear", "cosine"] = "linear"
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    grad_accumulation: int = 1
    temperature_lr: float | None = None

    def __post_init__(self) -> None:
        _check(0 < self.lr <= MAX_LR, "lr", f"must be in (0, {MAX_LR}], got {self.lr}")
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _check(all(0 <= b < 1 for b in self.betas), "betas", "must be in [0, 1)")
        _check(self.eps >= 0, "eps", f"must be >= 0, got {self.eps}")
        _check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        _check(0 <= self.warmup_ratio <= 1, "warmup_ratio", "must be in [0, 1]")
        _check(
            not (self.warmup_steps and self.warmup_ratio),
            "warmup_ratio",
            f"conflicts with optim.warmup_steps={self.warmup_steps}: set one of them (the other 0)",
        )
        _check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        _check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0 (or null to disable)")
        _check(self.grad_accumulation >= 1, "grad_accumulation", "must be >= 1")
        tlr = self.temperature_lr
        _check(tlr is None or 0 < tlr <= MAX_LR, "temperature_lr", f"must be in (0, {MAX_LR}], got {tlr}")


@dataclass(frozen=True)
class TrainConfig:
    """The run: length, seed, precision, device, outputs, checkpoints, logging, resume.

    ``steps`` (optimizer steps) wins over ``epochs`` (passes over the
    data); with neither, one epoch. ``checkpoint_every`` and ``log_every`` count
    optimizer steps (0 disables periodic checkpoints; the final one is always
    written). ``eval_every`` None runs evaluation callbacks only at the end.
    ``resume`` continues from the latest checkpoint in ``output_dir``.
    ``max_bad_steps`` consecutive steps with a non-finite loss or gradient
    stop the run.
    """

    steps: int | None = None
    epochs: int | None = None
    seed: int = 0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: str = "auto"
    output_dir: str = "runs/contrastkit"
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    eval_every: int | None = None
    resume: bool = False
    max_bad_steps: int = 5
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        _check(self.steps is None or self.steps >= 1, "steps", "must be >= 1")
        _check(self.epochs is None or self.epochs >= 1, "epochs", "must be >= 1")
        _check(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0")
        _check(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1")
        _check(self.log_every >= 1, "log_every", "must be >= 1")
        _check(self.eval_every is None or self.eval_every >= 1, "eval_every", "must be >= 1")
        _check(self.max_bad_steps >= 1, "max_bad_steps", "must be >= 1")
        _check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        _check(
            _DEVICE.fullmatch(self.device) is not None,
            "device",
            f"unknown device {self.device!r}: expected auto, cpu, cuda, cuda:N or mps",
        )


@dataclass(frozen=True)
class Config:
    """The whole configuration; see each section."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    views: ViewsConfig = field(default_factory=ViewsConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        lora = self.model.lora.enabled
        _check(not (self.scale.fsdp and lora), "scale.fsdp", "does not combine with model.lora (use DDP for adapters)")


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """The :class:`Config` from defaults <- YAML file ``path`` (optional) <- ``overrides`` (``a.b=value``).

    Every problem is reported at once, in one :class:`ConfigError`; a
    problem with a key of the YAML file names the file and line
    (``cfg.yaml:12: optim.lr: must be > 0, got -1.0``), one with a key set by
    an override (or by neither) names the key only.
    """
    lines: dict[str, int] = {}
    data = read_yaml(Path(path), lines) if path is not None else {}
    overridden = []
    for override in overrides:
        apply_override(data, override)
        overridden.append(override.partition("=")[0].strip())
    try:
        return build(Config, data)
    except ConfigError as err:
        raise err.located(lambda key: yaml_location(key, path, lines, overridden)) from None


_STAGE = re.compile(r"stages\[\d+\](?:\.average\[\d+\])?\.")


def yaml_location(key: str, path: str | Path | None, lines: dict[str, int], overridden: Sequence[str]) -> str | None:
    """``file:line`` of dotted ``key`` in YAML file ``path`` (``lines``: ``yamlio.key_lines``).

    None when an override (``overridden``: their dotted keys) set the key. A
    key the file does not have exactly is placed at its nearest enclosing
    key; a curriculum run's key (``stages[1].optim.lr``) at the stage's own
    key, else at the shared section's, else at the stage.
    """
    plain = _STAGE.sub("", key, count=1) if _STAGE.match(key) else key
    if path is None or any(plain == o or plain.startswith((f"{o}.", f"{o}[")) for o in overridden):
        return None
    for candidate in dict.fromkeys((key, plain)):
        if candidate in lines:
            return f"{path}:{lines[candidate]}"
    for candidate in dict.fromkeys((key, plain)):
        probe = candidate
        while probe:
            if probe in lines:
                return f"{path}:{lines[probe]}"
            probe = probe[: max(probe.rfind("."), probe.rfind("["), 0)]
    return None


def config_dict(config: Config) -> dict[str, Any]:
    """The config as plain nested data (lists, dicts, scalars)."""
    plain = to_plain(config)
    assert isinstance(plain, dict), "a dataclass becomes a dict"
    return plain


def dump_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as YAML to ``path`` (atomically: a temp file then a rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(yaml.safe_dump(config_dict(config), sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)


def diff_configs(old: Config, new: Config) -> list[str]:
    """Dotted keys whose values differ between two configs (for a resume warning)."""

    def flat(d: object, prefix: str = "") -> dict[str, object]:
        if isinstance(d, dict) and d and prefix.count(".") < 2:
            return {k2: v2 for k, v in d.items() for k2, v2 in flat(v, f"{prefix}{k}.").items()}
        return {prefix[:-1]: d}

    a, b = flat(config_dict(old)), flat(config_dict(new))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
