"""Teacher scores for distillation: from the data, or from a teacher model, cached on disk once.

A *teacher* is anything with ``score(pairs, batch_size) -> Tensor`` (one
relevance score per (query, document) pair, :class:`PairScorer`): a
cross-encoder (:class:`contrastkit.encoders.cross.CrossEncoderModel`) or a
bi-encoder wrapped in :class:`BiEncoderTeacher` (cosine of its embeddings).

* :func:`load_teacher` opens a model folder as a teacher and names it: the
  identity is a hash of the folder's configuration and weight files, so a
  retrained teacher in the same folder gets a new identity.
* :class:`ScoreCache` keeps every score a teacher gave, keyed by the
  teacher's identity and the pair's texts, in one safetensors file per
  teacher (``<folder>/teacher-<identity>.safetensors``): another teacher,
  or the same folder retrained, never reads it.
* :func:`score_examples` fills ``positive_scores`` / ``negative_scores`` of
  the examples that lack them (computing only the pairs not in the cache).
* :func:`teacher_targets` turns a batch's scores into the
  :class:`~contrastkit.objectives.distill.TeacherTargets` that the
  distillation objectives read: each row's group is its own positives and
  negatives, in the batch's candidate columns.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.data.examples import Batch, Example
from contrastkit.encoders.base import TextEmbedder
from contrastkit.objectives.distill import TeacherTargets
from contrastkit.objectives.targets import Targets

Pair = tuple[str, str]
IDENTITY_FILES = ("*.json", "*.safetensors", "*.bin", "*.txt", "*.model")
"""Files of a model folder (and its sentence-transformers module folders) that make a teacher's identity."""


@runtime_checkable
class PairScorer(Protocol):
    """A teacher: one relevance score per (query, document) pair, higher = more relevant."""

    def score(self, pairs: Sequence[Pair], batch_size: int = 32) -> Tensor: ...


class BiEncoderTeacher:
    """A bi-encoder as a teacher: the cosine of the query's and the document's embeddings.

    ``encoder``'s ``query`` / ``document`` prompts (its ``prompts`` attribute)
    are used when it has them. Each distinct text is encoded once.
    """

    def __init__(self, encoder: TextEmbedder) -> None:
        self.encoder = encoder

    def score(self, pairs: Sequence[Pair], batch_size: int = 32) -> Tensor:
        """(len(pairs),) float32 cosines."""
        if not pairs:
            return torch.zeros(0)
        prompts = getattr(self.encoder, "prompts", {}) or {}
        sides = []
        for side, name in ((0, "query"), (1, "document")):
            texts = list(dict.fromkeys(p[side] for p in pairs))
            emb = self.encoder.encode(texts, batch_size=batch_size, prompt_name=name if name in prompts else None)
            row = {t: i for i, t in enumerate(texts)}
            sides.append(F.normalize(emb.float(), dim=-1)[torch.tensor([row[p[side]] for p in pairs])])
        return (sides[0] * sides[1]).sum(-1)


def teacher_identity(folder: str | Path) -> str:
    """A hex digest of a model folder's configuration and weights (file names, sizes and contents)."""
    root = Path(folder)
    digest = hashlib.sha256()
    files = sorted({p for pattern in IDENTITY_FILES for p in root.rglob(pattern) if p.is_file()})
    if not files:
        raise FileNotFoundError(f"{root}: no model files to identify a teacher by")
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:32]


def load_teacher(path: str | Path, *, max_length: int | None = None) -> tuple[PairScorer, str]:
    """The teacher in ``path`` and its identity (:func:`teacher_identity`; with ``max_length``, which truncates
    every pair the teacher reads, the length is part of it: other lengths give other scores).

    A sequence-classification folder (or a saved decoder reranker) is a
    cross-encoder; any other model folder is a bi-encoder (cosine). Raises
    :class:`~contrastkit.encoders.io.ModelFolderError` for a folder that is
    neither.
    """
    from contrastkit.encoders.auto import load_encoder, resolve_model_path
    from contrastkit.encoders.cross import CrossEncoderModel
    from contrastkit.encoders.io import ModelFolderError

    folder = resolve_model_path(path)
    identity = teacher_identity(folder) + ("" if max_length is None else f"-len{max_length}")
    try:
        return CrossEncoderModel.from_folder(folder, max_length=max_length), identity
    except ModelFolderError:  # not a cross-encoder: a bi-encoder
        return BiEncoderTeacher(load_encoder(folder, max_length=max_length)), identity


def pair_key(pair: Pair) -> bytes:
    """16 bytes naming a (query, document) pair: a hash of both texts (lengths prefixed, so no two pairs collide
    by moving text from one side to the other)."""
    query, document = (t.encode("utf-8") for t in pair)
    return hashlib.sha256(f"{len(query)}:".encode() + query + document).digest()[:16]


class ScoreCache:
    """Scores of one teacher on disk: ``<folder>/teacher-<identity>.safetensors`` (pair keys and scores).

    :meth:`score` returns the cached score of every pair it has and asks
    the teacher for the others, in one call, then rewrites the file
    atomically (temporary file, rename). ``computed`` counts the pairs the
    teacher has scored through this object.
    """

    def __init__(self, folder: str | Path, identity: str) -> None:
        if not identity or any(c in identity for c in "/\\\0"):
            raise ValueError(f"a teacher identity must be a non-empty file-name part, got {identity!r}")
        self.path = Path(folder) / f"teacher-{identity}.safetensors"
        self.computed = 0
        self._dirty = False
        self._scores: dict[bytes, float] = self._read()

    def _read(self) -> dict[bytes, float]:
        if not self.path.exists():
            return {}
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            saved = load_file(str(self.path))
            keys, scores = saved["keys"], saved["scores"]
        except (SafetensorError, KeyError, OSError) as err:
            raise ValueError(f"{self.path}: not a teacher score cache ({err}); delete it to rescore") from None
        return {bytes(k.tolist()): float(s) for k, s in zip(keys, scores, strict=True)}

    def __len__(self) -> int:
        return len(self._scores)

    def score(self, teacher: PairScorer, pairs: Sequence[Pair], batch_size: int = 32, *, save: bool = True) -> Tensor:
        """(len(pairs),) float32 scores: cached, or computed by ``teacher`` (each distinct missing pair once).

        New scores are written to disk at once, or with ``save=False`` at the next :meth:`save` (many small calls).
        """
        keys = [pair_key(p) for p in pairs]
        missing = list({k: p for k, p in zip(keys, pairs, strict=True) if k not in self._scores}.items())
        if missing:
            new = teacher.score([p for _, p in missing], batch_size=batch_size).float()
            if new.shape != (len(missing),):
                raise ValueError(f"the teacher returned scores of shape {tuple(new.shape)} for {len(missing)} pairs")
            self._scores.update((k, v) for (k, _), v in zip(missing, new.tolist(), strict=True))
            self.computed += len(missing)
            self._dirty = True
            if save:
                self.save()
        return torch.tensor([self._scores[k] for k in keys], dtype=torch.float32)

    def save(self) -> None:
        """Write the scores (atomically) if any were added since the last write."""
        if not self._dirty:
            return
        from safetensors.torch import save_file

        keys = torch.tensor([list(k) for k in self._scores], dtype=torch.uint8).reshape(-1, 16)
        scores = torch.tensor(list(self._scores.values()), dtype=torch.float32)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({"keys": keys, "scores": scores}, tmp)
            os.replace(tmp, self.path)
            self._dirty = False
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def score_examples(
    examples: Sequence[Example],
    teacher: PairScorer,
    *,
    cache: ScoreCache | None = None,
    batch_size: int = 32,
) -> list[Example]:
    """``examples`` with a teacher score for every positive and negative; already-scored examples kept as they are.

    All missing pairs go to the teacher (through ``cache`` when given) in one call.
    """
    todo = [i for i, ex in enumerate(examples) if not ex.teacher_scored and (ex.positives or ex.negatives)]
    pairs = [(examples[i].anchor, t) for i in todo for t in (*examples[i].positives, *examples[i].negatives)]
    if not pairs:
        return list(examples)
    if cache is not None:
        scores = cache.score(teacher, pairs, batch_size)
    else:
        scores = teacher.score(pairs, batch_size=batch_size).float()
        if scores.shape != (len(pairs),):
            raise ValueError(f"the teacher returned scores of shape {tuple(scores.shape)} for {len(pairs)} pairs")
    out, at = list(examples), 0
    for i in todo:
        ex = examples[i]
        values = scores[at : at + len(ex.positives) + len(ex.negatives)].tolist()
        at += len(values)
        out[i] = replace(
            ex, positive_scores=tuple(values[: len(ex.positives)]), negative_scores=tuple(values[len(ex.positives) :])
        )
    return out


def teacher_targets(batch: Batch) -> Targets:
    """``batch.targets()`` with each teacher-scored example's group: its positives' and negatives' columns and
    scores (:class:`~contrastkit.objectives.distill.TeacherTargets`); plain targets when no example is scored."""
    targets = batch.targets()
    scored = [ex.teacher_scored for ex in batch.examples]
    if not any(scored):
        return targets
    positive_cols = batch.positive_columns()
    negative_cols: list[list[int]] = [[] for _ in batch.examples]
    n_pos = sum(len(ex.positives) for ex in batch.examples)
    for col, owner in enumerate(batch.candidate_owner[n_pos:], start=n_pos):
        negative_cols[owner].append(col)
    width = max(len(ex.positives) + len(ex.negatives) for ex in batch.examples)
    index = torch.full((len(batch), width), -1, dtype=torch.long)
    score = torch.zeros(len(batch), width, dtype=torch.float64)
    positive = torch.zeros(len(batch), width, dtype=torch.bool)
    for i, ex in enumerate(batch.examples):
        if not scored[i]:
            continue
        cols = positive_cols[i] + negative_cols[i]
        index[i, : len(cols)] = torch.tensor(cols, dtype=torch.long)
        score[i, : len(cols)] = torch.tensor([*ex.positive_scores, *ex.negative_scores], dtype=torch.float64)
        positive[i, : len(positive_cols[i])] = True
    return TeacherTargets.from_groups(index, score, positive, num_cols=len(batch.candidates), targets=targets)
