"""Text rendered as pixels: the input of pixel sentence encoders (Pixel Linguist, thesis-methods.md section 4).

:class:`Renderer` draws a text black on white in a grayscale ``uint8`` image
cut into ``patch_size`` x ``patch_size`` patches:

* ``mode="strip"`` (default, PIXEL's layout): one line in a ``height`` x
  ``width`` strip (16 x 1024: 64 patches of 16 x 16), text from the left,
  the rest white. Text that does not fit before the last patch is cut at a
  character boundary (the last patch is kept for the end patch).
* ``mode="wrap"``: a ``height`` x ``width`` canvas (e.g. 128 x 128) with the
  words wrapped onto lines of one patch height; lines past the bottom are
  dropped. For image-like inputs (a vision tower on a square grid).

Patches are numbered row-major. The **patch count** of a render is the
number of patches up to the last one holding text, plus one end patch
(capped at the number of patches); an empty text has count 1. The first
``count`` patches are the attention mask (section 4: text patches + end
patch). The end patch is left white.

Before drawing, spaces are normalised (:func:`normalize_text`): runs of
whitespace become one space, and the space before closing punctuation and
after opening brackets is removed (``"a , b ( c )"`` -> ``"a, b (c)"``), so
tokenized corpora render like ordinary text.

**This is the pure-PIL fallback renderer**, with matplotlib's bundled
DejaVuSans. It is NOT weight-compatible with PIXEL's PangoCairo renderer
(GoNotoCurrent, 8 pt at 120 DPI, fallback fonts, right-to-left text):
glyph shapes, sizes and positions differ, so ``Team-PIXEL/pixel-base`` or
``Pixel-Linguist-v0`` weights see out-of-distribution images. Use it to
train from scratch, or to test. The default font size is the largest whose
ascent + descent fits one patch row (12 px for 16-px patches).

Augmentation (:class:`Augment`, all off by default) is applied only when a
``numpy.random.Generator`` is passed: same text + same generator seed ->
the same array; an image depends only on the text and the generator state.

Example::

    >>> import numpy as np
    >>> r = Renderer()
    >>> image = r.render("A sentence , rendered .")
    >>> image.shape, image.dtype, r.patch_count("A sentence , rendered .")
    ((16, 1024), dtype('uint8'), 10)
    >>> noisy = Renderer(augment=Augment(p_noise=1.0)).render("hi", generator=np.random.default_rng(0))
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

RenderMode = Literal["strip", "wrap"]
FONT_FILE = ("fonts", "ttf", "DejaVuSans.ttf")

_SPACES = re.compile(r"\s+")
_BEFORE_CLOSING = re.compile(r" ([.,;:!?%)\]}])")
_AFTER_OPENING = re.compile(r"([(\[{]) ")


def normalize_text(text: str) -> str:
    """One space between words, none before ``. , ; : ! ? % ) ] }`` or after ``( [ {``; stripped."""
    text = _SPACES.sub(" ", text).strip()
    text = _BEFORE_CLOSING.sub(r"\1", text)
    return _AFTER_OPENING.sub(r"\1", text)


def default_font_path() -> Path:
    """matplotlib's bundled DejaVuSans.ttf (a clear error when the file is missing)."""
    import matplotlib

    path = Path(matplotlib.get_data_path()).joinpath(*FONT_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: font file not found; the PIL renderer uses matplotlib's bundled DejaVuSans "
            "(reinstall matplotlib, or pass Renderer(font_path=...) with a TrueType font)"
        )
    return path


@lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(path, size)
    except OSError as err:
        raise FileNotFoundError(f"{path}: cannot load the font ({err})") from None


@lru_cache(maxsize=16)
def _fitting_size(path: str, line_height: int) -> int:
    """The largest font size whose ascent + descent fits ``line_height`` pixels (at least 1)."""
    size = 1
    while sum(_font(path, size + 1).getmetrics()) <= line_height:
        size += 1
    return size


@dataclass(frozen=True)
class Augment:
    """Visual augmentations, each applied with its probability ``p_*`` (all 0: off).

    Args:
        p_font_size / font_size_jitter: font size changed by a uniform integer in
            ``[-jitter, jitter]`` pixels.
        p_offset / max_offset: text moved right by ``0..max_offset[0]`` and down by
            ``-max_offset[1]..max_offset[1]`` pixels (uniform integers).
        p_rotate / max_degrees: the text region rotated by a uniform angle in
            ``[-max_degrees, max_degrees]`` (white fill).
        p_blur / blur_sigma: Gaussian blur with a radius uniform in ``blur_sigma``.
        p_noise / noise_std: Gaussian pixel noise with a std uniform in ``noise_std``
            (0-255 units), clipped to 0..255.
    """

    p_font_size: float = 0.0
    font_size_jitter: int = 2
    p_offset: float = 0.0
    max_offset: tuple[int, int] = (8, 2)
    p_rotate: float = 0.0
    max_degrees: float = 2.0
    p_blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    p_noise: float = 0.0
    noise_std: tuple[float, float] = (4.0, 16.0)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("p_") and not 0.0 <= value <= 1.0:
                raise ValueError(f"Augment.{f.name}: a probability in [0, 1], got {value}")
        for name in ("blur_sigma", "noise_std"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"Augment.{name}: expected 0 <= low <= high, got {(lo, hi)}")
        if self.font_size_jitter < 0 or self.max_degrees < 0 or min(self.max_offset) < 0:
            raise ValueError("Augment: font_size_jitter, max_degrees and max_offset must be >= 0")

    @property
    def enabled(self) -> bool:
        """Whether any augmentation has a non-zero probability."""
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name.startswith("p_"))


@dataclass(frozen=True)
class Renderer:
    """Renders texts into ``(height, width)`` uint8 images; see the module docstring.

    Args:
        mode: ``"strip"`` (one line; ``height`` must equal ``patch_size``) or ``"wrap"``.
        height, width: image size in pixels, multiples of ``patch_size``.
        patch_size: side of the square patches.
        font_path: a TrueType font; None = matplotlib's DejaVuSans.
        font_size: in pixels; None = the largest that fits one patch row.
        margin: pixels left of the text (and of each wrapped line).
        augment: applied when ``render`` gets a generator.
        normalize_spaces: apply :func:`normalize_text` first.
    """

    mode: RenderMode = "strip"
    height: int = 16
    width: int = 1024
    patch_size: int = 16
    font_path: str | None = None
    font_size: int | None = None
    margin: int = 2
    augment: Augment = field(default_factory=Augment)
    normalize_spaces: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("strip", "wrap"):
            raise ValueError(f"Renderer.mode: 'strip' or 'wrap', got {self.mode!r}")
        if self.patch_size < 1 or self.height % self.patch_size or self.width % self.patch_size:
            raise ValueError(
                f"Renderer: height {self.height} and width {self.width} must be positive multiples of "
                f"patch_size {self.patch_size}"
            )
        if min(self.height, self.width) < self.patch_size:
            raise ValueError(f"Renderer: the image {self.height}x{self.width} is smaller than one patch")
        if self.mode == "strip" and self.height != self.patch_size:
            raise ValueError(
                f"Renderer: strip mode draws one row of patches, so height ({self.height}) must equal "
                f"patch_size ({self.patch_size}); use mode='wrap' for several rows"
            )
        if self.font_size is not None and self.font_size < 1:
            raise ValueError(f"Renderer.font_size: >= 1 or None, got {self.font_size}")
        if not 0 <= self.margin < self.width:
            raise ValueError(f"Renderer.margin: in [0, width), got {self.margin}")

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of every render."""
        return self.height, self.width

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of patches."""
        return self.height // self.patch_size, self.width // self.patch_size

    @property
    def max_patches(self) -> int:
        """Number of patches of a render (64 for the default strip)."""
        rows, cols = self.grid
        return rows * cols

    def resolved_font(self) -> tuple[str, int]:
        """(font file, font size in pixels) used when not augmenting."""
        path = str(Path(self.font_path) if self.font_path else default_font_path())
        if self.font_path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: font file not found (Renderer.font_path)")
        return path, self.font_size or _fitting_size(path, self.patch_size)

    def render(self, text: str, *, generator: np.random.Generator | None = None) -> np.ndarray:
        """(height, width) uint8, black text on white; augmented when ``generator`` is given."""
        return self._render_one(text, generator)[0]

    def patch_count(self, text: str, *, generator: np.random.Generator | None = None) -> int:
        """Patches of the attention mask of ``render(text)``: text patches + 1 end patch."""
        return self._render_one(text, generator)[1]

    def render_batch(
        self, texts: list[str] | tuple[str, ...], generator: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, height, width) uint8 images and (n,) int64 patch counts; one generator drawn in order."""
        out = [self._render_one(t, generator) for t in texts]
        images = np.stack([o[0] for o in out]) if out else np.zeros((0, *self.image_size), dtype=np.uint8)
        return images, np.array([o[1] for o in out], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data; :meth:`from_dict` is its inverse."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Renderer:
        """A renderer from :meth:`to_dict` data; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Renderer: unknown keys {unknown} (known: {sorted(known)})")
        kwargs = dict(data)
        augment = kwargs.pop("augment", None) or {}
        unknown = sorted(set(augment) - {f.name for f in fields(Augment)})
        if unknown:
            raise ValueError(f"Renderer.augment: unknown keys {unknown}")
        aug: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in augment.items()}
        return cls(**kwargs, augment=Augment(**aug))

    # ------------------------------------------------------------------ drawing

    def _render_one(self, text: str, rng: np.random.Generator | None) -> tuple[np.ndarray, int]:
        if not isinstance(text, str):
            raise TypeError(f"Renderer: expected a str, got {type(text).__name__}")
        if self.normalize_spaces:
            text = normalize_text(text)
        aug = self.augment if rng is not None and self.augment.enabled else None
        path, size = self.resolved_font()
        dx = dy = 0
        if aug is not None and rng is not None:
            if rng.random() < aug.p_font_size:
                size = max(1, size + int(rng.integers(-aug.font_size_jitter, aug.font_size_jitter + 1)))
            if rng.random() < aug.p_offset:
                dx = int(rng.integers(0, aug.max_offset[0] + 1))
                dy = int(rng.integers(-aug.max_offset[1], aug.max_offset[1] + 1))
        font = _font(path, size)
        image = Image.new("L", (self.width, self.height), 255)
        draw = ImageDraw.Draw(image)
        lines = self._layout(text, font, self.margin + dx)
        top = (self.patch_size - sum(font.getmetrics())) // 2 + font.getmetrics()[0] + dy
        last = -1  # row-major index of the last patch holding text
        for row, (line, right) in enumerate(lines):
            draw.text((self.margin + dx, row * self.patch_size + top), line, font=font, fill=0, anchor="ls")
            last = row * self.grid[1] + math.ceil(right / self.patch_size) - 1
        count = min(last + 2, self.max_patches)
        if aug is not None and rng is not None:
            image = _augment_pixels(image, aug, rng, count * self.patch_size if self.mode == "strip" else self.width)
        return np.asarray(image, dtype=np.uint8).copy(), count

    def _layout(self, text: str, font: ImageFont.FreeTypeFont, x0: int) -> list[tuple[str, float]]:
        """Lines to draw and the right edge (pixels) of each; empty lines are not listed."""
        rows, cols = self.grid
        if self.mode == "strip":
            line = _fit(text, font, (cols - 1) * self.patch_size - x0)
            return [(line, x0 + font.getlength(line))] if line else []
        limit = self.width - x0
        lines: list[str] = []
        for word in text.split(" ") if text else []:
            candidate = f"{lines[-1]} {word}" if lines else word
            if lines and font.getlength(candidate) <= limit:
                lines[-1] = candidate
                continue
            while word:  # a word longer than a line is broken by characters
                part = _fit(word, font, limit) or word[0]
                lines.append(part)
                word = word[len(part) :]
        return [(line, x0 + font.getlength(line)) for line in lines[:rows]]


def _fit(text: str, font: ImageFont.FreeTypeFont, limit: float) -> str:
    """The longest prefix of ``text`` at most ``limit`` pixels wide (binary search)."""
    if font.getlength(text) <= limit:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if font.getlength(text[:mid]) <= limit else (lo, mid - 1)
    return text[:lo]


def _augment_pixels(image: Image.Image, aug: Augment, rng: np.random.Generator, region: int) -> Image.Image:
    """Rotation of the first ``region`` columns, then blur, then noise, each by its probability."""
    if rng.random() < aug.p_rotate and region > 0:
        angle = float(rng.uniform(-aug.max_degrees, aug.max_degrees))
        box = (0, 0, min(region, image.width), image.height)
        part = image.crop(box).rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)
        image.paste(part, box)
    if rng.random() < aug.p_blur:
        image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(*aug.blur_sigma))))
    if rng.random() < aug.p_noise:
        std = float(rng.uniform(*aug.noise_std))
        noisy = np.asarray(image, dtype=np.float32) + rng.normal(0.0, std, size=(image.height, image.width))
        image = Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
    return image
