"""Built-in offline image tasks: digits and MNIST classification / clustering / zero-shot, visual STS suites.

Nothing is downloaded. The image sets:

* ``"digits"``: scikit-learn's bundled 8 x 8 digits (1,797 images), source
  named ``sklearn:digits`` in results;
* an MNIST IDX folder such as ``../shared/data/mnist_test`` (the 10,000
  test images), named by its path.

Each is split once into train and test halves, stratified by label and seeded
(:func:`stratified_split`: per class a seeded permutation, the first
``round(n_c x test_fraction)`` rows go to test), so probes are trained and
scored on disjoint images. The class names are the digit names ("zero" ...
"nine"), the zero-shot template ``"a photo of the digit {name}"``.

:func:`evaluate_image_dataset` encodes the train and test images once and
reports linear probe + kNN (``image-classification``), MiniBatchKMeans NMI on
the test images (``image-clustering``) and, given a text encoder, zero-shot
accuracy (``zero-shot-classification``), as
:class:`~contrastkit.evaluation.tasks.TaskResult` objects naming the data
source. :func:`visual_sts_suite` scores a pixel encoder on the STS folders of
the shared data pack (STS-B test, SICK-R trial, STS12-14 test; see
:data:`VISUAL_STS_SETS`), rendering the sentences itself (texts-in pixel
encoder) or with a given renderer for an image encoder.
:func:`rendered_beir_pages` turns a BEIR folder into a document-understanding
task whose pages are rendered text (an offline stand-in for ViDoRe).

Example::

    >>> from contrastkit.evaluation.image_tasks import load_image_dataset
    >>> data = load_image_dataset("digits")
    >>> data.source, data.train_images.shape, data.test_images.shape
    ('sklearn:digits', (899, 8, 8), (898, 8, 8))
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contrastkit.errors import UsageError
from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.image import classify_embeddings, cluster_embeddings, encode_items
from contrastkit.evaluation.image_sts import render_pairs, visual_sts, visual_sts_images
from contrastkit.evaluation.image_zero_shot import class_embeddings, zero_shot_from_embeddings
from contrastkit.evaluation.mieb import task_result
from contrastkit.evaluation.tasks import TaskResult, TaskSpec, register_task, task_names

DIGITS = "digits"
DIGIT_NAMES: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TEMPLATE = "a photo of the digit {name}"
VISUAL_STS_SETS: dict[str, str] = {"stsb": "test", "sickr": "trial", "sts12": "test", "sts13": "test", "sts14": "test"}


@dataclass(frozen=True)
class ImageDataset:
    """Train and test images (uint8 (n, H, W)) with int64 labels indexing ``class_names``; ``source`` names the data."""

    source: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]


def stratified_split(labels: Any, *, test_fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows), sorted: per label, a seeded permutation's first ``round(n x test_fraction)`` to test."""
    if not 0.0 < test_fraction < 1.0:
        raise UsageError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        rows = rows[rng.permutation(len(rows))]
        cut = round(len(rows) * test_fraction)
        test.append(rows[:cut])
        train.append(rows[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def read_image_source(source: str | Path, *, limit: int | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """(source name, images, labels) of ``"digits"`` or an MNIST IDX folder; ``limit``: only the first rows."""
    from contrastkit.data.images import load_digits_images, load_mnist_idx

    if str(source) == DIGITS and not Path(source).exists():
        (images, labels), name = load_digits_images(), "sklearn:digits"
    else:
        (images, labels), name = load_mnist_idx(source), str(source)
    return _first_rows((name, images, labels), limit)


def _first_rows(raw: tuple[str, np.ndarray, np.ndarray], limit: int | None) -> tuple[str, np.ndarray, np.ndarray]:
    if limit is None:
        return raw
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 2:
        raise UsageError(f"limit must be an integer >= 2, got {limit!r}")
    name, images, labels = raw
    return name, images[:limit], labels[:limit]


def load_image_dataset(
    source: str | Path, *, test_fraction: float = 0.5, seed: int = 0, limit: int | None = None
) -> ImageDataset:
    """:func:`read_image_source`, split into train and test by :func:`stratified_split`."""
    return split_images(read_image_source(source, limit=limit), test_fraction=test_fraction, seed=seed)


def split_images(raw: tuple[str, np.ndarray, np.ndarray], *, test_fraction: float = 0.5, seed: int = 0) -> ImageDataset:
    """An :class:`ImageDataset` from :func:`read_image_source`'s triple."""
    name, images, labels = raw
    train, test = stratified_split(labels, test_fraction=test_fraction, seed=seed)
    return ImageDataset(name, images[train], labels[train], images[test], labels[test], DIGIT_NAMES)


def evaluate_image_dataset(
    image_encoder: Any,
    dataset: ImageDataset,
    *,
    text_encoder: Any = None,
    template: str | Sequence[str] = DIGIT_TEMPLATE,
    batch_size: int = 64,
    seed: int = 0,
    cache: EmbeddingCache | None = None,
    **probe: Any,
) -> list[TaskResult]:
    """Classification (``probe``: :func:`classify_embeddings` options), clustering, zero-shot (given a text model)."""
    x_train = encode_items(image_encoder, dataset.train_images, modality="image", batch_size=batch_size)
    x_test = encode_items(image_encoder, dataset.test_images, modality="image", batch_size=batch_size)
    source, split, y_test = dataset.source, "test", dataset.test_labels
    probes = classify_embeddings(x_train, dataset.train_labels, x_test, y_test, seed=seed, **probe)
    out = [
        task_result("image-classification", source, split, probes),
        task_result("image-clustering", source, split, cluster_embeddings(x_test, y_test, seed=seed)),
    ]
    if text_encoder is not None:
        class_emb, prompts = class_embeddings(
            text_encoder, dataset.class_names, template, batch_size=batch_size, cache=cache
        )
        zero_shot = zero_shot_from_embeddings(x_test, dataset.test_labels, class_emb, prompts)
        out.append(task_result("zero-shot-classification", source, split, zero_shot))
    return out


def visual_sts_suite(
    pixel_encoder: Any,
    root: str | Path,
    *,
    sets: Mapping[str, str] | Sequence[str] = VISUAL_STS_SETS,
    text_encoder: Any = None,
    renderer: Any = None,
    batch_size: int = 64,
    cache: EmbeddingCache | None = None,
) -> list[TaskResult]:
    """Visual STS on ``root/<name>`` for each set (name -> split; a list of names uses :data:`VISUAL_STS_SETS` splits).

    Without ``renderer`` the encoder takes texts (:func:`visual_sts`, with the
    text model side by side when given); with one, the sentences are rendered
    and ``pixel_encoder`` is an image encoder (:func:`visual_sts_images`).
    A missing folder or split is the reader's DataError.
    """
    from contrastkit.evaluation.sts import read_sts

    splits = dict(sets) if isinstance(sets, Mapping) else {name: VISUAL_STS_SETS.get(name, "test") for name in sets}
    out = []
    for name, split in splits.items():
        start = time.perf_counter()
        pairs = read_sts(Path(root) / name, split)
        if renderer is None:
            result: Any = visual_sts(pixel_encoder, pairs, text_encoder, batch_size=batch_size, cache=cache)
        else:
            first, second = render_pairs(pairs, renderer)
            result = visual_sts_images(pixel_encoder, first, second, pairs.scores, batch_size=batch_size)
        data = str(Path(root) / name)
        out.append(task_result("visual-sts", data, split, result, seconds=time.perf_counter() - start))
    return out


def rendered_beir_pages(
    folder: str | Path,
    renderer: Any,
    *,
    split: str = "test",
    max_queries: int | None = None,
    max_docs: int | None = None,
    seed: int = 0,
) -> tuple[dict[str, str], dict[str, np.ndarray], dict[str, dict[str, int]]]:
    """(queries, page images, qrels) from a BEIR folder: documents rendered by ``renderer`` (wrap mode).

    ``max_queries`` keeps the first queries; ``max_docs`` keeps every relevant
    document of the kept queries plus a seeded sample of the others up to
    that many pages (fewer pages than relevant documents is a ValueError).
    """
    from contrastkit.data.beir import load_beir

    data = load_beir(folder, split)
    qids = list(data.queries)[:max_queries] if max_queries is not None else list(data.queries)
    qrels = {q: data.qrels[q] for q in qids}
    relevant = sorted({d for q in qids for d, g in qrels[q].items() if g > 0})
    keep = sorted(data.corpus)
    if max_docs is not None:
        if max_docs < len(relevant):
            raise UsageError(f"max_docs={max_docs} is fewer than the {len(relevant)} relevant documents")
        others = sorted(set(data.corpus) - set(relevant))
        picked = np.random.default_rng(seed).permutation(len(others))[: max_docs - len(relevant)]
        keep = sorted([*relevant, *(others[i] for i in picked)])
    pages = {d: renderer.render(data.corpus[d]) for d in keep}
    return {q: data.queries[q] for q in qids}, pages, qrels


# ---------------------------------------------------------------- task types of ``contrastkit eval``
def _load_images(folder: Path, split: str) -> tuple[str, np.ndarray, np.ndarray]:
    if split != "test":
        raise UsageError(f"image tasks split {folder} into train and test halves themselves: use split 'test'")
    return read_image_source(folder)


def _dataset(data: tuple[str, np.ndarray, np.ndarray], params: dict[str, Any]) -> ImageDataset:
    """Split with the ``limit`` / ``test_fraction`` / ``split_seed`` options (removed from ``params``)."""
    raw = _first_rows(data, params.pop("limit", None))
    return split_images(raw, test_fraction=params.pop("test_fraction", 0.5), seed=params.pop("split_seed", 0))


def _text_side(encoder: Any, params: dict[str, Any], options: Any) -> tuple[Any, Any]:
    """(image-side encoder, text-side encoder): the model and ``text_model``, or a dual encoder's two towers."""
    from contrastkit.encoders import load_encoder
    from contrastkit.encoders.dual import DualEncoder
    from contrastkit.evaluation.cache import CachedEncoder

    inner = encoder.encoder if isinstance(encoder, CachedEncoder) else encoder
    text_model = params.pop("text_model", None)
    if text_model is not None:
        return inner, CachedEncoder(load_encoder(text_model), options.cache)
    if not isinstance(inner, DualEncoder):
        raise UsageError("zero-shot-classification needs a text tower: a dual-encoder model (anchor: images, "
                         "candidate: texts) or --option text_model=MODEL")  # fmt: skip
    return inner.anchor, CachedEncoder(inner.candidate, options.cache)


def _run_image_classification(encoder: Any, data: Any, options: Any) -> tuple[dict[str, float], Any]:
    params = dict(options.params)
    ds = _dataset(data, params)
    x_train = encode_items(encoder, ds.train_images, modality="image", batch_size=options.batch_size)
    x_test = encode_items(encoder, ds.test_images, modality="image", batch_size=options.batch_size)
    result = classify_embeddings(x_train, ds.train_labels, x_test, ds.test_labels, **params)
    return result.metrics, result


def _run_image_clustering(encoder: Any, data: Any, options: Any) -> tuple[dict[str, float], Any]:
    params = dict(options.params)
    ds = _dataset(data, params)
    x_test = encode_items(encoder, ds.test_images, modality="image", batch_size=options.batch_size)
    result = cluster_embeddings(x_test, ds.test_labels, **params)
    return result.metrics, result


def _run_zero_shot(encoder: Any, data: Any, options: Any) -> tuple[dict[str, float], Any]:
    params = dict(options.params)
    ds = _dataset(data, params)
    image_side, text_side = _text_side(encoder, params, options)
    class_emb, prompts = class_embeddings(text_side, ds.class_names, params.pop("template", DIGIT_TEMPLATE),
                                          batch_size=options.batch_size, **params)  # fmt: skip
    x_test = encode_items(image_side, ds.test_images, modality="image", batch_size=options.batch_size)
    result = zero_shot_from_embeddings(x_test, ds.test_labels, class_emb, prompts)
    return result.metrics, result


def _load_sts(folder: Path, split: str) -> Any:
    from contrastkit.evaluation.sts import read_sts

    return read_sts(folder, split)


def _run_visual_sts(encoder: Any, data: Any, options: Any) -> tuple[dict[str, float], Any]:
    from contrastkit.encoders import load_encoder

    params = dict(options.params)
    text_model, render = params.pop("text_model", None), params.pop("renderer", None)  # run_task checked the rest
    if render is not None:  # an image encoder: render the sentences first
        from contrastkit.data.render import Renderer

        first, second = render_pairs(data, Renderer(**(render if isinstance(render, dict) else {})))
        result: Any = visual_sts_images(encoder, first, second, data.scores, batch_size=options.batch_size)
    else:
        text = load_encoder(text_model) if text_model is not None else None
        result = visual_sts(encoder, data, text, batch_size=options.batch_size, cache=options.cache)
    return result.metrics, result


_SPLIT_OPTIONS = ("limit", "test_fraction", "split_seed")  # read by _dataset
_IMAGE_TASKS = (
    ("visual-sts", "Spearman of cosine of rendered sentence pairs (pixel encoder; text model side by side)",
     _load_sts, _run_visual_sts, ("text_model", "renderer")),
    ("image-classification", "linear probe (16-shot x 5) and kNN accuracy on digits / MNIST", _load_images,
     _run_image_classification, (*_SPLIT_OPTIONS, "methods", "k", "n_shot", "n_experiments", "max_iter", "seed")),
    ("image-clustering", "MiniBatchKMeans NMI on digits / MNIST", _load_images, _run_image_clustering,
     (*_SPLIT_OPTIONS, "kmeans_batch_size", "seed")),
    ("zero-shot-classification", "image vs class-name prompt cosine on digits / MNIST", _load_images, _run_zero_shot,
     (*_SPLIT_OPTIONS, "text_model", "template", "prompt_name")),
)  # fmt: skip
for _name, _description, _load, _run, _options in _IMAGE_TASKS:
    if _name not in task_names():
        register_task(TaskSpec(_name, _description, _load, _run, options=_options))
