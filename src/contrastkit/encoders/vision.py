"""Vision towers: pixels (n, C, H, W) in [0, 1] -> patch token states (n, T, hidden) and their mask.

:class:`VisionTower` is randomly initialised from :class:`VisionConfig`
(torch's global RNG: seed it, or use the ``seed`` of
:func:`contrastkit.encoders.pixel.build_pixel_encoder`). Two architectures:

* ``arch="vit"``: a ViT (Dosovitskiy et al., 2021). A ``patch_size``-strided
  convolution embeds each patch, learned position embeddings (one per grid
  cell) are added, then ``layers`` pre-LN transformer blocks
  (``nn.TransformerEncoderLayer``, ``norm_first``, GELU MLP of
  ``mlp_ratio * hidden``) and a final LayerNorm. ``patch_mask`` (n, P) bool
  (True = a real patch) is the attention key padding, so masked patches never
  influence the others: a strip's states do not depend on how much white
  padding follows it. ``pooling="cls"`` prepends a learned CLS token (T = P + 1).
* ``arch="cnn"``: ``layers`` 3 x 3 conv + GELU blocks, the first
  ``log2(patch_size)`` with stride 2, so each output cell covers one patch;
  the cells, flattened row-major, are the tokens (T = P), with a LayerNorm.
  Convolutions see neighbouring (padding) pixels, so only the ViT is
  padding-invariant. ``heads`` and ``mlp_ratio`` are unused.

Inputs may be narrower than ``image_size`` (fewer patch columns, e.g. a
strip batch cropped to its longest text): position embeddings are taken
for the columns present. Patches are numbered row-major in both towers.
With ``invert`` the tower embeds ``1 - x`` ("ink"), so white background and
padding are zero input; black-on-white text strips train much faster from
scratch that way (the default of the pixel builder).

:class:`TowerEncoder` puts section 4's head on a tower (pool -> LayerNorm
-> optional projection -> l2): the shared base of the pixel and image
encoders in :mod:`contrastkit.encoders.pixel`.

Example::

    >>> import torch
    >>> tower = VisionTower(VisionConfig(image_size=(16, 64), hidden=32, layers=1, heads=2))
    >>> states, mask = tower(torch.rand(2, 1, 16, 64), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]).bool())
    >>> states.shape, tower.pool(states, mask).shape
    (torch.Size([2, 4, 32]), torch.Size([2, 32]))
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.encoders.base import Encoder, Features
from contrastkit.encoders.io import save_atomically
from contrastkit.encoders.perception_io import write_perception_files
from contrastkit.encoders.pooling import mean_pool

Arch = Literal["vit", "cnn"]
TowerPooling = Literal["mean", "cls"]


@dataclass(frozen=True)
class VisionConfig:
    """Shape of a :class:`VisionTower`.

    Args:
        arch: ``"vit"`` or ``"cnn"``.
        image_size: (H, W) in pixels, multiples of ``patch_size``.
        patch_size: side of a square patch (a power of two for ``cnn``).
        channels: 1 (grayscale) or 3 (RGB).
        hidden: token width; ``heads`` must divide it (vit).
        layers: transformer blocks (vit) or conv blocks (cnn, at least ``log2(patch_size)``).
        heads: attention heads (vit).
        mlp_ratio: MLP width / hidden (vit).
        dropout: dropout in the blocks and after the embeddings.
        pooling: ``"mean"`` over real patches or ``"cls"`` (vit only), used by :meth:`VisionTower.pool`.
        invert: embed ``1 - x`` ("ink"): white background and padding become zero input. For
            black-on-white rendered text this trains much faster from scratch (the pixel default).
    """

    arch: Arch = "vit"
    image_size: tuple[int, int] = (16, 1024)
    patch_size: int = 16
    channels: int = 1
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    pooling: TowerPooling = "mean"
    invert: bool = False

    def __post_init__(self) -> None:
        height, width = self.image_size
        p = self.patch_size
        if self.arch not in ("vit", "cnn"):
            raise ValueError(f"VisionConfig.arch: 'vit' or 'cnn', got {self.arch!r}")
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"VisionConfig.pooling: 'mean' or 'cls', got {self.pooling!r}")
        if p < 1 or height < p or width < p or height % p or width % p:
            raise ValueError(f"VisionConfig: image_size {self.image_size} must be positive multiples of patch_size {p}")
        if self.channels not in (1, 3):
            raise ValueError(f"VisionConfig.channels: 1 or 3, got {self.channels}")
        if self.hidden < 1 or self.layers < 1 or not 0.0 <= self.dropout < 1.0 or self.mlp_ratio <= 0:
            raise ValueError("VisionConfig: hidden and layers >= 1, mlp_ratio > 0, dropout in [0, 1)")
        if self.arch == "vit" and (self.heads < 1 or self.hidden % self.heads):
            raise ValueError(f"VisionConfig: heads ({self.heads}) must divide hidden ({self.hidden})")
        if self.arch == "cnn":
            if p & (p - 1):
                raise ValueError(f"VisionConfig: the cnn tower needs a power-of-two patch_size, got {p}")
            if self.layers < int(math.log2(p)):
                raise ValueError(f"VisionConfig: a cnn with patch_size {p} needs at least {int(math.log2(p))} layers")
            if self.pooling == "cls":
                raise ValueError("VisionConfig: pooling='cls' needs arch='vit' (the cnn has no CLS token)")

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of patches."""
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @property
    def num_patches(self) -> int:
        rows, cols = self.grid
        return rows * cols

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VisionConfig:
        """The inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"VisionConfig: unknown keys {unknown}")
        kwargs = dict(data)
        if "image_size" in kwargs:
            kwargs["image_size"] = tuple(kwargs["image_size"])
        return cls(**kwargs)


class VisionTower(nn.Module):
    """A ViT or CNN over patches; see the module docstring.

    ``forward(pixel_values, patch_mask=None) -> (states, mask)``:
    ``pixel_values`` (n, C, H, W') float with W' <= W a multiple of
    ``patch_size``; ``patch_mask`` (n, P') bool (None: all patches real; each
    row needs at least one True); ``states`` (n, T, hidden) and ``mask``
    (n, T) bool, T = P' (+1 for the CLS token, which is always True, at index 0).
    """

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        rows, cols = c.grid
        if c.arch == "vit":
            self.patch_embed = nn.Conv2d(c.channels, c.hidden, kernel_size=c.patch_size, stride=c.patch_size)
            self.position = nn.Parameter(torch.empty(1, c.hidden, rows, cols))
            nn.init.trunc_normal_(self.position, std=0.02)
            self.cls = nn.Parameter(torch.zeros(1, 1, c.hidden)) if c.pooling == "cls" else None
            self.embed_dropout = nn.Dropout(c.dropout)
            block = nn.TransformerEncoderLayer(
                c.hidden,
                c.heads,
                dim_feedforward=max(1, round(c.hidden * c.mlp_ratio)),
                dropout=c.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.blocks = nn.TransformerEncoder(block, c.layers, enable_nested_tensor=False)
        else:
            downs = int(math.log2(c.patch_size))
            convs: list[nn.Module] = []
            for i in range(c.layers):
                convs += [nn.Conv2d(c.channels if i == 0 else c.hidden, c.hidden, 3, 2 if i < downs else 1, 1)]
                convs += [nn.GELU(), nn.Dropout(c.dropout)]
            self.convs = nn.Sequential(*convs)
        self.norm = nn.LayerNorm(c.hidden)

    @property
    def hidden(self) -> int:
        return self.config.hidden

    def _check(self, pixel_values: Tensor, patch_mask: Tensor | None) -> tuple[int, int]:
        c = self.config
        if pixel_values.dim() != 4 or pixel_values.shape[1] != c.channels:
            raise ValueError(
                f"VisionTower: pixel_values must be (n, {c.channels}, H, W), got {tuple(pixel_values.shape)}"
            )
        height, width = pixel_values.shape[2:]
        if height != c.image_size[0] or width > c.image_size[1] or width % c.patch_size or width == 0:
            raise ValueError(
                f"VisionTower: image {height}x{width} does not fit {c.image_size[0]}x{c.image_size[1]} "
                f"(height equal, width at most that and a multiple of {c.patch_size})"
            )
        rows, cols = c.grid[0], width // c.patch_size
        if patch_mask is not None:
            if patch_mask.shape != (pixel_values.shape[0], rows * cols):
                raise ValueError(
                    f"VisionTower: patch_mask must be (n, {rows * cols}) for this image, got {tuple(patch_mask.shape)}"
                )
            if not bool(patch_mask.any(dim=1).all()):
                raise ValueError("VisionTower: every patch_mask row needs at least one True patch")
        return rows, cols

    def forward(self, pixel_values: Tensor, patch_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        rows, cols = self._check(pixel_values, patch_mask)
        device = self.norm.weight.device
        x = pixel_values.to(device=device, dtype=self.norm.weight.dtype)
        if self.config.invert:
            x = 1.0 - x
        n = x.shape[0]
        mask = torch.ones(n, rows * cols, dtype=torch.bool, device=device)
        if patch_mask is not None:
            mask = patch_mask.to(device=device, dtype=torch.bool)
        if self.config.arch == "cnn":
            states = self.convs(x).flatten(2).transpose(1, 2)
            return self.norm(states), mask
        x = self.patch_embed(x) + self.position[:, :, :, :cols]
        x = x.flatten(2).transpose(1, 2)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(n, -1, -1), x], dim=1)
            mask = torch.cat([mask.new_ones(n, 1), mask], dim=1)
        x = self.blocks(self.embed_dropout(x), src_key_padding_mask=~mask)
        return self.norm(x), mask

    def pool(self, states: Tensor, mask: Tensor) -> Tensor:
        """(n, hidden): the mean of the real patches' states, or the CLS state (``config.pooling``)."""
        if self.config.pooling == "cls":
            return states[:, 0]
        return mean_pool(states, mask)


class TowerEncoder(Encoder):
    """A vision tower + thesis-methods.md section 4's head, as an :class:`~contrastkit.encoders.base.Encoder`.

    ``forward(features)``: ``tower(pixel_values, patch_mask)`` -> pool (mean
    over real patches, or CLS) -> LayerNorm -> Linear ``projection`` (when
    set; in training mode only when ``drop_projection_at_inference``) -> l2
    normalisation when ``normalize``. The abstract base of
    :class:`~contrastkit.encoders.pixel.PixelEncoder` (texts) and
    :class:`~contrastkit.encoders.pixel.ImageEncoder` (images), which add
    ``tokenize``; ``save`` writes the folder of
    :mod:`contrastkit.encoders.perception_io`.
    """

    kind: Literal["pixel", "image"]

    def __init__(
        self,
        tower: VisionTower,
        *,
        projection: int | None,
        drop_projection_at_inference: bool,
        normalize: bool,
        prompts: dict[str, str] | None,
    ) -> None:
        super().__init__(normalize=normalize, prompts=prompts)
        if projection is not None and projection < 1:
            raise ValueError(f"projection must be a positive width or None, got {projection}")
        self.tower = tower
        self.norm = nn.LayerNorm(tower.hidden)
        self.projection = nn.Linear(tower.hidden, projection) if projection else None
        self.drop_projection_at_inference = drop_projection_at_inference

    def _active_projection(self) -> nn.Linear | None:
        """The projection when the current mode uses it, else None."""
        return None if not self.training and self.drop_projection_at_inference else self.projection

    @property
    def dim(self) -> int:
        """Embedding width in the current mode (the projection's when it is used)."""
        projection = self._active_projection()
        return projection.out_features if projection is not None else self.tower.hidden

    def forward(self, features: Features) -> Tensor:
        states, mask = self.tower(features["pixel_values"], features.get("patch_mask"))
        out = self.norm(self.tower.pool(states, mask))
        projection = self._active_projection()
        if projection is not None:
            out = projection(out)
        return F.normalize(out, dim=-1) if self.normalize else out

    def _config(self) -> dict[str, Any]:
        head = {
            "projection": None if self.projection is None else self.projection.out_features,
            "drop_projection_at_inference": self.drop_projection_at_inference,
            "normalize": self.normalize,
        }
        return {"kind": self.kind, "vision": self.tower.config.to_dict(), "head": head}

    def write_files(self, folder: Path) -> None:
        """Write the model files into the existing ``folder`` (not atomic: :meth:`save` is)."""
        write_perception_files(folder, self._config(), self.state_dict(), self.prompts)

    def save(self, path: str | Path) -> None:
        """Write the model folder at ``path`` atomically (see :mod:`contrastkit.encoders.perception_io`)."""
        save_atomically(path, self.write_files)
