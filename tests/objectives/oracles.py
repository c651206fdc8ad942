"""Float64 loop oracles for the row reducers R1-R5 of ``objectives.md`` section 0.2.

Everything here is plain Python over nested lists of floats/bools, with
``math.exp`` / ``math.log``; tensors are only converted with ``tolist``. No
library code is reused, so these are independent references for the
vectorised reducers, the objectives built on them and the tiled engine.

Conventions (``objectives.md`` 0.1): ``L`` (A x C) logits, ``W`` (A x C)
positive weights, ``M`` (A x C) validity. ``P(i) = {c : M[i][c] and
W[i][c] > 0}``, ``N(i) = {c : M[i][c] and W[i][c] == 0}``. Each ``*_rows``
oracle returns one loss per row, ``None`` for a dropped row; :func:`mean_kept`
is the anchor reduction (mean over kept rows, 0 when none is kept).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

Matrix = list[list[float]]
Mask = list[list[bool]]
Rows = list[float | None]
NEG_INF = float("-inf")


# ---------------------------------------------------------------- conversions and scalar helpers
def to_lists(x: Any) -> list:
    """A tensor (or nested sequence) as nested Python lists."""
    if hasattr(x, "detach"):
        x = x.detach()
    return x.tolist() if hasattr(x, "tolist") else [list(r) if isinstance(r, Sequence) else r for r in x]


def lse(values: Sequence[float]) -> float:
    """``log sum exp`` with the max shift; ``-inf`` for an empty sequence."""
    values = list(values)
    if not values:
        return NEG_INF
    m = max(values)
    if m == NEG_INF:
        return NEG_INF
    return m + math.log(sum(math.exp(v - m) for v in values))


def softplus(x: float) -> float:
    """``log(1 + e^x)`` without overflow."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def positives(W_row: Sequence[float], M_row: Sequence[bool]) -> list[int]:
    return [c for c, (w, m) in enumerate(zip(W_row, M_row)) if m and w > 0]


def negatives(W_row: Sequence[float], M_row: Sequence[bool]) -> list[int]:
    return [c for c, (w, m) in enumerate(zip(W_row, M_row)) if m and not w > 0]


def mean_kept(rows: Rows) -> float:
    """Mean over the rows that are not ``None``; 0.0 when every row is dropped."""
    kept = [r for r in rows if r is not None]
    return sum(kept) / len(kept) if kept else 0.0


def transpose(X: list[list[Any]]) -> list[list[Any]]:
    return [list(col) for col in zip(*X)] if X else []


# ---------------------------------------------------------------- logits
def matmul_t(a: Matrix, c: Matrix) -> Matrix:
    """``a @ c^T`` with loops: (A, d) x (C, d) -> (A, C)."""
    return [[sum(x * y for x, y in zip(ar, cr)) for cr in c] for ar in a]


def logits(S: Matrix, scale: float = 1.0, bias: float = 0.0, B: Matrix | None = None) -> Matrix:
    """``L = S * scale + bias (+ B)`` entry by entry."""
    return [[S[i][c] * scale + bias + (0.0 if B is None else B[i][c]) for c in range(len(S[i]))] for i in range(len(S))]


# ---------------------------------------------------------------- R1-R5
def r1_rows(
    L: Matrix, W: Matrix, M: Mask, *, normalize: bool = True, per_positive: bool = False, require_negative: bool = True
) -> Rows:
    """R1: ``-sum_{p in P} Wn[p] (L_p - LSE_M(L))``; dropped without a positive or (``require_negative``) a negative.

    ``Wn = W / sum_P W`` when ``normalize``; divided by ``|P|`` when ``per_positive``.
    """
    out: Rows = []
    for Li, Wi, Mi in zip(L, W, M):
        P, N = positives(Wi, Mi), negatives(Wi, Mi)
        if not P or (require_negative and not N):
            out.append(None)
            continue
        denom = lse([Li[c] for c in range(len(Li)) if Mi[c]])
        nll = -sum(Wi[p] * (Li[p] - denom) for p in P)
        if normalize:
            nll /= sum(Wi[p] for p in P)
        if per_positive:
            nll /= len(P)
        out.append(nll)
    return out


def r2_rows(L: Matrix, W: Matrix, M: Mask) -> Rows:
    """R2: ``LSE_M(L) - LSE_P(L)`` (``-log`` of the softmax mass of the positive set); dropped without P or N."""
    out: Rows = []
    for Li, Wi, Mi in zip(L, W, M):
        P, N = positives(Wi, Mi), negatives(Wi, Mi)
        if not P or not N:
            out.append(None)
            continue
        out.append(lse([Li[c] for c in range(len(Li)) if Mi[c]]) - lse([Li[p] for p in P]))
    return out


def r3_rows(L: Matrix, W: Matrix, M: Mask, *, normalize: bool = True) -> Rows:
    """R3: ``-sum_{p in P} Wn[p] L_p + LSE_N(L)``; dropped without a positive or without a negative."""
    out: Rows = []
    for Li, Wi, Mi in zip(L, W, M):
        P, N = positives(Wi, Mi), negatives(Wi, Mi)
        if not P or not N:
            out.append(None)
            continue
        align = sum(Wi[p] * Li[p] for p in P)
        if normalize:
            align /= sum(Wi[p] for p in P)
        out.append(-align + lse([Li[n] for n in N]))
    return out


def r4_rows(L: Matrix, W: Matrix, M: Mask, *, neg: str = "all", pos: str = "all", per_positive: bool = False) -> Rows:
    """R4: ``log(1 + sum_{p in P'} sum_{n in N'} exp(L_n - L_p))`` over every pair, written as a double loop.

    Selectors: ``neg="max"`` keeps only the hardest negative (``N' = {argmax L}``),
    ``pos="min"`` the weakest positive, ``pos="max"`` the strongest.
    ``per_positive`` divides by the full ``|P|``. Dropped without P or N.
    """
    out: Rows = []
    for Li, Wi, Mi in zip(L, W, M):
        P, N = positives(Wi, Mi), negatives(Wi, Mi)
        if not P or not N:
            out.append(None)
            continue
        Ns = [max(N, key=lambda c: Li[c])] if neg == "max" else N
        if pos == "min":
            Ps = [min(P, key=lambda c: Li[c])]
        elif pos == "max":
            Ps = [max(P, key=lambda c: Li[c])]
        else:
            Ps = P
        pair_terms = [Li[n] - Li[p] for p in Ps for n in Ns]
        loss = lse([0.0, *pair_terms])  # log(1 + sum exp(.)), stably
        if per_positive:
            loss /= len(P)
        out.append(loss)
    return out


def bce_with_logits(x: float, y: float) -> float:
    """``-(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))``."""
    return y * softplus(-x) + (1.0 - y) * softplus(x)


def r5_rows(L: Matrix, W: Matrix, M: Mask) -> Rows:
    """R5: ``sum_{c in M} BCE(sigmoid(L_c), W_c)``; every row is kept."""
    return [sum(bce_with_logits(Li[c], Wi[c]) for c in range(len(Li)) if Mi[c]) for Li, Wi, Mi in zip(L, W, M)]


def r1(L: Matrix, W: Matrix, M: Mask, **kw: bool) -> float:
    return mean_kept(r1_rows(L, W, M, **kw))


def r2(L: Matrix, W: Matrix, M: Mask) -> float:
    return mean_kept(r2_rows(L, W, M))


def r3(L: Matrix, W: Matrix, M: Mask, **kw: bool) -> float:
    return mean_kept(r3_rows(L, W, M, **kw))


def r4(L: Matrix, W: Matrix, M: Mask, **kw: Any) -> float:
    return mean_kept(r4_rows(L, W, M, **kw))


def r5(L: Matrix, W: Matrix, M: Mask) -> float:
    return mean_kept(r5_rows(L, W, M))


# ---------------------------------------------------------------- targets, built independently of the library
def build_targets(
    A: int,
    C: int,
    *,
    pos_lists: Sequence[Sequence[int]] | None = None,
    pos_weights: Sequence[Sequence[float]] | None = None,
    row_ids: Sequence[int] | None = None,
    col_ids: Sequence[int] | None = None,
    mask_row_ids: Sequence[int] | None = None,
    mask_col_ids: Sequence[int] | None = None,
    self_offset: int | None = None,
    valid: Mask | None = None,
    exclude_lists: Sequence[Sequence[int]] | None = None,
) -> tuple[Matrix, Mask]:
    """Dense ``(W, M)`` from a compact description (``-1`` pads index lists).

    ``W`` sums the listed weights (1 when absent) and ``[row_id == col_id]``.
    ``M`` is ``valid`` minus excluded columns, minus same-``mask id`` entries
    that are not positives, minus column ``i + self_offset``; finally ``W`` is
    zeroed wherever ``M`` is False.
    """
    W = [[0.0] * C for _ in range(A)]
    M = [[True if valid is None else bool(valid[i][c]) for c in range(C)] for i in range(A)]
    for i in range(A):
        for k, c in enumerate(pos_lists[i] if pos_lists is not None else []):
            if c >= 0:
                W[i][c] += 1.0 if pos_weights is None else float(pos_weights[i][k])
        for c in range(C):
            if row_ids is not None and row_ids[i] == col_ids[c]:
                W[i][c] += 1.0
        for c in exclude_lists[i] if exclude_lists is not None else []:
            if c >= 0:
                M[i][c] = False
        for c in range(C):
            if mask_row_ids is not None and mask_row_ids[i] == mask_col_ids[c] and not W[i][c] > 0:
                M[i][c] = False
            if self_offset is not None and c == i + self_offset:
                M[i][c] = False
            if not M[i][c]:
                W[i][c] = 0.0
    return W, M


def random_problem(
    rng: random.Random,
    A: int,
    C: int,
    *,
    max_pos: int = 3,
    soft: bool = False,
    p_invalid: float = 0.2,
    empty_rows: bool = True,
    scale: float = 2.0,
) -> tuple[Matrix, Matrix, Mask]:
    """Random ``(S, W, M)`` with ``W > 0 => M``.

    Rows get 1..``max_pos`` positives (binary, or soft weights in (0.1, 2));
    with ``empty_rows`` row 0 has no positive and, when ``A >= 2``, row 1 has
    every valid column positive (so no negative).
    """
    S = [[rng.gauss(0.0, scale) for _ in range(C)] for _ in range(A)]
    M = [[rng.random() >= p_invalid for _ in range(C)] for _ in range(A)]
    W = [[0.0] * C for _ in range(A)]
    for i in range(A):
        valid_cols = [c for c in range(C) if M[i][c]]
        if empty_rows and i == 0:
            continue
        if empty_rows and i == 1:
            chosen = valid_cols
        else:
            chosen = rng.sample(valid_cols, min(len(valid_cols), rng.randint(1, max_pos)))
        for c in chosen:
            W[i][c] = rng.uniform(0.1, 2.0) if soft else 1.0
    return S, W, M


def numeric_grad(f: Callable[[Matrix], float], X: Matrix, eps: float = 1e-6) -> Matrix:
    """Central differences of the scalar ``f`` at every entry of ``X``."""
    G = [[0.0] * len(row) for row in X]
    for i, row in enumerate(X):
        for j in range(len(row)):
            plus = [list(r) for r in X]
            minus = [list(r) for r in X]
            plus[i][j] += eps
            minus[i][j] -= eps
            G[i][j] = (f(plus) - f(minus)) / (2 * eps)
    return G


def fd_grad(f: Callable[[Any], float], z: Any, eps: float = 1e-6) -> Any:
    """Central finite differences of ``f`` (a function of a float64 tensor returning a float) at ``z``."""
    grad = z.detach().clone().zero_()
    flat = z.detach().clone().reshape(-1)
    for k in range(flat.numel()):
        old = float(flat[k])
        flat[k] = old + eps
        hi = f(flat.reshape(z.shape))
        flat[k] = old - eps
        lo = f(flat.reshape(z.shape))
        flat[k] = old
        grad.reshape(-1)[k] = (hi - lo) / (2 * eps)
    return grad


def autograd_grad(loss_fn: Callable[[Any], Any], z: Any) -> Any:
    """``d loss_fn(z) / dz`` by autograd, on a fresh leaf copy of ``z``."""
    import torch

    z = z.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(z), z)
    return g
