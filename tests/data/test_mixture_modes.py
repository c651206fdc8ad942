"""MixtureSampler's temperature-scaled and CoDiEmb modes: the shares they promise, seeded, resumed exactly."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from contrastkit.data import BatchSampler, Example
from contrastkit.data.mixture import MixtureSampler

SIZES = {"a": 40, "b": 16, "c": 24}  # batches of 4: 10, 4 and 6 per epoch


def mixture(mixing: str = "codiemb", *, seed: int = 0, **kwargs) -> MixtureSampler:
    samplers = [
        BatchSampler([Example(f"{n} {i}", (f"{n} p {i}",)) for i in range(k)], 4, seed=j)
        for j, (n, k) in enumerate(SIZES.items())
    ]
    return MixtureSampler(samplers, list(SIZES), mixing, seed=seed, **kwargs)


def test_codiemb_gives_each_dataset_exactly_its_batches_every_epoch_in_a_seeded_order():
    mix = mixture()
    assert mix.batches_per_epoch == 20
    epochs = [[mix.next_batch() for _ in range(20)] for _ in range(3)]
    for epoch in epochs:
        assert Counter(d for d, _ in epoch) == {0: 10, 1: 4, 2: 6}
        for d, n in enumerate(SIZES.values()):  # every example of every dataset exactly once per epoch
            assert sorted(i for dd, batch in epoch if dd == d for i in batch) == list(range(n))
    orders = [[d for d, _ in epoch] for epoch in epochs]
    assert orders[0] != orders[1] != orders[2]  # reshuffled per epoch, not a fixed cycle
    assert orders[0] == [mixture().dataset_at(k) for k in range(20)]  # a pure function of (seed, position)
    assert orders[0] != [mixture(seed=1).dataset_at(k) for k in range(20)]


def test_codiemb_whole_number_weights_set_the_per_epoch_counts():
    mix = mixture(weights=[2, 3, 5])
    assert mix.batches_per_epoch == 10
    assert Counter(mix.dataset_at(k) for k in range(10, 20)) == {0: 2, 1: 3, 2: 5}
    with pytest.raises(ValueError, match="whole-number"):
        mixture(weights=[1.5, 1, 1])


@pytest.mark.parametrize("temperature", [0.5, 2.0, 1000.0])
def test_temperature_scales_the_proportional_shares(temperature):
    mix = mixture("proportional", temperature=temperature)
    n = np.array([10.0, 4.0, 6.0])
    expected = n ** (1 / temperature) / (n ** (1 / temperature)).sum()
    assert np.allclose(mix.probabilities(), expected)
    draws = 30 * 1024
    counts = Counter(mix.dataset_at(k) for k in range(draws))
    shares = np.array([counts[d] / draws for d in range(3)])
    assert np.abs(shares - expected).max() < 0.012  # about 4 binomial standard deviations at 30k draws
    if temperature == 1000.0:
        assert np.abs(shares - 1 / 3).max() < 0.012  # a high temperature is (almost) uniform


@pytest.mark.parametrize(("mixing", "kwargs"), [("codiemb", {}), ("proportional", {"temperature": 2.0})])
def test_resume_mid_epoch_draws_the_identical_batches(mixing, kwargs):
    whole = mixture(mixing, seed=5, **kwargs)
    expected = [whole.next_batch() for _ in range(57)]
    first = mixture(mixing, seed=5, **kwargs)
    head = [first.next_batch() for _ in range(23)]  # stops inside the second codiemb epoch
    resumed = mixture(mixing, seed=5, **kwargs)
    resumed.load_state_dict(first.state_dict())
    assert head + [resumed.next_batch() for _ in range(57 - 23)] == expected


def test_state_with_another_temperature_or_mode_is_refused_and_old_states_mean_temperature_one():
    state = mixture("proportional", temperature=2.0).state_dict()
    with pytest.raises(ValueError, match="temperature"):
        mixture("proportional").load_state_dict(state)
    with pytest.raises(ValueError, match="mixing"):
        mixture("codiemb").load_state_dict(mixture("proportional").state_dict())
    old = mixture("proportional").state_dict()
    del old["temperature"]  # saved before temperatures existed
    mixture("proportional").load_state_dict(old)


def test_bad_temperatures_are_refused():
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            mixture("proportional", temperature=bad)
    with pytest.raises(ValueError, match="proportional mixing only"):
        mixture("round_robin", temperature=2.0)
