"""From a batch of examples to a backpropagated loss: layouts, GradCache, queue, Matryoshka, data parallelism.

:class:`BatchLoss` owns the loss and its state (a learnable temperature, the
memory queue) and knows how an objective consumes a :class:`Batch`:

* **matrix** objectives (``infonce``, ``clip``, ``siglip``, ...) score anchors
  against the batch's candidates (every example's positives, then every
  example's negatives) with ``Batch.targets()`` (own positives, same-group
  positives masked). A queue (``scale.queue_size``) appends past candidates
  as extra negatives. Distillation objectives (``margin_mse``,
  ``listwise_kl``: ``needs_teacher``) get the same targets plus each
  teacher-scored example's group (:func:`contrastkit.encoders.teacher.teacher_targets`).
* **view** objectives (``simcse``, ``ntxent``, ``simcse_sup``, ``supcon``,
  ...) get ``views`` (V, n, d): view 0 is the anchor, the others its
  positives and negatives in order (every example must have the same
  number of texts); anchor-only examples give V = 2 copies of the anchor,
  which differ by dropout (unsupervised SimCSE). Labelled objectives also
  get the examples' labels as ids.
* **score** objectives (``cosent``, ``codiemb``: CoDiEmb's STS list losses)
  get the similarity of each graded pair (anchor, its one positive) and the
  pairs' gold scores (:class:`ScoresLoss`); every example needs a ``score``.
  The whole (gathered) batch is one list, so under data parallelism every
  rank computes the global loss, as for views.

The step runs the encoder on each side (anchors, candidates; or each view;
a :class:`~contrastkit.encoders.dual.DualEncoder` embeds anchors / view 0
with its anchor tower and the rest with its candidate tower)
and backpropagates, either directly or through GradCache
(``scale.gradcache_chunk``, chunks of length-sorted rows), or in
length-sorted sub-batches (``scale.sub_batch``: less padding). With ``torch.distributed`` the batch is the
global batch: this rank encodes its rows (``local_rows``), candidates are
gathered with gradient in the global column order and the loss is
``global_parts_loss`` of this rank's rows (matrix objectives). Where rows
are not the only direction (symmetric objectives such as ``clip``, whose
candidate rows need every anchor) and for views, the anchors/views are
gathered too and the whole global loss is computed on every rank. DDP's
gradient mean makes both exact: each rank's embeddings receive the sum over
ranks of the gradients, i.e. ``world * dL/dE_r``, and the mean over ranks of
``world * dL/dE_r dE_r/dtheta`` is ``dL/dtheta``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from contrastkit.data.examples import Batch, Example
from contrastkit.encoders.base import Encoder, Features
from contrastkit.encoders.dual import tokenize_side
from contrastkit.encoders.subbatch import (
    embed_sub_batches,
    inverse_permutation,
    length_order,
    select_rows,
    trim_padding,
)
from contrastkit.encoders.teacher import teacher_targets
from contrastkit.objectives.base import Kind, Objective, ScaledObjective, ViewMatrixObjective
from contrastkit.objectives.distill import TeacherTargets
from contrastkit.objectives.registry import REGISTRY
from contrastkit.objectives.similarity import Similarity, prepare
from contrastkit.objectives.targets import Targets
from contrastkit.scale.distributed import (
    gather_candidates,
    gather_with_grad,
    global_parts_loss,
    rank_rows,
    row_slice,
    world,
)
from contrastkit.scale.gradcache import GradCache
from contrastkit.scale.loss import ContrastiveLoss
from contrastkit.scale.matryoshka import MatryoshkaLoss
from contrastkit.scale.queue import MemoryQueue
from contrastkit.training.config import ObjectiveConfig, ScaleConfig
from contrastkit.training.rerank import check_pair_objective, pair_side
from contrastkit.training.schema import ConfigError

Forward = Callable[[Features], Tensor]


class ViewLoss(nn.Module):
    """A plain view objective (``Kind.VIEWS``: ``objective(views)``) as a training loss, dense only.

    For objectives that are not one matrix and one reducer (DCLW, MV-InfoNCE,
    MV-DHEL, CACR, GroCo, WhitenedCSE, align/uniform): views are prepared for
    the similarity (l2-normalised for cosine) and passed whole. No tiling; under
    data parallelism the gathered views give every rank the whole global loss.
    """

    def __init__(self, objective: Objective, similarity: str) -> None:
        super().__init__()
        self.objective = objective
        self.similarity = Similarity(similarity)

    def forward(self, views: Tensor, *extra: object) -> Tensor:
        return self.objective(prepare(views, self.similarity), *extra)


class ScoresLoss(nn.Module):
    """A list objective (``Kind.SCORES``: ``objective(pred, gold)``) as a training loss, dense only.

    ``forward(anchors (n, d), positives (n, d), gold (n,))``: ``pred_i`` is the
    similarity of anchor i and its positive (cosine: both l2-normalised).
    """

    def __init__(self, objective: Objective, similarity: str) -> None:
        super().__init__()
        self.objective = objective
        self.similarity = Similarity(similarity)

    def forward(self, anchors: Tensor, positives: Tensor, gold: Tensor) -> Tensor:
        pred = (prepare(anchors, self.similarity) * prepare(positives, self.similarity)).sum(dim=-1)
        return self.objective(pred, gold)


def build_contrastive_loss(objective: ObjectiveConfig, scale: ScaleConfig) -> ContrastiveLoss | ViewLoss | ScoresLoss:
    """The training loss from the config; config problems become :class:`ConfigError` on their key.

    Matrix and view-matrix objectives get a :class:`ContrastiveLoss` (dense or
    tiled); other view objectives a :class:`ViewLoss`; score (list) objectives a :class:`ScoresLoss`.
    """
    try:
        cls = REGISTRY.cls(objective.name)
    except KeyError as err:
        raise ConfigError("objective.name", str(err.args[0] if err.args else err)) from None
    plain_views = cls.info.kind is Kind.VIEWS and not issubclass(cls, ScaledObjective)
    scores = cls.info.kind is Kind.SCORES
    if not issubclass(cls, ScaledObjective) and not plain_views and not scores:
        raise ConfigError(
            "objective.name",
            f"{objective.name!r} takes {cls.info.inputs}: the trainer trains matrix, view and score objectives only",
        )
    hparams = dict(objective.hparams)
    if objective.temperature is not None:
        hparams["temperature"] = objective.temperature
    if objective.learnable_temperature is not None:
        check_learnable(cls, objective.name)
        hparams["learnable_temperature"] = objective.learnable_temperature
    try:
        instance = REGISTRY.get(objective.name, **hparams)
    except (TypeError, ValueError) as err:
        raise ConfigError("objective.hparams", str(err)) from None
    if plain_views or scores:
        if scale.tile_size is not None:
            raise ConfigError("scale.tile_size", f"{objective.name!r} is not row-separable; tile_size must be null")
        return (ScoresLoss if scores else ViewLoss)(instance, objective.similarity)
    try:
        return ContrastiveLoss(instance, similarity=objective.similarity, tile_size=scale.tile_size)
    except ValueError as err:
        raise ConfigError("scale.tile_size", str(err)) from None


def check_learnable(cls: type, name: str) -> None:
    """Objective ``cls`` takes ``learnable_temperature``.

    Raises:
        ConfigError: at ``objective.learnable_temperature`` when ``cls`` has no temperature to train.
    """
    if "learnable_temperature" not in inspect.signature(cls).parameters:
        raise ConfigError("objective.learnable_temperature", f"{name!r} has no temperature to train or freeze")


def label_index(examples: Sequence[Example]) -> dict[int | str, int]:
    """Each distinct ``Example.label`` -> an id, in order of first appearance."""
    index: dict[int | str, int] = {}
    for ex in examples:
        if ex.label is not None and ex.label not in index:
            index[ex.label] = len(index)
    return index


class BatchLoss(nn.Module):
    """The training loss of one batch; see the module docstring.

    Args:
        objective, scale: the config sections.
        dim: the encoder's embedding size (for the queue and Matryoshka checks).
        labels: ``label_index`` of the training examples (labelled objectives).
        anchor_prompt, candidate_prompt: prefixes for anchors / candidates.
        pairs: the encoder is a cross-encoder (:mod:`contrastkit.training.rerank`).
    """

    def __init__(
        self,
        objective: ObjectiveConfig,
        scale: ScaleConfig,
        *,
        dim: int,
        labels: dict[int | str, int] | None = None,
        anchor_prompt: str | None = None,
        candidate_prompt: str | None = None,
        pairs: bool = False,
    ) -> None:
        super().__init__()
        self.loss = build_contrastive_loss(objective, scale)
        obj = self.loss.objective
        self.pairs = pairs  # a cross-encoder: groups of (query, document) scores (contrastkit.training.rerank)
        if pairs:
            check_pair_objective(obj, scale, world()[1])
        self.views = isinstance(obj, ViewMatrixObjective) or isinstance(self.loss, ViewLoss)
        self.scores = isinstance(self.loss, ScoresLoss)
        # the global loss is computed whole on every rank (views, lists, symmetric objectives), not in row parts
        self.replicated = self.views or self.scores or (isinstance(obj, ScaledObjective) and obj.symmetric)
        self.labelled = obj.info.kind is Kind.LABELLED
        self.teacher = bool(getattr(obj, "needs_teacher", False))
        if scale.queue_size and self.teacher:
            raise ConfigError("scale.queue_size", f"{obj.info.name!r} distils teacher scores of the batch's own rows")
        self.labels = dict(labels or {})
        self.anchor_prompt, self.candidate_prompt = anchor_prompt, candidate_prompt
        if scale.queue_size and (self.views or self.scores):
            what = "views" if self.views else "scored pairs"
            raise ConfigError("scale.queue_size", f"a queue needs a matrix objective; {obj.info.name!r} takes {what}")
        self.queue = MemoryQueue(scale.queue_size, dim) if scale.queue_size else None
        too_big = [d for d in scale.matryoshka_dims if d > dim]
        if too_big:
            raise ConfigError("scale.matryoshka_dims", f"{too_big} exceed the embedding size {dim}")
        dims, weights = scale.matryoshka_dims, scale.matryoshka_weights
        embeddings = (0,) if self.views else (0, 1)
        self.matryoshka = MatryoshkaLoss(self._base_loss, dims, weights, embeddings=embeddings) if dims else None
        self.gradcache = GradCache(scale.gradcache_chunk) if scale.gradcache_chunk else None
        self.sub_batch = scale.sub_batch
        self._pending: list[Tensor] = []

    def check_examples(self, examples: Sequence[Example]) -> None:
        """Raise :class:`ConfigError` when the objective cannot consume these examples."""
        name = self.loss.objective.info.name
        if not examples:
            raise ConfigError("data.train", "no training examples")
        if self.views:
            counts = {len(ex.texts()) for ex in examples}
            if len(counts) > 1:
                raise ConfigError(
                    "objective.name",
                    f"{name!r} takes views: every example needs the same number of texts, found {sorted(counts)}",
                )
            with_label = sum(ex.label is not None for ex in examples)
            if self.labelled and 0 < with_label < len(examples):
                raise ConfigError("data.train", f"{name!r}: {len(examples) - with_label} examples have no label")
        elif self.scores:
            bad = next((i for i, ex in enumerate(examples) if ex.score is None or len(ex.positives) != 1), None)
            if bad is not None:
                raise ConfigError(
                    "objective.name",
                    f"{name!r} trains on graded pairs (anchor, one positive, score; data kind: graded), "
                    f"but example {bad} has {len(examples[bad].positives)} positives and score {examples[bad].score}",
                )
        elif not any(ex.positives for ex in examples):
            raise ConfigError(
                "objective.name",
                f"{name!r} scores anchors against positives, but the examples have none; "
                "use a view objective (e.g. simcse) for anchor-only data",
            )
        elif self.teacher and not self._distils_any(examples):
            raise ConfigError(
                "data.train",
                f"{name!r} distils teacher scores, but no example has positive_scores/negative_scores "
                "(write them with `contrastkit mine --rescore`, or set objective.hparams.infonce_weight)",
            )

    def _distils_any(self, examples: Sequence[Example]) -> bool:
        """Whether a distillation objective has something to train on: scored examples, or an InfoNCE term."""
        return bool(getattr(self.loss.objective, "infonce_weight", 0)) or any(ex.teacher_scored for ex in examples)

    def _base_loss(self, *inputs: object) -> Tensor:
        if self.replicated or world()[1] == 1:
            return self.loss(*inputs)
        assert isinstance(self.loss, ContrastiveLoss)  # views and score lists are replicated
        return global_parts_loss(self.loss.parts(*inputs)) * self.loss.objective.loss_factor()

    def _loss(self, *inputs: object) -> Tensor:
        return self.matryoshka(*inputs) if self.matryoshka is not None else self._base_loss(*inputs)

    def forward(
        self,
        encoder: Encoder,
        forward: Forward,
        batch: Batch,
        *,
        weight: float = 1.0,
        scale_loss: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Embed ``batch`` (this rank's rows of it), backpropagate ``weight * loss``; returns the detached loss.

        ``encoder`` tokenizes; ``forward`` embeds (the encoder itself, or its
        DDP / autocast wrapper). Parameter gradients are accumulated.
        """
        device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
        rows = rank_rows(len(batch), *world())
        local = Batch(batch.examples[rows]) if world()[1] > 1 else batch
        if self.pairs:
            side, closure = pair_side(encoder, batch, self.loss.objective, device)
            sides = [side]
        elif self.views:
            sides, closure = self._views(encoder, batch, local, device)
        elif self.scores:
            sides, closure = self._scores(encoder, batch, local, device)
        else:
            sides, closure = self._matrix(encoder, batch, rows, local, device)

        def weighted(embeddings: list[Tensor]) -> Tensor:
            return weight * closure(embeddings)

        if self.gradcache is not None:
            loss = self._gradcache(forward, sides, weighted, scale_loss)
        else:
            if self.sub_batch is not None:
                loss = weighted([embed_sub_batches(forward, f, self.sub_batch) for f in sides])
            else:
                loss = weighted([forward(f) for f in sides])
            (loss if scale_loss is None else scale_loss(loss)).backward()
        return loss.detach() / weight

    def _gradcache(self, forward: Forward, sides: list[Features], closure, scale_loss) -> Tensor:
        """GradCache over each side's rows sorted by length, every chunk trimmed to its longest text."""
        orders = [length_order(f) for f in sides]
        sorted_sides = [f if o is None else select_rows(f, o) for f, o in zip(sides, orders, strict=True)]
        inverses = [None if o is None else inverse_permutation(o) for o in orders]

        def unsorted(embeddings: list[Tensor]) -> Tensor:
            pairs = zip(embeddings, inverses, strict=True)
            return closure([e if inv is None else e[inv.to(e.device)] for e, inv in pairs])

        def trimmed(features: Features) -> Tensor:
            return forward(trim_padding(features))

        assert self.gradcache is not None
        return self.gradcache.loss(trimmed, sorted_sides, unsorted, scale_loss=scale_loss)

    def _matrix(self, encoder: Encoder, batch: Batch, rows: slice, local: Batch, device: torch.device):
        sides = [
            _to(tokenize_side(encoder, local.anchors, "anchor", self.anchor_prompt), device),
            _to(tokenize_side(encoder, list(local.candidates), "candidate", self.candidate_prompt), device),
        ]
        size = world()[1]
        targets = teacher_targets(batch) if self.teacher else batch.targets()
        if size > 1 and not self.replicated:
            targets = _row_slice(targets, rows)
        targets = targets.to(device)
        num_pos = sum(len(ex.positives) for ex in local.examples)

        def closure(embeddings: list[Tensor]) -> Tensor:
            anchors, candidates = embeddings
            if size > 1:
                candidates = gather_candidates(candidates, num_pos)
                if self.replicated:
                    anchors = gather_with_grad(anchors)
            t: Targets = targets
            if self.queue is not None:
                self._pending.append(candidates.detach())
                candidates, t = self.queue.extend(candidates, t)
            return self._loss(anchors, candidates, t)

        return sides, closure

    def _views(self, encoder: Encoder, batch: Batch, local: Batch, device: torch.device):
        texts = [ex.texts() for ex in local.examples]
        prompts = [self.anchor_prompt] + [self.candidate_prompt] * (len(texts[0]) - 1)
        if len(texts[0]) == 1:  # anchor-only: two dropout views of the same prompted text
            texts, prompts = [(t[0], t[0]) for t in texts], [self.anchor_prompt] * 2
        sides = [
            _to(tokenize_side(encoder, [t[v] for t in texts], "anchor" if v == 0 else "candidate", p), device)
            for v, p in enumerate(prompts)
        ]
        labels: tuple[Tensor, ...] = ()
        if self.labelled and batch.examples[0].label is not None:
            given = [ex.label for ex in batch.examples if ex.label is not None]
            if len(given) != len(batch.examples):
                raise ValueError("a labelled objective needs a label on every example of the batch")
            labels = (torch.tensor([self.labels[label] for label in given], device=device),)

        def closure(embeddings: list[Tensor]) -> Tensor:
            views = torch.stack(embeddings)  # (V, n_local, d)
            if world()[1] > 1:
                V, n, d = views.shape
                views = gather_with_grad(views.transpose(0, 1).reshape(n, V * d))
                views = views.reshape(-1, V, d).transpose(0, 1)
            return self._loss(views, *labels)

        return sides, closure

    def _scores(self, encoder: Encoder, batch: Batch, local: Batch, device: torch.device):
        sides = [
            _to(tokenize_side(encoder, local.anchors, "anchor", self.anchor_prompt), device),
            _to(tokenize_side(encoder, [ex.positives[0] for ex in local.examples], "candidate", self.candidate_prompt),
                device),
        ]  # fmt: skip
        scores = [float(ex.score) for ex in batch.examples if ex.score is not None]
        if len(scores) != len(batch.examples):
            raise ValueError("a score objective needs a score on every example of the batch")
        gold = torch.tensor(scores, device=device)

        def closure(embeddings: list[Tensor]) -> Tensor:
            anchors, positives = embeddings
            if world()[1] > 1:
                anchors, positives = gather_with_grad(anchors), gather_with_grad(positives)
            return self._loss(anchors, positives, gold)

        return sides, closure

    def commit(self) -> None:
        """After a good optimizer step: enqueue this step's candidates (queue only)."""
        if self.queue is not None:
            for candidates in self._pending:
                self.queue.enqueue(candidates)
        self._pending = []

    def discard(self) -> None:
        """After a skipped step: forget this step's candidates."""
        self._pending = []


def _row_slice(targets: Targets, rows: slice) -> Targets:
    """``row_slice`` that keeps a :class:`TeacherTargets`' groups (their rows sliced too)."""
    if isinstance(targets, TeacherTargets):
        return targets.with_base(row_slice(targets.base(), rows), rows)
    return row_slice(targets, rows)


def _to(features: Features, device: torch.device) -> Features:
    return {k: v.to(device) for k, v in features.items()}
