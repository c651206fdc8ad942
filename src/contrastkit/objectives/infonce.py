"""InfoNCE, NT-Xent, SimCSE (unsupervised and supervised) and symmetric CLIP (``objectives.md`` section 1).

All are R1 (weighted softmax cross-entropy) on a similarity matrix; they
differ in which matrix is built from which embeddings. View objectives take
l2-normalised embeddings (the caller normalises; cosine = dot product).

Example::

    >>> import torch, torch.nn.functional as F
    >>> from contrastkit.objectives import get
    >>> z = F.normalize(torch.randn(2, 8, 16), dim=-1)     # two views of 8 items
    >>> loss = get("ntxent", temperature=0.1)(z)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from contrastkit.objectives.base import Kind, MatrixObjective, ObjectiveInfo, Status, ViewMatrixObjective
from contrastkit.objectives.reducers import RowReducer, WeightedCE
from contrastkit.objectives.registry import register
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature

_R1 = WeightedCE()


def ntxent_targets(n: int) -> Targets:
    """Targets of the 2n x 2n NT-Xent matrix ``[z1; z2] [z1; z2]^T``: partner positive, self masked."""
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return Targets(pos_index=partner[:, None], self_offset=0, num_cols=2 * n)


def simcse_targets(n: int, *, hard_negatives: bool = False, hard_negative_weight: float = 1.0) -> Targets:
    """Targets of SimCSE's ``[cos(H, H+) | cos(H, H-)]``: diagonal positive, ``log(alpha)`` bias at (i, n+i)."""
    cols = 2 * n if hard_negatives else n
    if not hard_negatives or hard_negative_weight == 1.0:
        return Targets.diagonal(n, num_cols=cols)
    if hard_negative_weight <= 0:
        raise ValueError(f"hard_negative_weight must be > 0, got {hard_negative_weight}")
    bias_index = (torch.arange(n) + n)[:, None]
    bias_value = torch.full((n, 1), math.log(hard_negative_weight), dtype=torch.float64)
    return Targets(
        pos_index=torch.arange(n)[:, None],
        bias_index=bias_index,
        bias_value=bias_value,
        num_cols=cols,
    )


def _check_views(name: str, views: Tensor, count: int | None = None) -> None:
    if views.dim() != 3 or (count is not None and views.shape[0] != count):
        want = f"({count}, n, d)" if count else "(V, n, d)"
        raise ValueError(f"{name}: expected views of shape {want}, got {tuple(views.shape)}")


@register
class InfoNCE(MatrixObjective):
    """InfoNCE: ``l_i = -L[i,t(i)] + LSE_M(L_i)`` with ``L = S / tau``; R1 with (row-normalised) ``W``.

    With several positives per row this is the row-normalised multi-positive
    R1 (SupCon's ``L_out`` form). Equals ``cross_entropy(L, t)`` when ``M``
    is all-true and ``W`` one-hot.
    """

    info = ObjectiveInfo(
        name="infonce",
        title="InfoNCE",
        status=Status.PAPER,
        citation="van den Oord et al., Representation Learning with Contrastive Predictive Coding, arXiv 1807.03748",
        kind=Kind.MATRIX,
        inputs="S (A, C) + Targets",
        reducer="R1 (row-normalised W)",
        section="1.1",
        default_temperature=1.0,
        notes="No temperature in the source: default tau = 1.0; pass temperature=0.05 for the usual setting. "
        "Rows with no positive or no valid negative are dropped (not counted in the mean).",
    )

    @property
    def reducer(self) -> RowReducer:
        return _R1


@register
class CLIP(MatrixObjective):
    """Symmetric CLIP: ``0.5 * [CE(L, diag) + CE(L^T, diag)]`` with a learnable ``exp(t)`` capped at 100.

    ``t`` is initialised to ``log(1/0.07)``; pass ``learnable_temperature=False``
    to freeze it. Each direction is R1, averaged. The cap (``max_scale``,
    None for none) keeps the gradient live and applies to a learnable
    temperature only: the trainer clamps ``t`` after each optimizer step
    (:func:`~contrastkit.objectives.temperature.clamp_temperatures`), as
    open_clip does, and a fixed temperature is used exactly as given. A
    learnable one starting below ``1 / max_scale`` is refused.
    """

    info = ObjectiveInfo(
        name="clip",
        title="CLIP (symmetric InfoNCE)",
        status=Status.PAPER,
        citation="Radford et al., Learning Transferable Visual Models From Natural Language Supervision, "
        "arXiv 2103.00020",
        kind=Kind.MATRIX,
        inputs="S (N, N) image x text + Targets (usually diagonal)",
        reducer="R1 both directions, averaged",
        section="1.5",
        default_temperature=0.07,
        notes="A learnable temperature is capped at 1/tau = 100 (max_scale) with a live gradient and clamped "
        "after each optimizer step, as open_clip does; a fixed temperature is used exactly as given.",
    )
    symmetric = True

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = True,
        max_scale: float | None = 100.0,
    ) -> None:
        cap = max_scale if learnable_temperature else None  # a fixed temperature is what the user asked for
        super().__init__(temperature=self.make_temperature(temperature, learnable=learnable_temperature, max_scale=cap))

    @property
    def reducer(self) -> RowReducer:
        return _R1


@register
class NTXent(ViewMatrixObjective):
    """NT-Xent (SimCLR): 2n anchors, partner positive, the 2n-2 other-instance views as negatives.

    ``views``: (2, n, d), l2-normalised. ``S = Z Z^T`` with ``Z = [z1; z2]``,
    ``M = not I``; mean over all 2n anchors. Tiled form:
    ``ContrastiveLoss("infonce")(Z, Z, ntxent_targets(n))``.
    """

    info = ObjectiveInfo(
        name="ntxent",
        title="NT-Xent (SimCLR)",
        status=Status.PAPER,
        citation="Chen et al., A Simple Framework for Contrastive Learning of Visual Representations, arXiv 2002.05709",
        kind=Kind.VIEWS,
        inputs="views (2, n, d), l2-normalised",
        reducer="R1 on 2n x 2n, M = not I",
        section="1.2",
        default_temperature=0.1,
    )

    @property
    def reducer(self) -> RowReducer:
        return _R1

    def matrix(self, views: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor, Targets]:
        self.refuse_labels(labels)
        _check_views("ntxent", views, 2)
        z = views.reshape(-1, views.shape[-1])
        return z, z, ntxent_targets(views.shape[1])


@register
class SimCSE(ViewMatrixObjective):
    """Unsupervised SimCSE: ``S = cos(H, H+)`` (n x n), diagonal positives, one direction.

    ``views``: (2, n, d), two dropout-noised encodings, l2-normalised. Not
    NT-Xent: no same-view negatives, not symmetrised.
    """

    info = ObjectiveInfo(
        name="simcse",
        title="SimCSE (unsupervised)",
        status=Status.CODE,
        citation="Gao, Yao and Chen, SimCSE: Simple Contrastive Learning of Sentence Embeddings, arXiv 2104.08821",
        kind=Kind.VIEWS,
        inputs="views (2, n, d): h, h+ (dropout views), l2-normalised",
        reducer="R1, diagonal W",
        section="1.3",
        default_temperature=0.05,
    )

    @property
    def reducer(self) -> RowReducer:
        return _R1

    def matrix(self, views: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor, Targets]:
        self.refuse_labels(labels)
        _check_views("simcse", views, 2)
        return views[0], views[1], simcse_targets(views.shape[1])


@register
class SimCSESup(ViewMatrixObjective):
    """Supervised SimCSE with hard negatives: ``S = [cos(H,H+) | cos(H,H-)]`` (n x 2n).

    ``views``: (3, n, d) = anchor, positive (entailment), hard negative
    (contradiction), l2-normalised. ``hard_negative_weight`` alpha adds
    ``log(alpha)`` to the anchor's own hard-negative logit only (code default 1).
    """

    info = ObjectiveInfo(
        name="simcse_sup",
        title="SimCSE (supervised, hard negatives)",
        status=Status.CODE,
        citation="Gao, Yao and Chen, SimCSE: Simple Contrastive Learning of Sentence Embeddings, arXiv 2104.08821",
        kind=Kind.VIEWS,
        inputs="views (3, n, d): anchor, positive, hard negative, l2-normalised",
        reducer="R1, diagonal W, bias log(alpha) at (i, n+i)",
        section="1.4",
        default_temperature=0.05,
    )

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        hard_negative_weight: float = 1.0,
    ) -> None:
        super().__init__(temperature=temperature, learnable_temperature=learnable_temperature)
        self.hard_negative_weight = hard_negative_weight

    @property
    def reducer(self) -> RowReducer:
        return _R1

    def matrix(self, views: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor, Targets]:
        self.refuse_labels(labels)
        _check_views("simcse_sup", views, 3)
        n = views.shape[1]
        targets = simcse_targets(n, hard_negatives=True, hard_negative_weight=self.hard_negative_weight)
        return views[0], torch.cat([views[1], views[2]]), targets
