"""The training loop on the in-test encoder: outputs, skipped steps, divergence, callbacks, refusing to overwrite."""

import random

import pytest
import torch
import yaml
from safetensors.torch import load_file
from training_helpers import PoisonedEncoder, TinyEncoder, assert_bitwise_equal, make_pairs, state_of

from contrastkit.data.examples import Example
from contrastkit.training import Callback, StopTraining, TrainingDivergedError, load_config, train
from contrastkit.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from contrastkit.training.config import config_dict
from contrastkit.training.logging import read_metrics

BASE = ["data.batch_size=8", "optim.lr=1e-2", "objective.temperature=0.1", "train.progress=false"]


def config(tmp_path, *overrides: str):
    return load_config(None, [f"train.output_dir={tmp_path / 'run'}", *BASE, *overrides])


def test_run_writes_config_metrics_checkpoints_and_final_model(tmp_path, capsys) -> None:
    cfg = config(tmp_path, "train.steps=12", "train.checkpoint_every=5", "train.log_every=4", "train.progress=true")
    result = train(cfg, encoder=TinyEncoder(), examples=make_pairs(40))
    out = tmp_path / "run"
    assert result.steps == 12 and result.skipped_steps == 0 and result.final_model == out / "final"
    assert yaml.safe_load((out / "config.yaml").read_text()) == config_dict(cfg)
    assert {"torch", "python", "argv"} <= set(yaml.safe_load((out / "env.json").read_text()))
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [4, 8, 12]
    assert all({"loss", "lr", "grad_norm", "epoch", "examples_per_s"} <= set(r) for r in records)
    assert result.loss == records[-1]["loss"]
    assert [s for s, _ in list_checkpoints(out)] == [10, 12]  # keep_checkpoints=2 of 5, 10, 12
    assert result.last_checkpoint == out / "checkpoints" / "step-000000012"
    from_checkpoint = TinyEncoder(seed=5)
    load_checkpoint(result.last_checkpoint, modules={"model": from_checkpoint})
    assert_bitwise_equal(state_of(TinyEncoder.load(out / "final")), state_of(from_checkpoint))
    err = capsys.readouterr().err
    assert "training for 12 steps" in err and "step 12/12 | loss" in err and "pairs/s" in err and "ETA" in err


def test_training_lowers_the_loss(tmp_path) -> None:
    cfg = config(tmp_path, "train.steps=30", "train.log_every=5", "train.checkpoint_every=0")
    train(cfg, encoder=TinyEncoder(dropout=0.0), examples=make_pairs(16))
    losses = [r["loss"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert losses[-1] < 0.5 * losses[0]


class Recorder(Callback):
    def __init__(self) -> None:
        self.steps, self.states, self.evals, self.ended = [], {}, [], 0

    def on_step_end(self, ctx) -> None:
        self.steps.append((ctx.step, ctx.metrics["skipped"]))
        self.states[ctx.step] = state_of(ctx.encoder)

    def on_train_end(self, ctx) -> None:
        self.ended += 1


def test_nan_step_is_skipped_logged_and_changes_nothing(tmp_path, capsys) -> None:
    rec = Recorder()
    cfg = config(tmp_path, "train.steps=6", "train.log_every=1", "train.progress=true")
    result = train(cfg, encoder=PoisonedEncoder({4}), examples=make_pairs(24), callbacks=[rec])  # call 4 = step 3
    assert result.skipped_steps == 1 and result.steps == 6
    assert rec.steps == [(1, False), (2, False), (3, True), (4, False), (5, False), (6, False)]
    assert_bitwise_equal(rec.states[2], rec.states[3])  # the skipped step did not move the weights
    assert not torch.equal(rec.states[3]["proj.weight"], rec.states[4]["proj.weight"])
    records = {r["step"]: r for r in read_metrics(tmp_path / "run" / "metrics.jsonl")}
    assert records[3]["skipped"] is True and records[3]["loss"] == "nan"
    assert "skipped" not in records[4]
    assert "step 3: non-finite loss (nan)" in capsys.readouterr().err
    opt = torch.load(result.last_checkpoint / "optimizer.pt", weights_only=True)
    assert {int(s["step"]) for s in opt["state"].values()} == {5}  # AdamW stepped on the 5 good steps only


def test_consecutive_bad_steps_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path) -> None:
    rec = Recorder()
    cfg = config(tmp_path, "train.steps=20", "train.checkpoint_every=2", "train.max_bad_steps=3")
    encoder = PoisonedEncoder(range(6, 1000))  # steps 1-3 good, 4 onwards bad
    with pytest.raises(TrainingDivergedError) as info:
        train(cfg, encoder=encoder, examples=make_pairs(24), callbacks=[rec])
    message = str(info.value)
    assert "3 consecutive steps with a non-finite loss" in message and "steps 4-6" in message
    good = tmp_path / "run" / "checkpoints" / "step-000000002"
    assert f"the last good checkpoint is {good}" in message
    assert latest_checkpoint(tmp_path / "run") == good  # step 4's checkpoint was not written during the streak
    assert not list((tmp_path / "run" / "checkpoints").glob(".*"))
    fresh = TinyEncoder(seed=9)
    assert load_checkpoint(good, modules={"model": fresh}).step == 2
    assert_bitwise_equal(state_of(fresh), rec.states[2])
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records if r.get("skipped")] == [4, 5, 6]
    assert not (tmp_path / "run" / "final").exists()


def test_existing_checkpoints_need_resume(tmp_path) -> None:
    cfg = config(tmp_path, "train.steps=2")
    train(cfg, encoder=TinyEncoder(), examples=make_pairs(16))
    with pytest.raises(ValueError, match=r"train.output_dir: .* holds checkpoints .* set train.resume=true"):
        train(cfg, encoder=TinyEncoder(), examples=make_pairs(16))


class NoisyEval(Callback):
    """An evaluation that draws from every generator and runs the encoder."""

    def __init__(self) -> None:
        self.calls = []

    def on_eval(self, ctx):
        torch.rand(100)
        random.random()
        emb = ctx.encoder.encode(["alpha beta", "gamma"])
        self.calls.append((ctx.step, ctx.encoder.training))
        return {"norm": float(emb.norm(dim=1).mean())}


def test_evaluation_does_not_change_the_training_trajectory(tmp_path) -> None:
    plain = train(config(tmp_path / "a", "train.steps=6"), encoder=TinyEncoder(), examples=make_pairs(24))
    noisy = NoisyEval()
    evaluated = train(
        config(tmp_path / "b", "train.steps=6", "train.eval_every=2"),
        encoder=TinyEncoder(),
        examples=make_pairs(24),
        callbacks=[noisy],
    )
    a = TinyEncoder.load(plain.final_model)
    b = TinyEncoder.load(evaluated.final_model)
    assert_bitwise_equal(state_of(a), state_of(b))
    assert noisy.calls == [(2, False), (4, False), (6, False)]  # eval mode; no extra run at the end (6 % 2 == 0)
    records = read_metrics(tmp_path / "b" / "run" / "metrics.jsonl")
    assert [r["step"] for r in records if "eval/norm" in r] == [2, 4, 6]
    assert all(r["eval/norm"] == pytest.approx(1.0) for r in records if "eval/norm" in r)


def test_stop_training_from_a_callback_ends_cleanly(tmp_path) -> None:
    class StopAt3(Recorder):
        def on_step_end(self, ctx) -> None:
            super().on_step_end(ctx)
            if ctx.step == 3:
                raise StopTraining

    rec = StopAt3()
    result = train(config(tmp_path, "train.steps=10"), encoder=TinyEncoder(), examples=make_pairs(24), callbacks=[rec])
    assert result.steps == 3 and rec.ended == 1
    assert result.last_checkpoint.name == "step-000000003" and result.final_model.is_dir()


def test_epochs_count_batches(tmp_path) -> None:
    result = train(config(tmp_path, "train.epochs=2"), encoder=TinyEncoder(), examples=make_pairs(24))
    assert result.steps == 6  # 24 examples / 8 per batch * 2 epochs
    state = torch.load(result.last_checkpoint / "state.pt", weights_only=True)
    assert (state["sampler"]["epoch"], state["sampler"]["batch"]) == (2, 0)


def test_gradient_accumulation_consumes_micro_batches(tmp_path) -> None:
    result = train(
        config(tmp_path, "train.steps=2", "optim.grad_accumulation=3"), encoder=TinyEncoder(), examples=make_pairs(24)
    )
    state = torch.load(result.last_checkpoint / "state.pt", weights_only=True)
    assert (state["sampler"]["epoch"], state["sampler"]["batch"]) == (2, 0)  # 6 batches of 8 = 2 epochs


def test_gradcache_gives_the_same_training_as_plain_backprop(tmp_path) -> None:
    runs = {}
    for name, extra in (("plain", []), ("cached", ["scale.gradcache_chunk=3"])):
        cfg = config(tmp_path / name, "train.steps=4", "optim.grad_clip=null", *extra)
        runs[name] = TinyEncoder.load(train(cfg, encoder=TinyEncoder(dropout=0.0), examples=make_pairs(24)).final_model)
    for key, value in state_of(runs["plain"]).items():
        assert torch.allclose(value, state_of(runs["cached"])[key], atol=1e-5), key


def test_learnable_temperature_is_trained_and_logged(tmp_path) -> None:
    cfg = config(tmp_path, "train.steps=4", "train.log_every=1", "objective.learnable_temperature=true")
    result = train(cfg, encoder=TinyEncoder(), examples=make_pairs(24))
    temps = [r["temperature"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert len(set(temps)) == 4 and temps[0] != pytest.approx(0.1, abs=0)
    saved = load_file(result.last_checkpoint / "loss.safetensors")
    assert float(1 / saved["loss.objective.temperature.log_scale"].exp()) == pytest.approx(temps[-1])


def test_queue_and_matryoshka(tmp_path) -> None:
    cfg = config(tmp_path, "train.steps=3", "scale.queue_size=20", "scale.matryoshka_dims=[8, 4]")
    result = train(cfg, encoder=TinyEncoder(), examples=make_pairs(24, negatives=True))
    saved = load_file(result.last_checkpoint / "loss.safetensors")
    assert int(saved["queue.count"]) == 20  # 3 steps x 16 candidates, capped at 20
    assert all(r["loss"] > 0 for r in read_metrics(tmp_path / "run" / "metrics.jsonl"))


def test_view_objective_on_anchor_only_sentences(tmp_path) -> None:
    sentences = [Example(" ".join(ex.texts())) for ex in make_pairs(24)]
    result = train(
        config(tmp_path, "train.steps=3", "objective.name=simcse"), encoder=TinyEncoder(), examples=sentences
    )
    assert result.steps == 3 and result.loss > 0


def test_supcon_uses_labels(tmp_path) -> None:
    labelled = [Example(ex.anchor, ex.positives, label=i % 3) for i, ex in enumerate(make_pairs(24))]
    result = train(config(tmp_path, "train.steps=2", "objective.name=supcon"), encoder=TinyEncoder(), examples=labelled)
    assert result.steps == 2 and result.loss > 0


def test_bf16_autocast_on_cpu(tmp_path) -> None:
    result = train(
        config(tmp_path, "train.steps=2", "train.precision=bf16"), encoder=TinyEncoder(), examples=make_pairs(16)
    )
    assert result.skipped_steps == 0


@pytest.mark.parametrize(
    "overrides, examples, message",
    [
        (["objective.name=infonce"], [Example("just a sentence"), Example("another one")], "use a view objective"),
        (["objective.name=infonc"], None, "objective.name: unknown objective 'infonc'; did you mean infonce"),
        (["objective.hparams.margin=1"], None, "objective.hparams: objective 'infonce' has no hyperparameter margin"),
        (["objective.name=cosent"], None, "objective.name: 'cosent' trains on graded pairs"),  # cosent needs scores
        (["objective.name=simcse", "scale.queue_size=4"], None, "scale.queue_size: a queue needs a matrix objective"),
        (["scale.matryoshka_dims=[64]"], None, "scale.matryoshka_dims: [64] exceed the embedding size 8"),
        (["train.precision=fp16"], None, "train.precision: fp16 needs a CUDA device"),
        (["model.anchor_prompt_name=nope"], None, "model.anchor_prompt_name: unknown prompt name 'nope'"),
    ],
)
def test_setup_errors_name_the_key_and_write_nothing(tmp_path, overrides, examples, message) -> None:
    cfg = config(tmp_path, "train.steps=2", *overrides)
    with pytest.raises(ValueError) as info:
        train(cfg, encoder=TinyEncoder(), examples=examples or make_pairs(16))
    assert message in str(info.value)
    assert not (tmp_path / "run").exists()


def test_prompts_are_prepended(tmp_path) -> None:
    seen = []

    class Spy(TinyEncoder):
        def tokenize(self, texts, *, prompt=None):
            seen.append(prompt)
            return super().tokenize(texts, prompt=prompt)

    prompts = ["model.anchor_prompt_name=query", "model.candidate_prompt_name=doc"]
    train(config(tmp_path / "pairs", "train.steps=1", *prompts), encoder=Spy(), examples=make_pairs(16))
    assert seen == ["query: ", "doc: "]
    seen.clear()
    sentences = [Example(ex.anchor) for ex in make_pairs(16)]
    train(
        config(tmp_path / "views", "train.steps=1", "objective.name=simcse", *prompts),
        encoder=Spy(),
        examples=sentences,
    )
    assert seen == ["query: ", "query: "]  # both dropout views of an anchor-only example are the prompted anchor


def test_resume_continues_and_notes_config_changes(tmp_path, capsys) -> None:
    fresh = config(tmp_path, "train.steps=2", "train.resume=true", "train.progress=true")
    assert train(fresh, encoder=TinyEncoder(), examples=make_pairs(24)).steps == 2
    assert "train.resume is set but" in capsys.readouterr().err  # no checkpoint yet: starts afresh
    cfg = config(tmp_path, "train.steps=4", "train.resume=true", "train.progress=true")
    result = train(cfg, encoder=TinyEncoder(), examples=make_pairs(24))
    err = capsys.readouterr().err
    assert "resuming at step 2 of 4 steps" in err and "train.resume is set but" not in err
    assert "note: the config differs from the checkpoint's in train.steps" in err
    assert result.steps == 4 and [s for s, _ in list_checkpoints(tmp_path / "run")] == [2, 4]


def test_resume_with_other_data_is_refused(tmp_path) -> None:
    train(config(tmp_path, "train.steps=2"), encoder=TinyEncoder(), examples=make_pairs(24))
    with pytest.raises(ValueError, match=r"train.resume: cannot resume .* num_examples"):
        train(config(tmp_path, "train.steps=4", "train.resume=true"), encoder=TinyEncoder(), examples=make_pairs(16))


@pytest.mark.parametrize("extra", [[], ["scale.gradcache_chunk=5"]])
def test_loss_scaling_path_is_exact_with_a_power_of_two_scale(tmp_path, monkeypatch, extra) -> None:
    """The fp16 machinery (scaled backward, unscale, scaler step) with a CPU scaler and no autocast.

    Scaling by 2**k and unscaling is exact in float32, so the weights equal a plain run's bit for bit.
    """
    from contrastkit.training import loop

    plain = train(config(tmp_path / "plain", "train.steps=3", *extra), encoder=TinyEncoder(), examples=make_pairs(24))
    scalers = []

    def cpu_scaler(precision, device):
        scalers.append(torch.amp.GradScaler("cpu", init_scale=2.0**7))
        return scalers[-1]

    monkeypatch.setattr(loop, "grad_scaler", cpu_scaler)
    scaled = train(config(tmp_path / "scaled", "train.steps=3", *extra), encoder=TinyEncoder(), examples=make_pairs(24))
    assert scalers and scalers[0].get_scale() == 2.0**7  # no overflow: the scale stayed
    assert_bitwise_equal(state_of(TinyEncoder.load(plain.final_model)), state_of(TinyEncoder.load(scaled.final_model)))
    state = torch.load(scaled.last_checkpoint / "state.pt", weights_only=True)
    assert state["scaler"]["scale"] == 2.0**7  # saved for resume


@pytest.mark.parametrize("name", ["mv_infonce", "mv_dhel", "dclw", "cacr", "groco"])
def test_plain_view_objectives_train_on_multi_view_examples(tmp_path, name) -> None:
    """Objectives that are not one matrix + one reducer train densely through ViewLoss (3 views per example)."""
    three_views = [Example(ex.anchor, (ex.positives[0], ex.anchor + " again")) for ex in make_pairs(24)]
    if name == "dclw":  # two views
        three_views = [Example(ex.anchor, ex.positives[:1]) for ex in three_views]
    encoder = TinyEncoder()
    before = state_of(encoder)
    no_tau = ["objective.temperature=null"] if name in ("cacr", "groco") else []  # they have no temperature
    cfg = config(tmp_path, "train.steps=2", f"objective.name={name}", *no_tau)
    result = train(cfg, encoder=encoder, examples=three_views)
    assert result.steps == 2 and result.skipped_steps == 0
    assert any(not torch.equal(before[k], v) for k, v in state_of(encoder).items())


def test_plain_view_objective_refuses_tiles(tmp_path) -> None:
    with pytest.raises(Exception, match=r"scale\.tile_size"):
        train(
            config(tmp_path, "train.steps=1", "objective.name=mv_infonce", "scale.tile_size=4"),
            encoder=TinyEncoder(),
            examples=make_pairs(8),
        )
