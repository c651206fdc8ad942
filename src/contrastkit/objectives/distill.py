"""Distillation objectives: a bi-encoder learns a teacher's scores over each query's group of documents.

A query's *group* is its own positives and hard negatives, the documents a
teacher (a cross-encoder, or another bi-encoder) has scored. The teacher's
scores travel in :class:`TeacherTargets`, a :class:`Targets` with three
more (A, G) fields: the group's candidate columns (``-1`` pads), the
teacher's score of each and whether it is a positive. Student logits are
the usual ``L = S / tau`` of the in-batch matrix, so the in-batch InfoNCE
and the distillation term read one matrix.

* ``margin_mse`` (Hofstaetter et al.): row loss = mean over the row's
  (positive p, negative n) pairs of ``((L_p - L_n) - (T_p - T_n))^2`` with
  ``T = teacher / teacher_temperature``. With one positive, ``tau = 1``,
  dot similarity and equal group sizes this is sentence-transformers'
  ``MarginMSELoss``.
* ``listwise_kl``: row loss = ``KL(softmax(T_g) || softmax(L_g))`` over the
  row's group ``g`` (times ``tau^2`` with ``temperature_squared=True``, as
  sentence-transformers' ``DistillKLDivLoss`` and Hinton et al. do).

Both take ``infonce_weight`` (default 0) and ``weight`` (default 1): the
row loss is ``weight * distill_i + infonce_weight * infonce_i``, where
``infonce_i`` is the in-batch InfoNCE row of the same logits and targets
(own positives, same-group positives masked) and ``distill_i`` is 0 for a
row without a group to distil (no teacher scores, or too few documents).
The loss is the mean over the rows that either term keeps. Not row-separable
(dense only): the group term gathers a few columns per row, never the tiles.

Example::

    >>> import torch
    >>> from contrastkit.objectives import get
    >>> from contrastkit.objectives.distill import TeacherTargets
    >>> S = torch.randn(2, 4)
    >>> t = TeacherTargets.from_groups(
    ...     [[0, 2], [1, 3]], [[5.0, -1.0], [3.0, 2.5]], [[True, False], [True, False]], num_cols=4
    ... )
    >>> loss = get("listwise_kl", temperature=0.05, teacher_temperature=1.0)(S, t)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from contrastkit.objectives.base import Kind, MatrixObjective, ObjectiveInfo, Status
from contrastkit.objectives.reducers import LossParts, RowLoss, RowReducer, WeightedCE, row_parts
from contrastkit.objectives.registry import register
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature

_R1 = WeightedCE()
GROUP_FIELDS = ("group_index", "group_score", "group_positive")


@dataclass(frozen=True, eq=False)
class TeacherTargets(Targets):
    """:class:`Targets` plus each row's group: candidate columns, teacher scores, positive flags.

    ``group_index`` (A, G) long with ``-1`` padding, ``group_score`` (A, G)
    float (the teacher's scores; padding entries are ignored) and
    ``group_positive`` (A, G) bool. All three or none.
    """

    group_index: Tensor | None = None
    group_score: Tensor | None = None
    group_positive: Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        index, score, positive = self.group_index, self.group_score, self.group_positive
        if index is None or score is None or positive is None:
            if not (index is None and score is None and positive is None):
                raise ValueError(f"TeacherTargets: {', '.join(GROUP_FIELDS)} must be given together")
            return
        rows, cols = self.shape
        if index.dim() != 2 or index.shape[0] != rows:
            raise ValueError(f"TeacherTargets.group_index: expected (A, G) with A={rows}, got {tuple(index.shape)}")
        for name, value in (("group_score", score), ("group_positive", positive)):
            if tuple(value.shape) != tuple(index.shape):
                raise ValueError(f"TeacherTargets.{name}: shape must equal group_index's {tuple(index.shape)}")
        if index.numel() and (int(index.max()) >= cols or int(index.min()) < -1):
            raise ValueError(f"TeacherTargets.group_index: column indices must lie in [-1, {cols})")
        if positive.dtype != torch.bool:
            raise ValueError(f"TeacherTargets.group_positive: expected a bool tensor, got {positive.dtype}")
        if not bool(torch.isfinite(score[index >= 0]).all()):
            raise ValueError("TeacherTargets.group_score: teacher scores must be finite")

    @classmethod
    def from_groups(
        cls,
        index: Sequence[Sequence[int]] | Tensor,
        score: Sequence[Sequence[float]] | Tensor,
        positive: Sequence[Sequence[bool]] | Tensor,
        *,
        num_cols: int,
        targets: Targets | None = None,
    ) -> TeacherTargets:
        """Groups on top of ``targets`` (default: each row's positives of ``positive``, as index lists)."""
        index = torch.as_tensor(index, dtype=torch.long)
        score = torch.as_tensor(score, dtype=torch.float64)
        positive = torch.as_tensor(positive, dtype=torch.bool) & (index >= 0)
        if targets is None:
            width = max(int(positive.sum(1).max()) if positive.numel() else 0, 1)
            pos = torch.full((index.shape[0], width), -1, dtype=torch.long)
            for i in range(index.shape[0]):
                cols = index[i][positive[i]]
                pos[i, : len(cols)] = cols
            targets = Targets.from_lists(pos, num_cols=num_cols)
        base = {name: getattr(targets, name) for name in Targets.__dataclass_fields__}
        return cls(**base, group_index=index, group_score=score, group_positive=positive)

    @property
    def has_groups(self) -> bool:
        """Whether any row has a scored group."""
        return self.group_index is not None and bool((self.group_index >= 0).any())

    def base(self) -> Targets:
        """The plain :class:`Targets` part (without the groups)."""
        return Targets(**{name: getattr(self, name) for name in Targets.__dataclass_fields__})

    def with_base(self, base: Targets, rows: slice) -> TeacherTargets:
        """``base`` (e.g. ``row_slice(self.base(), rows)``) with the groups' ``rows``."""
        groups = {f: None if getattr(self, f) is None else getattr(self, f)[rows] for f in GROUP_FIELDS}
        return TeacherTargets(**{name: getattr(base, name) for name in Targets.__dataclass_fields__}, **groups)


def group_logits(L: Tensor, targets: Targets) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """Per row, the student logits of its group (A, G), the teacher scores, positive flags and member mask.

    None when ``targets`` carry no groups. Padding entries hold 0.
    """
    if not isinstance(targets, TeacherTargets):
        return None
    index, score, positive = targets.group_index, targets.group_score, targets.group_positive
    if index is None or score is None or positive is None:
        return None
    index = index.to(L.device)
    member = index >= 0
    student = L.gather(1, index.clamp(min=0)).masked_fill(~member, 0.0)
    teacher = score.to(device=L.device, dtype=L.dtype).masked_fill(~member, 0.0)
    return student, teacher, positive.to(L.device) & member, member


class _Distill(MatrixObjective):
    """Shared hyperparameters and the combination with InfoNCE; subclasses give ``distill_rows``.

    Args:
        temperature: the student's tau (``L = S / tau``), shared with the InfoNCE term.
        teacher_temperature: the teacher's scores are divided by it.
        weight: the distillation term's weight.
        infonce_weight: the in-batch InfoNCE term's weight (0: distillation only).
        learnable_temperature: train the student's ``log(1/tau)``.
    """

    needs_teacher: ClassVar[bool] = True

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        teacher_temperature: float = 1.0,
        weight: float = 1.0,
        infonce_weight: float = 0.0,
        learnable_temperature: bool = False,
    ) -> None:
        super().__init__(temperature=temperature, learnable_temperature=learnable_temperature)
        if not 0 < teacher_temperature < float("inf"):
            raise ValueError(f"teacher_temperature must be a positive finite number, got {teacher_temperature}")
        if weight < 0 or infonce_weight < 0 or weight + infonce_weight == 0:
            raise ValueError(f"weight ({weight}) and infonce_weight ({infonce_weight}) must be >= 0, not both 0")
        self.teacher_temperature = float(teacher_temperature)
        self.weight, self.infonce_weight = float(weight), float(infonce_weight)

    @property
    def reducer(self) -> RowReducer:
        return _R1  # the InfoNCE term's reducer

    @property
    def row_separable(self) -> bool:
        return False

    def distill_rows(self, student: Tensor, teacher: Tensor, positive: Tensor, member: Tensor) -> RowLoss:
        """The distillation loss of each row's group (A,) and which rows have one."""
        raise NotImplementedError

    def one_direction(self, S: Tensor, targets: Targets) -> LossParts:
        W, M, B = targets.block(dtype=S.dtype, device=S.device)
        L = self.logits(S, B)
        groups = group_logits(L, targets)
        if groups is None and self.infonce_weight == 0:
            raise ValueError(
                f"{self.info.name}: no teacher scores (TeacherTargets with groups); give the data "
                "positive_scores/negative_scores, or set infonce_weight > 0 to train rows without them"
            )
        total = torch.zeros(S.shape[0], dtype=S.dtype, device=S.device)
        keep = torch.zeros(S.shape[0], dtype=torch.bool, device=S.device)
        if groups is not None and self.weight:
            rows = self.distill_rows(*groups)
            total = total + self.weight * torch.where(rows.keep, rows.loss, torch.zeros_like(rows.loss))
            keep = keep | rows.keep
        if self.infonce_weight:
            rows = _R1.rows(L, W, M)
            total = total + self.infonce_weight * torch.where(rows.keep, rows.loss, torch.zeros_like(rows.loss))
            keep = keep | rows.keep
        return row_parts(RowLoss(total, keep))


_INPUTS = "S (A, C) + TeacherTargets (each row's group: columns, teacher scores, positive flags)"


@register
class MarginMSE(_Distill):
    """MarginMSE: mean over (positive, negative) pairs of ``((L_p - L_n) - (T_p - T_n))^2``; see the module."""

    info = ObjectiveInfo(
        name="margin_mse",
        title="MarginMSE distillation",
        status=Status.PAPER,
        citation="Hofstaetter et al., Improving Efficient Neural Ranking Models with Cross-Architecture "
        "Knowledge Distillation, arXiv 2010.02666",
        kind=Kind.MATRIX,
        inputs=_INPUTS,
        reducer="per-row mean squared margin error (+ infonce_weight x R1)",
        section="distillation",
        default_temperature=1.0,
        notes="Student margins of S / tau, teacher margins of scores / teacher_temperature; rows without a "
        "(positive, negative) pair are dropped. Parity with sentence-transformers' MarginMSELoss is tested.",
    )

    def distill_rows(self, student: Tensor, teacher: Tensor, positive: Tensor, member: Tensor) -> RowLoss:
        negative = member & ~positive
        teacher = teacher / self.teacher_temperature
        # (A, G, G): pair (p, n) of each row
        diff = (student[:, :, None] - student[:, None, :]) - (teacher[:, :, None] - teacher[:, None, :])
        pairs = positive[:, :, None] & negative[:, None, :]
        count = pairs.sum((1, 2))
        sq = torch.where(pairs, diff.square(), torch.zeros_like(diff)).sum((1, 2))
        return RowLoss(sq / count.clamp(min=1).to(sq.dtype), count > 0)


@register
class ListwiseKL(_Distill):
    """Listwise KL: ``KL(softmax(T_g) || softmax(L_g))`` over each row's group; see the module."""

    info = ObjectiveInfo(
        name="listwise_kl",
        title="Listwise KL distillation",
        status=Status.PAPER,
        citation="Hinton et al., Distilling the Knowledge in a Neural Network, arXiv 1503.02531; as listwise "
        "retrieval distillation in Lin et al., Distilling Dense Representations for Ranking using Tightly-Coupled "
        "Teachers, arXiv 2010.11386",
        kind=Kind.MATRIX,
        inputs=_INPUTS,
        reducer="per-row KL over the group (+ infonce_weight x R1)",
        section="distillation",
        default_temperature=1.0,
        notes="Separate student (temperature) and teacher (teacher_temperature) temperatures; "
        "temperature_squared=True multiplies by tau^2 as sentence-transformers' DistillKLDivLoss does (parity "
        "tested). Rows with fewer than two scored documents are dropped.",
    )

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        teacher_temperature: float = 1.0,
        weight: float = 1.0,
        infonce_weight: float = 0.0,
        temperature_squared: bool = False,
        learnable_temperature: bool = False,
    ) -> None:
        super().__init__(
            temperature=temperature,
            teacher_temperature=teacher_temperature,
            weight=weight,
            infonce_weight=infonce_weight,
            learnable_temperature=learnable_temperature,
        )
        self.temperature_squared = bool(temperature_squared)

    def distill_rows(self, student: Tensor, teacher: Tensor, positive: Tensor, member: Tensor) -> RowLoss:
        # an empty row softmaxes over its padding (finite, dropped below) so no NaN reaches the gradient
        inside = member | ~member.any(-1, keepdim=True)
        log_s = student.masked_fill(~inside, float("-inf")).log_softmax(-1)
        log_t = (teacher / self.teacher_temperature).masked_fill(~inside, float("-inf")).log_softmax(-1)
        zero = torch.zeros_like(log_s)
        log_s, log_t = torch.where(inside, log_s, zero), torch.where(inside, log_t, zero)
        loss = torch.where(member, log_t.exp() * (log_t - log_s), zero).sum(-1)
        if self.temperature_squared:
            loss = loss / self.scale().to(loss.dtype).square()
        return RowLoss(loss, member.sum(-1) >= 2)
