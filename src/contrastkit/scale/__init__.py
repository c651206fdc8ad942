"""How a loss scales: exact tiled loss, GradCache, cross-device negatives, memory queue, Matryoshka.

Each wrapper exists once and wraps any eligible objective; each has a parity
test against the plain single-device dense computation.
"""

from contrastkit.scale.distributed import (
    average_gradients,
    gather_candidates,
    gather_with_grad,
    global_parts_loss,
    local_rows,
    mean_over_ranks,
    no_sync,
    rank_rows,
    row_slice,
    world,
)
from contrastkit.scale.gradcache import GradCache, RngState
from contrastkit.scale.loss import ContrastiveLoss
from contrastkit.scale.matryoshka import MatryoshkaLoss
from contrastkit.scale.queue import MemoryQueue, append_columns
from contrastkit.scale.tiled import tiled_loss, tiled_parts

__all__ = [
    "ContrastiveLoss",
    "GradCache",
    "MatryoshkaLoss",
    "MemoryQueue",
    "RngState",
    "append_columns",
    "average_gradients",
    "gather_candidates",
    "gather_with_grad",
    "global_parts_loss",
    "local_rows",
    "mean_over_ranks",
    "no_sync",
    "rank_rows",
    "row_slice",
    "tiled_loss",
    "tiled_parts",
    "world",
]
