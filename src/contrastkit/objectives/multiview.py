"""Multi-view objectives with one loss term per instance: MV-InfoNCE and MV-DHEL (``objectives.md`` section 5).

Source: "A Principled Framework for Multi-View Contrastive Learning"
(arXiv 2507.06979), official code ``pakoromilas/Multi-View-CL``
(``models/losses.py``). ``views`` is (V, n, d), l2-normalised; ``U_il`` is
view l of instance i and ``L = S / tau``.

Both use *grouped rows*: the V view-rows of instance i are pooled into one
term, so neither is a single matrix with a per-row reducer and neither has a
tiled form (call them directly). Mean over instances.

* ``mv_infonce``: ``l_i = -log( sum_{l != l'} e^{L(il, il')} / sum_l sum_{(j,m) != (i,l)} e^{L(il, jm)} )``,
  i.e. R2 with grouped rows: ``LSE_l LSE_M(L_il) - LSE_l LSE_P(L_il)``. With
  two views ``l_i = -log(e^{s_i/tau} / ((D_i^(1) + D_i^(2)) / 2))``, with
  ``D^(k)`` the NT-Xent denominators; this is *not* NT-Xent.
* ``mv_dhel``: ``l_i = -LSE_{l < l'} L(il, il') + sum_l LSE_{j != i} L(il, jl)``;
  uniformity within each view. With two views
  ``MV-DHEL = DHEL(U, V) + DHEL(V, U) + mean_i(u_i.v_i) / tau``.

The numerator of MV-InfoNCE runs over ordered view pairs (twice the
unordered sum) and MV-DHEL's over unordered pairs: the code's conventions,
kept (a constant shift).

Example::

    >>> import torch, torch.nn.functional as F
    >>> from contrastkit.objectives import multiview, get
    >>> u = F.normalize(torch.randn(4, 8, 16), dim=-1)   # 4 views of 8 instances
    >>> loss = get("mv_dhel", temperature=0.5)(u)
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrastkit.objectives.base import Kind, Objective, ObjectiveInfo, Status
from contrastkit.objectives.reducers import RowLoss, masked_lse, reduce_rows
from contrastkit.objectives.registry import register
from contrastkit.objectives.temperature import Temperature

_CITATION = "Koromilas et al., A Principled Framework for Multi-View Contrastive Learning, arXiv 2507.06979"


def _check_views(name: str, views: Tensor) -> None:
    if views.dim() != 3:
        raise ValueError(f"{name}: expected views of shape (V, n, d), got {tuple(views.shape)}")


class _MultiView(Objective):
    """Shared state: a fixed or learnable temperature (abstract)."""

    def __init__(self, *, temperature: float | Temperature | None = None, learnable_temperature: bool = False) -> None:
        super().__init__()
        self.temperature = self.make_temperature(temperature, learnable=learnable_temperature)

    def scale(self, like: Tensor) -> Tensor:
        """``1 / tau`` in ``like``'s dtype."""
        return self.temperature.scale().to(like.dtype)


@register
class MVInfoNCE(_MultiView):
    """MV-InfoNCE: one log-ratio per instance, numerator and denominator pooled over its V view-rows.

    ``views``: (V, n, d), l2-normalised. Stack ``Z`` (V n, d) view-major, take
    ``L = Z Z^T / tau`` with ``M = not I`` and ``P`` = the other views of the
    same instance; then
    ``l_i = LSE_{l} LSE_{M}(L_(il)) - LSE_{l} LSE_{P}(L_(il))``, mean over the
    n instances. With V < 2 no instance has a positive and the loss is 0.
    """

    info = ObjectiveInfo(
        name="mv_infonce",
        title="MV-InfoNCE (multi-view InfoNCE)",
        status=Status.CODE,
        citation=_CITATION,
        kind=Kind.VIEWS,
        inputs="views (V, n, d), V >= 2, l2-normalised",
        reducer="R2 with grouped rows (one term per instance)",
        section="5",
        default_temperature=0.5,
        notes="Numerator over ordered view pairs (code convention). tau = 0.5 (CIFAR/ImageNet-100 configs); "
        "0.1 for ImageNet-1K. Not NT-Xent for two views.",
    )

    def forward(self, views: Tensor) -> Tensor:
        """Scalar loss for ``views`` (V, n, d)."""
        _check_views("mv_infonce", views)
        V, n, _ = views.shape
        z = views.reshape(V * n, -1)
        L = (z @ z.T) * self.scale(z)
        inst = torch.arange(n, device=z.device).repeat(V)
        idx = torch.arange(V * n, device=z.device)
        valid = idx[:, None] != idx[None, :]
        pos = valid & (inst[:, None] == inst[None, :])
        lse_all = masked_lse(L, valid).reshape(V, n)
        lse_pos = masked_lse(L, pos).reshape(V, n)
        keep = pos.reshape(V, n, -1).any(-1).any(0)
        loss = torch.logsumexp(lse_all, dim=0) - torch.logsumexp(lse_pos, dim=0)
        return reduce_rows(RowLoss(torch.where(keep, loss, torch.zeros_like(loss)), keep))


@register
class MVDHEL(_MultiView):
    """MV-DHEL: ``l_i = -log sum_{l < l'} e^{U_il.U_il' / tau} + sum_l log sum_{j != i} e^{U_il.U_jl / tau}``.

    ``views``: (V, n, d), l2-normalised. Alignment over unordered view pairs
    of instance i; uniformity within each view separately (a view-block-
    diagonal mask), summed over views. Mean over instances; with V < 2 (no
    positive) or n < 2 (no negative) the loss is 0.
    """

    info = ObjectiveInfo(
        name="mv_dhel",
        title="MV-DHEL (multi-view decoupled hyperspherical energy loss)",
        status=Status.CODE,
        citation=_CITATION,
        kind=Kind.VIEWS,
        inputs="views (V, n, d), V >= 2, l2-normalised",
        reducer="grouped R3: alignment LSE over view pairs, per-view uniformity LSEs summed",
        section="5",
        default_temperature=0.5,
        notes="Numerator over unordered view pairs (code convention). tau = 0.5 (CIFAR/ImageNet-100 "
        "configs); 0.1 for ImageNet-1K.",
    )

    def forward(self, views: Tensor) -> Tensor:
        """Scalar loss for ``views`` (V, n, d)."""
        _check_views("mv_dhel", views)
        V, n, _ = views.shape
        s = self.scale(views)
        gram = torch.bmm(views, views.transpose(1, 2)) * s  # (V, n, n): within-view logits
        others = ~torch.eye(n, dtype=torch.bool, device=views.device)
        uniform = masked_lse(gram, others.expand(V, n, n)).sum(0)  # (n,)
        pair_logits = torch.einsum("lid,mid->ilm", views, views) * s  # (n, V, V)
        upper = torch.ones(V, V, dtype=torch.bool, device=views.device).triu(1)
        align = masked_lse(pair_logits.reshape(n, V * V), upper.reshape(1, -1).expand(n, -1))
        keep = torch.full((n,), V >= 2 and n >= 2, dtype=torch.bool, device=views.device)
        loss = torch.where(keep, uniform - align, torch.zeros_like(align))
        return reduce_rows(RowLoss(loss, keep))
