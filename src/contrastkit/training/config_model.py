"""The ``model`` section of the training config (and its ``lora`` and ``candidate`` sub-sections)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from contrastkit.training.schema import require as _check


def _poolings(kind: str) -> tuple[str, ...]:
    """The poolings a model of ``kind`` reads (``auto``: any of them); imported on use (the encoders are heavy)."""
    from contrastkit.encoders.pooling import POOLING_MODES
    from contrastkit.encoders.prompt_template import DECODER_POOLINGS

    found = {"text": POOLING_MODES, "decoder": DECODER_POOLINGS}
    return tuple(dict.fromkeys((*POOLING_MODES, *DECODER_POOLINGS))) if kind == "auto" else found.get(kind, ())


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
    such as ``all-MiniLM-L6-v2``. ``max_length`` is the truncation while
    training (and evaluating during training); ``save_max_length`` is the
    ``max_seq_length`` written into ``final/``, where sentence-transformers
    and ``contrastkit eval`` truncate the trained model; null keeps the base
    model's own inference length, so a shorter training length never leaks
    into the saved model. ``anchor_prompt_name`` and
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

    ``kind: cross`` trains a cross-encoder (``contrastkit.encoders.cross``):
    ``path`` is a saved one, a causal LM (a yes/no reranker) or an encoder
    body that gets a new one-logit head; each example's query and documents
    are scored as pairs (``contrastkit.training.rerank``).
    """

    path: str | None = None
    kind: Literal["auto", "text", "decoder", "static", "pixel", "image", "cross"] = "auto"
    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None
    save_max_length: int | None = None
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
        if self.pooling is not None:
            poolings = _poolings(self.kind)
            _check(
                self.pooling in poolings,
                "pooling",
                f"unknown pooling {self.pooling!r} for kind {self.kind!r}; choose one of {', '.join(poolings)}"
                if poolings
                else f"does not apply to kind {self.kind!r}",
            )
        _check(self.save_max_length is None or self.save_max_length > 0, "save_max_length", "must be > 0")
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
