"""Perception training modes through the ordinary loop: pixel-pixel, pixel-text, image-text, image-label (zero-shot).

Each mode trains a few steps from ``load_config(None, [...])`` on tiny models
(a 1-layer, 32-wide ViT, the 2-layer 32-wide BERT of ``training_helpers``):
the loss is finite, weights change, and the saved folder reloads and encodes
as the trained encoder does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import WORDS, make_pairs, tiny_bert, write_jsonl

from contrastkit.data.images import load_digits_images
from contrastkit.encoders import DualEncoder, ImageEncoder, PixelEncoder, load_encoder
from contrastkit.evaluation.image_zero_shot import evaluate_zero_shot
from contrastkit.training import load_config
from contrastkit.training.build import build_encoder
from contrastkit.training.loop import Trainer

TOWER = "{hidden: 32, layers: 1, heads: 2, dropout: 0.1}"
PIXEL = ["model.kind=pixel", f"model.vision={TOWER}", "model.renderer={width: 256}"]
COMMON = ["train.progress=false", "train.tensorboard=false", "train.log_every=1", "optim.lr=1e-3"]
CLASSES = WORDS[:4]  # class names of digits 0-3 (the tiny BERT's vocabulary)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("perception")
    sentences = root / "sentences.txt"
    sentences.write_text("\n".join(" ".join(WORDS[i : i + 5]) for i in range(14)) + "\n")
    images, labels = load_digits_images()
    keep = np.flatnonzero(labels < 4)[:48]
    images, labels = images[keep], labels[keep]
    (root / "img").mkdir()
    captions, classes = [], []
    for i in range(len(keep)):
        path = root / "img" / f"{i}.png"
        Image.fromarray(images[i]).save(path)
        captions.append({"anchor": str(path), "positive": f"{CLASSES[labels[i]]} {WORDS[10 + i % 9]} {i}"})
        classes.append({"anchor": str(path), "positive": f"the digit {CLASSES[labels[i]]}"})
    for name, rows in (("captions", captions), ("classes", classes)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {
        "bert": tiny_bert(root / "bert"),
        "sentences": sentences,
        "pairs": write_jsonl(make_pairs(16), root / "pairs.jsonl"),
        "captions": root / "captions.jsonl",
        "classes": root / "classes.jsonl",
        "labels": labels,
        "images": images,
    }


def _train(tmp_path: Path, overrides: list[str]) -> tuple[Trainer, dict[str, torch.Tensor]]:
    config = load_config(None, [*COMMON, f"train.output_dir={tmp_path / 'run'}", *overrides])
    before = {k: v.clone() for k, v in build_encoder(config.model).state_dict().items()}
    trainer = Trainer(config)
    result = trainer.fit()
    assert result.steps == config.train.steps and np.isfinite(result.loss)
    after = trainer.encoder.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no weight changed"
    return trainer, before


def _reloads_identically(trainer: Trainer, inputs: list, side: str | None = None) -> None:
    loaded = load_encoder(trainer.output_dir / "final")
    kwargs = {} if side is None else {"side": side}
    assert torch.allclose(loaded.encode(inputs, **kwargs), trainer.encoder.encode(inputs, **kwargs), atol=1e-6)


def test_pixel_pixel_two_augmented_views_of_one_sentence(files, tmp_path) -> None:
    trainer, _ = _train(
        tmp_path,
        [*PIXEL, "model.augment={p_noise: 1.0, p_offset: 0.5}", f"data.train={files['sentences']}",
         "data.batch_size=6", "objective.name=simcse", "objective.temperature=0.05", "train.steps=3"],
    )  # fmt: skip
    assert isinstance(trainer.encoder, PixelEncoder)
    _reloads_identically(trainer, ["alpha beta gamma", "delta"])


def test_pixel_pixel_paraphrase_pairs(files, tmp_path) -> None:
    trainer, _ = _train(
        tmp_path,
        [*PIXEL, f"data.train={files['pairs']}", "data.batch_size=4", "objective.name=clip",
         "objective.temperature=0.05", "train.steps=3"],
    )  # fmt: skip
    _reloads_identically(trainer, ["alpha beta gamma", "delta"])


def test_pixel_text_dual_with_learnable_temperature(files, tmp_path) -> None:
    trainer, before = _train(
        tmp_path,
        [*PIXEL, f"model.candidate={{path: {files['bert']}, pooling: mean}}", f"data.train={files['pairs']}",
         "data.batch_size=4", "objective.name=clip", "objective.temperature=0.05",
         "objective.learnable_temperature=true", "train.steps=3"],
    )  # fmt: skip
    dual = trainer.encoder
    assert isinstance(dual, DualEncoder) and isinstance(dual.anchor, PixelEncoder)
    after = dual.state_dict()
    for tower in ("anchor.", "candidate."):  # both towers trained
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(tower))
    temps = [json.loads(line).get("temperature") for line in (trainer.output_dir / "metrics.jsonl").open()]
    temps = [t for t in temps if t is not None]
    assert len(temps) == 3 and abs(temps[-1] - 0.05) > 1e-6  # the temperature is learned
    for side in ("anchor", "candidate"):
        _reloads_identically(trainer, ["alpha beta gamma", "delta"], side)


def test_image_text_dual(files, tmp_path) -> None:
    trainer, _ = _train(
        tmp_path,
        ["model.kind=image", "model.vision={image_size: [8, 8], patch_size: 4, channels: 1, hidden: 32, "
         "layers: 1, heads: 2}", f"model.candidate={{path: {files['bert']}, pooling: mean}}",
         f"data.train={files['captions']}", "data.batch_size=8", "objective.name=infonce",
         "objective.temperature=0.05", "train.steps=3"],
    )  # fmt: skip
    assert isinstance(trainer.encoder.anchor, ImageEncoder)
    paths = [json.loads(line)["anchor"] for line in files["captions"].open()][:5]
    _reloads_identically(trainer, paths, "anchor")
    _reloads_identically(trainer, ["alpha beta", "gamma"], "candidate")


@pytest.mark.filterwarnings("ignore:BatchSampler epoch")  # prompts repeat: batches of distinct classes only
def test_image_label_prompts_then_zero_shot(files, tmp_path) -> None:
    overrides = [
        "model.kind=image",
        "model.vision={image_size: [8, 8], patch_size: 4, channels: 1, hidden: 32, layers: 1, heads: 2}",
        f"model.candidate={{path: {files['bert']}, pooling: mean}}",
        f"data.train={files['classes']}",
        "data.batch_size=4",  # a class prompt appears once per batch: at most one image per class
        "objective.name=clip",
        "objective.temperature=0.05",
        "train.steps=20",
        "optim.lr=3e-3",
    ]
    untrained = build_encoder(load_config(None, overrides).model)
    trainer, _ = _train(tmp_path, overrides)
    images, labels = list(files["images"]), files["labels"]

    def zero_shot(dual: DualEncoder) -> float:
        result = evaluate_zero_shot(dual.anchor, images, labels, dual.candidate, CLASSES, template="the digit {}")
        return result.metrics["accuracy"]

    before, after = zero_shot(untrained), zero_shot(trainer.encoder)
    assert before < 0.35 and after > before + 0.25  # the prompts became classifiers of the training images
    _reloads_identically(trainer, images[:4], "anchor")
