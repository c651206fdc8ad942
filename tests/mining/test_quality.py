"""Quality numbers of a mined set by hand; ECI pieces are labelled partial."""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit.mining import quality


def test_gap_and_false_negative_rate_by_hand() -> None:
    pos = [torch.tensor([0.8, 0.6]), torch.tensor([0.5]), torch.tensor([])]
    neg = [torch.tensor([0.6, 0.2]), torch.tensor([0.7]), torch.tensor([0.1])]
    # reference = lowest positive: 0.6 then 0.5; the third query has no positive and is left out
    assert quality.false_negative_rate(pos, neg) == pytest.approx(2 / 3)
    assert quality.hardness_gap(pos, neg) == pytest.approx(((0.6 - 0.6) + (0.6 - 0.2) + (0.5 - 0.7)) / 3)
    assert math.isnan(quality.false_negative_rate([torch.tensor([1.0])], [torch.tensor([])]))


def test_eci_pieces() -> None:
    assert quality.capacity(0) == 0.0 and quality.capacity(7) == pytest.approx(math.log(8))
    with pytest.raises(ValueError):
        quality.capacity(-1)
    assert quality.hardness(torch.tensor([0.2, 0.6])) == pytest.approx(0.4)
    assert quality.hardness(torch.tensor([-0.5])) == 0.0
    assert quality.safety(0.5, torch.tensor([0.1, 0.5, 0.7])) == pytest.approx(1 / 3)
    assert quality.safety(0.5, torch.tensor([0.1, 0.45]), margin=0.1) == pytest.approx(0.5)
    assert quality.harmonic(0.4, 0.6) == pytest.approx(0.48) and quality.harmonic(0.0, 0.0) == 0.0
    negs = torch.tensor([0.2, 0.6])
    assert quality.eci_partial(0.7, negs) == pytest.approx(math.log(3) * quality.harmonic(0.4, 1.0))


def test_summary_is_labelled_partial() -> None:
    s = quality.summarize([torch.tensor([0.9])], [torch.tensor([0.3, 0.95])])
    assert s["eci_status"] == "partial" and "eci" not in s
    assert s["false_negative_rate"] == pytest.approx(0.5)
    assert s["eci_safety"] == pytest.approx(0.5)
