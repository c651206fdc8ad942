"""Training with distillation objectives: teacher scores from a JSONL reach the loss, compose with the trainer."""

from __future__ import annotations

import json

import pytest
import torch
from training_helpers import TinyEncoder, assert_ranks_match_one_process, make_pairs, state_of

from contrastkit.data.examples import Batch, Example
from contrastkit.data.readers import load_examples
from contrastkit.encoders.teacher import score_examples, teacher_targets
from contrastkit.objectives.distill import TeacherTargets
from contrastkit.scale.distributed import row_slice
from contrastkit.training import load_config, train
from contrastkit.training.batchloss import _row_slice
from contrastkit.training.schema import ConfigError

BASE = ["data.batch_size=8", "objective.temperature=0.1", "optim.lr=0.05", "train.progress=false", "train.steps=6"]


class OverlapTeacher:
    """Relevance = shared words (a deterministic stand-in for a cross-encoder)."""

    def score(self, pairs, batch_size=32):
        return torch.tensor([float(len(set(q.split()) & set(d.split()))) for q, d in pairs])


def scored_examples(n: int = 24) -> list[Example]:
    """Pairs with two negatives each, scored by :class:`OverlapTeacher`."""
    base = make_pairs(n, negatives=True)
    extra = make_pairs(n, seed=1, negatives=True)
    examples = [
        Example(a.anchor, a.positives, (*a.negatives, b.negatives[0])) for a, b in zip(base, extra, strict=True)
    ]
    return score_examples(examples, OverlapTeacher())


def write(examples: list[Example], path) -> str:
    with open(path, "w") as f:
        for ex in examples:
            record = {"anchor": ex.anchor, "positive": list(ex.positives), "negative": list(ex.negatives)}
            record |= {"positive_scores": list(ex.positive_scores), "negative_scores": list(ex.negative_scores)}
            f.write(json.dumps(record) + "\n")
    return str(path)


def kl_to_teacher(encoder: TinyEncoder, examples: list[Example], tau: float = 0.1) -> float:
    """Mean KL(teacher || student) over each example's group: what listwise_kl minimises."""
    encoder.eval()
    total = 0.0
    with torch.no_grad():
        for ex in examples:
            docs = [*ex.positives, *ex.negatives]
            q = encoder(encoder.tokenize([ex.anchor]))
            d = encoder(encoder.tokenize(docs))
            student = ((q @ d.T)[0] / tau).log_softmax(-1)
            teacher = torch.tensor([*ex.positive_scores, *ex.negative_scores]).log_softmax(-1)
            total += float((teacher.exp() * (teacher - student)).sum())
    return total / len(examples)


def run(tmp_path, name: str, data: str, *extra: str) -> TinyEncoder:
    cfg = load_config(None, [f"train.output_dir={tmp_path / name}", f"data.train={data}", *BASE, *extra])
    result = train(cfg, encoder=TinyEncoder(dropout=0.0))
    return TinyEncoder.load(result.final_model)


@pytest.mark.parametrize("objective", ["listwise_kl", "margin_mse"])
def test_training_moves_the_student_towards_the_teacher(tmp_path, objective: str) -> None:
    examples = scored_examples()
    data = write(examples, tmp_path / "scored.jsonl")
    assert load_examples(data)[0].negative_scores == examples[0].negative_scores
    before = kl_to_teacher(TinyEncoder(dropout=0.0), examples)
    after = kl_to_teacher(run(tmp_path, objective, data, f"objective.name={objective}"), examples)
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("extra", [["scale.gradcache_chunk=3"], ["scale.sub_batch=3"]])
def test_composes_with_gradcache_and_sub_batches(tmp_path, extra: list[str]) -> None:
    data = write(scored_examples(), tmp_path / "scored.jsonl")
    common = ["objective.name=listwise_kl", "objective.hparams.infonce_weight=0.5", "optim.grad_clip=null"]
    plain = state_of(run(tmp_path, "plain", data, *common))
    other = state_of(run(tmp_path, "other", data, *common, *extra))
    for key, value in plain.items():
        torch.testing.assert_close(other[key], value, atol=1e-5, rtol=1e-4, msg=key)


def test_data_without_scores_names_the_key(tmp_path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_text(
        "".join(json.dumps({"anchor": e.anchor, "positive": e.positives[0]}) + "\n" for e in make_pairs(16))
    )
    with pytest.raises(ConfigError, match=r"data\.train.*positive_scores"):
        run(tmp_path, "x", str(path), "objective.name=margin_mse")


def test_queue_is_refused(tmp_path) -> None:
    data = write(scored_examples(), tmp_path / "scored.jsonl")
    with pytest.raises(ConfigError, match=r"scale\.queue_size"):
        run(tmp_path, "x", data, "objective.name=listwise_kl", "scale.queue_size=16")


def test_row_slice_keeps_each_rows_group() -> None:
    batch = Batch(tuple(scored_examples(6)))
    full = teacher_targets(batch)
    part = _row_slice(full, slice(2, 5))
    assert isinstance(part, TeacherTargets)
    assert torch.equal(part.group_index, full.group_index[2:5])
    assert torch.equal(part.group_score, full.group_score[2:5])
    assert torch.equal(part.dense().pos, row_slice(full.base(), slice(2, 5)).dense().pos)


# ---------------------------------------------------------------- data.teacher: scores computed before training
@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "encoders"))
    from encoder_helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("teacher") / "bert")


def test_teacher_scores_unscored_data_once(tmp_path, teacher_folder, monkeypatch: pytest.MonkeyPatch) -> None:
    from contrastkit.encoders import teacher as teacher_module
    from contrastkit.training.build import load_training_examples

    path = tmp_path / "plain.jsonl"
    rows = [
        {"anchor": e.anchor, "positive": e.positives[0], "negative": list(e.negatives)} for e in scored_examples(16)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    keys = [f"data.train={path}", f"data.teacher={teacher_folder}", "objective.name=listwise_kl"]
    examples = load_training_examples(load_config(None, keys).data)
    assert all(ex.teacher_scored for ex in examples)
    teacher, _ = teacher_module.load_teacher(teacher_folder)
    ex = examples[3]
    want = teacher.score([(ex.anchor, t) for t in (*ex.positives, *ex.negatives)])
    assert torch.allclose(torch.tensor([*ex.positive_scores, *ex.negative_scores]), want, atol=1e-5)
    assert len(list((tmp_path / ".teacher_cache").glob("teacher-*.safetensors"))) == 1

    def refuse(self, pairs, batch_size=32):
        raise AssertionError("every pair is cached")

    monkeypatch.setattr(teacher_module.BiEncoderTeacher, "score", refuse)
    run(tmp_path, "cached", str(path), f"data.teacher={teacher_folder}", "objective.name=listwise_kl")


def test_bad_teacher_names_the_key(tmp_path) -> None:
    data = write(scored_examples(8), tmp_path / "scored.jsonl")
    with pytest.raises(ConfigError, match=r"data\.teacher"):
        run(tmp_path, "x", data, f"data.teacher={tmp_path / 'missing'}", "objective.name=listwise_kl")
    with pytest.raises(ConfigError, match=r"data\.teacher_cache"):
        load_config(None, [f"data.train={data}", f"data.teacher_cache={tmp_path}"])


# ---------------------------------------------------------------- data parallelism
def test_two_ranks_match_one_process(tmp_path) -> None:
    """Each rank distils its own rows' groups (sliced TeacherTargets): two ranks train as one process.

    One objective suffices: both distillation objectives reach the ranks through the same targets."""

    data = write(scored_examples(32), tmp_path / "scored.jsonl")
    overrides = ["train.steps=3", "train.checkpoint_every=0", "data.batch_size=8", "optim.lr=1e-2"]
    overrides += ["optim.grad_clip=null", "objective.temperature=0.1", "objective.name=listwise_kl"]
    overrides += ["objective.hparams.infonce_weight=0.5"]
    single, _ = assert_ranks_match_one_process("kl", {"data": data, "overrides": overrides, "dropout": 0.0}, tmp_path)
    initial = TinyEncoder(dropout=0.0).state_dict()
    assert any(not torch.allclose(initial[k], single[k]) for k in single)  # it did train
