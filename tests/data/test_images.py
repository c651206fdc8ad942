"""Image inputs (arrays, PIL images, paths), pixel batches, and the offline digits / MNIST loaders."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contrastkit.data import DataError
from contrastkit.data.images import load_digits_images, load_image, load_mnist_idx, read_idx, to_pixel_values

MNIST = Path("/work/shared/data/mnist_test")


def _gradient(h: int = 6, w: int = 8) -> np.ndarray:
    return (np.arange(h * w, dtype=np.uint8) * 5).reshape(h, w)


def test_arrays_and_pil_images_load_as_uint8():
    gray = _gradient()
    rgb = np.stack([gray, gray // 2, 255 - gray], axis=-1)
    assert np.array_equal(load_image(gray), gray)
    assert np.array_equal(load_image(rgb), rgb)
    assert np.array_equal(load_image(gray[..., None]), gray)
    assert np.array_equal(load_image(np.concatenate([rgb, rgb[..., :1]], axis=-1)), rgb)  # alpha dropped
    assert np.array_equal(load_image(Image.fromarray(gray)), gray)
    assert np.array_equal(load_image(Image.fromarray(rgb)), rgb)
    assert load_image(Image.fromarray(rgb).convert("P")).shape == (6, 8, 3)
    assert load_image(Image.fromarray(rgb).convert("RGBA")).shape == (6, 8, 3)


def test_paths_load_relative_to_the_current_directory(tmp_path, monkeypatch):
    gray = _gradient()
    Image.fromarray(gray).save(tmp_path / "g.png")
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(tmp_path / "c.jpg", quality=95)
    assert np.array_equal(load_image(tmp_path / "g.png"), gray)
    monkeypatch.chdir(tmp_path)
    assert np.array_equal(load_image("g.png"), gray)
    jpeg = load_image("c.jpg")
    assert jpeg.shape == (6, 8, 3) and np.abs(jpeg[..., 0].astype(int) - gray).max() < 12


def test_bad_inputs_raise_errors_naming_the_problem(tmp_path):
    with pytest.raises(DataError, match=r"missing.png: image file not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match=r"notes.png: cannot read the image"):
        load_image(str(tmp_path / "notes.png"))
    with pytest.raises(DataError, match=r"must be uint8"):
        load_image(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(DataError, match=r"shape \(4, 4, 2\)"):
        load_image(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(DataError, match=r"got int"):
        load_image(3)  # type: ignore[arg-type]


def test_to_pixel_values_scales_converts_and_resizes():
    gray = _gradient()
    out = to_pixel_values([gray, Image.fromarray(gray)], size=(6, 8), channels=1)
    assert out.shape == (2, 1, 6, 8) and out.dtype == torch.float32
    torch.testing.assert_close(out[0, 0], torch.from_numpy(gray).float() / 255)
    assert torch.equal(out[0], out[1])
    three = to_pixel_values([gray], size=(6, 8), channels=3)
    assert torch.equal(three[0, 0], three[0, 2]) and torch.equal(three[0, 0], out[0, 0])
    resized = to_pixel_values([gray], size=(12, 16), channels=1)
    assert resized.shape == (1, 1, 12, 16) and resized.min() >= 0.0 and resized.max() <= 1.0
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    assert to_pixel_values([rgb], size=(2, 2), channels=1)[0, 0, 0, 0].item() == pytest.approx(76 / 255)
    with pytest.raises(ValueError, match=r"channels"):
        to_pixel_values([gray], size=(6, 8), channels=2)


def test_digits_are_sklearns_scaled_to_255():
    from sklearn.datasets import load_digits

    images, labels = load_digits_images()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and set(labels.tolist()) == set(range(10))
    assert images.min() == 0 and images.max() == 255
    np.testing.assert_array_equal(images, np.rint(load_digits().images * 255 / 16).astype(np.uint8))


def _write_idx(path: Path, magic: int, array: np.ndarray, *, compress: bool = True) -> Path:
    raw = struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def test_mnist_idx_on_tiny_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28)).astype(np.uint8)
    labels = np.array([7, 2, 1, 0, 4], dtype=np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 2051, images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 2049, labels)
    got_images, got_labels = load_mnist_idx(tmp_path)
    assert np.array_equal(got_images, images) and got_labels.tolist() == [7, 2, 1, 0, 4]
    assert got_labels.dtype == np.int64
    plain = tmp_path / "plain"
    plain.mkdir()
    _write_idx(plain / "train-images-idx3-ubyte", 2051, images, compress=False)
    _write_idx(plain / "train-labels-idx1-ubyte", 2049, labels, compress=False)
    assert np.array_equal(load_mnist_idx(plain, split="train")[0], images)


def test_mnist_idx_errors_name_the_file(tmp_path):
    bad = _write_idx(tmp_path / "x-images-idx3-ubyte.gz", 2049, np.zeros((2, 3, 3)))
    with pytest.raises(DataError, match=r"x-images-idx3-ubyte.gz: bad IDX magic number 2049 \(expected 2051\)"):
        read_idx(bad, magic=2051)
    good = _write_idx(tmp_path / "y.gz", 2051, np.zeros((2, 3, 3)))
    (tmp_path / "short.gz").write_bytes(gzip.compress(gzip.decompress(good.read_bytes())[:-1]))
    with pytest.raises(DataError, match=r"short.gz: IDX data has"):
        read_idx(tmp_path / "short.gz", magic=2051)
    (tmp_path / "broken.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"broken.gz: cannot read the IDX file"):
        read_idx(tmp_path / "broken.gz", magic=2051)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 2051, np.zeros((3, 28, 28)))
    with pytest.raises(DataError, match=r"no t10k-labels-idx1-ubyte.gz"):
        load_mnist_idx(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 2049, np.zeros(2))
    with pytest.raises(DataError, match=r"3 images but 2 labels"):
        load_mnist_idx(tmp_path)
    with pytest.raises(DataError, match=r"MNIST folder not found"):
        load_mnist_idx(tmp_path / "absent")


@pytest.mark.skipif(not MNIST.is_dir(), reason="shared MNIST test set not available")
def test_mnist_shared_test_set():
    images, labels = load_mnist_idx(MNIST)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels[:3].tolist() == [7, 2, 1]
    assert np.bincount(labels).tolist()[:2] == [980, 1135]  # the published per-class counts of t10k
    assert images[:, 0, 0].max() == 0 and images.max() == 255  # background 0, ink up to 255
