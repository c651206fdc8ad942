"""MoCHi: hard negative mixing on top of the MoCo loss (``objectives.md`` section 4).

Base loss (MoCo, InfoNCE against a key and a queue)::

    l(q) = -log( e^{q.k/tau} / (e^{q.k/tau} + sum_{n in Q} e^{q.n/tau}) )

MoCHi appends, to each query's own denominator, ``s`` type-1 synthetic
negatives ``h = normalise(alpha n_a + (1 - alpha) n_b)`` (``n_a != n_b`` drawn
from the query's hard set, ``alpha ~ U(0, 1)``) and ``s'`` type-2 ones
``h' = normalise(beta q + (1 - beta) n_c)`` (``beta ~ U(0, 0.5)``). The hard
set ``Q~^N`` is the N queue entries with the highest raw ``q.n`` (the key is a
separate column and never mixed). Synthetic points are detached (the q inside
h' too), so the gradient reaches the encoder only through q. The key and the
queue are MoCo constants and are detached as well.

Algebra: ``S_aug = [q.k | q.Q | q.H_i | q.H'_i]`` with the synthetic columns
private to row i; here they are computed per row (an (n, 1 + K + s + s')
logit matrix whose last s + s' columns differ by row), W one-hot on the key
column, R1, mean over queries. With ``s = s' = 0`` it is exactly
:func:`moco_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Generator, Tensor

from contrastkit.objectives.base import Kind, Objective, ObjectiveInfo, Status
from contrastkit.objectives.reducers import WeightedCE, reduce_rows
from contrastkit.objectives.registry import register
from contrastkit.objectives.temperature import Temperature


@dataclass(frozen=True)
class MochiDraws:
    """The random draws of one MoCHi step, for n queries.

    ``pairs`` (n, s, 2) long and ``mix_index`` (n, s') long are positions in
    each query's hard set (0 = the most similar queue entry, < N); ``alpha``
    (n, s) in [0, 1] weights ``n_a``; ``beta`` (n, s') in [0, 0.5] weights q.
    """

    pairs: Tensor
    alpha: Tensor
    mix_index: Tensor
    beta: Tensor


def draw_mochi(
    n: int, num_hard: int, num_mix: int, num_query_mix: int, generator: Generator | None = None
) -> MochiDraws:
    """Draw distinct hard-set pairs with ``alpha ~ U(0,1)`` and single entries with ``beta ~ U(0, 0.5)``."""
    if num_mix > 0 and num_hard < 2:
        raise ValueError(f"mochi: type-1 mixing needs a hard set of at least 2 entries, got {num_hard}")
    if num_query_mix > 0 and num_hard < 1:
        raise ValueError("mochi: type-2 mixing needs a non-empty hard set")
    first = torch.randint(max(num_hard, 1), (n, num_mix), generator=generator)
    second = torch.randint(max(num_hard - 1, 1), (n, num_mix), generator=generator)
    second = second + (second >= first).long()  # uniform over ordered pairs with a != b
    alpha = torch.rand(n, num_mix, generator=generator)
    mix_index = torch.randint(max(num_hard, 1), (n, num_query_mix), generator=generator)
    beta = 0.5 * torch.rand(n, num_query_mix, generator=generator)
    return MochiDraws(torch.stack([first, second], -1), alpha, mix_index, beta)


def hard_set(query: Tensor, queue: Tensor, num_hard: int) -> Tensor:
    """Queue indices (n, N) of each query's N most similar entries by raw ``q.n``, most similar first."""
    scores = query.detach() @ queue.detach().T
    return scores.topk(min(num_hard, queue.shape[0]), dim=-1).indices


def synthetic_negatives(query: Tensor, queue: Tensor, hard: Tensor, draws: MochiDraws) -> tuple[Tensor, Tensor]:
    """Detached, renormalised ``H`` (n, s, d) and ``H'`` (n, s', d) for queries (n, d) and hard sets (n, N)."""
    q, Q = query.detach(), queue.detach()
    N = hard.shape[1]
    for name, index in (("pairs", draws.pairs), ("mix_index", draws.mix_index)):
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= N):
            raise ValueError(f"mochi: draws.{name} must lie in [0, {N}) (positions in the hard set)")
    device = query.device
    pick = lambda pos: Q[hard.gather(1, pos.to(device))]  # noqa: E731 - (n, m) hard-set positions -> (n, m, d)
    alpha = draws.alpha.to(device=device, dtype=q.dtype)[..., None]
    beta = draws.beta.to(device=device, dtype=q.dtype)[..., None]
    mixed = alpha * pick(draws.pairs[..., 0]) + (1 - alpha) * pick(draws.pairs[..., 1])
    query_mixed = beta * q[:, None, :] + (1 - beta) * pick(draws.mix_index)
    return F.normalize(mixed, dim=-1), F.normalize(query_mixed, dim=-1)


def _infonce_first_column(logits: Tensor) -> Tensor:
    """R1 with W one-hot on column 0 and M all-true, mean over rows."""
    W = torch.zeros_like(logits)
    W[:, 0] = 1.0
    return reduce_rows(WeightedCE().rows(logits, W, torch.ones_like(logits, dtype=torch.bool)))


def moco_loss(query: Tensor, key: Tensor, queue: Tensor, *, temperature: float | Tensor = 0.2) -> Tensor:
    """Plain MoCo InfoNCE: query (n, d) vs its key (n, d) and a shared queue (K, d); key and queue detached."""
    key, queue = key.detach(), queue.detach()
    logits = torch.cat([(query * key).sum(-1, keepdim=True), query @ queue.T], 1) / temperature
    return _infonce_first_column(logits)


@register
class MoCHi(Objective):
    """MoCHi(N, s, s'): MoCo InfoNCE with per-query synthetic hard negatives.

    Args:
        temperature: tau (MoCo-v2: 0.2).
        learnable_temperature: train ``log(1/tau)``.
        num_hard: N, the hard-set size (clamped to the queue length K).
        num_mix: s, type-1 mixes per query (0 disables).
        num_query_mix: s', type-2 mixes per query (0 disables). The defaults
            (1024, 1024, 128) are one of the paper's reported settings; (256, 512, 0)
            is another.
        seed: seeds this module's own ``torch.Generator`` (used when neither
            ``draws`` nor ``generator`` is passed).

    Call as ``mochi(query, key, queue, draws=None, generator=None)``: query
    (n, d) with gradient, key (n, d), queue (K, d), all l2-normalised; explicit
    :class:`MochiDraws` make the step deterministic. Mixing warm-up is the
    caller's schedule (pass ``num_mix = num_query_mix = 0`` meanwhile, or use
    :func:`moco_loss`).
    """

    info = ObjectiveInfo(
        name="mochi",
        title="MoCHi (hard negative mixing)",
        status=Status.PAPER,
        citation="Kalantidis et al., Hard Negative Mixing for Contrastive Learning, arXiv 2010.01028",
        kind=Kind.QUEUE,
        inputs="query (n, d) with grad, key (n, d), queue (K, d), l2-normalised; RNG or explicit draws",
        reducer="R1 + row-private extra columns (W one-hot on the key)",
        section="4",
        default_temperature=0.2,
        notes="No official code; two public implementations agree. Choices: type-1 pairs are distinct "
        "(n_a != n_b); the hard set is ranked by raw q.n over the queue only (the key is never mixed); "
        "synthetic points, key and queue are detached.",
    )

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        num_hard: int = 1024,
        num_mix: int = 1024,
        num_query_mix: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.temperature = self.make_temperature(temperature, learnable=learnable_temperature)
        if num_hard < 0 or num_mix < 0 or num_query_mix < 0:
            raise ValueError("mochi: num_hard, num_mix and num_query_mix must be >= 0")
        self.num_hard, self.num_mix, self.num_query_mix = num_hard, num_mix, num_query_mix
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self, n: int, queue_size: int, generator: Generator | None = None) -> MochiDraws:
        """Draws for n queries against a queue of ``queue_size`` entries."""
        generator = self.generator if generator is None else generator
        return draw_mochi(n, min(self.num_hard, queue_size), self.num_mix, self.num_query_mix, generator)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        queue: Tensor,
        draws: MochiDraws | None = None,
        generator: Generator | None = None,
    ) -> Tensor:
        if query.dim() != 2 or key.shape != query.shape or queue.dim() != 2 or queue.shape[1] != query.shape[1]:
            raise ValueError(
                f"mochi: expected query (n, d), key (n, d), queue (K, d); got {tuple(query.shape)}, "
                f"{tuple(key.shape)}, {tuple(queue.shape)}"
            )
        key, queue = key.detach(), queue.detach()
        columns = [(query * key).sum(-1, keepdim=True), query @ queue.T]
        if draws is None and self.num_mix + self.num_query_mix > 0:
            draws = self.draw(query.shape[0], queue.shape[0], generator)
        if draws is not None:
            H, H2 = synthetic_negatives(query, queue, hard_set(query, queue, self.num_hard), draws)
            columns += [torch.einsum("nd,nsd->ns", query, H), torch.einsum("nd,nsd->ns", query, H2)]
        logits = torch.cat(columns, 1) * self.temperature.scale().to(query.dtype)
        return _infonce_first_column(logits)
