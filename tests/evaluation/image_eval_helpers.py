"""Fake image / pixel encoders for the image-evaluation tests: fixed, checkable embeddings, no model files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from contrastkit.encoders.base import Encoder, Features


def load_image(x: object) -> np.ndarray:
    """A uint8 array from an array, a PIL image or a path (the test's own minimal reader)."""
    if isinstance(x, (str, Path)):
        with Image.open(x) as image:
            return np.asarray(image.convert("L"))
    return np.asarray(x, dtype=np.uint8)


def pixels(items: Sequence[object]) -> Tensor:
    """(n, H*W[*3]) float64 pixels / 255 of image inputs (arrays, PIL images, paths) of one shape."""
    return torch.tensor(np.stack([load_image(x).astype(np.float64).ravel() / 255.0 for x in items]))


class FlattenEncoder(Encoder):
    """Images in: the raw pixels, flattened (optionally times a fixed seeded random projection to ``dim``)."""

    def __init__(self, size: int, dim: int | None = None, seed: int = 0) -> None:
        super().__init__(normalize=False)
        g = torch.Generator().manual_seed(seed)
        self.projection = None if dim is None else torch.randn(size, dim, generator=g, dtype=torch.float64)
        self.size = size
        self.calls: list[int] = []

    @property
    def dim(self) -> int:
        return self.size if self.projection is None else self.projection.shape[1]

    def encode(self, items, *, batch_size=64, prompt=None, prompt_name=None) -> Tensor:
        self.calls.append(len(items))
        if not items:
            return torch.zeros(0, self.dim)
        x = pixels(items)
        return (x if self.projection is None else x @ self.projection).float()


class FunctionImageEncoder(Encoder):
    """Images in: ``fn(uint8 array) -> vector`` for each image (embeddings the test chooses)."""

    def __init__(self, fn: Callable[[np.ndarray], Sequence[float]], dim: int) -> None:
        super().__init__(normalize=False)
        self.fn, self.size = fn, dim

    @property
    def dim(self) -> int:
        return self.size

    def encode(self, items, *, batch_size=64, prompt=None, prompt_name=None) -> Tensor:
        return torch.tensor([list(self.fn(load_image(x))) for x in items], dtype=torch.float32).reshape(-1, self.size)


class BarRenderer:
    """A stand-in renderer: an (8, 4 * 16) image whose 16 columns of width 4 encode the first 16 characters."""

    def render(self, text: str) -> np.ndarray:
        image = np.full((8, 64), 255, dtype=np.uint8)
        for i, ch in enumerate(text[:16]):
            image[: 1 + ord(ch) % 8, 4 * i : 4 * i + 4] = (ord(ch) * 37) % 200
        return image


class RenderingEncoder(Encoder):
    """Texts in (a fake pixel encoder): each text rendered by ``renderer`` and embedded by ``image_encoder``."""

    def __init__(self, renderer: BarRenderer, image_encoder: Encoder) -> None:
        super().__init__(normalize=False)
        self.renderer, self.image_encoder = renderer, image_encoder

    @property
    def dim(self) -> int:
        return self.image_encoder.dim

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        return {"emb": self.image_encoder.encode([self.renderer.render((prompt or "") + t) for t in texts])}

    def forward(self, features: Features) -> Tensor:
        return features["emb"]


def polar_image(degrees: float, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    """A uint8 image whose pixel [0, 0] stores an angle (degrees in 0..180, as uint8 degrees // 1)."""
    image = np.zeros(shape, dtype=np.uint8)
    image[0, 0] = int(degrees)
    return image


def angle_of(image: np.ndarray) -> list[float]:
    """The unit 2-d vector at the angle stored by :func:`polar_image`."""
    rad = np.radians(float(image.reshape(-1)[0]))
    return [float(np.cos(rad)), float(np.sin(rad))]
