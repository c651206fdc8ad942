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

from contrastkit.training.schema import ConfigError, build, to_plain
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


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(key, message)


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapters (``peft``, the ``lora`` extra) instead of training every weight (``model.lora``).

    With ``enabled``, rank-``r`` adapters scaled by ``alpha / r`` (dropout
    ``dropout`` on their input) are added to the linear layers named in
    ``target_modules`` (module names or name suffixes; default: the attention
    query/key/value projections found in the model, e.g. ``query``, ``key``,
    ``value`` for BERT, ``q_proj``, ``k_proj``, ``v_proj`` for Llama/Qwen,
    ``c_attn`` for GPT-2). Only the adapters (and a learnable temperature)
    are trained; the final model has them merged into its weights.
    """

    enabled: bool = False
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    target_modules: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check(self.r >= 1, "r", f"must be >= 1, got {self.r}")
        _check(self.alpha > 0, "alpha", f"must be > 0, got {self.alpha}")
        _check(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")
        _check(self.target_modules is None or len(self.target_modules) > 0, "target_modules", "must not be empty")


@dataclass(frozen=True)
class ModelConfig:
    """The encoder (``contrastkit.encoders.load_encoder`` arguments) and the prompts used in training.

    ``path`` is a sentence-transformers or Hugging Face folder, or an alias
    such as ``all-MiniLM-L6-v2``. ``anchor_prompt_name`` and
    ``candidate_prompt_name`` pick entries of ``prompts`` (or of the model's
    own prompts) prepended to anchors and candidates while training.
    ``template`` is a decoder prompt-template preset (``prompteol``,
    ``hierarchical``, ``rationale``) for decoder-only models. ``lora``
    trains LoRA adapters instead of the whole model (:class:`LoraConfig`).

    Perception (``docs/perception.md``): ``kind: pixel`` (rendered text) or
    ``kind: image`` loads a saved pixel / image encoder from ``path``, or,
    with ``path`` null or ``scratch``, builds a new one from ``vision``
    (``contrastkit.encoders.vision.VisionConfig`` keys), ``renderer``
    (``contrastkit.data.render.Renderer`` keys; pixel only) and ``augment``
    (``contrastkit.data.render.Augment`` keys, train-mode augmentation).
    ``candidate`` (a model section of its own, without ``lora``, prompt names
    or a candidate) makes a dual encoder: this section's model embeds the
    anchors, ``candidate``'s the positives and negatives
    (``contrastkit.encoders.DualEncoder``).
    """

    path: str | None = None
    kind: Literal["auto", "text", "decoder", "static", "pixel", "image"] = "auto"
    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    template: str | None = None
    trust_remote_code: bool = False
    anchor_prompt_name: str | None = None
    candidate_prompt_name: str | None = None
    lora: LoraConfig = field(default_factory=LoraConfig)
    vision: dict[str, Any] = field(default_factory=dict)
    renderer: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] = field(default_factory=dict)
    candidate: ModelConfig | None = None

    def __post_init__(self) -> None:
        _check(self.max_length is None or self.max_length > 0, "max_length", "must be > 0")
        for key in ("vision", "renderer", "augment"):
            _check(not getattr(self, key) or self.kind in ("pixel", "image"), key, "only for kind pixel or image")
        for key in ("renderer", "augment"):
            _check(not getattr(self, key) or self.kind == "pixel", key, "only for kind pixel (rendered text)")
        tower = self.candidate
        if tower is not None:
            _check(tower.candidate is None, "candidate.candidate", "a dual encoder has two towers, not more")
            _check(not tower.lora.enabled, "candidate.lora", "set lora on the model section (it covers both towers)")
            for key in ("anchor_prompt_name", "candidate_prompt_name"):
                _check(getattr(tower, key) is None, f"candidate.{key}", f"set model.{key} instead")


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
    forms batches of similar-length examples (less padding).

    ``datasets`` (instead of ``train`` and its reading keys) trains on several
    datasets (:class:`DatasetConfig`), each batch from one of them, chosen by
    ``mixing``: ``proportional`` (seeded draws by weight) or ``round_robin``.
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
    datasets: tuple[DatasetConfig, ...] = ()
    mixing: Literal["proportional", "round_robin"] = "proportional"

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
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
            _check(self.mixing == "proportional", f"datasets[{first}].weight", "weights apply to mixing: proportional")
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
        lo, hi = self.span_words
        _check(1 <= lo <= hi, "span_words", f"expected 1 <= min <= max, got {list(self.span_words)}")


@dataclass(frozen=True)
class ObjectiveConfig:
    """The loss: a registered objective (``contrastkit objectives`` lists them) and its hyperparameters.

    ``temperature`` None keeps the objective's default; ``hparams`` holds the
    objective's other keyword arguments, passed through unchanged.
    """

    name: str = "infonce"
    temperature: float | None = None
    learnable_temperature: bool = False
    similarity: Literal["cosine", "dot"] = "cosine"
    hparams: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.temperature is None or self.temperature > 0, "temperature", "must be > 0")


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
    """

    gradcache_chunk: int | None = None
    sub_batch: int | None = None
    tile_size: int | None = None
    queue_size: int = 0
    matryoshka_dims: tuple[int, ...] = ()
    matryoshka_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _check(self.gradcache_chunk is None or self.gradcache_chunk >= 1, "gradcache_chunk", "must be >= 1")
        _check(self.tile_size is None or self.tile_size >= 1, "tile_size", "must be >= 1")
        _check(self.sub_batch is None or self.sub_batch >= 1, "sub_batch", "must be >= 1")
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
        _check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _check(all(0 <= b < 1 for b in self.betas), "betas", "must be in [0, 1)")
        _check(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        _check(0 <= self.warmup_ratio <= 1, "warmup_ratio", "must be in [0, 1]")
        _check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        _check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0 (or null to disable)")
        _check(self.grad_accumulation >= 1, "grad_accumulation", "must be >= 1")
        _check(self.temperature_lr is None or self.temperature_lr > 0, "temperature_lr", "must be > 0")


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
        _check(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"), "device", "unknown")


_RANKING_METRIC = re.compile(r"^(?:(?:ndcg|mrr|recall)@[1-9][0-9]*|map)$")


@dataclass(frozen=True)
class RetrievalEvalConfig:
    """Retrieval evaluation on a BEIR folder (``eval.retrieval``), logged as ``eval/<name>/<metric>``.

    ``path`` is a BEIR folder (``corpus.jsonl``, ``queries.jsonl``,
    ``qrels/<split>.tsv``); ``name`` defaults to the folder's name.
    ``max_queries`` keeps the first judged queries (qrels order);
    ``max_docs`` caps the corpus at the evaluated queries' judged documents
    plus the first others in file order (a cheaper, easier proxy; null: the
    whole corpus). ``metrics`` are ``ndcg@k``, ``mrr@k``, ``recall@k`` or
    ``map``. Prompt names null use ``model.anchor_prompt_name`` (queries) and
    ``model.candidate_prompt_name`` (documents).
    """

    path: str | None = None
    split: str = "test"
    name: str | None = None
    max_queries: int | None = None
    max_docs: int | None = None
    batch_size: int = 64
    metrics: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@100")
    query_prompt_name: str | None = None
    doc_prompt_name: str | None = None

    def __post_init__(self) -> None:
        _check(self.path is not None, "path", "required: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
        _check(self.max_queries is None or self.max_queries >= 1, "max_queries", "must be >= 1 (or null for all)")
        _check(self.max_docs is None or self.max_docs >= 1, "max_docs", "must be >= 1 (or null for all)")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")
        _check(len(self.metrics) > 0, "metrics", "must name at least one metric")
        bad = [m for m in self.metrics if not _RANKING_METRIC.match(m)]
        _check(not bad, "metrics", f"unknown {bad}; use ndcg@k, mrr@k, recall@k or map")


@dataclass(frozen=True)
class STSEvalConfig:
    """STS evaluation (``eval.sts``): Spearman correlation of cosine similarity with gold scores.

    ``path`` is a TSV/CSV/JSONL file of ``sentence1``, ``sentence2``,
    ``score`` (``columns`` maps other names, as in ``data.columns``);
    ``name`` defaults to the file's name without suffix; ``max_pairs``
    keeps the first pairs. Both sentences get ``prompt_name`` (null:
    ``model.anchor_prompt_name``). Logged as ``eval/<name>/spearman``.
    """

    path: str | None = None
    name: str | None = None
    columns: dict[str, str] | None = None
    max_pairs: int | None = None
    batch_size: int = 64
    prompt_name: str | None = None

    def __post_init__(self) -> None:
        _check(self.path is not None, "path", "required: a file of sentence1, sentence2, score")
        _check(self.max_pairs is None or self.max_pairs >= 2, "max_pairs", "must be >= 2 (or null for all)")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation during training, every ``train.eval_every`` steps and at the end (both optional)."""

    retrieval: RetrievalEvalConfig | None = None
    sts: STSEvalConfig | None = None


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


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """The :class:`Config` from defaults <- YAML file ``path`` (optional) <- ``overrides`` (``a.b=value``)."""
    data = read_yaml(Path(path)) if path is not None else {}
    for override in overrides:
        apply_override(data, override)
    return build(Config, data)


def config_dict(config: Config) -> dict[str, Any]:
    """The config as plain nested data (lists, dicts, scalars)."""
    return to_plain(config)  # type: ignore[return-value]


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
