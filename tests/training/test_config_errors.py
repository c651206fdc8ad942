"""Config errors: every problem at once, each naming its dotted key (and its file and line for a YAML file);
non-finite and absurd numbers, conflicting keys, impossible devices and a max_length past the model's
positions refused before anything is written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from contrastkit.training.build import position_limit
from contrastkit.training.config import ConfigError, load_config
from contrastkit.training.device import resolve_device
from tiny_models import tiny_bert_folder


def error_of(path: Path | None = None, overrides: tuple[str, ...] = ()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value


def test_every_problem_of_a_yaml_file_at_once_with_file_and_line(tmp_path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            model:
              path: m
              pooling: median
            optim:
              lr: .inf
              warmup_steps: 10
              warmup_ratio: 0.1
            data:
              seed: -1
              batch_size: 0
              batchsize: 3
            objective:
              temperature: .nan
            train:
              device: cpu:7
            """
        )
    )
    err = error_of(path, ("optim.eps=-1",))
    found = {e.path: (e.where, e.message) for e in err.errors}
    assert found == {
        "model.pooling": (
            f"{path}:3",
            "unknown pooling 'median' for kind 'auto'; choose one of mean, cls, last, weighted_mean, mean_excl_prompt",
        ),
        "optim.lr": (f"{path}:5", "must be a finite number, got float inf"),
        "optim.eps": (None, "must be >= 0, got -1.0"),  # set by an override: no file line
        "optim.warmup_ratio": (f"{path}:7", "conflicts with optim.warmup_steps=10: set one of them (the other 0)"),
        "data.seed": (f"{path}:9", "must be >= 0, got -1"),
        "data.batch_size": (f"{path}:10", "must be >= 1, got 0"),
        "data.batchsize": (f"{path}:11", "unknown key; did you mean 'data.batch_size'?"),
        "objective.temperature": (f"{path}:13", "must be a finite number, got float nan"),
        "train.device": (f"{path}:15", "unknown device 'cpu:7': expected auto, cpu, cuda, cuda:N or mps"),
    }
    text = str(err)
    assert text.startswith("9 problems in the config:\n")
    assert f"\n  {path}:9: data.seed: must be >= 0, got -1\n" in text


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.seed=-1", "data.seed: must be >= 0, got -1"),
        ("train.seed=-3", "train.seed: must be >= 0, got -3"),
        ("views.seed=-2", "views.seed: must be >= 0, got -2"),
        ("objective.temperature=.inf", "objective.temperature: must be a finite number, got float inf"),
        ("model.pooling=median", "model.pooling: unknown pooling 'median' for kind 'auto'; choose one of mean, cls, "
         "last, weighted_mean, mean_excl_prompt"),
        ("model.pooling=cls", None),
        ("model.kind=decoder", None),
        ("optim.lr=.inf", "optim.lr: must be a finite number, got float inf"),
        ("optim.lr=1e38", "optim.lr: must be in (0, 1.0], got 1e+38"),
        ("optim.lr=" + "9" * 400, "optim.lr: must be a finite number, got an int beyond float range"),
        ("optim.temperature_lr=1e38", "optim.temperature_lr: must be in (0, 1.0], got 1e+38"),
        ("optim.betas=[0.9, .nan]", "optim.betas[1]: must be a finite number, got float nan"),
        ("optim.grad_clip=.inf", "optim.grad_clip: must be a finite number, got float inf"),
        ("scale.matryoshka_weights=[.inf]", "scale.matryoshka_weights[0]: must be a finite number, got float inf"),
        ("train.device=cpu:7", "train.device: unknown device 'cpu:7': expected auto, cpu, cuda, cuda:N or mps"),
        ("train.device=cuda:x", "train.device: unknown device 'cuda:x': expected auto, cpu, cuda, cuda:N or mps"),
        ("train.device=cuda:1", None),  # well formed: whether it exists is decided on the machine (resolve_device)
    ],
)  # fmt: skip
def test_each_problem_names_its_own_key(override: str, message: str | None) -> None:
    if message is None:
        load_config(None, (override,))
    else:
        assert str(error_of(overrides=(override,))) == message


def test_conflicting_keys_are_refused() -> None:
    assert load_config(None, ("optim.warmup_steps=5",)).optim.warmup_steps == 5
    assert load_config(None, ("optim.warmup_ratio=0.1",)).optim.warmup_ratio == 0.1
    err = error_of(overrides=("optim.warmup_ratio=0.1", "optim.warmup_steps=5"))
    assert err.path == "optim.warmup_ratio" and "conflicts with optim.warmup_steps=5" in err.message
    assert load_config(None, ("scale.sub_batch=4",)).scale.sub_batch == 4
    err = error_of(overrides=("scale.sub_batch=4", "scale.gradcache_chunk=8"))  # sub_batch was silently ignored
    assert err.path == "scale.sub_batch" and err.message.startswith("conflicts with scale.gradcache_chunk")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_refused_at_build(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"train.device: '{name}' requested but CUDA is not available"):
        resolve_device(name)


def test_an_index_on_the_cpu_is_refused_at_build_too() -> None:
    assert resolve_device("cpu:0").type == "cpu"
    with pytest.raises(ConfigError, match=r"train.device: 'cpu:7': there is one CPU device"):
        resolve_device("cpu:7")


def test_max_length_past_the_positions_is_refused_before_any_run_file(tmp_path) -> None:
    from contrastkit.training import train

    model = tiny_bert_folder(tmp_path / "bert", ["alpha", "beta", "gamma", "delta"], max_length=32)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(f'{{"anchor": "alpha {i}", "positive": "beta {i}"}}\n' for i in range(8)))
    out = tmp_path / "run"
    base = (f"model.path={model}", f"data.train={data}", "data.batch_size=4", f"train.output_dir={out}")
    cfg = load_config(None, (*base, "model.max_length=33", "train.steps=1"))
    with pytest.raises(ConfigError) as info:
        train(cfg)
    assert str(info.value) == "model.max_length: 33 is more tokens than the model has positions for (32); use <= 32"
    written = {p.name for p in out.iterdir()} if out.exists() else set()
    assert not written & {"config.yaml", "metrics.jsonl", "env.json", "final"}


def test_position_limit_counts_a_padding_offset_and_falls_back_to_the_config() -> None:
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    class Holder(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

    small = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8}
    roberta = RobertaModel(RobertaConfig(vocab_size=20, max_position_embeddings=34, pad_token_id=1, **small))
    assert position_limit(Holder(roberta)) == 32  # RoBERTa's positions start at padding_idx + 1 = 2
    assert position_limit(Holder(BertModel(BertConfig(vocab_size=20, max_position_embeddings=40, **small)))) == 40
    rotary = torch.nn.Linear(2, 2)
    rotary.config = BertConfig(max_position_embeddings=128)  # no position table: the config's limit
    assert position_limit(Holder(rotary)) == 128
    assert position_limit(torch.nn.Linear(2, 2)) is None  # not a transformer encoder


def test_curriculum_problems_name_the_file_and_line_of_the_stage_key(tmp_path) -> None:
    from contrastkit.training.curriculum import load_curriculum

    path = tmp_path / "cur.yaml"
    path.write_text("model: {path: m}\noptim:\n  lr: 0.5\nstages:\n  - name: a\n    optim:\n      lr: 7\n")
    with pytest.raises(ConfigError) as info:
        load_curriculum(path)
    assert str(info.value) == f"{path}:7: stages[0].optim.lr: must be in (0, 1.0], got 7.0"
    path.write_text("model: {path: m}\noptim:\n  lr: 5\nstages:\n  - name: a\n")  # a shared key: its own line
    with pytest.raises(ConfigError, match=rf"^{path}:3: optim.lr: must be in"):
        load_curriculum(path)
