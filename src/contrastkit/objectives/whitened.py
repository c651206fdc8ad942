"""WhitenedCSE: shuffled group whitening + a sum of SimCSE losses (``objectives.md`` section 12).

Shuffled group whitening (SGW) of a batch X (N x D): permute the D features,
split them into G contiguous groups of D/G, centre each group over the batch,
apply ZCA ``W_g = U (Lambda + eps)^{-1/2} U^T`` from ``Sigma_g = X_g^T X_g / N``,
undo the permutation. Each view is whitened with its own statistics and its
own permutation; the different shuffles make the positives.

Loss over ``m = num_pos`` views ``h^0 .. h^{m-1}``::

    L = sum_{k=1..m-1} mean_i [ -log( e^{cos(h_i^0, h_i^k)/tau} / sum_j e^{cos(h_i^0, h_j^k)/tau} ) ]

a **sum** over positive views of one-direction SimCSE InfoNCE (R1, diagonal W).

Code/paper notes kept visible: the official code rebuilds the covariance as a
new leaf tensor, so no gradient flows through ``W_g`` (``grad_through_whitening
= False``, the default, is code parity; the map is then a constant linear map
of the centred features); the code has no eps (here ``eps = 1e-5`` on the
eigenvalues, and ``N > D/G`` is required); the code splits views by contiguous
thirds of instance-major rows, here each view's batch is whitened separately
(the paper's intent).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Generator, Tensor

from contrastkit.objectives.base import Kind, Objective, ObjectiveInfo, Status
from contrastkit.objectives.reducers import WeightedCE, reduce_rows
from contrastkit.objectives.registry import register
from contrastkit.objectives.temperature import Temperature


def shuffled_group_whitening(
    x: Tensor,
    groups: int,
    generator: Generator | None = None,
    eps: float = 1e-5,
    grad_through_whitening: bool = False,
    *,
    permutation: Tensor | None = None,
) -> Tensor:
    """SGW of ``x`` (N, D) with G = ``groups`` groups; returns (N, D).

    Args:
        x: the batch (pooled encodings before the training MLP).
        groups: G; D must be divisible by G and N > D/G (else the covariance is singular).
        generator: draws the feature permutation (ignored when ``permutation`` is given).
        eps: added to the (clamped non-negative) eigenvalues of each ``Sigma_g``.
        grad_through_whitening: False (code parity): ``W_g`` is a constant, the
            gradient flows only through the centring and the product; True:
            also through the eigendecomposition.
        permutation: explicit permutation of the D features (long (D,)).

    Each group's output has covariance ``U diag(lam / (lam + eps)) U^T``, i.e.
    the identity up to eps.
    """
    if x.dim() != 2:
        raise ValueError(f"shuffled_group_whitening: expected x of shape (N, D), got {tuple(x.shape)}")
    rows, dim = x.shape
    if groups < 1 or dim % groups:
        raise ValueError(f"shuffled_group_whitening: D={dim} is not divisible by groups={groups}")
    size = dim // groups
    if rows <= size:
        raise ValueError(
            f"shuffled_group_whitening: needs more rows than features per group (N={rows} <= D/G={size}); "
            "the group covariance would be singular: use a larger batch or more groups"
        )
    if permutation is None:
        permutation = torch.randperm(dim, generator=generator)
    if permutation.shape != (dim,):
        raise ValueError(
            f"shuffled_group_whitening: permutation must have shape ({dim},), got {tuple(permutation.shape)}"
        )
    permutation = permutation.to(x.device)
    grouped = x[:, permutation].reshape(rows, groups, size).transpose(0, 1)  # (G, N, D/G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    stats = centred if grad_through_whitening else centred.detach()
    sigma = stats.transpose(1, 2) @ stats / rows
    evals, evecs = torch.linalg.eigh(sigma)
    inv_sqrt = (evals.clamp(min=0) + eps).rsqrt()
    whitening = (evecs * inv_sqrt[:, None, :]) @ evecs.transpose(1, 2)
    out = (centred @ whitening).transpose(0, 1).reshape(rows, dim)
    return out[:, torch.argsort(permutation)]


@register
class WhitenedCSE(Objective):
    """WhitenedCSE: SGW of each view, optional training head, sum over k of SimCSE InfoNCE (view 0 vs view k).

    Args:
        temperature: tau (code: 0.05).
        learnable_temperature: train ``log(1/tau)``.
        num_pos: m, the number of views (code: 3, i.e. 2 positive views).
        groups: G (code: 128 for D = 768).
        eps: eigenvalue floor of SGW.
        grad_through_whitening: see :func:`shuffled_group_whitening` (default False, code parity).
        seed: seeds this module's own ``torch.Generator`` for the permutations.

    Call as ``whitenedcse(views, head=None, generator=None, permutations=None)``:
    ``views`` (m, N, D) are m encodings (dropout passes) of the same N
    sentences, **before** the training MLP; ``head`` is the caller's training
    MLP (dense + tanh), applied after SGW (the objective does not own it);
    ``permutations`` (m, D) are explicit draws. Unlike most objectives this
    one computes the cosine itself: its own transform sits between the
    caller's encodings and the similarity.
    """

    info = ObjectiveInfo(
        name="whitenedcse",
        title="WhitenedCSE (shuffled group whitening)",
        status=Status.CODE,
        citation="Zhuo et al., WhitenedCSE: Whitening-based Contrastive Learning of Sentence Embeddings, "
        "arXiv 2305.17746 (ACL 2023)",
        kind=Kind.VIEWS,
        inputs="views (num_pos, N, D): encodings before the training MLP; optional head callable",
        reducer="SGW view transform, then sum over k of R1 on cos(H^0, H^k) (diagonal W)",
        section="12",
        default_temperature=0.05,
        notes="Code parity: no gradient through the whitening matrix (grad_through_whitening=False). Added eps=1e-5 "
        "on eigenvalues (code has none); N > D/G required. Per-view whitening statistics (code splits rows by "
        "contiguous thirds). Loss is a sum (not a mean) over positive views.",
    )

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        num_pos: int = 3,
        groups: int = 128,
        eps: float = 1e-5,
        grad_through_whitening: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.temperature = self.make_temperature(temperature, learnable=learnable_temperature)
        if num_pos < 2:
            raise ValueError(f"whitenedcse: num_pos must be >= 2 (an anchor and a positive view), got {num_pos}")
        self.num_pos, self.groups, self.eps = num_pos, groups, eps
        self.grad_through_whitening = grad_through_whitening
        self.generator = torch.Generator().manual_seed(seed)

    def whiten(self, views: Tensor, generator: Generator | None = None, permutations: Tensor | None = None) -> Tensor:
        """SGW of each view (m, N, D) with its own statistics and permutation."""
        generator = self.generator if generator is None else generator
        if permutations is None:
            permutations = torch.stack([torch.randperm(views.shape[-1], generator=generator) for _ in views])
        return torch.stack(
            [
                shuffled_group_whitening(
                    view, self.groups, eps=self.eps, grad_through_whitening=self.grad_through_whitening, permutation=p
                )
                for view, p in zip(views, permutations, strict=True)
            ]
        )

    def contrast(self, views: Tensor) -> Tensor:
        """``sum_k`` SimCSE InfoNCE of ``cos(views[0], views[k])`` (k >= 1) for transformed views (m, N, e)."""
        unit = F.normalize(views, dim=-1)
        n = views.shape[1]
        eye = torch.eye(n, dtype=views.dtype, device=views.device)
        every = torch.ones(n, n, dtype=torch.bool, device=views.device)
        scale = self.temperature.scale().to(views.dtype)
        terms = [reduce_rows(WeightedCE().rows(unit[0] @ unit[k].T * scale, eye, every)) for k in range(1, len(views))]
        return torch.stack(terms).sum()

    def forward(
        self,
        views: Tensor,
        head: Callable[[Tensor], Tensor] | None = None,
        generator: Generator | None = None,
        permutations: Tensor | None = None,
    ) -> Tensor:
        if views.dim() != 3 or views.shape[0] != self.num_pos:
            raise ValueError(f"whitenedcse: expected views of shape ({self.num_pos}, N, D), got {tuple(views.shape)}")
        whitened = self.whiten(views, generator, permutations)
        if head is not None:
            whitened = head(whitened)
        return self.contrast(whitened)
