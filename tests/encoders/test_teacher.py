"""Teacher scores: read from JSONL (with located errors), computed by a teacher, cached on disk, laid out per batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from contrastkit.data.errors import DataError
from contrastkit.data.examples import Batch, Example
from contrastkit.data.readers import load_examples
from contrastkit.encoders.teacher import (
    BiEncoderTeacher,
    ScoreCache,
    pair_key,
    score_examples,
    teacher_identity,
    teacher_targets,
)
from contrastkit.objectives.distill import TeacherTargets


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


class CountingTeacher:
    """Scores a pair by the number of words the two texts share; counts the pairs it was asked for."""

    def __init__(self, bonus: float = 0.0) -> None:
        self.asked = 0
        self.bonus = bonus

    def score(self, pairs, batch_size=32):
        self.asked += len(pairs)
        return torch.tensor([len(set(q.split()) & set(d.split())) + self.bonus for q, d in pairs], dtype=torch.float32)


# ---------------------------------------------------------------- reading
def test_scores_are_read_beside_their_texts(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "anchor": "q",
                "positive": ["p1", "p2"],
                "negative": ["n"],
                "positive_scores": [3, 2.5],
                "negative_scores": [-1],
            }
        ],
    )
    (ex,) = load_examples(path)
    assert ex.positives == ("p1", "p2") and ex.negatives == ("n",)
    assert ex.positive_scores == (3.0, 2.5) and ex.negative_scores == (-1.0,)
    assert ex.teacher_scored


def test_kind_is_still_inferred_with_score_columns(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"anchor": "q", "positive": "p", "positive_scores": 1.0}])
    (ex,) = load_examples(path)
    assert ex.positive_scores == (1.0,) and not ex.negatives


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"negative_scores": [1.0]}, r"d.jsonl.*line 2.*'negative_scores': 1 teacher scores for 2 negative texts"),
        ({"negative_scores": [1.0, "high"]}, r"line 2.*'negative_scores\[1\]'.*expected a number"),
        ({"negative_scores": [1.0, None]}, r"line 2.*'negative_scores\[1\]'.*null"),
        ({"positive_scores": []}, r"line 2.*'positive_scores': 0 teacher scores for 1 positive texts"),
    ],
)
def test_malformed_scores_are_located(tmp_path: Path, record: dict, message: str) -> None:
    good = {
        "anchor": "q0",
        "positive": "p",
        "negative": ["a", "b"],
        "positive_scores": [2.0],
        "negative_scores": [0.0, 1.0],
    }
    path = _jsonl(tmp_path / "d.jsonl", [good, {**good, "anchor": "q1", **record}])
    with pytest.raises(DataError, match=message):
        load_examples(path)


def test_scores_for_one_list_but_not_the_other_are_an_error(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"anchor": "q", "positive": "p", "negative": ["n"], "positive_scores": [1]}])
    with pytest.raises(DataError, match=r"line 1.*1 negative texts without teacher scores \(column 'negative_scores'"):
        load_examples(path)
    pairs = _jsonl(tmp_path / "p.jsonl", [{"anchor": "q", "positive": "p", "positive_scores": [1]}])
    assert load_examples(pairs)[0].teacher_scored  # no negatives: nothing to score


def test_non_finite_score_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"anchor": "q", "positive": "p", "positive_scores": [NaN]}\n')
    with pytest.raises(DataError, match=r"line 1.*not finite"):
        load_examples(path)


# ---------------------------------------------------------------- scoring and the cache
def test_score_examples_fills_every_text_and_keeps_scored_ones() -> None:
    examples = [
        Example("a b c", ("a b x",), ("c y", "z")),
        Example("d e", ("d",), (), positive_scores=(9.0,)),  # already scored: kept
    ]
    teacher = CountingTeacher()
    out = score_examples(examples, teacher)
    assert out[0].positive_scores == (2.0,) and out[0].negative_scores == (1.0, 0.0)
    assert out[1] is examples[1]
    assert teacher.asked == 3


def test_cache_scores_each_pair_once_across_runs_and_per_teacher(tmp_path: Path) -> None:
    examples = [Example("a b", ("a",), ("b", "c")), Example("c d", ("c",), ("a",)), Example("a b", ("b",), ("c",))]
    teacher = CountingTeacher()
    first = score_examples(examples, teacher, cache=ScoreCache(tmp_path, "teacher1"))
    assert teacher.asked == 5  # 7 pairs, 2 of them repeated: each distinct pair asked once
    again = ScoreCache(tmp_path, "teacher1")  # a new process: read from disk
    second = score_examples(examples, teacher, cache=again)
    assert teacher.asked == 5 and again.computed == 0 and len(again) == 5
    assert [e.negative_scores for e in second] == [e.negative_scores for e in first]
    other = CountingTeacher(bonus=10.0)
    third = score_examples(examples, other, cache=ScoreCache(tmp_path, "teacher2"))  # another identity: rescored
    assert other.asked == 5 and third[0].positive_scores == (11.0,)


@pytest.mark.parametrize("cached", [False, True])
def test_a_teacher_with_the_wrong_number_of_scores_is_an_error(tmp_path: Path, cached: bool) -> None:
    class Short:
        def score(self, pairs, batch_size=32):
            return torch.zeros(len(pairs) - 1)

    cache = ScoreCache(tmp_path, "short") if cached else None
    with pytest.raises(ValueError, match=r"shape \(1,\) for 2 pairs"):
        score_examples([Example("q", ("p",), ("n",))], Short(), cache=cache)


def test_pair_keys_do_not_collide_when_text_moves_between_sides() -> None:
    assert pair_key(("ab", "c")) != pair_key(("a", "bc"))


def test_corrupt_cache_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "teacher-x.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a teacher score cache"):
        ScoreCache(tmp_path, "x")


def test_identity_changes_with_the_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 8)
    before = teacher_identity(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x01" + b"\x00" * 7)
    assert teacher_identity(tmp_path) != before


def test_bi_encoder_teacher_scores_cosines() -> None:
    table = {"q": [1.0, 0.0], "d1": [2.0, 0.0], "d2": [0.0, 3.0], "d3": [1.0, 1.0]}

    class Enc:
        prompts: ClassVar[dict] = {}

        def encode(self, texts, batch_size=64, prompt_name=None):
            return torch.tensor([table[t] for t in texts])

    got = BiEncoderTeacher(Enc()).score([("q", "d1"), ("q", "d2"), ("q", "d3")])
    assert torch.allclose(got, torch.tensor([1.0, 0.0, 2**-0.5]))


# ---------------------------------------------------------------- batch layout
def test_teacher_targets_give_each_row_its_own_columns() -> None:
    batch = Batch(
        (
            Example("q0", ("p0a", "p0b"), ("n0",), positive_scores=(5.0, 4.0), negative_scores=(1.0,)),
            Example("q1", ("p1",), ("n1a", "n1b"), positive_scores=(3.0,), negative_scores=(2.0, 0.5)),
            Example("q2", ("p2",)),  # unscored: no group
        )
    )
    # candidates: p0a p0b p1 p2 | n0 n1a n1b
    t = teacher_targets(batch)
    assert isinstance(t, TeacherTargets)
    assert t.group_index.tolist() == [[0, 1, 4], [2, 5, 6], [-1, -1, -1]]
    assert t.group_score[:2].tolist() == [[5.0, 4.0, 1.0], [3.0, 2.0, 0.5]]
    assert t.group_positive.tolist() == [[True, True, False], [True, False, False], [False, False, False]]
    assert torch.equal(t.dense().pos, batch.targets().dense().pos)


def test_unscored_batch_gives_plain_targets() -> None:
    batch = Batch((Example("q", ("p",)),))
    assert not isinstance(teacher_targets(batch), TeacherTargets)
