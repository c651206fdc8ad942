"""Perception on a CPU: a small pixel model trained with the Pixel Linguist curriculum, and an image-label dual encoder.

Both parts train with contrastkit's own loop (``contrastkit.training``) and are
scored with its image evaluation (``contrastkit.evaluation.image*``); data from
``../shared/data`` (or ``--data``).

**Rendered text.** ``configs/recipes/pixel_linguist.yaml`` (a 4-layer,
128-wide ViT from scratch on 16 x 1024 strips; clip at tau 0.05; stage 0: four
perturbation runs on wiki1m_head averaged; stage 1: wikispan; stage 2: SNLI
entailment pairs), every run cut to ``--steps`` optimizer steps of batch
``--batch-size``, no evaluation during training. Reported: visual STS-B
(``--sts-split``, default test) Spearman x 100 of the untrained model (the
recipe's initialisation), of each stage's final model, and of the text model
all-MiniLM-L6-v2 (offline package) on the same pairs
(:func:`contrastkit.evaluation.image_sts.visual_sts`); training wall and CPU
seconds per stage.

**Images.** The MNIST test set (``mnist_test``, 10,000 images) split into its
first ``--mnist-train`` images (train) and the rest (test). A
``DualEncoder(ImageEncoder, all-MiniLM-L6-v2)`` (28 x 28 grayscale, 7 x 7
patches, 2 layers, 64 wide, a projection to MiniLM's 384) is trained with clip
at tau 0.05 on (image, ``"a photo of the digit {d}"``) for ``--image-steps``
steps of 8 images: the sampler keeps a repeated text out of a batch, so a
batch holds at most one image per class. Reported on the test part: kNN
(k = 5, cosine, the whole train part as index) and 16-shot linear-probe
accuracy (5 experiments) of the image tower, untrained and trained, against
the same probes on raw pixels; zero-shot accuracy (class prompts through the
text tower) untrained and trained.

Before each part the script waits (up to ``--wait`` s) until other processes
use at most ``--max-others`` of the CPU; ``others`` is their share during the
part (this machine is shared: a high value means slow, noisy times, not other
scores: every number here is seeded and repeatable).

Usage::

    python bench/perception.py                     # about 15 CPU-minutes on 2 cores
    python bench/perception.py --steps 3 --image-steps 10 --limit 400 --out /tmp/perception.md   # smoke
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from PIL import Image

from _measure import CpuShare, machine_info, wait_for_quiet

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "recipes" / "pixel_linguist.yaml"
DIGIT_TEMPLATE = "a photo of the digit {}"
CLASS_NAMES = [str(d) for d in range(10)]


@dataclass
class Part:
    """One part's scores (x 100) and timings."""

    scores: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (wall, own CPU)
    others: float = float("nan")
    sizes: tuple[int, int] = (0, 0)  # (train, test) items, images part


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _timed(name: str, part: Part, fn: Any) -> Any:
    wall, cpu = time.perf_counter(), _cpu()
    out = fn()
    part.seconds[name] = (time.perf_counter() - wall, _cpu() - cpu)
    print(f"  {name}: {part.seconds[name][0]:.1f} s", flush=True)
    return out


def _truncate(pairs: Any, limit: int | None) -> Any:
    if not limit:
        return pairs
    return replace(
        pairs, sentences1=pairs.sentences1[:limit], sentences2=pairs.sentences2[:limit], scores=pairs.scores[:limit],
        subsets=(),
    )  # fmt: skip


def _repoint(config: Any, data: Path) -> Any:
    """``config`` with the recipe's ``../shared/data`` paths pointing into ``data``."""
    train = tuple(t.replace("../shared/data", str(data)) for t in config.data.train)
    return replace(config, data=replace(config.data, train=train))


def rendered_text(args: argparse.Namespace, out_dir: Path) -> Part:
    """Train the recipe (cut to ``--steps``), score visual STS-B after each stage; see the module docstring."""
    from contrastkit.encoders import load_encoder
    from contrastkit.evaluation.image_sts import visual_sts
    from contrastkit.evaluation.sts import read_sts
    from contrastkit.training.build import build_encoder
    from contrastkit.training.curriculum import load_curriculum, run_curriculum

    overrides = [
        f"train.output_dir={out_dir}", f"train.steps={args.steps}", f"data.batch_size={args.batch_size}",
        "train.progress=false", "train.tensorboard=false", "train.checkpoint_every=0", "eval.sts=null",
    ]  # fmt: skip
    plan = load_curriculum(RECIPE, overrides)
    assert plan is not None
    pairs = _truncate(read_sts(args.data / "stsb", args.sts_split), args.limit)
    part = Part()
    untrained = build_encoder(plan.stages[0].runs[0].config.model)
    minilm = load_encoder("all-MiniLM-L6-v2")
    result = visual_sts(untrained.eval(), pairs, text_encoder=minilm)
    part.scores["untrained pixel model"] = 100 * result.metrics["spearman"]
    part.scores["all-MiniLM-L6-v2 (text)"] = 100 * result.metrics["text_spearman"]
    stages = tuple(
        replace(stage, runs=tuple(replace(run, config=_repoint(run.config, args.data)) for run in stage.runs))
        for stage in plan.stages
    )
    _timed("train the curriculum", part, lambda: run_curriculum(replace(plan, stages=stages)))
    for stage in plan.stages:
        encoder = load_encoder(stage.final_model)
        part.scores[f"after stage {stage.key}"] = 100 * visual_sts(encoder, pairs).metrics["spearman"]
        print(f"  {stage.key}: {part.scores[f'after stage {stage.key}']:.2f}", flush=True)
    return part


def _write_images(images: np.ndarray, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths


def _probe(emb_train: Any, y_train: Any, emb_test: Any, y_test: Any, n_shot: int) -> dict[str, float]:
    from contrastkit.evaluation.image import classify_embeddings

    metrics = classify_embeddings(emb_train, y_train, emb_test, y_test, k=5, n_shot=n_shot, n_experiments=5).metrics
    return {"knn": 100 * metrics["knn_accuracy"], "linear": 100 * metrics["accuracy"]}


def images(args: argparse.Namespace, out_dir: Path) -> Part:
    """Train the image-label dual encoder on the MNIST train part; probes and zero-shot on the test part."""
    import torch

    from contrastkit.data.examples import Example
    from contrastkit.data.images import load_mnist_idx
    from contrastkit.encoders import load_encoder
    from contrastkit.evaluation.image import encode_items
    from contrastkit.evaluation.image_zero_shot import evaluate_zero_shot
    from contrastkit.training.build import build_encoder
    from contrastkit.training.config import load_config
    from contrastkit.training.loop import Trainer

    pixels, labels = load_mnist_idx(args.data / "mnist_test")
    n_train = args.mnist_train if not args.limit else min(args.mnist_train, args.limit)
    n_test = len(labels) - args.mnist_train if not args.limit else min(len(labels) - args.mnist_train, args.limit)
    x_train, y_train = pixels[:n_train], labels[:n_train].tolist()
    x_test, y_test = pixels[args.mnist_train : args.mnist_train + n_test], labels[args.mnist_train :][:n_test].tolist()
    paths = _write_images(x_train, out_dir / "images")
    examples = [Example(p, (DIGIT_TEMPLATE.format(y),)) for p, y in zip(paths, y_train, strict=True)]
    config = load_config(None, [
        "model.kind=image", "model.vision={image_size: [28, 28], patch_size: 7, channels: 1, hidden: 64, layers: 2, "
        f"heads: 4, dropout: 0.1, projection: {load_encoder(args.text_model).dim}}}",
        f"model.candidate={{path: {args.text_model}}}",
        "objective.name=clip", "objective.temperature=0.05", "data.batch_size=8", f"train.steps={args.image_steps}",
        "optim.lr=3e-4", "optim.warmup_steps=20", "optim.schedule=cosine", f"train.output_dir={out_dir / 'run'}",
        "train.progress=false", "train.tensorboard=false", "train.checkpoint_every=0",
    ])  # fmt: skip
    part = Part()
    raw = [torch.from_numpy(x.reshape(len(x), -1).astype(np.float32)) for x in (x_train, x_test)]
    raw_scores = _probe(raw[0], y_train, raw[1], y_test, args.n_shot)
    untrained = build_encoder(config.model).eval()

    def scores(dual: Any) -> dict[str, float]:
        emb = [encode_items(dual.anchor, list(x), modality="image", batch_size=256) for x in (x_train, x_test)]
        probes = _probe(emb[0], y_train, emb[1], y_test, args.n_shot)
        zero = evaluate_zero_shot(dual.anchor, list(x_test), y_test, dual.candidate, CLASS_NAMES,
                                  template=DIGIT_TEMPLATE).metrics["accuracy"]  # fmt: skip
        return {**probes, "zero-shot": 100 * zero}

    before = scores(untrained)
    trainer = Trainer(config, examples=examples)
    _timed("train image-label", part, trainer.fit)
    after = scores(trainer.encoder.eval())
    for probe in ("knn", "linear"):
        part.scores[f"{probe}: raw pixels"] = raw_scores[probe]
        part.scores[f"{probe}: untrained image tower"] = before[probe]
        part.scores[f"{probe}: trained image tower"] = after[probe]
    part.scores["zero-shot: untrained dual"] = before["zero-shot"]
    part.scores["zero-shot: trained dual"] = after["zero-shot"]
    part.sizes = (n_train, n_test)
    return part


def render(text: Part | None, image: Part | None, *, command: str, args: argparse.Namespace, info: dict) -> str:
    """The Markdown report."""
    lines = ["## Perception: a pixel model (Pixel Linguist curriculum) and an image-label dual encoder (CPU)", ""]
    lines += [f"Command: `{command}`", ""]
    if text is not None:
        lines += [
            f"Rendered text: `configs/recipes/pixel_linguist.yaml`, every run cut to {args.steps} steps of batch"
            f" {args.batch_size} (stage 0 = 4 runs averaged), no evaluation during training. Visual STS-B"
            f" {args.sts_split} ({'first ' + str(args.limit) if args.limit else 'all'} pairs), Spearman x 100 of"
            f" the cosine. Others' CPU share during the part: {100 * text.others:.0f}%.",
            "",
            "| model | STS-B Spearman x 100 |",
            "|---|---|",
            *(f"| {name} | {value:.2f} |" for name, value in text.scores.items()),
            "",
            "| | wall s | CPU s |",
            "|---|---|---|",
            *(f"| {name} | {w:.1f} | {c:.1f} |" for name, (w, c) in text.seconds.items()),
            "",
        ]
    if image is not None:
        n_train, n_test = image.sizes
        lines += [
            f"Images: MNIST test set, first {n_train} images train / {n_test} test;"
            f" DualEncoder(ImageEncoder 28x28 / 7x7 patches, 2 layers x 64, {args.text_model}), clip tau 0.05 on"
            f' (image, "{DIGIT_TEMPLATE}"), {args.image_steps} steps of 8. Accuracy x 100 on the test part (kNN:'
            f" k = 5 over the whole train part; linear: {args.n_shot}-shot logistic regression, mean of 5 draws)."
            f" Others' CPU share: {100 * image.others:.0f}%.",
            "",
            "| probe | accuracy x 100 |",
            "|---|---|",
            *(f"| {name} | {value:.2f} |" for name, value in image.scores.items()),
            "",
            *(f"Training: {w:.1f} s wall, {c:.1f} s CPU." for _, (w, c) in image.seconds.items()),
            "",
        ]
    lines += ["Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    default_data = Path(os.environ.get("CONTRASTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "perception.md")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps of every curriculum run")
    parser.add_argument("--batch-size", type=int, default=32, help="curriculum batch size")
    parser.add_argument("--sts-split", default="test", choices=["dev", "test"])
    parser.add_argument("--image-steps", type=int, default=400, help="steps of the image-label dual encoder")
    parser.add_argument("--mnist-train", type=int, default=8000, help="MNIST test images used for training")
    parser.add_argument("--text-model", default="all-MiniLM-L6-v2", help="the dual encoder's text tower (a folder)")
    parser.add_argument("--n-shot", type=int, default=16, help="train images per class of the linear probe")
    parser.add_argument("--limit", type=int, default=None, help="truncate STS pairs and MNIST parts (smoke runs)")
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--max-others", type=float, default=0.25, help="wait until others use at most this CPU share")
    parser.add_argument("--wait", type=float, default=300.0, help="longest wait for a quiet machine, per part (s)")
    args = parser.parse_args(argv)
    text = image = None
    with tempfile.TemporaryDirectory(prefix="bench-perception-") as tmp:
        if not args.skip_text:
            wait_for_quiet(args.max_others, args.wait)
            print("rendered text:", flush=True)
            with CpuShare() as share:
                text = rendered_text(args, Path(tmp) / "pixel")
            text.others = share.others
        if not args.skip_images:
            wait_for_quiet(args.max_others, args.wait)
            print("images:", flush=True)
            with CpuShare() as share:
                image = images(args, Path(tmp) / "mnist")
            image.others = share.others
    command = "python bench/perception.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = render(text, image, command=command.strip(), args=args, info=machine_info())
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
