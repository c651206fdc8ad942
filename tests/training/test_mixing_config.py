"""``data.mixing: codiemb`` and ``data.mixing_temperature`` reach the run's MixtureSampler; bad values are located."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from training_helpers import TinyEncoder, make_pairs, write_jsonl

from contrastkit.training import Trainer, load_config


@pytest.fixture
def datasets(tmp_path):
    a = write_jsonl(make_pairs(24, seed=1), tmp_path / "a.jsonl")
    b = write_jsonl(make_pairs(16, seed=2, negatives=True), tmp_path / "b.jsonl")
    return [{"name": "a", "train": str(a)}, {"name": "b", "train": str(b)}]


def config(tmp_path, datasets, *extra):
    return load_config(
        None,
        [f"train.output_dir={tmp_path / 'run'}", f"data.datasets={json.dumps(datasets)}", "data.batch_size=4",
         "train.progress=false", *extra],
    )  # fmt: skip


def test_codiemb_run_takes_every_dataset_batch_once_per_epoch(tmp_path, datasets):
    trainer = Trainer(config(tmp_path, datasets, "data.mixing=codiemb", "train.epochs=1"), encoder=TinyEncoder())
    assert trainer.fit().steps == 10
    sampler = trainer.sampler
    assert sampler.mixing == "codiemb" and sampler.batches_per_epoch == 10
    assert Counter(sampler.dataset_at(k) for k in range(10)) == {0: 6, 1: 4}


def test_mixing_temperature_reaches_the_sampler_and_its_state(tmp_path, datasets):
    trainer = Trainer(config(tmp_path, datasets, "data.mixing_temperature=2", "train.steps=2"), encoder=TinyEncoder())
    trainer.fit()
    assert trainer.sampler.temperature == 2.0
    assert trainer.sampler.probabilities() == pytest.approx([6**0.5 / (6**0.5 + 2), 2 / (6**0.5 + 2)])
    assert trainer.sampler.state_dict()["temperature"] == 2.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("data.mixing_temperature=0",), "data.mixing_temperature: must be a finite number > 0"),
        (("data.mixing=round_robin", "data.mixing_temperature=2"), "data.mixing_temperature: applies to mixing"),
    ],
)
def test_bad_mixing_settings_are_located(tmp_path, datasets, extra, message):
    with pytest.raises(ValueError, match=message):
        config(tmp_path, datasets, *extra)


def test_codiemb_weights_must_be_whole_batches(tmp_path, datasets):
    weighted = [{**datasets[0], "weight": 1.5}, {**datasets[1], "weight": 2}]
    with pytest.raises(ValueError, match=r"data.datasets\[0\].weight: codiemb weights are whole batches"):
        config(tmp_path, weighted, "data.mixing=codiemb")
