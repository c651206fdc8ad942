"""Embedding cache keyed by content: a text is encoded once per model and prompt, in a process or on disk.

Caching is opt-in: a caller creates an :class:`EmbeddingCache` and passes it
(``contrastkit eval`` makes one per invocation, on disk with ``--cache-dir``),
and every evaluation task encodes through :func:`encode_cached` (or a
:class:`CachedEncoder`) with it, so STS sentences that recur, a corpus scored
by two tasks, or the same evaluation run twice cost one encoder call. Without a
cache nothing is kept between calls (and no model identity is computed). An
entry's key is the triple

* **model identity**: :func:`model_fingerprint`, a SHA-256 over the encoder's
  class, its simple settings (normalisation, pooling, max length, template,
  ...), its tokenizer's class and size, and its weights: the content of the
  folder it was loaded from while its tensors are unchanged since
  (:mod:`contrastkit.encoders.identity`, one read of the files per process),
  else the bytes of every parameter and buffer (0.15 s for MiniLM). So a
  fine-tuned model never reads the embeddings of its base, and the same folder
  loaded twice shares entries. The key is memoised per encoder object until a
  parameter changes in place (torch's version counters, which optimizers and
  ``load_state_dict`` bump);
* **prompt**: the resolved prompt text (``prompt_name`` looked up in
  ``encoder.prompts``), ``""`` for none;
* **text**: SHA-256 of the prompt and the text.

Only texts without an entry are encoded, in one ``encoder.encode`` call per
request (duplicates inside a request are encoded once). Embeddings are kept as
float32 CPU rows, for the ``max_models`` most recently used model identities.
Rows of a text may differ in the last bits from a fresh encoding in another
batch (padding changes the floating-point summation order); nothing an
evaluation metric can see.

With ``folder``, new rows are also written as safetensors shards under
``folder/<model key>/`` (written to a temporary name, then renamed), and a
later process with the same folder reads them instead of encoding. An
unreadable shard is skipped with a warning. Encoders that are not
``nn.Module`` (no weights to hash) get a process-local key and are never
written to disk unless a ``model_key`` is given.

Example::

    >>> cache = EmbeddingCache()
    >>> # the first call encodes "a" and "b" once each; the second calls no encoder
    >>> emb = cache.encode(encoder, ["a", "b", "a"])  # doctest: +SKIP
    >>> emb = cache.encode(encoder, ["b", "a"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.encoders.identity import source_identity, tensor_versions


@dataclass
class CacheStats:
    """Counters of an :class:`EmbeddingCache`: texts served from the cache, texts encoded, encoder calls."""

    hits: int = 0
    misses: int = 0
    encoder_calls: int = 0
    disk_rows_loaded: int = 0


class EmbeddingCache:
    """Embeddings by (model fingerprint, prompt, text hash); see the module docstring.

    Args:
        folder: optional on-disk cache folder (created when first written).
        max_models: in memory, keep the rows of at most this many model
            identities, dropping the least recently used (a model evaluated
            during training has a new identity at every evaluation); None: no limit.
    """

    def __init__(self, folder: str | Path | None = None, *, max_models: int | None = 4) -> None:
        if max_models is not None and max_models < 1:
            raise ValueError(f"max_models must be >= 1 or None, got {max_models}")
        self.folder = None if folder is None else Path(folder)
        self.max_models = max_models
        self.stats = CacheStats()
        self._rows: OrderedDict[str, dict[str, Tensor]] = OrderedDict()
        self._fingerprints: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], str]] = weakref.WeakKeyDictionary()

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    def clear(self) -> None:
        """Forget every in-memory entry (files on disk stay) and reset the counters."""
        self._rows.clear()
        self.stats = CacheStats()

    def model_key(self, encoder: Any) -> str:
        """The model-identity part of the key (memoised :func:`model_fingerprint`)."""
        if not isinstance(encoder, nn.Module):
            return f"local-{type(encoder).__qualname__}-{id(encoder):x}"
        versions = tensor_versions(encoder)
        memo = self._fingerprints.get(encoder)
        if memo is not None and memo[0] == versions:
            return memo[1]
        key = model_fingerprint(encoder)
        self._fingerprints[encoder] = (versions, key)
        return key

    def encode(
        self,
        encoder: Any,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        prompt: str | None = None,
        prompt_name: str | None = None,
        model_key: str | None = None,
    ) -> Tensor:
        """(len(texts), dim) float32 embeddings; only texts not cached are passed to ``encoder.encode``.

        ``prompt``/``prompt_name`` are resolved as :meth:`Encoder.resolve_prompt`
        does (an unknown name is a KeyError); the encoder then receives the
        resolved ``prompt`` text. ``model_key`` overrides the fingerprint
        (for encoders whose behaviour the weights do not determine).
        """
        texts = list(texts)
        resolved = encoder.resolve_prompt(prompt, prompt_name) if hasattr(encoder, "resolve_prompt") else prompt
        if resolved is None and prompt_name is not None:
            raise KeyError(f"unknown prompt name {prompt_name!r}: this encoder has no prompts")
        mkey = model_key or self.model_key(encoder)
        rows = self._model_rows(mkey)
        keys = [text_key(resolved, t) for t in texts]
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        missing = [k for k in first if k not in rows]
        self.stats.hits += len(keys) - len(missing)
        if missing:
            new = encoder.encode([texts[first[k]] for k in missing], batch_size=batch_size, prompt=resolved)
            new = new.detach().float().cpu()
            if new.shape[0] != len(missing):
                raise ValueError(f"the encoder returned {new.shape[0]} embeddings for {len(missing)} texts")
            self.stats.encoder_calls += 1
            self.stats.misses += len(missing)
            rows.update(zip(missing, new.unbind(0), strict=True))
            self._write_shard(mkey, missing, new)
        if not keys:
            return torch.zeros(0, _dim(encoder))
        return torch.stack([rows[k] for k in keys])

    # ------------------------------------------------------------ disk
    def _model_rows(self, mkey: str) -> dict[str, Tensor]:
        if mkey in self._rows:
            self._rows.move_to_end(mkey)
            return self._rows[mkey]
        self._rows[mkey] = {}
        while self.max_models is not None and len(self._rows) > self.max_models:
            self._rows.popitem(last=False)  # least recently used model
        if self.folder is not None and not mkey.startswith("local-"):
            self._load_shards(self.folder, mkey)
        return self._rows[mkey]

    def _load_shards(self, root: Path, mkey: str) -> None:
        from safetensors import safe_open

        rows = self._rows[mkey]
        for path in sorted(_model_folder(root, mkey).glob("*.safetensors")):
            try:
                with safe_open(str(path), framework="pt") as f:
                    keys = json.loads((f.metadata() or {})["keys"])
                    emb = f.get_tensor("embeddings")
                if len(keys) != emb.shape[0]:
                    raise ValueError(f"{len(keys)} keys for {emb.shape[0]} rows")
            except Exception as err:  # a damaged shard costs a re-encode, never a wrong row
                warnings.warn(f"embedding cache: skipping unreadable shard {path} ({err})", stacklevel=3)
                continue
            rows.update(zip(keys, emb.float().unbind(0), strict=True))
            self.stats.disk_rows_loaded += len(keys)

    def _write_shard(self, mkey: str, keys: list[str], emb: Tensor) -> None:
        if self.folder is None or mkey.startswith("local-"):
            return
        from safetensors.torch import save_file

        folder = _model_folder(self.folder, mkey)
        folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
        final = folder / f"{name}.safetensors"
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        save_file({"embeddings": emb.contiguous()}, str(tmp), metadata={"keys": json.dumps(keys)})
        os.replace(tmp, final)


_UNCACHED = "local-uncached"


def text_key(prompt: str | None, text: str) -> str:
    """SHA-256 (hex) of a prompt and a text; unambiguous whatever characters they hold."""
    payload = json.dumps([prompt or "", text], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def model_fingerprint(encoder: nn.Module) -> str:
    """SHA-256 (hex) of an encoder's class, settings, tokenizer and weights.

    The weights are named by the folder the encoder was loaded from while it is
    unchanged since (:func:`~contrastkit.encoders.identity.source_identity`: the
    folder's files, hashed once per process); otherwise by every parameter's and
    buffer's bytes (copied to the CPU).
    """
    h = hashlib.sha256()
    h.update(f"{type(encoder).__module__}.{type(encoder).__qualname__}".encode())
    h.update(json.dumps(_settings(encoder), sort_keys=True, default=str).encode())
    source = source_identity(encoder)
    if source is not None:
        h.update(f"folder:{source}".encode())
        return h.hexdigest()
    for name, tensor in encoder.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _settings(encoder: nn.Module) -> dict[str, Any]:
    """The encoder's public plain-valued attributes (dataclasses included) and its tokenizer's identity."""
    out: dict[str, Any] = {}
    for name, value in vars(encoder).items():
        if name.startswith("_") or name in ("training", "prompts"):
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[name] = repr(value)
        elif isinstance(value, (str, int, float, bool, type(None), Path)) or _plain(value):
            out[name] = value
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is not None:
        size = len(tokenizer) if hasattr(tokenizer, "__len__") else getattr(tokenizer, "get_vocab_size", lambda: 0)()
        out["tokenizer"] = [type(tokenizer).__qualname__, size]
    return out


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, (str, int, float, bool, type(None))) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and isinstance(v, (str, int, float, bool, type(None))) for k, v in value.items())
    return False


def _dim(encoder: Any) -> int:
    dim = getattr(encoder, "dim", None)
    return int(dim) if dim is not None else 0


def encode_cached(
    encoder: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    prompt: str | None = None,
    prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
) -> Tensor:
    """``encoder.encode(texts, ...)`` through ``cache``; without one, each distinct text is encoded once, kept nowhere.

    A :class:`CachedEncoder` passed as ``encoder`` uses its own cache and model key.
    Either way the result is float32 on the CPU and prompts are resolved alike.
    """
    if isinstance(encoder, CachedEncoder):
        return encoder.encode(texts, batch_size=batch_size, prompt=prompt, prompt_name=prompt_name)
    if cache is None:  # a throwaway cache under a fixed key: no model fingerprint, nothing kept
        return EmbeddingCache(max_models=1).encode(
            encoder, texts, batch_size=batch_size, prompt=prompt, prompt_name=prompt_name, model_key=_UNCACHED
        )
    return cache.encode(encoder, texts, batch_size=batch_size, prompt=prompt, prompt_name=prompt_name)


def _model_folder(root: Path, mkey: str) -> Path:
    """``root/<key>``; a caller-chosen ``model_key`` that is not a hex digest is hashed into a safe name."""
    name = mkey if re.fullmatch(r"[0-9a-f]{64}", mkey) else hashlib.sha256(mkey.encode()).hexdigest()
    return root / name


class CachedEncoder:
    """An encoder whose ``encode`` goes through an :class:`EmbeddingCache`; everything else is delegated.

    It has ``encode``, ``prompts``, ``dim`` and ``resolve_prompt`` like an
    :class:`~contrastkit.encoders.base.Encoder`, so any code that only encodes
    (e.g. :func:`~contrastkit.evaluation.retrieval.evaluate_retrieval`) takes it
    in place of the encoder.

    Args:
        encoder: the wrapped encoder (``.encoder``).
        cache: the cache to use (default: a new in-memory one, this wrapper's own).
        model_key: fixed model identity instead of :func:`model_fingerprint`.
    """

    encoder: Any
    cache: EmbeddingCache
    fixed_key: str | None

    def __init__(self, encoder: Any, cache: EmbeddingCache | None = None, *, model_key: str | None = None) -> None:
        if isinstance(encoder, CachedEncoder):
            cache = encoder.cache if cache is None else cache
            model_key = model_key or encoder.fixed_key
            encoder = encoder.encoder
        self.encoder = encoder
        self.cache = EmbeddingCache() if cache is None else cache
        self.fixed_key = model_key

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        prompt: str | None = None,
        prompt_name: str | None = None,
    ) -> Tensor:
        """Cached ``encoder.encode``; see :meth:`EmbeddingCache.encode`."""
        return self.cache.encode(
            self.encoder, texts, batch_size=batch_size, prompt=prompt, prompt_name=prompt_name, model_key=self.fixed_key
        )

    @property
    def prompts(self) -> dict[str, str]:
        return dict(getattr(self.encoder, "prompts", {}) or {})

    @property
    def dim(self) -> int:
        return _dim(self.encoder)

    def resolve_prompt(self, prompt: str | None = None, prompt_name: str | None = None) -> str | None:
        return self.encoder.resolve_prompt(prompt, prompt_name)

    def __getattr__(self, name: str) -> Any:
        if name == "encoder":  # not set yet (during unpickling): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.encoder, name)
