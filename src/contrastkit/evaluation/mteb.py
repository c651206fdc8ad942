"""MTEB adapter: a contrastkit Encoder as an MTEB model, so ``mteb.evaluate`` runs it.

:class:`MTEBEncoder` implements MTEB's encoder protocol
(``mteb.models.models_protocols.EncoderProtocol``, mteb 2.x):

* ``encode(inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs)``:
  ``inputs`` is a torch ``DataLoader`` whose batches hold a ``"text"`` list;
  returns a (n, dim) float32 numpy array from :meth:`Encoder.encode` (length
  sorted, batched by ``kwargs["batch_size"]``, default 32 as in mteb).
* ``similarity`` / ``similarity_pairwise``: cosine, the metric contrastkit
  evaluates with (:attr:`mteb_model_meta` says ``cosine`` as well).
* ``mteb_model_meta``: an ``mteb.ModelMeta`` built from the encoder (name,
  revision, embedding dimension, maximum tokens, text modality, cosine), so
  ``mteb.evaluate`` never looks the model up on the Hub.

Prompts: the encoder's own ``prompts`` are chosen the way MTEB chooses a
sentence-transformers model's prompts, first match wins: ``"<task
name>-<query|document>"``, ``"<task name>"``, ``"<task type>-<query|document>"``,
``"<task type>"``, ``"<query|document>"``. With ``task_instructions=True`` the
task's own instruction (``task_metadata.prompt``: a per-side dict, or one
string used for queries and for symmetric tasks such as STS, never for
documents) is put in front of the text as ``(instruction + " " + text).strip()``,
RAR-b's format (:func:`contrastkit.evaluation.reasoning.with_instruction`).

Nothing here downloads: the adapter holds the model; datasets are whatever
the task loads (MTEB's mock tasks and tasks defined in code load nothing).
``mteb`` is imported only when the adapter is used; without it the error
says how to install it (``pip install "mteb>=2,<3"``).

Example::

    import mteb
    from contrastkit.encoders import load_encoder
    model = MTEBEncoder(load_encoder("all-MiniLM-L6-v2"), name="sentence-transformers/all-MiniLM-L6-v2")
    results = mteb.evaluate(model, mteb.get_task("STS12"), cache=None)  # doctest: +SKIP (downloads the task)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from contrastkit.evaluation.sts import paired_cosine

if TYPE_CHECKING:
    from contrastkit.encoders.base import Encoder

_INSTALL = 'the MTEB adapter needs mteb: pip install "mteb>=2,<3"'


def _mteb() -> Any:
    try:
        import mteb
    except ImportError as e:
        raise ImportError(_INSTALL) from e
    return mteb


class MTEBEncoder:
    """A contrastkit :class:`~contrastkit.encoders.base.Encoder` behind MTEB's encoder protocol (module docstring).

    Args:
        encoder: the model; used in eval mode, without gradient.
        name: model name for MTEB's results (``"org/model"``); default
            ``"contrastkit/<encoder class>"``.
        revision: revision string for the results (default ``"local"``).
        task_instructions: prefix queries with the task's instruction.
        batch_size: encoding batch size when ``mteb.evaluate`` passes none.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        name: str | None = None,
        revision: str | None = None,
        task_instructions: bool = False,
        batch_size: int = 32,
    ) -> None:
        self.model = encoder
        self.task_instructions = task_instructions
        self.batch_size = batch_size
        self.model_prompts = dict(encoder.prompts)
        self.mteb_model_meta = self._meta(name or f"contrastkit/{type(encoder).__name__}", revision or "local")

    def _meta(self, name: str, revision: str) -> Any:
        _mteb()
        from mteb.models.model_meta import ModelMeta, ScoringFunction

        max_tokens = getattr(self.model, "max_length", None)
        n_parameters = sum(p.numel() for p in self.model.parameters()) if hasattr(self.model, "parameters") else None
        return ModelMeta.create_empty(
            overwrites={
                "name": name,
                "revision": revision,
                "embed_dim": self.model.dim,
                "max_tokens": max_tokens,
                "n_parameters": n_parameters or None,
                "similarity_fn_name": ScoringFunction.COSINE,
                "modalities": ["text"],
                "framework": ["PyTorch"],
                "use_instructions": self.task_instructions,
            }
        )

    def encode(
        self,
        inputs: Iterable[Mapping[str, Any]],
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """(n, dim) float32 embeddings of every ``batch["text"]`` of ``inputs``, in order."""
        texts = [text for batch in inputs for text in _texts(batch)]
        prompt = self.prompt_for(task_metadata, prompt_type)
        instruction = self.instruction_for(task_metadata, prompt_type) if self.task_instructions else None
        if instruction:
            texts = [f"{instruction} {t}".strip() for t in texts]
        batch_size = int(kwargs.get("batch_size") or self.batch_size)
        emb = self.model.encode(texts, batch_size=batch_size, prompt=prompt)
        return emb.float().numpy()

    def prompt_for(self, task_metadata: Any, prompt_type: Any = None) -> str | None:
        """The encoder prompt MTEB's priority order picks for this task and side (None if no key matches)."""
        if not self.model_prompts:
            return None
        side = _side(prompt_type)
        keys = [
            f"{task_metadata.name}-{side}" if side else None,
            task_metadata.name,
            f"{task_metadata.type}-{side}" if side else None,
            task_metadata.type,
            side,
        ]
        return next((self.model_prompts[k] for k in keys if k and k in self.model_prompts), None)

    @staticmethod
    def instruction_for(task_metadata: Any, prompt_type: Any = None) -> str | None:
        """The task's instruction for this side: ``task_metadata.prompt[side]``, or a string prompt for
        queries and symmetric tasks (no side, e.g. STS) but never for documents."""
        side = _side(prompt_type)
        prompt = getattr(task_metadata, "prompt", None)
        if isinstance(prompt, Mapping):
            return prompt.get(side) if side else None
        return prompt if isinstance(prompt, str) and side != "document" else None

    def similarity(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        """(n1, n2) cosine similarities."""
        a, b = _as_2d(embeddings1), _as_2d(embeddings2)
        return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        """(n,) cosine similarity of each row pair, float64."""
        return paired_cosine(_as_2d(embeddings1), _as_2d(embeddings2))


def _texts(batch: Mapping[str, Any]) -> list[str]:
    if "text" not in batch:
        raise ValueError(f"MTEBEncoder encodes text only; the batch has {sorted(batch)}")
    return list(batch["text"])


def _side(prompt_type: Any) -> str | None:
    """``"query"`` / ``"document"`` from MTEB's PromptType (or its string value), None for symmetric tasks."""
    if prompt_type is None:
        return None
    return str(getattr(prompt_type, "value", prompt_type))


def _as_2d(x: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    return t.unsqueeze(0) if t.dim() == 1 else t
