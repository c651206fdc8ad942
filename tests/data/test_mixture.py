"""MixtureSampler: one dataset per batch, round robin or seeded proportional schedule, exact resume."""

from __future__ import annotations

import pytest

from contrastkit.data import BatchSampler, Example
from contrastkit.data.mixture import MixtureSampler


def data(prefix: str, n: int) -> list[Example]:
    return [Example(f"{prefix} anchor {i}", (f"{prefix} positive {i}",)) for i in range(n)]


SIZES = {"a": 40, "b": 16, "c": 24}


def mixture(mixing: str = "proportional", *, seed: int = 0, weights=None, batch_size: int = 4) -> MixtureSampler:
    samplers = [BatchSampler(data(n, k), batch_size, seed=i) for i, (n, k) in enumerate(SIZES.items())]
    return MixtureSampler(samplers, list(SIZES), mixing, weights=weights, seed=seed)


def test_round_robin_takes_turns_and_each_dataset_keeps_its_own_epochs():
    mix = mixture("round_robin")
    drawn = [mix.next_batch() for _ in range(30)]
    assert [d for d, _ in drawn] == [0, 1, 2] * 10
    b_batches = [tuple(idx) for d, idx in drawn if d == 1]  # b has 4 batches per epoch: 10 draws = 2.5 epochs
    assert sorted(i for batch in b_batches[:4] for i in batch) == list(range(16))
    assert sorted(i for batch in b_batches[4:8] for i in batch) == list(range(16))
    assert mix.samplers[1].epoch == 2 and mix.position == 30
    assert mix.batches_per_epoch == 10 + 4 + 6 and mix.epoch == 1


def test_every_batch_comes_from_one_dataset():
    mix = mixture()
    names = list(SIZES)
    for _ in range(50):
        d, indices = mix.next_batch()
        examples = [data(names[d], SIZES[names[d]])[i] for i in indices]
        assert len(indices) == 4 and all(ex.anchor.startswith(names[d] + " ") for ex in examples)


@pytest.mark.parametrize(("weights", "expected"), [(None, [10 / 20, 4 / 20, 6 / 20]), ([1, 1, 2], [0.25, 0.25, 0.5])])
def test_proportional_shares_follow_the_weights(weights, expected):
    mix = mixture(weights=weights, seed=7)
    n = 6000
    counts = [0, 0, 0]
    for k in range(n):
        counts[mix.dataset_at(k)] += 1
    for c, share in zip(counts, expected, strict=True):
        assert abs(c / n - share) < 0.025
    assert mix.weights == ([10.0, 4.0, 6.0] if weights is None else [1.0, 1.0, 2.0])  # default: batches per epoch


def test_schedule_is_seeded():
    one = [mixture(seed=3).next_batch() for _ in range(1)]
    first, same, other = mixture(seed=3), mixture(seed=3), mixture(seed=4)
    a = [first.next_batch() for _ in range(200)]
    assert a[:1] == one and a == [same.next_batch() for _ in range(200)]
    assert [d for d, _ in a] != [other.next_batch()[0] for _ in range(200)]


@pytest.mark.parametrize("mixing", ["proportional", "round_robin"])
def test_resume_from_state_continues_exactly(mixing):
    straight = mixture(mixing, seed=5)
    expected = [straight.next_batch() for _ in range(2100)]  # crosses a 1024-draw schedule block twice
    for cut in (1, 37, 1024, 1500):
        first = mixture(mixing, seed=5)
        head = [first.next_batch() for _ in range(cut)]
        state = first.state_dict()
        resumed = mixture(mixing, seed=5)
        resumed.load_state_dict(state)
        assert head + [resumed.next_batch() for _ in range(2100 - cut)] == expected


def test_state_from_other_settings_is_refused():
    state = mixture(seed=1).state_dict()
    with pytest.raises(ValueError, match="seed=1, this mixture has 2"):
        mixture(seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="weights="):
        mixture(seed=1, weights=[1, 2, 3]).load_state_dict(state)
    with pytest.raises(ValueError, match="dataset 'a': sampler state was saved with batch_size=4"):
        mixture(seed=1, weights=[1, 1, 1], batch_size=5).load_state_dict(
            mixture(seed=1, weights=[1, 1, 1]).state_dict()
        )
    with pytest.raises(ValueError, match="a single dataset's"):
        mixture().load_state_dict(BatchSampler(data("a", 8), 4, seed=0).state_dict())
    renamed = mixture(seed=1)
    renamed.names = ["x", "b", "c"]
    with pytest.raises(ValueError, match="names="):
        renamed.load_state_dict(state)


def test_bad_arguments():
    samplers = [BatchSampler(data("a", 8), 4, seed=0), BatchSampler(data("b", 8), 4, seed=0)]
    with pytest.raises(ValueError, match="one unique name per sampler"):
        MixtureSampler(samplers, ["a", "a"])
    with pytest.raises(ValueError, match="unknown mixing"):
        MixtureSampler(samplers, ["a", "b"], "random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weights apply to proportional mixing only"):
        MixtureSampler(samplers, ["a", "b"], "round_robin", weights=[1, 2])
    with pytest.raises(ValueError, match="one weight > 0 per dataset"):
        MixtureSampler(samplers, ["a", "b"], weights=[1, 0])
    with pytest.raises(ValueError, match="no dataset"):
        MixtureSampler([], [])
