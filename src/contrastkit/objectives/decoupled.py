"""Decoupled objectives: DCL, DCLW (``objectives.md`` section 3) and DHEL (section 5).

All three remove the positive from the denominator (R3, the "decoupling"):
``l_i = -w_i L_ip + LSE_N(i)(L_i)`` with ``L = S / tau``. Views are
l2-normalised by the caller (cosine = dot product).

* ``dcl``: NT-Xent's 2n x 2n matrix (``M = not I``, partner positive), R3.
  Per anchor ``DCL_i = NTXent_i + log(1 - p_i)`` with ``p_i`` NT-Xent's
  probability of the positive, so DCL < NT-Xent and DCL can be negative.
* ``dclw``: DCL with the negative von Mises-Fisher weights
  ``w_i = 2 - n softmax_i(s_ii / sigma)`` on the positive term. The weights
  couple the rows (a softmax over the batch) and may be negative, so it is a
  plain objective with its own ``forward``, not tileable.
* ``dhel``: two views U, V; only the anchor's own view as negatives:
  ``l_i = -u_i.v_i / tau + LSE_{j != i}(u_i.u_j / tau)``, one direction (U
  anchors). The symmetric two-view form is ``mv_dhel`` with two views.

Example::

    >>> import torch, torch.nn.functional as F
    >>> from contrastkit.objectives import decoupled, get
    >>> z = F.normalize(torch.randn(2, 8, 16), dim=-1)
    >>> loss = get("dcl", temperature=0.1)(z)
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrastkit.objectives.base import Kind, Objective, ObjectiveInfo, Status, ViewMatrixObjective
from contrastkit.objectives.infonce import ntxent_targets
from contrastkit.objectives.reducers import Decoupled, RowLoss, RowReducer, masked_lse, reduce_rows
from contrastkit.objectives.registry import register
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature

_R3 = Decoupled()
_DCL_CITATION = "Yeh et al., Decoupled Contrastive Learning, arXiv 2110.06848"


def _check_two_views(name: str, views: Tensor) -> None:
    if views.dim() != 3 or views.shape[0] != 2:
        raise ValueError(f"{name}: expected views of shape (2, n, d), got {tuple(views.shape)}")


def dhel_targets(n: int) -> Targets:
    """Targets of DHEL's n x 2n matrix ``U [V; U]^T``: positive ``v_i`` (column i), negatives ``u_j``, j != i.

    Compact: the positive by index, the self column ``n + i`` by ``self_offset``
    and the other-instance columns of V by id masking (every V column has id 0
    like every row; the positive is kept, U columns have distinct ids).
    """
    col_ids = torch.cat([torch.zeros(n, dtype=torch.long), torch.arange(1, n + 1)])
    return Targets(
        pos_index=torch.arange(n)[:, None],
        mask_row_ids=torch.zeros(n, dtype=torch.long),
        mask_col_ids=col_ids,
        self_offset=n,
        num_cols=2 * n,
    )


@register
class DCL(ViewMatrixObjective):
    """DCL: ``l_k = -s(k, j(k)) / tau + LSE_{c not in {k, j(k)}}(s(k, c) / tau)`` over the 2n anchors.

    ``views``: (2, n, d), l2-normalised. ``S = Z Z^T`` with ``Z = [z1; z2]``,
    ``M = not I``, the partner ``j(k)`` is the positive (numerator only), the
    2n - 2 other-instance views are the negatives; R3, mean over the 2n anchors
    (the paper writes the sum). Rows without a negative (n = 1) are dropped.
    Tileable: ``ContrastiveLoss("dcl", tile_size=k)(views)``.
    """

    info = ObjectiveInfo(
        name="dcl",
        title="DCL (decoupled contrastive learning)",
        status=Status.PAPER,
        citation=_DCL_CITATION,
        kind=Kind.VIEWS,
        inputs="views (2, n, d), l2-normalised",
        reducer="R3 on 2n x 2n, M = not I",
        section="3",
        default_temperature=0.1,
        notes="Mean over the 2n anchors (the paper writes a sum). Two public implementations agree.",
    )

    @property
    def reducer(self) -> RowReducer:
        return _R3

    def matrix(self, views: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor, Targets]:
        self.refuse_labels(labels)
        _check_two_views("dcl", views)
        z = views.reshape(-1, views.shape[-1])
        return z, z, ntxent_targets(views.shape[1])


def dclw_weights(views: Tensor, *, sigma: float = 0.5) -> Tensor:
    """DCLW's weights ``w_i = 2 - n softmax_i(<z_i^(1), z_i^(2)> / sigma)``, shape (n,); they average to 1.

    Easy positives (high similarity) get a lower weight. Not detached here.
    """
    _check_two_views("dclw_weights", views)
    if not sigma > 0:
        raise ValueError(f"dclw: sigma must be > 0, got {sigma}")
    s = (views[0] * views[1]).sum(-1)
    return 2.0 - views.shape[1] * torch.softmax(s / sigma, dim=0)


@register
class DCLW(Objective):
    """DCLW: DCL with the positive term weighted by ``w_i`` (:func:`dclw_weights`), same for both views.

    ``l_k = -w_i s_ii / tau + LSE_{c not in {k, j(k)}}(s(k, c) / tau)`` for
    anchor k of instance i; mean over the 2n anchors. ``views``: (2, n, d),
    l2-normalised.

    Args:
        temperature: tau (default 0.1).
        learnable_temperature: train ``log(1/tau)``.
        sigma: the von Mises-Fisher weighting scale (default 0.5).
        detach_weights: treat ``w`` as constants (default True). The paper is
            silent; one public implementation detaches, another does not.

    Not row-separable (the softmax couples the rows, and weights may be
    negative), so it has no tiled form; call it directly.
    """

    info = ObjectiveInfo(
        name="dclw",
        title="DCLW (decoupled contrastive learning, vMF-weighted)",
        status=Status.PAPER,
        citation=_DCL_CITATION,
        kind=Kind.VIEWS,
        inputs="views (2, n, d), l2-normalised",
        reducer="R3 on 2n x 2n with weight w_i on the positive",
        section="3",
        default_temperature=0.1,
        notes="Weight detaching is not specified by the paper; default detach_weights=True (weights as "
        "constants). Mean over the 2n anchors (the paper writes a sum).",
    )

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        sigma: float = 0.5,
        detach_weights: bool = True,
    ) -> None:
        super().__init__()
        self.temperature = self.make_temperature(temperature, learnable=learnable_temperature)
        if not sigma > 0:
            raise ValueError(f"dclw: sigma must be > 0, got {sigma}")
        self.sigma = sigma
        self.detach_weights = detach_weights

    def forward(self, views: Tensor) -> Tensor:
        """Scalar loss for ``views`` (2, n, d)."""
        _check_two_views("dclw", views)
        n = views.shape[1]
        w = dclw_weights(views, sigma=self.sigma)
        if self.detach_weights:
            w = w.detach()
        z = views.reshape(2 * n, -1)
        L = (z @ z.T) * self.temperature.scale().to(z.dtype)
        idx = torch.arange(2 * n, device=z.device)
        partner = (idx + n) % (2 * n)
        neg = (idx[:, None] != idx[None, :]) & (partner[:, None] != idx[None, :])
        align = w.repeat(2) * L[idx, partner]
        keep = neg.any(-1)
        loss = torch.where(keep, -align + masked_lse(L, neg), torch.zeros_like(align))
        return reduce_rows(RowLoss(loss, keep))


@register
class DHEL(ViewMatrixObjective):
    """DHEL: ``l_i = -u_i.v_i / tau + log sum_{j != i} exp(u_i.u_j / tau)``, mean over i.

    ``views``: (2, n, d) = (U, V), l2-normalised. Only the anchor's own view
    supplies negatives and the positive is not in the denominator (R3 on
    ``U [V; U]^T`` with :func:`dhel_targets`). One direction (U anchors); the
    symmetric form is ``mv_dhel`` with two views:
    ``MV-DHEL = DHEL(U, V) + DHEL(V, U) + mean_i(u_i.v_i) / tau``.
    Tileable: ``ContrastiveLoss("dhel", tile_size=k)(views)``.
    """

    info = ObjectiveInfo(
        name="dhel",
        title="DHEL (decoupled hyperspherical energy loss)",
        status=Status.PAPER,
        citation="Koromilas et al., Bridging Mini-Batch and Asymptotic Analysis in Contrastive Learning: "
        "From InfoNCE to Kernel-Based Losses, arXiv 2405.18045",
        kind=Kind.VIEWS,
        inputs="views (2, n, d): U, V, l2-normalised",
        reducer="R3 on n x 2n (positive v_i; negatives u_j, j != i)",
        section="5",
        default_temperature=0.5,
        notes="One direction (U anchors). The candidate matrix holds V for the positive column only; "
        "the other V columns are masked out.",
    )

    @property
    def reducer(self) -> RowReducer:
        return _R3

    def matrix(self, views: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor, Targets]:
        self.refuse_labels(labels)
        _check_two_views("dhel", views)
        return views[0], torch.cat([views[1], views[0]]), dhel_targets(views.shape[1])
