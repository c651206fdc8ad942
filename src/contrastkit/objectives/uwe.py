"""UWE: many-to-many bidirectional InfoNCE on a bipartite graph (``objectives.md`` section 18.1).

Source: "Unified Work Embeddings: Contrastive Learning of a Bidirectional
Multi-task Ranker" (arXiv 2511.07969). Status ``partial``: only the structure
is known; the paper's normalisation is unverified.

A batch holds A queries (e.g. jobs) and C targets (e.g. skills) from a
task-specific bipartite graph; ``S`` (A, C) is their similarity (the paper's
token-level soft late interaction is a similarity function, computed by the
caller). ``W[i, c] = 1`` iff (i, c) is an edge of the graph, including edges
to other rows' items in the batch (:func:`batch_adjacency`), so an in-batch
graph neighbour is never a negative. The loss is a multi-positive R1 in both
directions (query -> target on ``S``, target -> query on ``S^T``), averaged.

Example::

    >>> import torch
    >>> from contrastkit.objectives import get
    >>> from contrastkit.objectives.uwe import batch_adjacency
    >>> t = batch_adjacency(torch.tensor([10, 11]), torch.tensor([7, 8]), torch.tensor([[10, 7], [11, 8], [10, 8]]))
    >>> loss = get("uwe", temperature=0.05)(torch.randn(2, 2), t)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.objectives.base import Kind, MatrixObjective, ObjectiveInfo, Status
from contrastkit.objectives.reducers import RowLoss, RowReducer, WeightedCE, masked_lse
from contrastkit.objectives.registry import register
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature


class UWENormalization(str, Enum):
    """How a row's several positives are combined (which one the paper uses is unverified)."""

    SUPCON = "supcon"  # (a) row-normalised W, other positives in the denominator
    PER_POSITIVE = "per_positive"  # (b) one InfoNCE per positive, the row's other positives masked out


def batch_adjacency(row_ids: Tensor, col_ids: Tensor, edges: Tensor) -> Targets:
    """In-batch adjacency: ``W[i, c] = 1`` iff ``(row_ids[i], col_ids[c])`` is one of ``edges``.

    ``row_ids`` (A,) and ``col_ids`` (C,) are global (non-negative) item ids of
    the batch's queries and targets; ``edges`` (E, 2) lists the graph's
    (query id, target id) edges. Every edge between two batch items counts,
    whichever rows brought them in.
    """
    row_ids, col_ids, edges = (torch.as_tensor(x, dtype=torch.long) for x in (row_ids, col_ids, edges))
    if edges.dim() != 2 or edges.shape[1] != 2:
        raise ValueError(f"batch_adjacency: edges must have shape (E, 2), got {tuple(edges.shape)}")
    if any(bool((x < 0).any()) for x in (row_ids, col_ids, edges)):
        raise ValueError("batch_adjacency: ids must be non-negative")
    width = int(torch.cat([col_ids, edges[:, 1], torch.zeros(1, dtype=torch.long)]).max()) + 1
    keys = row_ids[:, None] * width + col_ids[None, :]
    pos = torch.isin(keys, edges[:, 0] * width + edges[:, 1])
    return Targets(pos=pos.float())


@dataclass(frozen=True)
class PerPositiveCE(RowReducer):
    """Normalisation (b): ``l_i = sum_{p in P(i)} Wn[i,p] * (-L_ip + LSE_{N(i) + {p}}(L_i))``.

    Each positive is an InfoNCE target with the row's other positives masked
    out; ``-L_ip + LSE_{N + p} = softplus(LSE_N - L_ip)``. Rows with a positive
    and a valid negative are kept (without a negative every term is 0). Not streamable:
    the per-positive terms need ``LSE_N`` before they can be summed.
    """

    def rows(self, L: Tensor, W: Tensor, M: Tensor) -> RowLoss:
        pos = W > 0
        keep = pos.any(-1) & (M & ~pos).any(-1)
        lse_neg = masked_lse(L, M & ~pos)
        per = F.softplus(torch.where(pos, lse_neg[:, None] - L, torch.full_like(L, float("-inf"))))
        wn = W / torch.where(keep, W.sum(-1), torch.ones_like(W[:, 0]))[:, None]
        loss = (wn * torch.where(pos, per, torch.zeros_like(per))).sum(-1)
        return RowLoss(torch.where(keep, loss, torch.zeros_like(loss)), keep)

    @property
    def streamable(self) -> bool:
        return False


@register
class UWE(MatrixObjective):
    """UWE many-to-many InfoNCE: multi-positive R1 in both directions, averaged (status partial).

    ``forward(S (A, C), targets)`` with ``targets`` carrying the in-batch
    bipartite adjacency (:func:`batch_adjacency`). ``normalization``:

    * ``"supcon"`` (default, unverified): R1 with row-normalised ``W``, the
      other positives in the denominator (SupCon ``L_out`` form).
    * ``"per_positive"``: one InfoNCE term per positive with the row's other
      positives masked out, averaged over the row's positives
      (:class:`PerPositiveCE`; not tileable).

    Each direction is the mean over its rows with at least one edge; the two
    directions are averaged. The default ``"supcon"`` is row-separable, so
    ``ContrastiveLoss("uwe", tile_size=k)(queries, targets_emb, adjacency)``
    is exact. tau: placeholder 1.0 (not given by the source).
    """

    info = ObjectiveInfo(
        name="uwe",
        title="UWE many-to-many bidirectional InfoNCE",
        status=Status.PARTIAL,
        citation="Unified Work Embeddings: Contrastive Learning of a Bidirectional Multi-task Ranker, arXiv 2511.07969",
        kind=Kind.MATRIX,
        inputs="S (A, C) queries x targets + Targets with the in-batch bipartite adjacency as W",
        reducer="R1 (row-normalised W) or per-positive R1, both directions averaged",
        section="18.1",
        default_temperature=1.0,
        notes="partial: structure only. Normalisation (a) supcon is the default and unverified; (b) per_positive "
        "is the alternative. Placeholder defaults (tau = 1.0).",
    )
    symmetric = True

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        normalization: UWENormalization | str = UWENormalization.SUPCON,
    ) -> None:
        super().__init__(temperature=temperature, learnable_temperature=learnable_temperature)
        self.normalization = UWENormalization(normalization)
        self._reducer = WeightedCE() if self.normalization is UWENormalization.SUPCON else PerPositiveCE()

    @property
    def reducer(self) -> RowReducer:
        return self._reducer
