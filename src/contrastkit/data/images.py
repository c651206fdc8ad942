"""Image inputs and offline image datasets.

An **image input** is one of:

* a numpy ``uint8`` array, (H, W) grayscale or (H, W, 3) RGB ((H, W, 1) and
  (H, W, 4) are accepted: squeezed, alpha dropped);
* a ``PIL.Image.Image`` (mode ``L``/``1``/``I;16``... -> grayscale, anything else -> RGB);
* a ``str`` or ``Path`` to an image file (PNG, JPEG, anything PIL reads);
  relative paths resolve against the current directory.

:func:`load_image` turns any of them into a uint8 array; a file that cannot
be read raises :class:`~contrastkit.data.errors.DataError` naming the path.
:func:`to_pixel_values` batches inputs for a vision tower: resized to the
tower's size (PIL bilinear), converted to 1 or 3 channels, scaled to [0, 1].

Offline datasets return ``(images uint8 (n, H, W), labels int64 (n,))``:

* :func:`load_digits_images`: scikit-learn's bundled 8 x 8 digits (1797),
  values 0-16 scaled to 0-255;
* :func:`load_mnist_idx`: the gzipped IDX files of MNIST (e.g.
  ``../shared/data/mnist_test``: ``t10k-images-idx3-ubyte.gz`` and
  ``t10k-labels-idx1-ubyte.gz``), with magic / shape checks.

Example::

    >>> images, labels = load_digits_images()
    >>> images.shape, images.dtype, labels[:3].tolist()
    ((1797, 8, 8), dtype('uint8'), [0, 1, 2])
    >>> to_pixel_values(list(images[:2]), size=(16, 16), channels=3).shape
    torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from contrastkit.data.errors import DataError

ImageInput = np.ndarray | Image.Image | str | Path
"""A numpy uint8 array, a PIL image, or the path of an image file."""

_GRAY_MODES = {"L", "1", "I", "I;16", "I;16B", "I;16L", "F", "LA"}
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


def _from_array(x: np.ndarray) -> np.ndarray:
    if x.dtype != np.uint8:
        raise DataError(f"image array must be uint8 (0-255), got dtype {x.dtype}; scale and cast it first")
    if x.ndim == 3 and x.shape[2] in (1, 4):
        x = x[..., 0] if x.shape[2] == 1 else x[..., :3]
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] != 3) or 0 in x.shape:
        raise DataError(f"image array must be (H, W) or (H, W, 3), got shape {tuple(x.shape)}")
    return np.ascontiguousarray(x)


def _from_pil(image: Image.Image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # wide grayscale: rescale to 0-255
        values = np.asarray(image, dtype=np.float64)
        top = values.max() if values.size else 0.0
        return np.rint(values * (255.0 / top) if top > 0 else values).clip(0, 255).astype(np.uint8)
    image = image.convert("L" if image.mode in _GRAY_MODES else "RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def load_image(x: ImageInput) -> np.ndarray:
    """A uint8 array (H, W) or (H, W, 3) from an image input (see the module docstring)."""
    if isinstance(x, np.ndarray):
        return _from_array(x)
    if isinstance(x, Image.Image):
        return _from_pil(x)
    if isinstance(x, (str, Path)):
        path = Path(x)
        if not path.is_file():
            raise DataError("image file not found" if not path.exists() else "not a file", path=path.absolute())
        try:
            with Image.open(path) as image:
                image.load()
                return _from_pil(image)
        except Exception as err:  # PIL's decoders fail in open-ended ways on damaged files (OSError,
            # SyntaxError, EOFError, struct.error, DecompressionBombError, ...): whatever they raise, the file is wrong
            raise DataError(f"cannot read the image ({type(err).__name__}: {err})", path=path.absolute()) from None
    raise DataError(f"an image must be a uint8 array, a PIL image or a file path, got {type(x).__name__}")


def to_pixel_values(images: Sequence[ImageInput], *, size: tuple[int, int], channels: int) -> Tensor:
    """(n, channels, H, W) float32 in [0, 1]: each input loaded, converted, resized (bilinear) to ``size``.

    Grayscale inputs are repeated to 3 channels; RGB inputs become grayscale by
    PIL's ITU-R 601-2 luma (``L = R * 299/1000 + G * 587/1000 + B * 114/1000``).
    An input already at ``size`` is not resampled.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    height, width = size
    out = torch.empty(len(images), channels, height, width, dtype=torch.float32)
    for i, item in enumerate(images):
        array = load_image(item)
        pil = Image.fromarray(array)
        pil = pil.convert("L" if channels == 1 else "RGB")
        if pil.size != (width, height):
            pil = pil.resize((width, height), resample=Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(pil, dtype=np.uint8).copy()).float().div_(255.0)
        out[i] = pixels.unsqueeze(0) if channels == 1 else pixels.permute(2, 0, 1)
    return out


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8 x 8 digits: uint8 (1797, 8, 8) (0-16 scaled to 0-255), int64 labels 0-9."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def read_idx(path: str | Path, *, magic: int) -> np.ndarray:
    """A uint8 IDX file (gzipped when the name ends in ``.gz``) as an array of its declared shape.

    The header is a big-endian int32 magic (``0x0000 08 D``: uint8 data, D
    dimensions; 2049 for labels, 2051 for images) and D int32 sizes; then the
    data, row-major. A wrong magic, a truncated file or trailing bytes raise
    :class:`DataError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("IDX file not found", path=path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read the IDX file ({type(err).__name__}: {err})", path=path) from None
    if len(raw) < 4:
        raise DataError(f"file too short for an IDX header ({len(raw)} bytes)", path=path)
    (found,) = struct.unpack(">i", raw[:4])
    if found != magic:
        raise DataError(f"bad IDX magic number {found} (expected {magic})", path=path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"truncated IDX header ({len(raw)} bytes, expected {header})", path=path)
    shape = struct.unpack(f">{ndim}i", raw[4:header])
    if any(size < 0 for size in shape):
        raise DataError(f"negative size in the IDX header {shape}", path=path)
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"IDX data has {len(raw)} bytes, the header {shape} says {expected}", path=path)
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _idx_file(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"no {stem}.gz (or {stem}) in the folder", path=folder)


def load_mnist_idx(folder: str | Path, *, split: str = "t10k") -> tuple[np.ndarray, np.ndarray]:
    """MNIST from ``{split}-images-idx3-ubyte[.gz]`` and ``{split}-labels-idx1-ubyte[.gz]`` in ``folder``.

    Returns uint8 images (n, 28, 28) (0 = background) and int64 labels (n,).
    ``split`` is the file prefix: ``t10k`` (test) or ``train``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("MNIST folder not found", path=folder)
    images_path = _idx_file(folder, f"{split}-images-idx3-ubyte")
    labels_path = _idx_file(folder, f"{split}-labels-idx1-ubyte")
    images = read_idx(images_path, magic=IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, magic=IDX_LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels in {labels_path.name}", path=images_path)
    if labels.size and labels.max() > 9:
        raise DataError(f"label {int(labels.max())} out of range 0-9", path=labels_path)
    return images, labels.astype(np.int64)
