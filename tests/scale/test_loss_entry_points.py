"""ContrastiveLoss's typed entry points equal the generic call and refuse the other kind of objective."""

import pytest
import torch

from contrastkit import ContrastiveLoss, Targets


def test_pairs_and_views_equal_the_generic_call_and_refuse_the_other_kind() -> None:
    g = torch.Generator().manual_seed(0)
    a, c = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    infonce = ContrastiveLoss("infonce", temperature=0.1)
    assert torch.equal(infonce.pairs(a, c, Targets.diagonal(6)), infonce(a, c, Targets.diagonal(6)))
    views = torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 2])
    supcon = ContrastiveLoss("supcon", temperature=0.1)
    assert torch.equal(supcon.views(views, labels), supcon(views, labels))
    ntxent = ContrastiveLoss("ntxent", temperature=0.5)
    assert torch.equal(ntxent.views(views), ntxent(views))
    with pytest.raises(TypeError, match="view objective"):
        ntxent.pairs(a, c, Targets.diagonal(6))
    with pytest.raises(TypeError, match="matrix objective"):
        infonce.views(views)
