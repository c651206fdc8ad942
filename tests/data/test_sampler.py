"""BatchSampler: no duplicate text in a batch, nothing dropped silently, determinism, exact resume."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from contrastkit.data import BatchSampler, Example, load_examples


def random_examples(rng: random.Random, n: int, vocab: int) -> list[Example]:
    """Examples drawn from a small vocabulary, so texts repeat across many examples."""
    words = [f"t{k}" for k in range(vocab)]
    out = []
    for _ in range(n):
        texts = rng.sample(words, rng.choice([1, 2, 3]))
        out.append(Example(texts[0], tuple(texts[1:2]), tuple(texts[2:])))
    return out


def shared_text(batch: list[int], examples: list[Example]) -> bool:
    seen: set[str] = set()
    for i in batch:
        texts = set(examples[i].texts())
        if texts & seen:
            return True
        seen |= texts
    return False


def epochs(sampler: BatchSampler, count: int) -> list[list[int]]:
    return [batch for _ in range(count) for batch in sampler]


def test_property_no_duplicate_text_nothing_lost():
    rng = random.Random(0)
    exercised = 0
    for case in range(400):
        n, size = rng.randint(1, 80), rng.randint(1, 9)
        examples = random_examples(rng, n, vocab=rng.randint(4, 60))
        drop_last = rng.random() < 0.5 and n >= size
        duplicates = rng.choice(["defer", "skip"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                sampler = BatchSampler(
                    examples,
                    size,
                    seed=case,
                    drop_last=drop_last,
                    window=rng.choice([None, 1, 3]),
                    duplicates=duplicates,
                )
                plan = sampler.plan(0)
            except ValueError as e:  # drop_last and not one full batch is possible: refused when built
                assert drop_last and "no batch of" in str(e)
                continue
        batches = list(sampler)
        assert batches == [list(b) for b in plan.batches] and len(batches) == len(plan.batches)
        assert not any(shared_text(b, examples) for b in batches), (case, batches)
        placed = [i for b in batches for i in b] + list(plan.dropped)
        assert sorted(placed) == list(range(n)), "every example is in one batch or listed as dropped"
        if drop_last:
            assert all(len(b) == size for b in batches)
        else:
            assert plan.dropped == plan.skipped  # only skip leaves examples out without drop_last
        assert not plan.skipped or duplicates == "skip"
        shuffled = rng.sample(range(n), n)
        exercised += any(shared_text(shuffled[k : k + size], examples) for k in range(0, n, size))
    assert exercised > 100, "the random data must make naive batches collide often"


def test_full_batches_come_first_without_drop_last():
    rng = random.Random(1)
    for case in range(50):
        examples = random_examples(rng, rng.randint(10, 60), vocab=8)
        batches = [len(b) for b in BatchSampler(examples, 4, seed=case, drop_last=False)]
        short = [k for k, s in enumerate(batches) if s < 4]
        assert short == list(range(len(batches) - len(short), len(batches))), batches


@pytest.mark.filterwarnings("ignore:BatchSampler epoch")
def test_deterministic_and_varies_with_seed_and_epoch():
    examples = random_examples(random.Random(2), 60, vocab=30)
    a = epochs(BatchSampler(examples, 5, seed=3), 3)
    assert a == epochs(BatchSampler(examples, 5, seed=3), 3)
    assert a != epochs(BatchSampler(examples, 5, seed=4), 3)
    per_epoch = len(BatchSampler(examples, 5, seed=3))
    first, second = a[:per_epoch], a[per_epoch : 2 * per_epoch]
    assert first != second and sorted(map(tuple, first)) != sorted(map(tuple, second))


def test_same_batches_in_another_process_with_another_hash_seed():
    examples = random_examples(random.Random(5), 40, vocab=12)
    expected = epochs(BatchSampler(examples, 4, seed=9, drop_last=False), 2)
    code = (
        "import json, random, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from test_sampler import random_examples, epochs\n"
        "from contrastkit.data import BatchSampler\n"
        "ex = random_examples(random.Random(5), 40, vocab=12)\n"
        "print(json.dumps(epochs(BatchSampler(ex, 4, seed=9, drop_last=False), 2)))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(out.stdout) == expected


@pytest.mark.parametrize("drop_last", [True, False])
def test_resume_yields_exactly_the_uninterrupted_batches(drop_last):
    examples = random_examples(random.Random(6), 45, vocab=25)
    make = lambda: BatchSampler(examples, 4, seed=11, drop_last=drop_last)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = epochs(make(), 3)
        for cut in range(len(reference) + 1):
            sampler, got = make(), []
            stream = (b for _ in range(3) for b in sampler)
            while len(got) < cut:
                got.append(next(stream))
            state = json.loads(json.dumps(sampler.state_dict()))  # a checkpoint survives serialisation
            resumed = make()
            resumed.load_state_dict(state)
            while len(got) < len(reference):
                got += list(resumed)
            assert got == reference, cut


def test_position_moves_to_next_epoch_after_last_batch():
    examples = [Example(f"a{k}", (f"p{k}",)) for k in range(8)]
    sampler = BatchSampler(examples, 4, seed=0)
    stream = iter(sampler)
    next(stream)
    assert (sampler.state_dict()["epoch"], sampler.state_dict()["batch"]) == (0, 1)
    next(stream)
    assert (sampler.state_dict()["epoch"], sampler.state_dict()["batch"]) == (1, 0)
    sampler.set_epoch(5)
    assert sampler.epoch == 5 and list(sampler) == epochs(BatchSampler(examples, 4, seed=0), 6)[-2:]


def test_state_from_other_settings_is_refused():
    examples = [Example(f"a{k}") for k in range(10)]
    state = BatchSampler(examples, 2, seed=0).state_dict()
    with pytest.raises(ValueError, match="seed=0"):
        BatchSampler(examples, 2, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="num_examples=10"):
        BatchSampler(examples[:9], 2, seed=0).load_state_dict(state)


def test_duplicates_dropped_by_drop_last_are_reported():
    # 6 examples share "x": at most one per batch, so with 12 examples and batch 4 some cannot be placed
    examples = [Example(f"a{k}", ("x",)) for k in range(6)] + [Example(f"b{k}", (f"y{k}",)) for k in range(6)]
    with pytest.warns(UserWarning, match=r"of 12 examples left out of the epoch .* left over by drop_last"):
        sampler = BatchSampler(examples, 4, seed=0)
    batches = list(sampler)
    dropped = sampler.dropped(0)
    assert sorted([i for b in batches for i in b] + dropped) == list(range(12))
    assert len(dropped) > 12 % 4 and all(sum(i < 6 for i in b) == 1 for b in batches)
    kept = list(BatchSampler(examples, 4, seed=0, drop_last=False))
    assert sorted(i for b in kept for i in b) == list(range(12))


def test_invalid_settings():
    examples = [Example("same", ("x",)) for _ in range(5)]
    with pytest.raises(ValueError, match="no batch of 2"):
        BatchSampler(examples, 2, seed=0)  # refused when built, not at the first batch
    assert [len(b) for b in BatchSampler(examples, 2, seed=0, drop_last=False)] == [1] * 5
    with pytest.raises(ValueError, match="batch_size 8 with drop_last"):
        BatchSampler(examples, 8, seed=0)
    with pytest.raises(ValueError, match="no examples"):
        BatchSampler([], 2, seed=0)
    with pytest.raises(ValueError, match="seed"):
        BatchSampler(examples, 2, seed=-1)
    with pytest.raises(ValueError, match="duplicates must be 'defer' or 'skip'"):
        BatchSampler(examples, 2, seed=0, duplicates="drop")  # type: ignore[arg-type]


def test_snli_batches_never_repeat_a_premise():
    env = os.environ.get("CONTRASTKIT_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    if not root.is_dir():
        pytest.skip(f"shared data pack not found at {root}")
    examples = load_examples(root / "snli_triplets" / "train.jsonl")
    sampler = BatchSampler(examples, 64, seed=0)
    batches = list(sampler)
    assert not any(shared_text(b, examples) for b in batches)
    assert len(batches) == len(examples) // 64 and len(sampler.dropped(0)) == len(examples) % 64


def many_answers(questions: int = 6, answers: int = 5) -> list[Example]:
    """TREC-QA style: each question has several answers (its anchor repeats), question 0 has many more."""
    rows = [Example(f"q{q}", (f"a{q}-{k}",)) for q in range(questions) for k in range(answers)]
    return rows + [Example("q0", (f"a0-extra{k}",)) for k in range(10)]


def test_too_few_distinct_texts_is_refused_when_built_with_the_numbers():
    with pytest.raises(ValueError) as err:
        BatchSampler(many_answers(), 8, seed=0)
    message = str(err.value)
    assert "no batch of 8 examples without a repeated text" in message
    assert "the largest duplicate-free batch found has 6 examples" in message
    assert "'q0' is in 15 of them" in message and "at most 6" in message
    with pytest.warns(UserWarning, match="left out"):
        assert len(list(BatchSampler(many_answers(), 6, seed=0, duplicates="skip"))) >= 1


def test_skip_leaves_colliding_examples_out_of_the_epoch_and_counts_them():
    examples = many_answers()
    with pytest.warns(UserWarning, match=r"skipped for sharing a text with their batch \(duplicates=skip\)"):
        sampler = BatchSampler(examples, 3, seed=1, duplicates="skip")
    for epoch in range(3):
        plan = sampler.plan(epoch)
        batches = [list(b) for b in plan.batches]
        assert not any(shared_text(b, examples) for b in batches)
        placed = [i for b in batches for i in b]
        assert sorted(placed + list(plan.dropped)) == list(range(len(examples)))  # each example once
        assert plan.skipped and set(plan.skipped) <= set(plan.dropped)
        perm = np.random.default_rng([1, epoch]).permutation(len(examples)).tolist()
        assert placed == [i for i in perm if i in set(placed)]  # skip never waits: the permutation's order
    deferred = BatchSampler(examples, 3, seed=1, drop_last=False)
    assert deferred.dropped(0) == [] and sum(len(b) for b in deferred.plan(0).batches) == len(examples)
    state = sampler.state_dict()
    assert state["duplicates"] == "skip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        same_but_defer = BatchSampler(examples, 3, seed=1)
    with pytest.raises(ValueError, match="duplicates='skip'"):
        same_but_defer.load_state_dict(state)
