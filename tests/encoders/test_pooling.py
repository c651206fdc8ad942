"""Pooling functions against hand computation, with left and right padding."""

from __future__ import annotations

import pytest
import torch

from contrastkit.encoders.pooling import POOLING_MODES, pool


def _oracle(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    n, L, d = hidden.shape
    out = torch.zeros(n, d, dtype=torch.float64)
    for i in range(n):
        pos = [t for t in range(L) if mask[i, t] != 0]
        if not pos:
            continue
        if mode == "mean":
            for t in pos:
                out[i] += hidden[i, t].double()
            out[i] /= len(pos)
        elif mode == "cls":
            out[i] = hidden[i, pos[0]].double()
        elif mode == "last":
            out[i] = hidden[i, pos[-1]].double()
        elif mode == "weighted_mean":
            total_w = 0.0
            for t in pos:
                w = t - pos[0] + 1
                out[i] += w * hidden[i, t].double()
                total_w += w
            out[i] /= total_w
    return out


RIGHT = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
LEFT = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]])


@pytest.mark.parametrize("mode", POOLING_MODES)
@pytest.mark.parametrize("mask", [RIGHT, LEFT], ids=["right", "left"])
def test_pooling_matches_oracle(mode, mask):
    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(pool(hidden, mask, mode), _oracle(hidden, mask, mode))


def test_last_token_is_last_attended_position_whatever_the_side():
    hidden = torch.arange(3 * 5, dtype=torch.float64).reshape(3, 5, 1)
    assert pool(hidden, RIGHT, "last").flatten().tolist() == [4.0, 7.0, 10.0]
    assert pool(hidden, LEFT, "last").flatten().tolist() == [4.0, 9.0, 14.0]
    assert pool(hidden, LEFT, "cls").flatten().tolist() == [0.0, 7.0, 14.0]


def test_left_and_right_padding_agree_for_the_same_tokens():
    torch.manual_seed(1)
    tokens = torch.randn(3, 4)  # a 3-token sequence
    right = torch.cat([tokens, torch.randn(2, 4)]).unsqueeze(0)
    left = torch.cat([torch.randn(2, 4), tokens]).unsqueeze(0)
    for mode in POOLING_MODES:
        a = pool(right, torch.tensor([[1, 1, 1, 0, 0]]), mode)
        b = pool(left, torch.tensor([[0, 0, 1, 1, 1]]), mode)
        torch.testing.assert_close(a, b, msg=mode)


def test_mask_with_holes_pools_only_selected_positions():
    hidden = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1)
    mask = torch.tensor([[0, 1, 0, 1, 1, 0]])
    assert pool(hidden, mask, "mean").item() == pytest.approx((1 + 3 + 4) / 3)
    assert pool(hidden, mask, "last").item() == 4.0


def test_empty_rows_give_zeros_and_finite_gradients():
    hidden = torch.randn(2, 3, 4, requires_grad=True)
    mask = torch.tensor([[0, 0, 0], [1, 1, 0]])
    for mode in POOLING_MODES:
        out = pool(hidden, mask, mode)
        assert torch.equal(out[0], torch.zeros(4)), mode
        out.sum().backward()
        assert torch.isfinite(hidden.grad).all()
        hidden.grad = None


def test_half_precision_accumulates_in_float32():
    torch.manual_seed(2)
    hidden = torch.randn(2, 7, 8)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    for mode in ("mean", "weighted_mean"):
        half = pool(hidden.bfloat16(), mask, mode)
        assert half.dtype == torch.bfloat16
        torch.testing.assert_close(half.float(), pool(hidden.bfloat16().float(), mask, mode), atol=1e-2, rtol=1e-2)


def test_bad_mode_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        pool(torch.zeros(1, 2, 3), torch.ones(1, 2), "max")
    with pytest.raises(ValueError, match="expected hidden"):
        pool(torch.zeros(1, 2, 3), torch.ones(1, 3), "mean")
