"""DiagnosticsCallback: diagnostics logged into metrics.jsonl during training, at its interval, without side effects."""

import pytest
import torch
from training_helpers import TinyEncoder, assert_bitwise_equal, make_pairs, state_of, tiny_bert

from contrastkit.diagnostics.stats import embedding_stats
from contrastkit.encoders import TextEncoder
from contrastkit.training import load_config, train
from contrastkit.training.callbacks import CallbackContext
from contrastkit.training.diagnostics_callback import DiagnosticsCallback
from contrastkit.training.logging import read_metrics

BASE = ["data.batch_size=8", "optim.lr=1e-2", "objective.temperature=0.1", "train.progress=false"]
HELD_OUT = make_pairs(30, seed=7)
KEYS = {"mean_cosine", "isotropy", "effective_rank", "uniformity", "hubness", "alignment"}


def config(tmp_path, name, *overrides):
    return load_config(None, [f"train.output_dir={tmp_path / name}", *BASE, *overrides])


def callback(**kwargs):
    return DiagnosticsCallback(pairs=[(ex.anchor, ex.positives[0]) for ex in HELD_OUT], hubness_k=3, **kwargs)


def test_logged_at_every_evaluation_and_training_unchanged(tmp_path):
    cfg = config(tmp_path, "with", "train.steps=6", "train.eval_every=2")
    result = train(cfg, encoder=TinyEncoder(), examples=make_pairs(24), callbacks=[callback()])
    records = [r for r in read_metrics(result.output_dir / "metrics.jsonl") if "eval/diag/alignment" in r]
    assert [r["step"] for r in records] == [2, 4, 6]
    assert all({f"eval/diag/{k}" for k in KEYS} <= set(r) for r in records)
    assert records[0]["eval/diag/alignment"] != records[-1]["eval/diag/alignment"]  # the model moved
    plain = train(config(tmp_path, "without", "train.steps=6", "train.eval_every=2"), encoder=TinyEncoder(),
                  examples=make_pairs(24))  # fmt: skip
    assert_bitwise_equal(state_of(TinyEncoder.load(result.final_model)), state_of(TinyEncoder.load(plain.final_model)))


def test_every_thins_out_evaluations_but_keeps_the_last(tmp_path):
    cfg = config(tmp_path, "run", "train.steps=5", "train.eval_every=1")
    result = train(cfg, encoder=TinyEncoder(), examples=make_pairs(24), callbacks=[callback(every=2, prefix="d/")])
    steps = [r["step"] for r in read_metrics(result.output_dir / "metrics.jsonl") if "eval/d/uniformity" in r]
    assert steps == [2, 4, 5]


def test_values_match_the_diagnostics_functions_and_sampling(tmp_path):
    enc = TinyEncoder()
    cb = DiagnosticsCallback([ex.anchor for ex in HELD_OUT], sample_size=20, hubness_k=3, seed=1)
    assert len(cb.texts) == 20 and set(cb.texts) <= {ex.anchor for ex in HELD_OUT}
    ctx = CallbackContext(config=load_config(None, []), encoder=enc, output_dir=tmp_path, step=3, total_steps=10)
    out = cb.on_eval(ctx)
    expected = embedding_stats(enc.encode(cb.texts), uniformity_sample=20, hubness_k=3).scalars()
    assert out == pytest.approx({f"diag/{k}": v for k, v in expected.items()})
    assert DiagnosticsCallback(cb.texts, every=5, hubness_k=3).on_eval(ctx) is None
    with pytest.raises(ValueError):
        DiagnosticsCallback(["one text"])


def test_token_level_for_transformer_encoders(tmp_path):
    enc = TextEncoder.from_folder(tiny_bert(tmp_path / "bert"))
    cb = DiagnosticsCallback([ex.anchor for ex in HELD_OUT], token_level=True, hubness_k=3)
    ctx = CallbackContext(config=load_config(None, []), encoder=enc, output_dir=tmp_path, step=1, total_steps=1)
    with torch.no_grad():
        out = cb.on_eval(ctx)
    assert {"diag/token_anisotropy_l0", "diag/token_anisotropy_l2", "diag/adjusted_intra_similarity"} <= set(out)
    assert "diag/adjusted_self_similarity" in out
