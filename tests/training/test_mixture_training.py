"""Several datasets in one run (``data.datasets``): keyed config errors, per-dataset objectives and prompts, logs.

Runs use the in-test encoder (dropout 0, so a step's loss can be recomputed
from the weights before it) on small JSONL files.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import TinyEncoder, make_pairs, state_of, write_jsonl

from contrastkit import ContrastiveLoss
from contrastkit.data import DataError, collate
from contrastkit.data.mixture import MixtureSampler
from contrastkit.objectives.temperature import Temperature
from contrastkit.training import Callback, Trainer, load_config, train
from contrastkit.training.logging import read_metrics
from contrastkit.training.sources import build_data_sampler, load_sources


@pytest.fixture
def files(tmp_path):
    a = write_jsonl(make_pairs(24, seed=1), tmp_path / "a.jsonl")
    b = write_jsonl(make_pairs(16, seed=2, negatives=True), tmp_path / "b.jsonl")
    return a, b


def overrides(tmp_path, datasets: list[dict], *extra: str) -> list[str]:
    return [
        f"train.output_dir={tmp_path / 'run'}",
        f"data.datasets={json.dumps(datasets)}",
        "data.batch_size=4",
        "data.seed=3",
        "objective.temperature=0.05",
        "optim.lr=1e-2",
        "train.progress=false",
        "train.log_every=1",
        *extra,
    ]


def config(tmp_path, datasets, *extra):
    return load_config(None, overrides(tmp_path, datasets, *extra))


class Weights(Callback):
    def __init__(self) -> None:
        self.states = {}

    def on_step_end(self, ctx) -> None:
        self.states[ctx.step] = state_of(ctx.encoder)


def test_each_dataset_gets_its_objective_and_prompts(tmp_path, files):
    """Every logged step loss equals its dataset's objective (with its prompts) on the batch the schedule names."""
    a, b = files
    datasets = [
        {"name": "a", "train": str(a), "weight": 2, "anchor_prompt_name": "query"},
        {
            "name": "b",
            "train": str(b),
            "weight": 1,
            "objective": {"name": "siglip", "temperature": 0.1, "learnable_temperature": False},
        },
    ]
    cfg = config(tmp_path, datasets, "train.steps=12", "train.checkpoint_every=0")
    weights = Weights()
    train(cfg, encoder=TinyEncoder(dropout=0.0), callbacks=[weights])
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 13))
    sources = load_sources(cfg.data)
    sampler = build_data_sampler(cfg.data, sources)
    assert isinstance(sampler, MixtureSampler)
    losses = {
        "a": ContrastiveLoss("infonce", temperature=0.05),
        "b": ContrastiveLoss("siglip", temperature=0.1, learnable_temperature=False),
    }
    prompts = {"a": "query: ", "b": None}
    encoder = TinyEncoder(dropout=0.0)
    seen = set()
    for record in records:
        d, indices = sampler.next_batch()
        name = sources[d].name
        assert record["dataset"] == name
        seen.add(name)
        batch = collate([sources[d].examples[i] for i in indices])
        if record["step"] > 1:
            encoder.load_state_dict(weights.states[record["step"] - 1])
        with torch.no_grad():
            anchors = encoder(encoder.tokenize(batch.anchors, prompt=prompts[name]))
            candidates = encoder(encoder.tokenize(list(batch.candidates)))
            own = {k: float(loss(anchors, candidates, batch.targets())) for k, loss in losses.items()}
        assert record["loss"] == pytest.approx(own[name], rel=1e-5, abs=1e-6)
        other = "b" if name == "a" else "a"
        assert abs(own[other] - own[name]) > 1e-3  # the test tells the objectives apart
    assert seen == {"a", "b"}


def test_learnable_temperatures_per_loss_are_trained_and_checkpointed(tmp_path, files):
    a, b = files
    c = write_jsonl(make_pairs(12, seed=3), tmp_path / "c.jsonl")
    own = {"name": "simcse_sup", "temperature": 0.1, "learnable_temperature": True}
    datasets = [
        {"name": "a", "train": str(a)},
        {"name": "b", "train": str(b), "objective": own},
        {"name": "c", "train": str(c)},  # the run's objective, like a: shares a's loss
    ]
    cfg = config(
        tmp_path, datasets, "train.steps=10", "objective.learnable_temperature=true", "data.mixing=round_robin"
    )
    trainer = Trainer(cfg, encoder=TinyEncoder())
    result = trainer.fit()
    assert trainer.routing.loss_of == [0, 1, 0] and len(trainer.routing.losses) == 2
    temps = [m for loss in trainer.routing.losses for m in loss.modules() if isinstance(m, Temperature)]
    assert len(temps) == 2 and all(t.learnable for t in temps)
    optimized = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in optimized for t in temps for p in t.parameters())
    assert temps[0].value != pytest.approx(0.05) and temps[1].value != pytest.approx(0.1)  # both moved
    saved = load_file(result.last_checkpoint / "loss.safetensors")
    assert {k.split(".")[0] for k in saved} == {"0", "1"}
    for k, t in enumerate(temps):
        [key] = [name for name in saved if name.startswith(f"{k}.") and "temperature" in name]
        assert torch.equal(saved[key], next(t.parameters()).detach())
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["dataset"] for r in records] == ["a", "b", "c"] * 3 + ["a"]
    assert {"temperature/a", "temperature/b"} <= set(records[-1]) and "temperature" not in records[-1]


def test_epochs_count_one_pass_over_every_dataset(tmp_path, files):
    a, b = files
    datasets = [{"name": "a", "train": str(a)}, {"name": "b", "train": str(b)}]
    result = train(config(tmp_path, datasets, "train.epochs=2"), encoder=TinyEncoder())
    assert result.steps == 2 * (24 // 4 + 16 // 4)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    epochs = [r["epoch"] for r in records]  # the epoch of the next batch, as for one dataset
    assert epochs[8:10] == [0, 1] and epochs[-1] == 2  # a mixture epoch is 10 batches


def test_length_grouped_single_dataset_run(tmp_path, files):
    a, _ = files
    cfg = load_config(
        None,
        [f"train.output_dir={tmp_path / 'run'}", f"data.train={a}", "data.batch_size=4", "data.length_grouped=true",
         "train.steps=3", "train.progress=false"],
    )  # fmt: skip
    trainer = Trainer(cfg, encoder=TinyEncoder())
    trainer.fit()
    assert trainer.sampler.length_grouped and trainer.sampler.state_dict()["batch"] == 3


BAD = [
    # (datasets, extra overrides, message start)
    ([{"name": "a", "train": "A"}, {"name": "b", "train": "missing.jsonl"}], (),
     "data.datasets[1].train: no such data"),
    ([{"name": "a", "train": "A"}, {"name": "b", "train": "B", "objective": {"name": "infonse"}}], (),
     "data.datasets[1].objective.name: "),
    ([{"name": "a", "train": "A", "anchor_prompt_name": "nope"}], (), "data.datasets[0].anchor_prompt_name: "),
    ([{"name": "a", "train": "A"}, {"name": "s", "train": "S"}], (), "objective.name: 'infonce' scores anchors"),
    ([{"name": "a", "train": "A"}, {"name": "b", "train": "B", "columns": {"query": "x"}}], (),
     "data.datasets[1]: columns: unknown role 'query'"),
    ([{"name": "a", "train": "A"}, {"name": "b", "train": "B"}], ("data.batch_size=20",),
     "data.batch_size: dataset 'b' (data.datasets[1]): 16 examples < batch_size 20"),
]  # fmt: skip


@pytest.mark.parametrize(("datasets", "extra", "message"), BAD, ids=[m.split(":")[0] for _, _, m in BAD])
def test_config_errors_name_the_dataset_key_and_write_nothing(tmp_path, files, datasets, extra, message):
    a, b = files
    (tmp_path / "s.txt").write_text("one sentence\nanother sentence\nand a third\nand more\n")
    paths = {"A": str(a), "B": str(b), "S": str(tmp_path / "s.txt"), "missing.jsonl": str(tmp_path / "missing.jsonl")}
    datasets = [{**d, "train": paths[d["train"]]} for d in datasets]
    with pytest.raises(ValueError) as info:
        train(config(tmp_path, datasets, "train.steps=2", *extra), encoder=TinyEncoder())
    assert str(info.value).startswith(message), str(info.value)
    if message.startswith("objective.name"):
        assert "(dataset 's', data.datasets[1])" in str(info.value)
    assert not (tmp_path / "run").exists()


def test_bad_rows_and_ready_examples(tmp_path, files):
    a, _ = files
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"anchor": "x", "positive": "y"}\n{"anchor": "x"}\n')
    datasets = [{"name": "a", "train": str(a)}, {"name": "bad", "train": str(bad)}]
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: missing column 'positive'"):
        train(config(tmp_path, datasets, "train.steps=1"), encoder=TinyEncoder())
    with pytest.raises(ValueError, match=r"data\.datasets: ready examples stand for one dataset"):
        train(config(tmp_path, datasets[:1], "train.steps=1"), encoder=TinyEncoder(), examples=make_pairs(8))
    assert not (tmp_path / "run").exists()


def test_hugging_face_dataset_with_a_split_as_one_of_the_datasets(tmp_path, files):
    datasets_lib = pytest.importorskip("datasets")
    a, _ = files
    pairs = make_pairs(12, seed=5)
    splits = {
        "train": {"question": [p.anchor for p in pairs], "answer": [p.positives[0] for p in pairs]},
        "test": {"question": ["only one"], "answer": ["row"]},
    }
    datasets_lib.DatasetDict({k: datasets_lib.Dataset.from_dict(v) for k, v in splits.items()}).save_to_disk(
        tmp_path / "qa"
    )
    qa = {"name": "qa", "train": str(tmp_path / "qa"), "split": "train",
          "columns": {"anchor": "question", "positive": "answer"}}  # fmt: skip
    datasets = [{"name": "a", "train": str(a)}, qa]
    trainer = Trainer(config(tmp_path, datasets, "train.steps=4", "data.mixing=round_robin"), encoder=TinyEncoder())
    trainer.fit()
    assert [ex.anchor for ex in trainer.sources[1].examples] == [p.anchor for p in pairs]
    assert [r["dataset"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == ["a", "qa", "a", "qa"]
    wrong = {**qa, "split": "dev"}
    with pytest.raises(DataError, match=r"qa: no split 'dev' \(splits: train, test\)"):
        train(config(tmp_path / "other", [datasets[0], wrong], "train.steps=1"), encoder=TinyEncoder())
