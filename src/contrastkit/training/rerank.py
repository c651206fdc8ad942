"""Training a cross-encoder: each example's (query, document) pairs are scored, and its group is one row.

With a pair scorer (:class:`~contrastkit.encoders.cross.CrossEncoderModel`,
``model.kind: cross``) :class:`~contrastkit.training.batchloss.BatchLoss`
does not embed anchors and candidates: every example of the batch (a query,
its positives, its negatives: JSONL, BEIR and ``contrastkit mine`` output
alike) gives one pair per document, the pairs of the whole batch are scored
as one side (so GradCache and length-sorted sub-batches apply to them), and
the scores are laid out as an (n, k) group matrix, row i = example i's
documents, positives first, ``k`` = the largest group, shorter groups masked
(:func:`~contrastkit.objectives.rerank.group_targets`). The objective is any
non-symmetric matrix objective on that matrix: ``infonce`` (listwise), the
multi-positive reducers, ``rerank_bce``, ``sft``, ``ranknet``; and ``url``,
which gets each pair's (yes, no) logits (rows tagged at tokenization).

No in-batch negatives: a document is scored only against its own query.
A queue, Matryoshka, the tiled engine and several processes do not apply and
are refused (:func:`check_pair_objective`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from contrastkit.data.examples import Batch
from contrastkit.encoders.base import Features
from contrastkit.encoders.cross import CrossEncoderModel
from contrastkit.objectives.base import Kind, MatrixObjective, Objective
from contrastkit.objectives.rerank import UnifiedRerankLoss, group_targets
from contrastkit.training.config import ScaleConfig
from contrastkit.training.schema import ConfigError

Closure = Callable[[list[Tensor]], Tensor]


def is_pair_scorer(encoder: object) -> bool:
    """Whether ``encoder`` scores (query, document) pairs (a cross-encoder) rather than embedding texts."""
    return bool(getattr(encoder, "scores_pairs", False))


def check_pair_objective(objective: Objective, scale: ScaleConfig, processes: int = 1) -> None:
    """A ConfigError naming the key when ``objective``, ``scale`` or ``processes`` > 1 cannot train a cross-encoder."""
    name = objective.info.name
    symmetric = bool(getattr(objective, "symmetric", False))
    pairwise = isinstance(objective, UnifiedRerankLoss) or (
        isinstance(objective, MatrixObjective) and objective.info.kind is Kind.MATRIX and not symmetric
    )
    if not pairwise:
        raise ConfigError(
            "objective.name",
            f"{name!r} is not an objective on a query's group of scores; a cross-encoder trains with "
            "infonce, jointlh, summarglh, lsepair, rerank_bce, sft, ranknet or url",
        )
    refused = {
        "scale.queue_size": scale.queue_size,
        "scale.matryoshka_dims": scale.matryoshka_dims,
        "scale.tile_size": scale.tile_size,
    }
    for key, value in refused.items():
        if value:
            raise ConfigError(key, "does not apply to a cross-encoder (each query's group is scored on its own)")
    if processes > 1:
        raise ConfigError("model.kind", f"a cross-encoder trains in one process ({processes} were launched)")


def pair_side(encoder: nn.Module, batch: Batch, objective: Objective, device: torch.device) -> tuple[Features, Closure]:
    """The tokenized pairs of ``batch`` (one side) and the closure from their scores to the loss.

    ``encoder`` is the trained :class:`~contrastkit.encoders.cross.CrossEncoderModel` (TypeError otherwise).
    """
    if not isinstance(encoder, CrossEncoderModel):
        raise TypeError(f"a pair objective trains a cross-encoder, got {type(encoder).__name__}")
    yes_no = isinstance(objective, UnifiedRerankLoss)
    groups = [(*ex.positives, *ex.negatives) for ex in batch.examples]
    pairs = [(ex.anchor, doc) for ex, docs in zip(batch.examples, groups, strict=True) for doc in docs]
    features = {k: v.to(device) for k, v in encoder.tokenize(pairs, yes_no=yes_no).items()}
    sizes = torch.tensor([len(docs) for docs in groups])
    k = int(sizes.max())
    rows = torch.repeat_interleave(torch.arange(len(groups)), sizes).to(device)
    cols = torch.cat([torch.arange(int(s)) for s in sizes]).to(device)
    targets = group_targets(torch.tensor([len(ex.positives) for ex in batch.examples]), k, sizes).to(device)

    def closure(outputs: list[Tensor]) -> Tensor:
        (scores,) = outputs
        matrix = scores.new_zeros((len(groups), k, *scores.shape[1:])).index_put((rows, cols), scores)
        return objective(matrix, targets)

    return features, closure
