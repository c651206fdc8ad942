"""GradCache: the full-batch contrastive gradient with the activation memory of one chunk.

The contrastive loss couples every embedding of a batch, but the encoder's
activations do not have to be held for all of them at once. GradCache
(Gao et al., "Scaling Deep Contrastive Learning Batch Size under Memory
Limited Setup", arXiv 2101.06983) splits the step in three:

1. Embed every side (anchors, candidates, ...) chunk by chunk **without** a
   graph, recording the RNG state before each chunk.
2. Compute the loss on the full embedding matrices with gradient on the
   embeddings only, and backpropagate to them: ``G = dLoss/dE`` (small:
   n x d).
3. Re-run each chunk **with** a graph, its RNG state restored (so dropout
   draws the same masks), and backpropagate ``G``'s rows for that chunk:
   ``dLoss/dtheta = sum_chunks (dE_chunk/dtheta)^T G_chunk``.

The very last chunk is the exception: step 1 embeds it with a graph and
step 3 backpropagates that graph first, before any other chunk is re-run,
so it is never encoded twice and peak activation memory is still one
chunk's. With a single chunk GradCache is a plain step.

By the chain rule the parameter gradients equal those of the graph-keeping
computation with the same dropout masks, up to floating-point summation
order. Every other chunk is encoded twice (once without a graph, which is
cheaper than a forward with one).

Example::

    >>> import torch
    >>> from torch import nn
    >>> from contrastkit import ContrastiveLoss, Targets
    >>> enc = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1))
    >>> encoder = lambda f: enc(f["x"])
    >>> loss_fn = ContrastiveLoss("infonce", temperature=0.05)
    >>> sides = [{"x": torch.randn(32, 8)}, {"x": torch.randn(32, 8)}]
    >>> loss = GradCache(chunk_size=8).loss(encoder, sides, lambda e: loss_fn(e[0], e[1], Targets.diagonal(32)))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from contrastkit.scale.distributed import no_sync

Features = Mapping[str, Tensor]
"""Encoder inputs: tensors whose first dimension is the batch (``contrastkit.encoders.Features``)."""


def _chunks(features: Features, chunk_size: int) -> list[dict[str, Tensor]]:
    """``features`` split along dim 0 into chunks of ``chunk_size`` rows (the last one may be shorter)."""
    sizes = {name: value.shape[0] for name, value in features.items()}
    if not sizes:
        raise ValueError("GradCache: empty features")
    if len(set(sizes.values())) != 1:
        raise ValueError(f"GradCache: features disagree on the batch size: {sizes}")
    n = next(iter(sizes.values()))
    return [{k: v[i : i + chunk_size] for k, v in features.items()} for i in range(0, n, chunk_size)]


@dataclass(frozen=True)
class RngState:
    """The torch CPU generator's state and, when CUDA is in use, every CUDA device's state."""

    cpu: Tensor
    cuda: tuple[Tensor, ...]

    @classmethod
    def capture(cls) -> RngState:
        cuda = tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else ()
        return cls(torch.get_rng_state(), cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda:
            torch.cuda.set_rng_state_all(list(self.cuda))


class GradCache:
    """Gradient caching over encoder chunks of ``chunk_size`` rows.

    Args:
        chunk_size: rows per encoder call (>= 1); the last chunk of a side may
            be shorter.

    Only ``torch``'s default generators are replayed (CPU and CUDA): an
    encoder drawing from Python's ``random`` or NumPy in its forward would not
    be reproduced. A :class:`DistributedDataParallel` encoder is replayed
    under ``no_sync()`` except for its last chunk, so gradients are reduced
    once per step; every rank must then run the same number of chunks.
    """

    def __init__(self, chunk_size: int) -> None:
        if chunk_size < 1:
            raise ValueError(f"GradCache: chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size

    def loss(
        self,
        encoder: Callable[[dict[str, Tensor]], Tensor],
        sides: Sequence[Features],
        loss_fn: Callable[[list[Tensor]], Tensor],
        *,
        scale_loss: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Run one cached step; returns the detached loss and accumulates parameters' ``.grad``.

        Args:
            encoder: features -> (rows, d) embeddings with gradient (an
                :class:`contrastkit.encoders.Encoder`, a DDP-wrapped one, or
                any callable).
            sides: the feature dicts of each side (e.g. anchors, candidates);
                each is embedded in chunks and concatenated.
            loss_fn: the list of full embedding matrices, one per side, in
                order -> 0-d loss. Its own parameters (a learnable
                temperature) get their gradients directly.
            scale_loss: applied to the loss before backward (e.g. a
                ``torch.amp.GradScaler``'s ``scale``); the returned loss is
                unscaled.

        ``.grad`` is accumulated, not zeroed, exactly like ``loss.backward()``
        on the full-batch computation. The RNG state is left where the
        full-batch computation would leave it (after the encoder passes and
        any draws of ``loss_fn``).
        """
        chunks = [_chunks(features, self.chunk_size) for features in sides]
        states, embeddings, kept = self._embed(encoder, chunks)
        with torch.enable_grad():
            loss = loss_fn(embeddings)
        if not loss.requires_grad:
            return loss.detach()
        (loss if scale_loss is None else scale_loss(loss)).backward()
        after = RngState.capture()
        grads = [e.grad for e in embeddings]
        self._replay(encoder, chunks, states, grads, kept)
        after.restore()
        return loss.detach()

    @staticmethod
    def _embed(
        encoder: Callable[[dict[str, Tensor]], Tensor], chunks: list[list[dict[str, Tensor]]]
    ) -> tuple[list[list[RngState]], list[Tensor], Tensor]:
        """First pass: per-chunk RNG states, each side's embeddings as a leaf requiring grad, the kept last chunk.

        The last chunk of the last side is embedded with a graph (``kept``);
        under DDP its forward runs in ``no_sync()`` unless it is the only chunk,
        so that the last *replayed* chunk is the one that reduces gradients.
        """
        states: list[list[RngState]] = []
        embeddings: list[Tensor] = []
        total = sum(len(side) for side in chunks)
        kept = torch.empty(0)
        for s, side in enumerate(chunks):
            side_states, outputs = [], []
            for c, chunk in enumerate(side):
                side_states.append(RngState.capture())
                if s == len(chunks) - 1 and c == len(side) - 1:
                    with no_sync(encoder, skip=total != 1), torch.enable_grad():
                        kept = encoder(chunk)
                    outputs.append(kept.detach())
                else:
                    with torch.no_grad():
                        outputs.append(encoder(chunk))
            states.append(side_states)
            embeddings.append(torch.cat(outputs).detach().requires_grad_())
        return states, embeddings, kept

    def _replay(
        self,
        encoder: Callable[[dict[str, Tensor]], Tensor],
        chunks: list[list[dict[str, Tensor]]],
        states: list[list[RngState]],
        grads: list[Tensor | None],
        kept: Tensor,
    ) -> None:
        """Second pass: the kept chunk's graph, then every other chunk again with its RNG state and a graph.

        Each backpropagates its rows of the cached gradient. Under DDP, if the
        kept chunk was embedded in ``no_sync()`` but no other chunk needs a
        replay, it is replayed instead (its backward must reduce gradients).
        """
        work = [
            (chunk, state, grad)
            for side, side_states, side_grad in zip(chunks, states, grads, strict=True)
            if side_grad is not None
            for chunk, state, grad in zip(side, side_states, side_grad.split(self.chunk_size), strict=True)
        ]
        kept_grad = work.pop()[2] if grads[-1] is not None else None
        total = sum(len(side) for side in chunks)
        if kept_grad is not None:
            if work or total == 1 or not isinstance(encoder, DistributedDataParallel):
                kept.backward(kept_grad)
            else:
                work.append((chunks[-1][-1], states[-1][-1], kept_grad))
        for i, (chunk, state, grad) in enumerate(work):
            state.restore()
            with no_sync(encoder, skip=i != len(work) - 1), torch.enable_grad():
                out = encoder(chunk)
                if out.shape != grad.shape:
                    raise RuntimeError(
                        f"GradCache: the replayed chunk gave shape {tuple(out.shape)}, the first pass "
                        f"{tuple(grad.shape)}; the encoder must be deterministic given the RNG state"
                    )
                out.backward(grad)
