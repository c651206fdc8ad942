"""The contrastive objective algebra: targets, similarity, temperature, reducers and every objective.

``get(name, **hparams)`` builds a registered objective; ``names()`` lists
them; ``infos()`` yields their class data (status, citation, inputs).
Matrix objectives are called as ``get(name)(S, targets)``.
"""

from contrastkit.objectives import (  # noqa: F401 - importing registers the objectives
    amcl,
    cacr,
    decoupled,
    distill,
    groco,
    hardness,
    hooks,
    infonce,
    mochi,
    multipos,
    multiview,
    rerank,
    siglip,
    sts,
    supcon,
    supremix,
    uwe,
    whitened,
)
from contrastkit.objectives.base import Kind, MatrixObjective, Objective, ObjectiveInfo, Status
from contrastkit.objectives.reducers import (
    Decoupled,
    LossParts,
    PairwiseLSE,
    PointwiseSigmoid,
    PositiveMarginal,
    RowLoss,
    RowReducer,
    Stat,
    WeightedCE,
    masked_lse,
    reduce_rows,
)
from contrastkit.objectives.registry import REGISTRY, Registry
from contrastkit.objectives.similarity import Similarity, similarity_matrix
from contrastkit.objectives.targets import Block, Targets
from contrastkit.objectives.temperature import Temperature, clamp_temperatures

get = REGISTRY.get
names = REGISTRY.names
infos = REGISTRY.infos

__all__ = [
    "REGISTRY",
    "Block",
    "Decoupled",
    "Kind",
    "LossParts",
    "MatrixObjective",
    "Objective",
    "ObjectiveInfo",
    "PairwiseLSE",
    "PointwiseSigmoid",
    "PositiveMarginal",
    "Registry",
    "RowLoss",
    "RowReducer",
    "Similarity",
    "Stat",
    "Status",
    "Targets",
    "Temperature",
    "WeightedCE",
    "clamp_temperatures",
    "get",
    "infos",
    "masked_lse",
    "names",
    "reduce_rows",
    "similarity_matrix",
]
