"""SupReMix: supervised contrastive regression with mixed pairs (``objectives.md`` section 11).

Status ``partial``: the structure comes from the abstract and the method and
mask figures; no code was released. This module builds only what the spec
states and exposes every unverified choice as a parameter. **No claimed paper
defaults**: the lambda sampler, pair-selection policy, mixture roles,
tolerance and temperature defaults below are placeholders.

For rows r with continuous labels ``y`` (``same(r, c) = |y_r - y_c| <= tolerance``):

* real positives: ``same``; real negatives: the rest; self masked;
* **Mix-neg** (anchor-inclusive hard negative) of anchor r and a negative j:
  ``normalise(lambda z_r + (1 - lambda) z_j)``, lambda from ``lambda_sampler``;
* **Mix-pos** (anchor-exclusive hard positive) of two negatives bracketing r
  (``y_j < y_r < y_k``): ``normalise(lambda z_j + (1 - lambda) z_k)`` with
  ``lambda = (y_k - y_r) / (y_k - y_j)``, so the mixed label is ``y_r`` (our
  reading of the design, unverified);
* per anchor, each mixture column is a positive, a negative or not applicable
  (``M = False``: out of numerator and denominator);
* SupCon ``L_out`` (R1, row-normalised W) over real + mixture columns, mean
  over anchors with a positive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Generator, Tensor

from contrastkit.objectives.base import Kind, ObjectiveInfo, Status, ViewMatrixObjective
from contrastkit.objectives.reducers import RowReducer, WeightedCE
from contrastkit.objectives.registry import register
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature

PairPolicy = Literal["all", "sampled"]
LambdaSampler = Callable[[int, Generator | None], Tensor]


class MixtureRoles(str, Enum):
    """Which anchors a mixture column applies to (unverified; both are readings of the mask figure)."""

    OWNER = "owner"  # only the anchor it was built for (Mix-pos: positive, Mix-neg: negative); N/A elsewhere
    LABEL_RULE = "label_rule"  # owner as above; every other anchor compares the mixed label with its own


def uniform_lambda(m: int, generator: Generator | None = None) -> Tensor:
    """Placeholder Mix-neg sampler: ``lambda ~ U(0, 1)`` (not a paper value)."""
    return torch.rand(m, generator=generator)


@dataclass(frozen=True)
class Mixtures:
    """m mixture columns ``normalise(lam * z[left] + (1 - lam) * z[right])``, each built for anchor ``owner``.

    All fields (m,): ``left``, ``right``, ``owner`` long row indices, ``lam``
    float, ``positive`` bool (True: Mix-pos, False: Mix-neg). Mixed label:
    ``lam * y[left] + (1 - lam) * y[right]``.
    """

    left: Tensor
    right: Tensor
    lam: Tensor
    owner: Tensor
    positive: Tensor

    @staticmethod
    def cat(parts: list[Mixtures]) -> Mixtures:
        """The columns of ``parts`` one after the other."""
        return Mixtures(*(torch.cat([getattr(p, f) for p in parts]) for f in _FIELDS))

    def to(self, device: torch.device | str) -> Mixtures:
        """A copy on ``device``."""
        return Mixtures(*(getattr(self, f).to(device) for f in _FIELDS))


_FIELDS = ("left", "right", "lam", "owner", "positive")


def _pick(mask: Tensor, policy: PairPolicy, num_sampled: int, generator: Generator | None) -> Tensor:
    """(owner, other) index pairs from a bool (R, R) mask: all, or up to ``num_sampled`` per row without replacement."""
    if policy == "all":
        return mask.nonzero()
    noise = torch.rand(mask.shape, generator=generator).to(mask.device).masked_fill(~mask, -1.0)
    k = min(num_sampled, mask.shape[1])
    score, col = noise.topk(k, dim=-1)
    row = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(col)
    keep = score >= 0
    return torch.stack([row[keep], col[keep]], -1)


def mix_neg_columns(
    y: Tensor,
    same: Tensor,
    *,
    lambda_sampler: LambdaSampler = uniform_lambda,
    policy: PairPolicy = "all",
    num_sampled: int = 1,
    generator: Generator | None = None,
) -> Mixtures:
    """Mix-neg columns: anchor r with each (or ``num_sampled`` random) real negative j, lambda from the sampler."""
    pairs = _pick(~same, policy, num_sampled, generator)
    lam = lambda_sampler(pairs.shape[0], generator).to(device=y.device, dtype=y.dtype)
    positive = torch.zeros(pairs.shape[0], dtype=torch.bool, device=y.device)
    return Mixtures(pairs[:, 0], pairs[:, 1], lam, pairs[:, 0], positive)


def mix_pos_columns(
    y: Tensor,
    same: Tensor,
    *,
    policy: PairPolicy = "all",
    num_sampled: int = 1,
    generator: Generator | None = None,
) -> Mixtures:
    """Mix-pos columns: negatives j, k with ``y_j < y_r < y_k``; ``lambda = (y_k - y_r)/(y_k - y_j)``.

    ``"all"`` enumerates every bracket (O(R^3) for R rows: small batches);
    ``"sampled"`` draws ``num_sampled`` brackets per anchor uniformly (with
    replacement; j and k independently, since the brackets are
    ``below(r) x above(r)``).
    """
    below = ~same & (y[None, :] < y[:, None])
    above = ~same & (y[None, :] > y[:, None])
    if policy == "all":
        r, j, k = (below[:, :, None] & above[:, None, :]).nonzero().unbind(-1)
    else:
        has = below.any(-1) & above.any(-1)
        R = y.shape[0]
        rows = torch.arange(R, device=y.device)[has].repeat_interleave(num_sampled)
        draw = lambda m: torch.multinomial(m[rows].double().cpu(), 1, generator=generator)[:, 0]  # noqa: E731
        r = rows
        j = draw(below).to(y.device) if rows.numel() else rows
        k = draw(above).to(y.device) if rows.numel() else rows
    lam = (y[k] - y[r]) / (y[k] - y[j])
    return Mixtures(j, k, lam, r, torch.ones_like(r, dtype=torch.bool))


def mixture_targets(
    y: Tensor, same: Tensor, mixtures: Mixtures, *, tolerance: float, roles: MixtureRoles
) -> tuple[Tensor, Tensor]:
    """``(W, M)`` of shape (R, R + m): real block (same-label positives, self masked) then mixture columns."""
    R = y.shape[0]
    eye = torch.eye(R, dtype=torch.bool, device=y.device)
    owned = torch.arange(R, device=y.device)[:, None] == mixtures.owner[None, :]
    if MixtureRoles(roles) is MixtureRoles.OWNER:
        valid_mix = owned
        pos_mix = owned & mixtures.positive[None, :]
    else:
        label = mixtures.lam * y[mixtures.left] + (1 - mixtures.lam) * y[mixtures.right]
        by_rule = (y[:, None] - label[None, :]).abs() <= tolerance
        valid_mix = torch.ones_like(owned)
        pos_mix = torch.where(owned, mixtures.positive[None, :].expand_as(owned), by_rule)
    valid = torch.cat([~eye, valid_mix], 1)
    pos = torch.cat([same & ~eye, pos_mix], 1)
    return pos.to(y.dtype), valid


@register
class SupReMix(ViewMatrixObjective):
    """SupReMix (``partial``): SupCon ``L_out`` over real and mixed (Mix-neg / Mix-pos) candidates.

    Args:
        temperature: tau (placeholder 1.0: no claimed paper value).
        learnable_temperature: train ``log(1/tau)``.
        tolerance: real positives are ``|y_i - y_j| <= tolerance`` (0: equality,
            for binned labels).
        mix_neg, mix_pos: build Mix-neg / Mix-pos columns.
        lambda_sampler: ``(m, generator) -> (m,)`` Mix-neg lambdas (placeholder U(0,1)).
        pair_policy: ``"all"`` pairs/brackets or ``"sampled"`` (``num_sampled`` per anchor and type).
        roles: :class:`MixtureRoles` (placeholder ``owner``).
        detach_mixtures: treat mixture columns as constants (default False: unverified).
        seed: seeds this module's own ``torch.Generator``.

    Call as ``supremix(views, labels, mixtures=None)``: ``views`` (V, n, d) or
    (n, d), l2-normalised; ``labels`` (n,) float. Rows are view-major, and
    explicit :class:`Mixtures` index those V*n rows. Row-separable given the
    draws: ``ContrastiveLoss("supremix", tile_size=k)(views, labels, mixtures)``.
    """

    info = ObjectiveInfo(
        name="supremix",
        title="SupReMix (supervised contrastive regression with mixup pairs)",
        status=Status.PARTIAL,
        citation="Wu et al., Mixup Your Own Pairs, arXiv 2309.16633 (revised as SupReMix)",
        kind=Kind.LABELLED,
        inputs="views (V, n, d) or embeddings (n, d), l2-normalised; continuous labels (n,)",
        reducer="R1 (row-normalised W) over real + mixture columns",
        section="11",
        default_temperature=1.0,
        notes="Partial: no released code. No claimed paper defaults: tolerance, lambda sampler U(0,1), pair "
        "policy, mixture roles (owner only), gradient through mixtures and tau=1 are placeholders. The Mix-pos "
        "lambda (y_k - y_i)/(y_k - y_j) is our reading of the design.",
    )

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        tolerance: float = 0.0,
        mix_neg: bool = True,
        mix_pos: bool = True,
        lambda_sampler: LambdaSampler = uniform_lambda,
        pair_policy: PairPolicy = "all",
        num_sampled: int = 1,
        roles: MixtureRoles | str = MixtureRoles.OWNER,
        detach_mixtures: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(temperature=temperature, learnable_temperature=learnable_temperature)
        if pair_policy not in ("all", "sampled"):
            raise ValueError(f"supremix: pair_policy must be 'all' or 'sampled', got {pair_policy!r}")
        if tolerance < 0 or num_sampled < 1:
            raise ValueError("supremix: tolerance must be >= 0 and num_sampled >= 1")
        self.tolerance = tolerance
        self.use_mix_neg, self.use_mix_pos = mix_neg, mix_pos
        self.lambda_sampler = lambda_sampler
        self.pair_policy: PairPolicy = pair_policy
        self.num_sampled = num_sampled
        self.roles = MixtureRoles(roles)
        self.detach_mixtures = detach_mixtures
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def reducer(self) -> RowReducer:
        return WeightedCE()

    def same_label(self, y: Tensor) -> Tensor:
        """``|y_r - y_c| <= tolerance`` (R, R)."""
        return (y[:, None] - y[None, :]).abs() <= self.tolerance

    def draw_mixtures(self, y: Tensor, generator: Generator | None = None) -> Mixtures:
        """Mixture columns for row labels ``y`` (R,) under this module's policy."""
        generator = self.generator if generator is None else generator
        same = self.same_label(y)
        empty = torch.zeros(0, dtype=torch.long, device=y.device)
        parts = [Mixtures(empty, empty, y[:0], empty, empty.bool())]
        policy, sampled = self.pair_policy, self.num_sampled
        if self.use_mix_neg:
            parts.append(
                mix_neg_columns(
                    y, same, lambda_sampler=self.lambda_sampler, policy=policy, num_sampled=sampled, generator=generator
                )
            )
        if self.use_mix_pos:
            parts.append(mix_pos_columns(y, same, policy=policy, num_sampled=sampled, generator=generator))
        return Mixtures.cat(parts)

    def matrix(
        self, views: Tensor, labels: Tensor | None = None, mixtures: Mixtures | None = None
    ) -> tuple[Tensor, Tensor, Targets]:
        if labels is None:
            raise TypeError("supremix needs per-row labels")
        if views.dim() == 2:
            views = views[None]
        if views.dim() != 3 or labels.dim() != 1 or labels.shape[0] != views.shape[1]:
            raise ValueError(
                f"supremix: expected views (V, n, d) and labels (n,), got {tuple(views.shape)}, {tuple(labels.shape)}"
            )
        V, n, d = views.shape
        z = views.reshape(V * n, d)
        label_dtype = torch.promote_types(labels.dtype, torch.promote_types(z.dtype, torch.float32))
        y = labels.to(device=z.device, dtype=label_dtype).repeat(V)
        mixtures = self.draw_mixtures(y) if mixtures is None else mixtures.to(z.device)
        lam = mixtures.lam.to(device=z.device, dtype=z.dtype)[:, None]
        mixed = F.normalize(lam * z[mixtures.left] + (1 - lam) * z[mixtures.right], dim=-1)
        if self.detach_mixtures:
            mixed = mixed.detach()
        W, M = mixture_targets(y, self.same_label(y), mixtures, tolerance=self.tolerance, roles=self.roles)
        return z, torch.cat([z, mixed]), Targets(pos=W, valid=M)
