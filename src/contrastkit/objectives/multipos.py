"""Multiple positive passages: JointLH, SumMargLH, LSEPair, Rand1LH (``objectives.md`` section 2).

Source: "Training Dense Retrievers with Multiple Positive Passages"
(arXiv 2602.12727), formulas from the authors' released Tevatron-based code.
Row i of ``S`` holds query i against every passage in the batch; ``P(i)`` are
its own positives, every other valid column is a negative (including other
queries' positives: the code's behaviour, kept).

Paper/code notes kept visible: the code has no temperature (default tau = 1
on raw inner products, i.e. ``similarity="dot"``); JointLH and LSEPair are not
divided by the number of positives unless ``per_positive=True``; Rand1LH
never shows the other positives (they are masked out, not negatives).

With one positive per row all four equal InfoNCE.
"""

from __future__ import annotations

import torch
from torch import Generator, Tensor

from contrastkit.objectives.base import Kind, MatrixObjective, ObjectiveInfo, Status
from contrastkit.objectives.reducers import (
    NegSelector,
    PairwiseLSE,
    PositiveMarginal,
    PosSelector,
    RowReducer,
    WeightedCE,
)
from contrastkit.objectives.registry import register
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature

_CITATION = "Training Dense Retrievers with Multiple Positive Passages, arXiv 2602.12727 (released Tevatron code)"


def _info(name: str, title: str, reducer: str, notes: str = "") -> ObjectiveInfo:
    return ObjectiveInfo(
        name=name,
        title=title,
        status=Status.CODE,
        citation=_CITATION,
        kind=Kind.MATRIX,
        inputs="S (A, C) query x passages + Targets with several positives per row",
        reducer=reducer,
        section="2",
        default_temperature=1.0,
        notes=notes,
    )


@register
class JointLH(MatrixObjective):
    """JointLH: ``l_i = m_i LSE_C(L_i) - sum_{p in P(i)} L_ip``; each positive is its own target.

    R1 with unnormalised W: the positives compete with each other.
    ``per_positive=True`` divides by ``m_i`` (code flag, default off).
    """

    info = _info("jointlh", "JointLH (joint likelihood)", "R1 (unnormalised W)")

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        per_positive: bool = False,
    ) -> None:
        super().__init__(temperature=temperature, learnable_temperature=learnable_temperature)
        self._reducer = WeightedCE(normalize=False, per_positive=per_positive)

    @property
    def reducer(self) -> RowReducer:
        return self._reducer


@register
class SumMargLH(MatrixObjective):
    """SumMargLH: ``l_i = -log(sum_{p in P(i)} e^{L_ip} / sum_{c in C} e^{L_ic})`` (R2)."""

    info = _info("summarglh", "SumMargLH (sum-marginal likelihood)", "R2")

    @property
    def reducer(self) -> RowReducer:
        return PositiveMarginal()


@register
class LSEPair(MatrixObjective):
    """LSEPair: ``l_i = log(1 + sum_p sum_n exp(L_in - L_ip))`` (R4).

    Selectors as in the code: ``neg`` in {"all", "max"}, ``pos`` in
    {"all", "min", "max"}; ``per_positive`` divides by ``m_i``. Rows with no
    negative are dropped.
    """

    info = _info("lsepair", "LSEPair (pairwise log-sum-exp)", "R4")

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        neg: NegSelector = "all",
        pos: PosSelector = "all",
        per_positive: bool = False,
    ) -> None:
        super().__init__(temperature=temperature, learnable_temperature=learnable_temperature)
        self._reducer = PairwiseLSE(neg=neg, pos=pos, per_positive=per_positive)

    @property
    def reducer(self) -> RowReducer:
        return self._reducer


def draw_one_positive(targets: Targets, generator: Generator | None = None, *, block_rows: int = 4096) -> Targets:
    """Keep one positive per row, drawn uniformly; mask the row's other positives (``M[i,p] = False``).

    Returns compact targets: the drawn column as ``pos_index`` and the other
    positives as ``exclude_index``, keeping the original validity and bias.
    Rows are materialised ``block_rows`` at a time.
    """
    drawn, others = [], []
    for r0 in range(0, targets.shape[0], block_rows):
        W = targets.block(slice(r0, r0 + block_rows)).pos
        pos = W > 0
        noise = torch.rand(W.shape, generator=generator).masked_fill(~pos, -1.0)
        pick = noise.argmax(-1)
        has = pos.any(-1)
        drawn.append(torch.where(has, pick, torch.full_like(pick, -1)))
        rest = pos.clone()
        rest[torch.arange(W.shape[0]), pick] = False
        others.append(rest)
    rest = torch.cat(others)
    width = max(int(rest.sum(-1).max()) if rest.numel() else 0, 1)
    cols = torch.arange(rest.shape[1]).expand_as(rest)
    order = torch.where(rest, cols, torch.full_like(cols, rest.shape[1])).sort(-1).values[:, :width]
    exclude = torch.where(order < rest.shape[1], order, torch.full_like(order, -1))
    return Targets(
        pos_index=torch.cat(drawn)[:, None],
        valid=targets.valid,
        exclude_index=_merge_index(targets.exclude_index, exclude),
        mask_row_ids=targets.mask_row_ids,
        mask_col_ids=targets.mask_col_ids,
        self_offset=targets.self_offset,
        bias=targets.bias,
        bias_index=targets.bias_index,
        bias_value=targets.bias_value,
        num_rows=targets.num_rows,
        num_cols=targets.num_cols,
    )


def _merge_index(a: Tensor | None, b: Tensor) -> Tensor:
    return b if a is None else torch.cat([a, b], dim=1)


@register
class Rand1LH(MatrixObjective):
    """Rand1LH: in-batch InfoNCE on one positive drawn per query; the other positives are masked out.

    The draw uses this module's own ``torch.Generator`` seeded by ``seed``
    (deterministic), or the ``generator`` passed to :meth:`draw`.
    """

    info = _info("rand1lh", "Rand1LH (one random positive)", "R1 on a drawn one-hot W, other positives masked")

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(temperature=temperature, learnable_temperature=learnable_temperature)
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def reducer(self) -> RowReducer:
        return WeightedCE()

    def prepare_targets(self, targets: Targets) -> Targets:
        return draw_one_positive(targets, self.generator)
