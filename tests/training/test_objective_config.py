"""The objective section: learnable_temperature null keeps each objective's default, true/false trains or freezes."""

from __future__ import annotations

import pytest

from contrastkit.training.batchloss import build_contrastive_loss
from contrastkit.training.config import ObjectiveConfig, ScaleConfig
from contrastkit.training.schema import ConfigError


@pytest.mark.parametrize(
    ("name", "setting", "trainable"),
    [("clip", None, True), ("clip", False, False), ("siglip", False, False), ("infonce", None, False),
     ("infonce", True, True), ("siglip", True, True)],
)  # fmt: skip
def test_learnable_temperature_follows_the_config(name: str, setting: bool | None, trainable: bool) -> None:
    loss = build_contrastive_loss(ObjectiveConfig(name=name, learnable_temperature=setting), ScaleConfig())
    assert any(p.requires_grad for p in loss.parameters()) == trainable


def test_learnable_temperature_on_an_objective_without_one() -> None:
    with pytest.raises(ConfigError, match=r"objective\.learnable_temperature"):
        build_contrastive_loss(ObjectiveConfig(name="groco", learnable_temperature=True), ScaleConfig())
