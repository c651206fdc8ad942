"""ContrastiveLoss refuses call shapes its objective does not take, with a TypeError naming the objective."""

import pytest
import torch

from contrastkit import ContrastiveLoss, Targets


def test_matrix_objective_needs_targets_object() -> None:
    q, d = torch.randn(4, 8), torch.randn(4, 8)
    loss = ContrastiveLoss("infonce")
    assert torch.isfinite(loss(q, d, Targets.diagonal(4)))
    with pytest.raises(TypeError, match=r"\('infonce'\) takes \(anchors, candidates, targets\)"):
        loss(q, d, torch.eye(4))  # a dense matrix is not a Targets
    with pytest.raises(TypeError, match=r"\('infonce'\) takes"):
        ContrastiveLoss("infonce", tile_size=2)(q, d)


def test_view_objective_takes_views_first_and_refuses_labels_it_has_no_use_for() -> None:
    views = torch.randn(2, 4, 8)
    assert torch.isfinite(ContrastiveLoss("simcse")(views))
    with pytest.raises(TypeError, match="views a tensor"):
        ContrastiveLoss("simcse")([views[0], views[1]])
    with pytest.raises(TypeError, match="simcse takes views only"):
        ContrastiveLoss("simcse")(views, torch.arange(4))
