"""Pixel and image encoders: a :class:`~contrastkit.encoders.vision.VisionTower` with Pixel Linguist's head.

Both are :class:`~contrastkit.encoders.base.Encoder` s (tokenize / forward /
encode / save / dim), so the trainer, GradCache, evaluation and diagnostics
use them like text encoders. ``forward`` is thesis-methods.md section 4's
head: tower -> mean over the real patches (or CLS) -> LayerNorm -> optional
Linear ``projection`` -> l2 normalisation when ``normalize``. With
``drop_projection_at_inference`` the projection is used in training mode
only (section 4's recipe), so ``dim`` is the width of the current mode.

* :class:`PixelEncoder` takes **texts**: ``tokenize`` renders ``prompt + text``
  with a :class:`~contrastkit.data.render.Renderer` (the PIL fallback renderer,
  not weight-compatible with PIXEL's) into ``pixel_values`` (n, C, H, W)
  float32 in [0, 1] and ``patch_mask`` (n, P) bool (text patches + end patch).
  Strips are cropped to the batch's longest mask (P <= 64), like dynamic
  padding; the ViT's output does not depend on it. In training mode with an
  enabled :class:`~contrastkit.data.render.Augment`, each call draws one seed
  from torch's global RNG, so checkpointed RNG state makes resume exact; in
  eval mode renders are clean and deterministic.
* :class:`ImageEncoder` takes **image inputs** (:mod:`contrastkit.data.images`:
  uint8 arrays, PIL images, paths), resized to ``image_size`` (bilinear).

``save(path)`` writes, atomically, ``contrastkit_perception.json`` (renderer /
image, vision and head config), ``model.safetensors``, ``modules.json`` and
``config_sentence_transformers.json`` (prompts). :func:`load_perception_encoder`
(also reached through :func:`contrastkit.encoders.load_encoder`) loads it back
bit for bit. sentence-transformers (6.x) refuses module classes outside its own
package unless ``trust_remote_code=True``, installed packages included, so
``SentenceTransformer(path, trust_remote_code=True)`` loads the folder through
:class:`PerceptionModule` (which imports contrastkit, nothing from the folder);
without the flag it raises. contrastkit never sets that flag for you.

Example::

    >>> enc = build_pixel_encoder(hidden=32, layers=1, heads=2)
    >>> enc.encode(["a sentence", "another one"]).shape
    torch.Size([2, 32])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from contrastkit.data.images import ImageInput, to_pixel_values
from contrastkit.data.render import Augment, Renderer
from contrastkit.encoders.base import Features
from contrastkit.encoders.io import ModelFolderError
from contrastkit.encoders.perception_io import (
    PerceptionFolder,
    read_perception_folder,
)
from contrastkit.encoders.progress import EncodeProgress
from contrastkit.encoders.vision import TowerEncoder, VisionConfig, VisionTower


class PixelEncoder(TowerEncoder):
    """Texts rendered to pixels, then a vision tower; see the module docstring.

    Args:
        renderer: its ``image_size`` and ``patch_size`` must match the tower's.
        tower: the vision tower.
        augment: augmentation in training mode (None: ``renderer.augment``).
        projection: width of the Linear head after the LayerNorm (None: no projection).
        drop_projection_at_inference: use the projection in training mode only.
        normalize: l2-normalise the embeddings.
        prompts: prompt name -> text prefix, rendered with the text.
    """

    kind = "pixel"

    def __init__(
        self,
        renderer: Renderer,
        tower: VisionTower,
        *,
        augment: Augment | None = None,
        projection: int | None = None,
        drop_projection_at_inference: bool = False,
        normalize: bool = True,
        prompts: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            tower,
            projection=projection,
            drop_projection_at_inference=drop_projection_at_inference,
            normalize=normalize,
            prompts=prompts,
        )
        cfg = tower.config
        if renderer.image_size != cfg.image_size or renderer.patch_size != cfg.patch_size:
            raise ValueError(
                f"PixelEncoder: the renderer draws {renderer.image_size} images with {renderer.patch_size}-px patches "
                f"but the tower takes {cfg.image_size} with {cfg.patch_size}-px patches"
            )
        self.renderer = renderer
        self.augment = augment
        self._train_renderer = replace(renderer, augment=augment if augment is not None else renderer.augment)

    @classmethod
    def from_folder(cls, path: str | Path) -> PixelEncoder:
        """The PixelEncoder saved at ``path`` (:func:`load_perception_encoder`)."""
        return _load_as(cls, path)

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        """``pixel_values`` (n, C, H, W') float32 in [0, 1], ``patch_mask`` (n, P') bool; see the module docstring."""
        texts = [(prompt or "") + t for t in texts]
        renderer, generator = self.renderer, None
        if self.training and self._train_renderer.augment.enabled:
            seed = int(torch.randint(0, 2**62, (1,)).item())  # torch's global RNG: checkpointed by the trainer
            renderer, generator = self._train_renderer, np.random.default_rng(seed)
        images, counts = renderer.render_batch(texts, generator)
        total = renderer.max_patches
        if renderer.mode == "strip" and len(texts):
            total = int(counts.max())
            images = images[:, :, : total * renderer.patch_size]
        pixels = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
        if self.tower.config.channels == 3:
            pixels = pixels.repeat(1, 3, 1, 1)
        mask = torch.arange(total).unsqueeze(0) < torch.from_numpy(counts).unsqueeze(1)
        return {"pixel_values": pixels, "patch_mask": mask}

    def _config(self) -> dict[str, Any]:
        extra = {"renderer": self.renderer.to_dict(), "augment": None if self.augment is None else asdict(self.augment)}
        return {**super()._config(), **extra}


class ImageEncoder(TowerEncoder):
    """Image inputs (arrays, PIL images, paths) through a vision tower; see the module docstring.

    ``image_size`` (H, W) and ``channels`` (1 or 3) default to the tower's and must equal them.
    """

    kind = "image"

    def __init__(
        self,
        tower: VisionTower,
        *,
        image_size: tuple[int, int] | None = None,
        channels: int | None = None,
        projection: int | None = None,
        drop_projection_at_inference: bool = False,
        normalize: bool = True,
    ) -> None:
        super().__init__(
            tower,
            projection=projection,
            drop_projection_at_inference=drop_projection_at_inference,
            normalize=normalize,
            prompts=None,
        )
        size, self.channels = tuple(image_size or tower.config.image_size), channels or tower.config.channels
        if size != tower.config.image_size or self.channels != tower.config.channels:
            raise ValueError(
                f"ImageEncoder: image_size {size} / channels {self.channels} differ from the tower's "
                f"{tower.config.image_size} / {tower.config.channels}"
            )
        self.image_size = tower.config.image_size  # (H, W), equal to the one given

    @classmethod
    def from_folder(cls, path: str | Path) -> ImageEncoder:
        """The ImageEncoder saved at ``path`` (:func:`load_perception_encoder`)."""
        return _load_as(cls, path)

    def tokenize(self, texts: Sequence[ImageInput], *, prompt: str | None = None) -> Features:
        """``pixel_values`` (n, C, H, W) float32 in [0, 1] and an all-True ``patch_mask`` (n, P)."""
        if prompt:
            raise ValueError("ImageEncoder: images take no text prompt")
        pixels = to_pixel_values(list(texts), size=self.image_size, channels=self.channels)
        return {"pixel_values": pixels, "patch_mask": torch.ones(len(pixels), self.tower.config.num_patches).bool()}

    @torch.no_grad()
    def encode(
        self,
        texts: Sequence[ImageInput],
        *,
        batch_size: int = 64,
        prompt: str | None = None,
        prompt_name: str | None = None,
    ) -> Tensor:
        """(n, dim) float32 CPU embeddings of images (a sequence, or an (n, H, W[, 3]) uint8 array), input order."""
        prompt = self.resolve_prompt(prompt, prompt_name)
        images = list(texts)
        was_training = self.training
        self.eval()
        try:
            chunks = []
            with EncodeProgress(len(images), unit="images") as progress:
                for i in range(0, len(images), batch_size):
                    chunks.append(self(self.tokenize(images[i : i + batch_size], prompt=prompt)).float().cpu())
                    progress.update(len(chunks[-1]))
        finally:
            self.train(was_training)
        return torch.cat(chunks) if chunks else torch.zeros(0, self.dim)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "image": {"image_size": list(self.image_size), "channels": self.channels}}


def _build(folder: PerceptionFolder, prompts: dict[str, str]) -> PixelEncoder | ImageEncoder:
    """An encoder from a checked folder's config (weights not loaded); errors name the file and key."""
    head, key = folder.section("head"), "vision"
    try:
        tower = VisionTower(VisionConfig.from_dict(folder.section(key)))
        if folder.config["kind"] == "pixel":
            key = "renderer"
            renderer = Renderer.from_dict(folder.section(key))
            key = "augment"
            saved = folder.config.get(key)
            augment = None if saved is None else Renderer.from_dict({"augment": saved}).augment
            return PixelEncoder(renderer, tower, augment=augment, prompts=prompts, **head)
        key = "image"
        image = folder.section(key)
        size = tuple(image.get("image_size") or ())
        return ImageEncoder(tower, image_size=size or None, channels=image.get("channels"), **head)
    except ModelFolderError:
        raise
    except (TypeError, ValueError) as err:
        raise ModelFolderError(f"{folder.where}: key {key!r}: {err}") from None


def load_perception_encoder(
    path: str | Path, *, normalize: bool | None = None, prompts: dict[str, str] | None = None
) -> PixelEncoder | ImageEncoder:
    """The encoder saved at ``path`` (eval mode), weights bit for bit; ``normalize`` / ``prompts`` override."""
    folder = read_perception_folder(path)
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the global RNG alone
        encoder = _build(folder, {**folder.prompts, **(prompts or {})})
    try:
        encoder.load_state_dict(folder.state, strict=True)
    except RuntimeError as err:
        weights = folder.where.parent / "model.safetensors"
        raise ModelFolderError(f"{weights}: weights do not fit the config ({err})") from None
    if normalize is not None:
        encoder.normalize = normalize
    return encoder.eval()


def _load_as(cls: type, path: str | Path) -> Any:
    encoder = load_perception_encoder(path)
    if not isinstance(encoder, cls):
        raise ModelFolderError(f"{path}: holds a {type(encoder).__name__}, not a {cls.__name__}")
    return encoder


class PerceptionModule(nn.Module):
    """A sentence-transformers input module wrapping a saved pixel / image encoder.

    Named in the saved ``modules.json``; ``SentenceTransformer(path,
    trust_remote_code=True)`` imports it from the installed contrastkit.
    ``preprocess`` is the encoder's ``tokenize``, ``forward`` adds
    ``sentence_embedding``.
    """

    save_in_root = True

    def __init__(self, encoder: PixelEncoder | ImageEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any) -> PerceptionModule:
        return cls(load_perception_encoder(Path(model_name_or_path) / subfolder))

    @property
    def modalities(self) -> list[str]:
        return ["image"] if isinstance(self.encoder, ImageEncoder) else ["text"]

    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any) -> Features:
        return self.encoder.tokenize(list(inputs), prompt=prompt or None)

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {**features, "sentence_embedding": self.encoder(features)}

    def get_embedding_dimension(self) -> int:
        return self.encoder.dim

    def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
        self.encoder.write_files(Path(output_path))


_SMALL = {"hidden": 128, "layers": 4, "heads": 4, "dropout": 0.1}
PIXEL_TOWER = {**_SMALL, "invert": True}
"""Tower defaults of :func:`build_pixel_encoder`: a 4-layer, 128-wide ViT (about 0.8M weights) reading ink."""
IMAGE_TOWER = {"image_size": (32, 32), "patch_size": 4, "channels": 3, **_SMALL}
"""Tower defaults of :func:`build_image_encoder` (32 x 32 RGB, 4 x 4 patches)."""


def _config(defaults: dict[str, Any], overrides: dict[str, Any]) -> VisionConfig:
    fields = sorted(VisionConfig.__dataclass_fields__)
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown tower options {unknown}; VisionConfig has {fields}")
    return VisionConfig.from_dict({**defaults, **overrides})


def build_pixel_encoder(
    *,
    renderer: Renderer | None = None,
    augment: Augment | None = None,
    projection: int | None = None,
    drop_projection_at_inference: bool = False,
    normalize: bool = True,
    prompts: dict[str, str] | None = None,
    seed: int = 0,
    **tower: Any,
) -> PixelEncoder:
    """A randomly initialised :class:`PixelEncoder` for ``renderer`` (default: 16 x 1024 strips).

    ``tower`` overrides :data:`PIXEL_TOWER` with any :class:`VisionConfig`
    field (``arch``, ``hidden``, ``layers``, ``heads``, ``mlp_ratio``,
    ``dropout``, ``channels``, ``pooling``); the image and patch size come from
    the renderer. The weights depend only on ``seed``; torch's global RNG is
    left as it was.
    """
    renderer = renderer or Renderer()
    if {"image_size", "patch_size"} & set(tower):
        raise ValueError("build_pixel_encoder: image_size and patch_size come from the renderer")
    config = _config({**PIXEL_TOWER, "image_size": renderer.image_size, "patch_size": renderer.patch_size}, tower)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PixelEncoder(
            renderer,
            VisionTower(config),
            augment=augment,
            projection=projection,
            drop_projection_at_inference=drop_projection_at_inference,
            normalize=normalize,
            prompts=prompts,
        )


def build_image_encoder(
    *,
    projection: int | None = None,
    drop_projection_at_inference: bool = False,
    normalize: bool = True,
    seed: int = 0,
    **tower: Any,
) -> ImageEncoder:
    """A randomly initialised (``seed``) :class:`ImageEncoder`; ``tower`` overrides :data:`IMAGE_TOWER`."""
    config = _config(IMAGE_TOWER, tower)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ImageEncoder(
            VisionTower(config),
            projection=projection,
            drop_projection_at_inference=drop_projection_at_inference,
            normalize=normalize,
        )
