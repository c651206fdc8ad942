"""Training examples and batches: the typed records every reader yields and the loop consumes.

One :class:`Example` type covers the example kinds of contrastive training:

| kind | fields |
|---|---|
| pair | ``anchor``, ``positives=(p,)`` |
| triplet / hard negatives | ``anchor``, ``positives=(p,)``, ``negatives=(n1, ...)`` |
| multiple positives | ``anchor``, ``positives=(p1, p2, ...)``, ``negatives`` |
| graded pair | ``anchor``, ``positives=(p,)``, ``score`` |
| distillation | any kind with texts, plus ``positive_scores`` / ``negative_scores``: a teacher's score of each text |
| labelled text | ``anchor``, ``label`` |
| multi-label text | ``anchor``, ``labels`` |
| unlabelled sentence | ``anchor`` only (views come from augmentation) |

``group`` names what the example is about (a query id, a document id, a
class): candidates of another example with the same group are not counted as
negatives of this one (false-negative masking), and the batch sampler keeps
duplicates out of a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from contrastkit.objectives.targets import Targets


@dataclass(frozen=True)
class Example:
    """One training record; see the module docstring for the kinds."""

    anchor: str
    positives: tuple[str, ...] = ()
    negatives: tuple[str, ...] = ()
    score: float | None = None
    label: int | str | None = None
    labels: tuple[int | str, ...] = ()
    group: str | None = None
    source: str | None = None
    positive_scores: tuple[float, ...] = ()
    negative_scores: tuple[float, ...] = ()

    @property
    def teacher_scored(self) -> bool:
        """Whether a teacher scored every positive and negative (scores for distillation)."""
        return (
            len(self.positive_scores) == len(self.positives)
            and len(self.negative_scores) == len(self.negatives)
            and (bool(self.positive_scores) or bool(self.negative_scores))
        )

    def texts(self) -> tuple[str, ...]:
        """Every text of the example: anchor, positives, negatives."""
        return (self.anchor, *self.positives, *self.negatives)


@dataclass(frozen=True)
class Batch:
    """A batch of examples with the candidate layout used by the in-batch objectives.

    Candidates are every example's positives, then every example's negatives,
    in example order. :meth:`targets` marks each anchor's own positives and
    masks the positives of other examples in the same ``group`` instead of
    counting them as negatives. Duplicate texts across examples are kept out
    of a batch by the sampler, not here.
    """

    examples: tuple[Example, ...]
    candidate_owner: tuple[int, ...] = field(init=False)
    candidates: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        owner: list[int] = []
        texts: list[str] = []
        for i, ex in enumerate(self.examples):
            owner += [i] * len(ex.positives)
            texts += ex.positives
        for i, ex in enumerate(self.examples):
            owner += [i] * len(ex.negatives)
            texts += ex.negatives
        object.__setattr__(self, "candidate_owner", tuple(owner))
        object.__setattr__(self, "candidates", tuple(texts))

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def anchors(self) -> list[str]:
        return [ex.anchor for ex in self.examples]

    def positive_columns(self) -> list[list[int]]:
        """Per example, the candidate columns of its own positives."""
        cols: list[list[int]] = [[] for _ in self.examples]
        n_pos = sum(len(ex.positives) for ex in self.examples)
        for col, owner in enumerate(self.candidate_owner[:n_pos]):
            cols[owner].append(col)
        return cols

    def targets(self) -> Targets:
        """(A, C) targets: own positives (several allowed), other same-group positives masked."""
        cols = self.positive_columns()
        width = max((len(c) for c in cols), default=0) or 1
        index = torch.full((len(self.examples), width), -1, dtype=torch.long)
        for i, c in enumerate(cols):
            index[i, : len(c)] = torch.tensor(c, dtype=torch.long)
        ids = self._mask_ids()
        targets = Targets.from_lists(index, num_cols=len(self.candidates))
        return targets.with_id_mask(*ids) if ids is not None else targets

    def _mask_ids(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(row ids, column ids) for false-negative masking, or None when no two examples share a group.

        A row's id is its example's group; a positive column's id is its
        owner's group; negative columns get ids of their own (never masked:
        another same-group example's hard negative is a negative here too).
        """
        groups = [_group_key(ex, i) for i, ex in enumerate(self.examples)]
        if len(set(groups)) == len(groups):
            return None
        keys = {g: k for k, g in enumerate(dict.fromkeys(groups))}
        row_ids = [keys[g] for g in groups]
        n_pos = sum(len(ex.positives) for ex in self.examples)
        col_ids = [row_ids[o] for o in self.candidate_owner[:n_pos]]
        col_ids += range(len(keys), len(keys) + len(self.candidates) - n_pos)
        return torch.tensor(row_ids), torch.tensor(col_ids)


def _group_key(example: Example, index: int) -> str:
    return f"group:{example.group}" if example.group is not None else f"example:{index}"


def collate(examples: Sequence[Example]) -> Batch:
    """A :class:`Batch` of ``examples``."""
    return Batch(tuple(examples))
