"""The folder format of pixel and image encoders (:mod:`contrastkit.encoders.pixel`).

A saved :class:`~contrastkit.encoders.pixel.PixelEncoder` or
:class:`~contrastkit.encoders.pixel.ImageEncoder` is a folder with:

* ``contrastkit_perception.json``: ``{"format": "contrastkit.perception",
  "version": 1, "kind": "pixel" | "image", "vision": VisionConfig,
  "head": {"projection", "drop_projection_at_inference", "normalize"},
  "renderer": Renderer, "augment": Augment | null}`` (pixel) or
  ``"image": {"image_size", "channels"}`` (image);
* ``model.safetensors``: every weight (``tower.*``, ``norm.*``, ``projection.*``);
* ``modules.json``: one module of type
  ``contrastkit.encoders.pixel.PerceptionModule``, for
  ``SentenceTransformer(path, trust_remote_code=True)``;
* ``config_sentence_transformers.json``: the prompts.

Writing is atomic (a temporary sibling folder, fsynced, then renamed);
reading checks the format and names the file and key of any problem
(:class:`~contrastkit.encoders.io.ModelFolderError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from contrastkit import __version__
from contrastkit.encoders.io import (
    ModelFolderError,
    check_folder,
    check_safetensors,
    read_json,
    write_json,
)

CONFIG_FILE = "contrastkit_perception.json"
FORMAT = "contrastkit.perception"
ST_MODULE_TYPE = "contrastkit.encoders.pixel.PerceptionModule"
HEAD_KEYS = frozenset({"projection", "drop_projection_at_inference", "normalize"})


def is_perception_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder saved by a pixel or image encoder."""
    return (Path(path) / CONFIG_FILE).is_file()


def write_perception_files(folder: Path, config: dict[str, Any], state: dict[str, Tensor], prompts: dict) -> None:
    """Write the four files into the existing ``folder`` (not atomic: see ``io.save_atomically``)."""
    write_json(folder / CONFIG_FILE, {"format": FORMAT, "version": 1, **config, "contrastkit": __version__})
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    write_json(folder / "modules.json", [{"idx": 0, "name": "0", "path": "", "type": ST_MODULE_TYPE}])
    write_json(
        folder / "config_sentence_transformers.json",
        {
            "__version__": {"contrastkit": __version__, "pytorch": torch.__version__},
            "model_type": "SentenceTransformer",
            "prompts": dict(prompts),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


@dataclass(frozen=True)
class PerceptionFolder:
    """A read folder: its checked config, weights and prompts; ``where`` is the config file."""

    config: dict[str, Any]
    state: dict[str, Tensor]
    prompts: dict[str, str]
    where: Path

    def section(self, key: str) -> dict[str, Any]:
        """``config[key]`` as a dict, else an error naming the file and key."""
        value = self.config.get(key)
        if not isinstance(value, dict):
            raise ModelFolderError(f"{self.where}: key {key!r} must be a JSON object, got {value!r}")
        return value


def read_perception_folder(path: str | Path) -> PerceptionFolder:
    """Read and check a saved folder (format, version, kind, head keys, safetensors weights, prompts)."""
    folder = check_folder(Path(path))
    where = folder / CONFIG_FILE
    cfg = read_json(where)
    if not isinstance(cfg, dict):
        raise ModelFolderError(f"{where}: expected a JSON object")
    if cfg.get("format") != FORMAT or cfg.get("version") != 1:
        raise ModelFolderError(
            f"{where}: not a {FORMAT} version 1 config (format {cfg.get('format')!r}, version {cfg.get('version')!r})"
        )
    if cfg.get("kind") not in ("pixel", "image"):
        raise ModelFolderError(f"{where}: key 'kind' must be 'pixel' or 'image', got {cfg.get('kind')!r}")
    out = PerceptionFolder(config=cfg, state={}, prompts={}, where=where)
    if set(out.section("head")) != HEAD_KEYS:
        raise ModelFolderError(f"{where}: key 'head' must have exactly {sorted(HEAD_KEYS)}, got {sorted(cfg['head'])}")
    prompts: dict[str, str] = {}
    st_path = folder / "config_sentence_transformers.json"
    if st_path.is_file():
        st_cfg = read_json(st_path)
        raw = (st_cfg.get("prompts") if isinstance(st_cfg, dict) else None) or {}
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise ModelFolderError(f"{st_path}: 'prompts' must map names to strings, got {raw!r}")
        prompts = dict(raw)
    check_safetensors(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelFolderError(f"{weights}: file not found")
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises its own error type for a corrupt file
        raise ModelFolderError(f"{weights}: cannot read the weights ({type(err).__name__}: {err})") from None
    return PerceptionFolder(config=cfg, state=state, prompts=prompts, where=where)
