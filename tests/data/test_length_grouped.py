"""Length-grouped batching: less padding, still one batch per example per epoch, seeded, duplicate-free, resumable."""

from __future__ import annotations

import random

import pytest

from contrastkit.data import BatchSampler, Example


def varied(n: int, seed: int = 0, *, shared_every: int = 0) -> list[Example]:
    """Examples of 1 to 120 words; with ``shared_every`` some share a positive (the sampler must keep them apart)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = " ".join(f"w{rng.randrange(50)}" for _ in range(rng.randint(1, 120)))
        positive = f"shared {i // shared_every}" if shared_every else f"pos {i} " + words[: len(words) // 2]
        out.append(Example(f"{i} {words}", (positive,)))
    return out


def padded(examples: list[Example], batches: list[list[int]]) -> int:
    """Sum over batches of batch size x (longest anchor + longest positive), in characters: the padded input size."""
    return sum(
        len(b) * (max(len(examples[i].anchor) for i in b) + max(len(examples[i].positives[0]) for i in b))
        for b in batches
    )


def actual(examples: list[Example], batches: list[list[int]]) -> int:
    return sum(len(examples[i].anchor) + len(examples[i].positives[0]) for b in batches for i in b)


def epoch(sampler: BatchSampler) -> list[list[int]]:
    return list(sampler)


@pytest.mark.parametrize("drop_last", [True, False])
def test_padding_drops_and_every_example_appears_once(drop_last):
    data = varied(1000)
    plain = BatchSampler(data, 16, seed=3, drop_last=drop_last)
    grouped = BatchSampler(data, 16, seed=3, drop_last=drop_last, length_grouped=True, mega_batches=10)
    for e in range(2):
        a, b = epoch(plain), epoch(grouped)
        assert padded(data, b) < 0.7 * padded(data, a)
        assert padded(data, b) - actual(data, b) < 0.25 * (padded(data, a) - actual(data, a))  # the padding itself
        seen = sorted(i for batch in b for i in batch) + sorted(grouped.dropped(e))
        assert sorted(seen) == list(range(len(data)))  # exactly once per epoch (dropped ones listed)
        assert all(len(batch) == 16 for batch in b) or not drop_last


def test_batches_are_shuffled_not_sorted_and_differ_by_seed_and_epoch():
    data = varied(640)
    sampler = BatchSampler(data, 8, seed=1, length_grouped=True, mega_batches=80)  # one mega-batch: all sorted
    first = epoch(sampler)
    longest = [max(len(data[i].anchor) for i in b) for b in first]
    assert longest != sorted(longest, reverse=True) and longest != sorted(longest)
    again = BatchSampler(data, 8, seed=1, length_grouped=True, mega_batches=80)
    assert epoch(again) == first  # seeded
    assert epoch(sampler) != first  # the next epoch
    assert epoch(BatchSampler(data, 8, seed=2, length_grouped=True, mega_batches=80)) != first


def test_duplicates_are_still_kept_apart():
    data = varied(300, shared_every=3)  # three examples share each positive
    sampler = BatchSampler(data, 10, seed=0, drop_last=False, length_grouped=True)
    for batch in epoch(sampler):
        texts = [t for i in batch for t in data[i].texts()]
        assert len(texts) == len(set(texts))
    assert sorted(i for b in sampler.plan(0).batches for i in b) == list(range(300))


def test_resume_mid_epoch_continues_exactly():
    data = varied(200)
    run = BatchSampler(data, 8, seed=4, length_grouped=True, mega_batches=5)
    straight = [run.next_batch() for _ in range(60)]  # crosses two epoch ends (25 batches per epoch)
    first = BatchSampler(data, 8, seed=4, length_grouped=True, mega_batches=5)
    head = [first.next_batch() for _ in range(33)]
    state = first.state_dict()
    resumed = BatchSampler(data, 8, seed=4, length_grouped=True, mega_batches=5)
    resumed.load_state_dict(state)
    assert head + [resumed.next_batch() for _ in range(27)] == straight
    with pytest.raises(ValueError, match="length_grouped=True, this sampler has False"):
        BatchSampler(data, 8, seed=4, mega_batches=5).load_state_dict(state)
    with pytest.raises(ValueError, match="mega_batches=5, this sampler has 50"):
        BatchSampler(data, 8, seed=4, length_grouped=True).load_state_dict(state)


def test_next_batch_matches_iteration_and_old_states_still_load():
    data = varied(50)
    iterated = BatchSampler(data, 8, seed=0)
    stepped = BatchSampler(data, 8, seed=0)
    assert [b for _ in range(3) for b in iterated] == [stepped.next_batch() for _ in range(18)]
    assert stepped.epoch == iterated.epoch == 3 and stepped.num_batches(0) == 6
    old = {k: v for k, v in stepped.state_dict().items() if k not in ("length_grouped", "mega_batches")}
    BatchSampler(data, 8, seed=0).load_state_dict(old)  # a checkpoint written before length grouping existed
    with pytest.raises(ValueError, match="mega_batches must be >= 1"):
        BatchSampler(data, 8, seed=0, length_grouped=True, mega_batches=0)
