"""How a loss scales: the exact tiled loss and the embedding-level :class:`ContrastiveLoss`."""

from contrastkit.scale.loss import ContrastiveLoss
from contrastkit.scale.tiled import tiled_loss, tiled_parts

__all__ = ["ContrastiveLoss", "tiled_loss", "tiled_parts"]
