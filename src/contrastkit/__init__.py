"""contrastkit: contrastive representation learning, end to end.

Public API: :class:`ContrastiveLoss` (embedding-level, dense or exact tiled),
:class:`Targets`, and the objective registry in :mod:`contrastkit.objectives`.
"""

from contrastkit import objectives
from contrastkit.objectives import Targets
from contrastkit.scale import ContrastiveLoss

__version__ = "0.1.0"

__all__ = ["ContrastiveLoss", "Targets", "__version__", "objectives"]
