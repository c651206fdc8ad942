"""Hugging Face ``datasets`` sources: saved folders, splits, local files through load_dataset, images, located errors.

Every dataset is built in the test (``Dataset.from_dict(...).save_to_disk``);
nothing touches the network (a name that is not a local path is looked up
on the hub with HF_HUB_OFFLINE set, and must fail with a DataError).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from contrastkit.data import DataError, Example, load_examples, read_examples  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """load_dataset's lock files go to a temporary cache, never the user's."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def saved(tmp_path: Path, name: str, columns: dict, **splits: dict) -> Path:
    folder = tmp_path / name
    if splits:
        datasets.DatasetDict({k: datasets.Dataset.from_dict(v) for k, v in splits.items()}).save_to_disk(folder)
    else:
        datasets.Dataset.from_dict(columns).save_to_disk(folder)
    return folder


def test_saved_dataset_is_detected_and_mapped(tmp_path):
    folder = saved(
        tmp_path,
        "qa",
        {"question": ["q1", "q2"], "answer": [["a1", "a1b"], ["a2"]], "qid": [7, 8], "extra": [1.5, 2.5]},
    )
    got = load_examples(folder, columns={"anchor": "question", "positive": "answer", "group": "qid"})
    assert got == [
        Example("q1", ("a1", "a1b"), group="7", source=str(folder)),
        Example("q2", ("a2",), group="8", source=str(folder)),
    ]


def test_dataset_dict_splits(tmp_path):
    folder = saved(
        tmp_path,
        "dd",
        {},
        train={"anchor": ["t1", "t2"], "positive": ["p1", "p2"]},
        test={"anchor": ["e1"], "positive": ["f1"]},
    )
    assert [e.anchor for e in load_examples(folder)] == ["t1", "t2"]  # train by default
    assert [e.anchor for e in load_examples(folder, format="hf", split="test")] == ["e1"]
    with pytest.raises(DataError, match=r"no split 'dev' \(splits: train, test\)"):
        list(read_examples(folder, split="dev"))
    only = saved(tmp_path, "only", {}, validation={"anchor": ["v"], "positive": ["w"]})
    assert [e.anchor for e in load_examples(only)] == ["v"]  # a single split is used whatever its name


def test_errors_name_the_dataset_split_and_row(tmp_path):
    folder = saved(tmp_path, "bad", {}, train={"anchor": ["a", "b", " "], "positive": ["p", "q", "r"]})
    with pytest.raises(DataError) as info:
        load_examples(folder)
    assert str(info.value) == f"{folder} [train], row 3: empty text in column 'anchor'"
    assert info.value.row == 3
    typed = saved(tmp_path, "typed", {"anchor": ["a", "b"], "positive": ["p", "q"], "score": [1.0, None]})
    with pytest.raises(DataError, match=r"typed, row 2: wrong type in column 'score': expected a number, got null"):
        load_examples(typed, kind="graded")
    with pytest.raises(DataError, match=r"missing column 'question' .* in the features"):
        load_examples(typed, columns={"anchor": "question"})
    with pytest.raises(DataError, match="a single saved dataset has no splits"):
        load_examples(typed, split="train")


def test_local_files_and_folders_through_load_dataset(tmp_path):
    rows = [{"anchor": f"a{i}", "positive": f"p{i}"} for i in range(3)]
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from_folder = load_examples(folder)  # not a saved dataset: load_dataset(folder, streaming=True)
    assert [(e.anchor, e.positives) for e in from_folder] == [(r["anchor"], (r["positive"],)) for r in rows]
    from_file = load_examples(folder / "train.jsonl", format="hf")
    assert from_file == [Example(e.anchor, e.positives, source=str(folder / "train.jsonl")) for e in from_folder]
    datasets.Dataset.from_dict({"anchor": ["x"], "positive": ["y"]}).to_parquet(str(tmp_path / "d.parquet"))
    assert load_examples(tmp_path / "d.parquet", format="hf")[0].positives == ("y",)
    (folder / "broken.jsonl").write_text('{"anchor": "a", "positive": "p"}\n{"anchor": 5, "positive": "q"}\n')
    with pytest.raises(DataError, match=r"broken.jsonl \[train\], row 2: wrong type in column 'anchor'"):
        load_examples(folder / "broken.jsonl", format="hf")


def test_arrow_file_suffix_reads_through_datasets(tmp_path):
    folder = saved(tmp_path, "arrowsrc", {"anchor": ["a", "b"], "positive": ["p", "q"]})
    arrow = next(folder.glob("*.arrow"))
    assert [e.anchor for e in load_examples(arrow)] == ["a", "b"]


def test_unknown_name_is_a_located_error_without_network(tmp_path):
    with pytest.raises(DataError) as info:
        load_examples("someone/no-such-dataset-here", format="hf")
    assert str(info.value).startswith("someone/no-such-dataset-here: cannot open the Hugging Face dataset")
    assert "looked up as a hub dataset" in str(info.value)


def test_streaming_is_lazy(tmp_path):
    folder = saved(tmp_path, "lazy", {"anchor": ["a"] + [""] * 5000, "positive": ["p"] * 5001})
    stream = read_examples(folder)
    assert next(stream).anchor == "a"  # the bad rows further on have not been read yet
    with pytest.raises(DataError, match="row 2: empty text"):
        next(stream)


def test_image_text_from_an_imagefolder_and_path_columns(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (4, 4), (60 * i, 0, 0)).save(folder / f"{i}.png")
    meta = [{"file_name": f"{i}.png", "caption": c} for i, c in enumerate(["dark", "red"])]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    got = load_examples(folder, kind="image_text")  # datasets' imagefolder: an Image feature with file paths
    assert [(e.anchor, e.positives) for e in got] == [
        (str(folder / "0.png"), ("dark",)),
        (str(folder / "1.png"), ("red",)),
    ]
    relative = datasets.Dataset.from_dict({"img": ["../imgs/0.png", "../imgs/9.png"], "text": ["a", "b"]})
    relative.save_to_disk(tmp_path / "rel")
    with pytest.raises(DataError) as info:
        load_examples(tmp_path / "rel", kind="image_text")
    assert str(info.value).startswith(
        f"{tmp_path / 'rel'}, row 2: image file not found in column 'img': '../imgs/9.png'"
    )
    first = next(read_examples(tmp_path / "rel", kind="image_text"))  # relative to the dataset folder
    assert first.anchor == str(tmp_path / "rel" / "../imgs/0.png")


def test_image_text_rejects_images_embedded_as_bytes(tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "0.png")
    ds = datasets.Dataset.from_dict({"image": [str(tmp_path / "0.png")], "caption": ["x"]})
    ds.cast_column("image", datasets.Image()).save_to_disk(tmp_path / "embedded")  # save_to_disk embeds the bytes
    with pytest.raises(DataError, match=r"embedded, row 1: the image in column 'image' is stored as bytes"):
        load_examples(tmp_path / "embedded", kind="image_text")
