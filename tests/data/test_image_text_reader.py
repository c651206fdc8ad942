"""The image_text kind: an image file path as anchor, its text as positive; missing files are located errors."""

from __future__ import annotations

import json

import pytest

from contrastkit.data import DataError, Example, load_examples, read_examples


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    for name in ("cat.png", "dog.jpg"):
        (folder / name).write_bytes(b"\x89PNG not decoded by the reader")
    return folder


def test_jsonl_paths_resolve_against_the_data_file(tmp_path, images):
    rows = [{"image": "img/cat.png", "caption": "a cat"}, {"image": str(images / "dog.jpg"), "caption": "a dog"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_examples(path, kind="image_text") == [
        Example(str(tmp_path / "img/cat.png"), ("a cat",), source=str(path)),
        Example(str(images / "dog.jpg"), ("a dog",), source=str(path)),
    ]


def test_csv_with_mapped_columns_and_a_missing_file(tmp_path, images):
    path = tmp_path / "pairs.csv"
    path.write_text("file,alt_text,id\nimg/cat.png,a cat,1\nimg/cow.png,a cow,2\n")
    with pytest.raises(DataError) as info:
        load_examples(path, kind="image_text", columns={"anchor": "file", "positive": "alt_text", "group": "id"})
    message = str(info.value)
    assert message.startswith(f"{path}, row 2 (line 3): image file not found in column 'file': 'img/cow.png'")
    assert str(tmp_path / "img" / "cow.png") in message
    first = next(read_examples(path, kind="image_text", columns={"anchor": "file", "positive": "alt_text"}))
    assert first.anchor == str(tmp_path / "img" / "cat.png") and first.positives == ("a cat",)


def test_a_folder_is_not_an_image_file(tmp_path, images):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"image": "img", "caption": "x"}) + "\n")
    with pytest.raises(DataError, match=r"line 1: image file not found in column 'image': 'img'"):
        load_examples(path, kind="image_text")


def test_image_text_is_never_inferred(tmp_path, images):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"anchor": "img/cat.png", "positive": "a cat"}) + "\n")
    [pair] = load_examples(path)  # same roles as a pair: read as text, no file check
    assert pair.anchor == "img/cat.png"
    [image] = load_examples(path, kind="image_text")  # the generic names still work for image_text
    assert image.anchor == str(tmp_path / "img/cat.png")
    with pytest.raises(DataError, match=r"missing column 'caption' or 'text' or 'positive' or 'sentence'"):
        bad = tmp_path / "b.jsonl"
        bad.write_text(json.dumps({"image": "img/cat.png", "label": "cat"}) + "\n")
        load_examples(bad, kind="image_text")
    with pytest.raises(ValueError, match="does not use"):
        read_examples(path, kind="image_text", columns={"negative": "n"})
