"""Hooks for objectives whose formulas could not be recovered (``objectives.md`` sections 13 and 14).

Status ``unavailable`` for both: only the extension points the specification
allows are implemented, and neither presents itself as the paper's method.

* ``cement``: the margin hook of Concrete Jungle (arXiv 2604.13313). R1 on
  ``L = S / tau + B`` with ``B`` from a user-supplied margin function; there is
  no default margin, so no "Cement" preset exists (formula unverified).
* ``debcse``: DebCSE (arXiv 2309.07396). A :class:`PropensitySampler`
  selects (anchor, positive, hard negative) triplets by inverse-propensity-
  weighted sampling with a pluggable propensity model; the selected triplets
  are trained with supervised SimCSE (``simcse_sup``). No reference sampling
  formula is claimed.

Example::

    >>> import torch
    >>> from contrastkit.objectives.hooks import PropensitySampler
    >>> sampler = PropensitySampler(lambda ids: torch.ones(len(ids), 4))
    >>> pool = torch.ones(2, 4, dtype=torch.bool)
    >>> g = torch.Generator().manual_seed(0)
    >>> trip = sampler.sample(torch.tensor([0, 1]), pool, pool, generator=g)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Generator, Tensor

from contrastkit.objectives.base import Kind, Objective, ObjectiveInfo, Status
from contrastkit.objectives.infonce import SimCSESup
from contrastkit.objectives.reducers import WeightedCE, reduce_rows
from contrastkit.objectives.registry import register
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature, as_temperature

MarginFn = Callable[..., Tensor]
"""``margin(S (A, C), targets, *margin_inputs) -> B (A, C)``: an additive logit margin (added after ``/ tau``)."""

PropensityModel = Callable[[Tensor], Tensor]
"""``propensity(anchor_ids (A,)) -> (A, N)``: the propensity of every pool item for each anchor (> 0 in the pool)."""


@register
class Cement(Objective):
    """Margin hook of the Concrete Jungle paper (status unavailable: the Cement formula is unverified).

    ``forward(S (A, C), targets, *margin_inputs)`` computes
    ``B = margin(S, targets, *margin_inputs)`` (A, C) and applies R1 to
    ``L = S / tau + B (+ targets.bias)``, mean over rows with a positive. This is
    NOT the Cement loss: the paper's margin (calibrated by psycholinguistic
    concreteness scores) could not be recovered, so ``margin`` is required and
    has no default; ``margin_inputs`` carry whatever it needs (e.g. per-caption
    concreteness). The margin sees ``S`` with its graph: detach inside the
    function for a constant margin. With a zero margin this is ``infonce``.
    """

    info = ObjectiveInfo(
        name="cement",
        title="Cement margin hook (formula unavailable)",
        status=Status.UNAVAILABLE,
        citation="Concrete Jungle: Towards Concreteness Paved Contrastive Negative Mining for Compositional "
        "Understanding, arXiv 2604.13313",
        kind=Kind.HOOK,
        inputs="S (A, C) + Targets (+ inputs of the margin function)",
        reducer="R1 on L = S/tau + B, B from a user margin function",
        section="14",
        default_temperature=1.0,
        notes="unavailable: only the additive-margin hook; the Cement formula is unverified and no preset is shipped. "
        "tau = 1.0 placeholder.",
    )

    def __init__(
        self,
        *,
        margin: MarginFn,
        temperature: float | Temperature = 1.0,
        learnable_temperature: bool = False,
    ) -> None:
        super().__init__()
        if not callable(margin):
            raise TypeError("cement: margin must be a callable (S, targets, *inputs) -> B of shape (A, C)")
        if learnable_temperature and not isinstance(temperature, Temperature):
            temperature = Temperature(float(temperature), learnable=True)
        self.margin = margin
        self.temperature = as_temperature(temperature)

    def forward(self, S: Tensor, targets: Targets, *margin_inputs: Tensor) -> Tensor:
        if tuple(S.shape) != targets.shape:
            raise ValueError(f"cement: S has shape {tuple(S.shape)} but targets have {targets.shape}")
        B = self.margin(S, targets, *margin_inputs)
        if tuple(B.shape) != tuple(S.shape):
            raise ValueError(f"cement: the margin function returned shape {tuple(B.shape)}, expected {tuple(S.shape)}")
        W, M, bias = targets.block(dtype=S.dtype, device=S.device)
        L = S * self.temperature.scale().to(S.dtype) + B
        if bias is not None:
            L = L + bias
        return reduce_rows(WeightedCE().rows(L, W, M))


class Triplets(NamedTuple):
    """Selected training triplets as pool indices, each (T,) long."""

    anchor: Tensor
    positive: Tensor
    negative: Tensor

    def gather(self, embeddings: Tensor) -> Tensor:
        """``(3, T, d)`` views (anchor, positive, negative) from pool ``embeddings`` (N, d), for ``simcse_sup``."""
        return torch.stack([embeddings[self.anchor], embeddings[self.positive], embeddings[self.negative]])


def _ipw_draw(weights: Tensor, generator: Generator | None) -> Tensor:
    """One index per row drawn with probability proportional to ``weights`` (rows with positive mass)."""
    if weights.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=weights.device)
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


class PropensitySampler:
    """Inverse-propensity-weighted selection of (anchor, positive, hard negative) triplets (DebCSE structure).

    ``propensity(anchor_ids) -> (A, N)`` is the pluggable model: the
    propensity of each of the N pool items for each anchor (e.g. from surface
    features such as length and lexical overlap, and semantic similarity).
    :meth:`sample` draws one positive from ``positive_pool`` and one hard
    negative from ``negative_pool`` per anchor, with probability proportional
    to ``1 / propensity`` inside the pool. The anchor itself is never its own
    negative (it is removed from the negative pool); it may be its own
    positive only if ``positive_pool`` allows it. Anchors with an empty pool
    are skipped. Draws use the explicit ``generator`` (deterministic by seed).
    No reference formula of the paper is claimed (status unavailable).
    """

    def __init__(self, propensity: PropensityModel) -> None:
        self.propensity = propensity

    @staticmethod
    def weights(propensity: Tensor, pool: Tensor) -> Tensor:
        """``1 / propensity`` inside ``pool`` (A, N) bool, 0 elsewhere (float64); the pool's entries must be > 0."""
        if propensity.shape != pool.shape:
            raise ValueError(
                f"PropensitySampler: propensity has shape {tuple(propensity.shape)}, pool {tuple(pool.shape)}"
            )
        inside = propensity[pool]
        if bool((~torch.isfinite(inside) | (inside <= 0)).any()):
            raise ValueError("PropensitySampler: propensities inside the pool must be finite and > 0")
        p = torch.where(pool, propensity, torch.ones_like(propensity)).double()
        return torch.where(pool, 1.0 / p, torch.zeros_like(p))

    def sample(
        self,
        anchor_ids: Tensor,
        positive_pool: Tensor,
        negative_pool: Tensor,
        *,
        generator: Generator | None = None,
    ) -> Triplets:
        """Triplets for ``anchor_ids`` (A,) long, with eligibility masks ``positive_pool``, ``negative_pool`` (A, N)."""
        A, N = positive_pool.shape
        if anchor_ids.shape != (A,) or negative_pool.shape != (A, N):
            raise ValueError("PropensitySampler.sample: anchor_ids (A,), positive_pool and negative_pool (A, N)")
        not_self = torch.arange(N, device=anchor_ids.device)[None, :] != anchor_ids[:, None]
        negative_pool = negative_pool & not_self
        keep = positive_pool.any(-1) & negative_pool.any(-1)
        propensity = self.propensity(anchor_ids).detach()
        positive = _ipw_draw(self.weights(propensity, positive_pool)[keep], generator)
        negative = _ipw_draw(self.weights(propensity, negative_pool)[keep], generator)
        return Triplets(anchor_ids[keep], positive, negative)


@register
class DebCSE(Objective):
    """DebCSE hook (status unavailable): supervised SimCSE on triplets chosen by a :class:`PropensitySampler`.

    ``forward(views (3, n, d))`` with ``views = triplets.gather(embeddings)``:
    exactly ``simcse_sup`` (R1 over ``[cos(H, H+) | cos(H, H-)]``, tau = 0.05).
    What makes DebCSE (the debiasing selection) lives in the sampler, whose
    propensity model is the caller's; the paper's formulas are unavailable.
    """

    info = ObjectiveInfo(
        name="debcse",
        title="DebCSE (propensity-sampled triplets + supervised SimCSE)",
        status=Status.UNAVAILABLE,
        citation="DebCSE: Rethinking Unsupervised Contrastive Sentence Embedding Learning in the Debiasing "
        "Perspective, arXiv 2309.07396 (CIKM 2023)",
        kind=Kind.HOOK,
        inputs="views (3, n, d) from PropensitySampler triplets: anchor, positive, hard negative",
        reducer="R1 (section 1.4) on sampled triplets",
        section="13",
        default_temperature=0.05,
        notes="unavailable: the sampling formulas could not be recovered; the propensity model is pluggable and no "
        "reference formula is claimed. The loss is simcse_sup.",
    )

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        hard_negative_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.loss = SimCSESup(
            temperature=temperature,
            learnable_temperature=learnable_temperature,
            hard_negative_weight=hard_negative_weight,
        )

    def forward(self, views: Tensor) -> Tensor:
        return self.loss(views)
