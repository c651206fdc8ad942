"""Training with length-sorted sub-batches (and sorted GradCache chunks) is training without them."""

from __future__ import annotations

import pytest
import torch
from training_helpers import TinyEncoder, make_pairs, state_of

from contrastkit.data.examples import Example
from contrastkit.training import load_config, train
from contrastkit.training.schema import ConfigError

BASE = ["data.batch_size=8", "objective.temperature=0.1", "optim.lr=0.05", "train.progress=false", "train.steps=4"]


def varied_pairs(n: int) -> list[Example]:
    """Pairs whose texts differ in length, so sorting and trimming change the shapes the encoder sees."""
    return [
        Example(ex.anchor + " x" * (i % 5), tuple(p + " y" * (i % 3) for p in ex.positives), ex.negatives)
        for i, ex in enumerate(make_pairs(n, negatives=True))
    ]


def run(tmp_path, name: str, *extra: str) -> dict[str, torch.Tensor]:
    cfg = load_config(None, [f"train.output_dir={tmp_path / name}", *BASE, "optim.grad_clip=null", *extra])
    result = train(cfg, encoder=TinyEncoder(dropout=0.0), examples=varied_pairs(24))
    return state_of(TinyEncoder.load(result.final_model))


@pytest.mark.parametrize("extra", [["scale.sub_batch=3"], ["scale.sub_batch=1"], ["scale.gradcache_chunk=5"]])
def test_same_weights_as_one_call_per_side(tmp_path, extra: list[str]) -> None:
    plain, other = run(tmp_path, "plain"), run(tmp_path, "other", *extra)
    for key, value in plain.items():
        torch.testing.assert_close(other[key], value, atol=1e-5, rtol=1e-4, msg=key)


def test_view_objectives_take_sub_batches(tmp_path) -> None:
    plain = run(tmp_path, "plain", "objective.name=simcse_sup")
    other = run(tmp_path, "other", "objective.name=simcse_sup", "scale.sub_batch=2")
    for key, value in plain.items():
        torch.testing.assert_close(other[key], value, atol=1e-5, rtol=1e-4, msg=key)


def test_bad_sub_batch_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"scale\.sub_batch"):
        load_config(None, ["scale.sub_batch=0"])
