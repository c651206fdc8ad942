"""Hugging Face ``datasets`` as a source of examples: ``read_examples(path, format="hf", split=...)``.

What ``path`` is decides how it is opened (``datasets`` is imported only here,
on first use; install it with ``pip install 'contrastkit[hf]'``):

* a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``:
  ``datasets.load_from_disk`` (memory-mapped Arrow);
* another folder (data files, no loading script):
  ``datasets.load_dataset(folder, split=split, streaming=True)``;
* a file ``.jsonl``/``.json``, ``.csv``, ``.parquet``, ``.arrow``, ``.txt`` (optionally ``.gz``):
  ``load_dataset(builder, data_files=path, split=split, streaming=True)``;
* anything else: a hub dataset name, streamed (needs the network; never used by the tests).

``split`` defaults to ``train`` (a saved ``DatasetDict`` with a single split
uses that one). Both paths stream: a saved dataset is memory-mapped and read
1024 rows at a time, other sources are read by ``datasets``' streaming
iterator, so memory stays bounded whatever the size; nothing is written
besides ``datasets``' own lock files in its cache.

Columns map to roles exactly as for the other formats
(:mod:`contrastkit.data.records`); values keep their Arrow types. An
``image_text`` anchor column may be an ``Image`` feature: its stored file
path is used (as ``imagefolder`` datasets give it; a relative path resolves
against the dataset folder); an image embedded as bytes (what
``save_to_disk`` does with ``Image`` columns) has no file and is a DataError. Every DataError names
the dataset and split, and the 1-based row, e.g.
``data/pairs [train], row 3: empty text in column 'anchor'``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from contrastkit.data.errors import DataError
from contrastkit.data.examples import Example
from contrastkit.data.formats import is_file
from contrastkit.data.records import Plan, resolve, to_example

_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}
_BUILDERS[".txt"] = "text"
_SAVED = ("state.json", "dataset_dict.json")  # what save_to_disk writes
_CHUNK = 1024


def _import() -> Any:
    try:
        import datasets
    except ImportError:
        raise ImportError("reading Hugging Face datasets needs `datasets`: pip install 'contrastkit[hf]'") from None
    return datasets


def _errors(datasets: Any) -> tuple[type[BaseException], ...]:
    """The exceptions ``datasets`` raises for sources it cannot open or read: any.

    Besides its own errors, OSError and pyarrow's, a damaged saved dataset
    makes ``datasets`` fail in open-ended ways (a ``KeyError`` or ``TypeError``
    from a bad ``state.json``, ...): whatever it raises while reading the
    user's files, the files are what is wrong.
    """
    return (datasets.exceptions.DatasetsError, Exception)


def _open(datasets: Any, path: str, split: str | None) -> tuple[Any, str | None]:
    """(a Dataset or IterableDataset, the split read or None); raises DataError naming ``path``."""
    local = Path(path)
    try:
        if local.is_dir() and any((local / name).is_file() for name in _SAVED):
            return _saved_split(datasets, datasets.load_from_disk(str(local)), path, split)
        chosen = split or "train"
        if local.is_file():
            suffixes = [s.lower() for s in local.suffixes if s.lower() != ".gz"]
            builder = _BUILDERS.get(suffixes[-1] if suffixes else "")
            if builder is None:
                known = ", ".join(_BUILDERS)
                raise DataError(f"cannot read this file with `datasets` (known suffixes: {known})", path=path)
            return datasets.load_dataset(builder, data_files=str(local), split=chosen, streaming=True), chosen
        return datasets.load_dataset(path, split=chosen, streaming=True), chosen
    except DataError:
        raise
    except _errors(datasets) as err:
        hub = "" if local.exists() else " (not a local path, so it was looked up as a hub dataset)"
        raise DataError(f"cannot open the Hugging Face dataset{hub}: {type(err).__name__}: {err}", path=path) from None


def _saved_split(datasets: Any, saved: Any, path: str, split: str | None) -> tuple[Any, str | None]:
    """The split of a ``load_from_disk`` result: a Dataset as is (split None), a DatasetDict's ``split``."""
    if isinstance(saved, datasets.Dataset):
        if split is not None:
            raise DataError(f"a single saved dataset has no splits; leave split unset (got {split!r})", path=path)
        return saved, None
    names = list(saved.keys())
    chosen = split or ("train" if "train" in names or len(names) != 1 else names[0])
    if chosen not in names:
        raise DataError(f"no split {chosen!r} (splits: {', '.join(names)}); pass split=", path=path)
    return saved[chosen], chosen


def _image_columns(datasets: Any, dataset: Any, plan: Plan) -> tuple[Any, set[str]]:
    """The dataset with ``Image`` feature columns of the plan cast to file paths (no decoding)."""
    features = dataset.features or {}
    images = {n for n in plan.needed if isinstance(features.get(n), datasets.Image)}
    for name in images:
        dataset = dataset.cast_column(name, datasets.Image(decode=False))
    return dataset, images


def _image_path(value: Any, column: str, root: Path | None) -> Any:
    """An ``Image`` feature's file path; images embedded as bytes (``save_to_disk`` embeds them) have none."""
    if not isinstance(value, dict):
        return value
    path = value.get("path")
    if path and (Path(path).is_absolute() or root is None or is_file(root / path) or not value.get("bytes")):
        return path
    where = f" (its path {path!r} is not a file here)" if path else ""
    raise DataError(
        f"the image in column {column!r} is stored as bytes in the dataset{where}; image_text reads image files: "
        "keep the file paths in a string column"
    )


def _rows(datasets: Any, dataset: Any) -> Iterator[dict[str, Any]]:
    """Records of a Dataset (read ``_CHUNK`` rows at a time) or an IterableDataset (streamed)."""
    if isinstance(dataset, datasets.Dataset):  # map-style, memory-mapped
        for chunk in dataset.iter(batch_size=_CHUNK):
            keys = list(chunk)
            for values in zip(*(chunk[k] for k in keys), strict=True):
                yield dict(zip(keys, values, strict=True))
    else:
        yield from dataset


def read_hf(path: str, mapping: dict[str, tuple[str, ...]], kind: str | None, split: str | None) -> Iterator[Example]:
    """Stream the examples of a Hugging Face dataset; see the module docstring."""
    datasets = _import()
    dataset, chosen = _open(datasets, path, split)
    where, local = path if chosen is None else f"{path} [{chosen}]", Path(path)
    root = local if local.is_dir() else local.parent if local.is_file() else None
    plan: Plan | None = None
    images: set[str] = set()
    row = 0
    try:
        if dataset.column_names is not None:
            plan = resolve(dataset.column_names, mapping, kind, root)
            dataset, images = _image_columns(datasets, dataset.select_columns(plan.needed), plan)
    except DataError as e:
        raise DataError(e.problem + " in the features", path=where) from None
    rows = _rows(datasets, dataset)
    while True:
        try:
            record = next(rows, None)
        except _errors(datasets) as err:
            raise DataError(f"cannot read the row: {type(err).__name__}: {err}", path=where, row=row + 1) from None
        if record is None:
            return
        row += 1
        try:
            plan = plan or resolve(list(record), mapping, kind, root)
            record = {k: _image_path(v, k, root) if k in images else v for k, v in record.items()}
            yield to_example(record, plan, True, path)
        except DataError as e:
            raise DataError(e.problem, path=where, row=row) from None
