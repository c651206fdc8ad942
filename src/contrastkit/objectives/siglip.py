"""SigLIP: pairwise sigmoid loss (``objectives.md`` section 15).

``L = t * S + b`` with learnable ``t = exp(t')`` (init 10) and bias ``b``
(init -10); ``loss = -(1/|B|) sum_ij log sigmoid(z_ij L_ij)`` with ``z = +1``
on positives. R5 with :func:`reduce_rows` gives exactly ``sum / A`` (not the
mean over pairs), and it is batch-decomposable, so the tiled engine computes
it exactly in chunks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrastkit.objectives.base import Kind, MatrixObjective, ObjectiveInfo, Status
from contrastkit.objectives.reducers import PointwiseSigmoid, RowReducer
from contrastkit.objectives.registry import register
from contrastkit.objectives.temperature import Temperature


@register
class SigLIP(MatrixObjective):
    """SigLIP: ``-(1/A) sum_{i,c in M} log sigmoid(z_ic (t S_ic + b))``; soft ``W`` gives soft labels.

    Args:
        temperature: ``1 / t``; default 0.1 (t = 10).
        bias: initial ``b`` (default -10).
        learnable_temperature: train ``log t`` and ``b`` (default True; the keyword every objective with a
            temperature takes).
    """

    info = ObjectiveInfo(
        name="siglip",
        title="SigLIP (sigmoid loss)",
        status=Status.PAPER,
        citation="Zhai et al., Sigmoid Loss for Language Image Pre-Training, arXiv 2303.15343",
        kind=Kind.MATRIX,
        inputs="S (A, C) + Targets (positives get label 1, other valid entries 0)",
        reducer="R5, sum over pairs / A",
        section="15",
        default_temperature=0.1,
    )

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        bias: float = -10.0,
        learnable_temperature: bool = True,
    ) -> None:
        super().__init__(temperature=self.make_temperature(temperature, learnable=learnable_temperature))
        b = torch.tensor(float(bias))
        self.bias = nn.Parameter(b) if learnable_temperature else nn.Buffer(b)

    @property
    def reducer(self) -> RowReducer:
        return PointwiseSigmoid()

    def logit_bias(self) -> Tensor:
        return self.bias
