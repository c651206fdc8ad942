"""bench/nli_objectives.py: every variant is a valid override of the NLI recipe, and the report's means add up."""

from __future__ import annotations

import pytest
from bench_helpers import load_bench


@pytest.fixture(scope="module")
def nli():
    with pytest.MonkeyPatch.context() as mp:
        yield load_bench("bench_nli_objectives", "nli_objectives.py", mp)


def test_every_variant_builds_its_loss(nli, tmp_path):
    from contrastkit.objectives.registry import REGISTRY
    from contrastkit.training import load_config
    from contrastkit.training.batchloss import build_contrastive_loss

    names = set()
    for _, overrides in nli.VARIANTS:
        config = load_config(nli.RECIPE, [*overrides, "objective.temperature=0.05"])
        assert config.objective.temperature == 0.05 and config.objective.name in REGISTRY.names()
        build_contrastive_loss(config.objective, config.scale)  # hparams and switches are accepted by the objective
        names.add((config.objective.name, config.optim.lr))
    assert len(names) == len(nli.VARIANTS)  # no two variants train the same thing


def test_report_means_over_seeds(nli):
    label = nli.VARIANTS[0][0]
    rows = [(label, 0, 86.0, 80.0, 100.0), (label, 1, 87.0, 81.0, 110.0)]
    text = nli.report(rows, [86.5, 79.5], "python bench/nli_objectives.py")
    assert "| all-MiniLM-L6-v2 (untrained) | - | 86.50 | 79.50 | 83.00 | - |" in text
    assert f"| {label} | 1 | 87.00 | 81.00 | 84.00 | 110 |" in text
    assert f"| {label} | 83.50 |" in text
