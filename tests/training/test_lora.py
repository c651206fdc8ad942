"""LoRA adapters (model.lora): config, only adapters trained, merged final model, bitwise resume.

Everything runs on a tiny random BERT (``training_helpers.tiny_bert``) with
peft; the whole file is skipped when peft is not installed (except the test
of the error message, which hides peft itself).
"""

import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from training_helpers import TinyEncoder, make_pairs, tiny_bert, write_jsonl

from contrastkit.encoders import load_encoder
from contrastkit.training import Callback, ConfigError, Trainer, load_config, train
from contrastkit.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from contrastkit.training.config import LoraConfig
from contrastkit.training.lora import add_lora, default_target_modules, is_adapter_parameter, merge_lora

os.environ.setdefault("HF_HUB_OFFLINE", "1")
needs_peft = pytest.mark.skipif(
    __import__("importlib").util.find_spec("peft") is None, reason="peft is not installed (the lora extra)"
)
TEXTS = ["alpha beta gamma", "delta epsilon", "zeta eta theta iota", "kappa lambda mu nu xi"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("lora") / "bert")


def test_lora_config_defaults_overrides_and_errors() -> None:
    cfg = load_config(None, [])
    assert cfg.model.lora == LoraConfig() and not cfg.model.lora.enabled
    cfg = load_config(None, ["model.lora.enabled=true", "model.lora.r=4", "model.lora.target_modules=[query, value]"])
    assert (cfg.model.lora.r, cfg.model.lora.alpha, cfg.model.lora.target_modules) == (4, 16.0, ("query", "value"))
    with pytest.raises(ConfigError, match=r"^model\.lora\.r: must be >= 1"):
        load_config(None, ["model.lora.r=0"])
    with pytest.raises(ConfigError, match=r"model\.lora\.dropout: must be in \[0, 1\)"):
        load_config(None, ["model.lora.dropout=1.5"])
    with pytest.raises(ConfigError, match=r"model\.lora\.alpah: unknown key; did you mean 'model\.lora\.alpha'"):
        load_config(None, ["model.lora.alpah=4"])


def test_missing_peft_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now raises ImportError
    with pytest.raises(ConfigError, match=r"model\.lora\.enabled: LoRA needs the optional package peft.*pip install"):
        add_lora(TinyEncoder(), LoraConfig(enabled=True, target_modules=("proj",)))


@needs_peft
def test_default_targets_are_the_attention_projections(bert) -> None:
    encoder = load_encoder(bert, pooling="mean")
    assert default_target_modules(encoder) == ("query", "key", "value")
    with pytest.raises(ConfigError, match=r"model\.lora\.target_modules: found no attention .* \(its linear layers: "):
        default_target_modules(TinyEncoder())
    with pytest.raises(ConfigError, match=r"model\.lora\.target_modules"):
        add_lora(TinyEncoder(), LoraConfig(enabled=True, target_modules=("nothing_like_this",)))


@needs_peft
def test_any_encoder_gets_adapters_and_merging_keeps_its_function() -> None:
    torch.manual_seed(0)
    encoder = TinyEncoder(dropout=0.0)
    summary = add_lora(encoder, LoraConfig(enabled=True, r=2, target_modules=("proj",)))
    assert summary.layers == ("proj",) and summary.trainable == 2 * 16 + 8 * 2
    assert {n for n, p in encoder.named_parameters() if p.requires_grad} == {
        "proj.lora_A.default.weight",
        "proj.lora_B.default.weight",
    }
    with torch.no_grad():
        encoder.proj.lora_B.default.weight.normal_()  # a trained-looking adapter
    before = encoder.encode(TEXTS)
    assert merge_lora(encoder) == 1 and merge_lora(encoder) == 0
    assert isinstance(encoder.proj, torch.nn.Linear) and not any("lora" in k for k in encoder.state_dict())
    torch.testing.assert_close(encoder.encode(TEXTS), before, atol=1e-5, rtol=0)


class Trainable(Callback):
    """Records which encoder parameters are trainable (names and objects) during the run."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.params: list[torch.nn.Parameter] = []

    def on_step_end(self, ctx) -> None:
        if not self.names:
            named = [(n, p) for n, p in ctx.encoder.named_parameters() if p.requires_grad]
            self.names = {n for n, _ in named}
            self.params = [p for _, p in named]


@needs_peft
def test_only_adapters_train_and_the_final_model_is_merged(bert, tmp_path, monkeypatch) -> None:
    from sentence_transformers import SentenceTransformer
    from transformers import BertModel

    data = write_jsonl(make_pairs(16, seed=1), tmp_path / "pairs.jsonl")
    overrides = [
        f"model.path={bert}",
        "model.pooling=mean",
        f"data.train={data}",
        "data.batch_size=8",
        "model.lora.enabled=true",
        "model.lora.r=4",
        "objective.learnable_temperature=true",
        "optim.lr=5e-2",
        "train.steps=3",
        f"train.output_dir={tmp_path / 'run'}",
        "train.progress=false",
        "train.tensorboard=false",
    ]
    recorder = Trainable()
    trainer = Trainer(load_config(None, overrides), callbacks=[recorder])
    result = trainer.fit()

    # trained: the adapters and the temperature, nothing else
    assert recorder.names and all(is_adapter_parameter(n) for n in recorder.names)
    assert len(recorder.names) == 2 * 3 * 2  # A and B of query/key/value in 2 layers
    optimized = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    temperature = {id(p) for p in trainer.batch_loss.parameters() if p.requires_grad}
    assert len(temperature) == 1 and optimized == {id(p) for p in recorder.params} | temperature

    # the checkpoint holds base + adapters: base weights untouched, adapters trained
    initial = load_file(bert / "model.safetensors")
    ckpt = load_file(result.last_checkpoint / "model.safetensors")
    for key, value in initial.items():
        module, _, leaf = key.rpartition(".")
        adapted = module.rsplit(".", 1)[-1] in ("query", "key", "value")
        assert torch.equal(ckpt[f"model.{module}.base_layer.{leaf}" if adapted else f"model.{key}"], value), key
    assert all(ckpt[k].abs().max() > 0 for k in ckpt if "lora_B" in k)

    # the final folder is a plain BERT: merged query/key/value weights, every other weight as it was
    final = load_file(result.final_model / "model.safetensors")
    assert final.keys() == initial.keys()
    for key, value in initial.items():
        merged = any(f".{t}.weight" in key for t in ("query", "key", "value"))
        assert torch.equal(final[key], value) != merged, key
    assert not (result.final_model / "adapter_config.json").exists()
    _, info = BertModel.from_pretrained(str(result.final_model), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]

    # the saved model embeds like the trained one (adapters rebuilt from the checkpoint), and without peft
    trained = load_encoder(bert, pooling="mean")
    add_lora(trained, trainer.config.model.lora)
    load_checkpoint(result.last_checkpoint, modules={"model": trained})
    expected = trained.encode(TEXTS)
    monkeypatch.setitem(sys.modules, "peft", None)
    saved = SentenceTransformer(str(result.final_model), device="cpu")
    got = torch.from_numpy(saved.encode(TEXTS))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(trainer.encoder.encode(TEXTS), expected, atol=1e-5, rtol=0)  # merged in place


class Crash(Callback):
    """Raises after optimizer step ``step``, like a process dying there (no final checkpoint, no final model)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, ctx) -> None:
        if ctx.step == self.step:
            raise RuntimeError("crash")


@needs_peft
def test_lora_run_interrupted_and_resumed_is_bitwise_identical(bert, tmp_path) -> None:
    """Tiny BERT with LoRA (dropout in both, learnable temperature): crash after step 3 (checkpoint at 2), resume.

    The interruption is an exception in-process (SIGKILL and torn checkpoint
    writes are covered by test_resume.py); what this checks is that the
    checkpoint holds every piece of LoRA state (adapters, their optimizer
    moments, the dropout RNG), so that the resumed run matches bit for bit.
    """
    data = write_jsonl(make_pairs(24, seed=2), tmp_path / "pairs.jsonl")
    config = tmp_path / "lora.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"path": str(bert), "pooling": "mean", "lora": {"enabled": True, "r": 4, "dropout": 0.2}},
                "data": {"train": str(data), "batch_size": 8},
                "objective": {"name": "infonce", "temperature": 0.05, "learnable_temperature": True},
                "optim": {"lr": 1e-2},
                "train": {"steps": 5, "checkpoint_every": 2, "log_every": 1, "progress": False, "tensorboard": False},
            }
        )
    )

    def run(name: str, *extra: str, callbacks=()):
        return train(load_config(config, [f"train.output_dir={tmp_path / name}", *extra]), callbacks=callbacks)

    run("full")
    with pytest.raises(RuntimeError, match="crash"):
        run("resumed", callbacks=[Crash(3)])
    assert [s for s, _ in list_checkpoints(tmp_path / "resumed")] == [2]
    assert not (tmp_path / "resumed" / "final").exists()
    run("resumed", "train.resume=true")

    def weights(out: Path) -> dict[str, torch.Tensor]:
        ckpt = latest_checkpoint(out)
        assert ckpt is not None and ckpt.name == "step-000000005"
        tensors = {f"model.{k}": v for k, v in load_file(ckpt / "model.safetensors").items()}
        tensors.update({f"loss.{k}": v for k, v in load_file(ckpt / "loss.safetensors").items()})
        tensors.update({f"final.{k}": v for k, v in load_file(out / "final" / "model.safetensors").items()})
        return tensors

    full, resumed = weights(tmp_path / "full"), weights(tmp_path / "resumed")
    assert full.keys() == resumed.keys() and any("lora_A" in k for k in full)
    assert all(full[k].abs().max() > 0 for k in full if "lora_B" in k)  # the adapters did train
    for key in full:
        assert torch.equal(full[key], resumed[key]), f"{key} differs after resume"
