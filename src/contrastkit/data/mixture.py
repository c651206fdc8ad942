"""Several datasets in one run: each batch from one dataset, the schedule seeded and resumable exactly.

:class:`MixtureSampler` holds one :class:`~contrastkit.data.sampler.BatchSampler`
per dataset and decides, for every batch position ``k = 0, 1, 2, ...``, which
dataset batch ``k`` comes from:

* ``round_robin``: datasets take turns in order, ``k mod n``;
* ``proportional``: dataset ``i`` with probability ``w_i / sum(w)``, drawn
  independently per batch from a generator seeded with ``(seed, k // 1024)``
  (a block of 1024 draws at a time). The weights default to each dataset's
  number of batches per epoch, so that, on average, every dataset is seen
  once per mixture epoch (sampling proportional to size). With a
  ``temperature`` T the probabilities are ``w_i^(1/T) / sum_j w_j^(1/T)``
  (temperature-scaled mixing: T = 1 is proportional, larger T flattens the
  shares toward uniform, T -> infinity is uniform; T < 1 sharpens them);
* ``codiemb``: CoDiEmb's balanced single-task schedule (Zhang et al., 2025,
  arXiv 2508.11442, section 2.3): every mixture epoch hands out exactly
  ``w_i`` batches of dataset ``i`` (default: its batches per epoch, so every
  dataset is seen once per epoch, none repeated or skipped), in an order
  drawn without replacement by a generator seeded with ``(seed, epoch)``.
  The paper says its sampler "balances the number of iterations per task"
  without a formula; its released sampler (``train/sampler.py`` of
  TencentCloudADP/youtu-embedding) cuts each dataset into full batches and
  shuffles the batches of all datasets together once per epoch. That is what
  this mode does: the per-task update counts are fixed per epoch (no sampling
  noise, unlike ``proportional``) while their order is random. Equal counts
  per task are ``round_robin`` (or a large ``temperature``), not this mode.

Each dataset's sampler then hands out its own next batch
(:meth:`BatchSampler.next_batch`): datasets cycle through their own epochs
independently, every batch stays duplicate-free and within one dataset. The
schedule is a pure function of ``(mixing, weights, seed, k)``, so the whole
state is the position ``k`` plus each dataset sampler's position, which
:meth:`MixtureSampler.state_dict` captures: a run resumed from it draws the
identical next batches.

A *mixture epoch* is as many batches as one pass over every dataset (the sum
of the datasets' epoch-0 batch counts); :attr:`MixtureSampler.epoch` counts
those, and ``train.epochs`` means them.

Example::

    >>> from contrastkit.data import BatchSampler, Example
    >>> a = [Example(f"a{i}", (f"p{i}",)) for i in range(8)]
    >>> b = [Example(f"b{i}", (f"q{i}",)) for i in range(4)]
    >>> mix = MixtureSampler([BatchSampler(a, 2, seed=0), BatchSampler(b, 2, seed=1)], ["a", "b"], "round_robin")
    >>> [mix.next_batch()[0] for _ in range(4)]
    [0, 1, 0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np

from contrastkit.data.sampler import BatchSampler

Mixing = Literal["proportional", "round_robin", "codiemb"]

_BLOCK = 1024
_STREAM = 0x6D6978  # separates the schedule's random stream from the samplers' (seed, epoch) permutations
_CODIEMB = 0x636F6469  # and the codiemb epochs' shuffles from the proportional blocks


class MixtureSampler:
    """Batches of example indices from several datasets, one dataset per batch; see the module docstring.

    Args:
        samplers: one batch sampler per dataset.
        names: the datasets' names (unique; for logs and the resume check).
        mixing: ``"proportional"``, ``"round_robin"`` or ``"codiemb"``.
        weights: relative weights (> 0) for ``proportional``; default each sampler's batches per epoch.
            For ``codiemb``, whole numbers: each dataset's batches per mixture epoch.
        seed: non-negative seed of the proportional and codiemb schedules.
        temperature: ``proportional`` only: draw dataset ``i`` with probability proportional to ``w_i^(1/T)``.
    """

    def __init__(
        self,
        samplers: Sequence[BatchSampler],
        names: Sequence[str],
        mixing: Mixing = "proportional",
        *,
        weights: Sequence[float] | None = None,
        seed: int = 0,
        temperature: float = 1.0,
    ) -> None:
        if not samplers:
            raise ValueError("MixtureSampler: no dataset")
        if len(names) != len(samplers) or len(set(names)) != len(names):
            raise ValueError(f"MixtureSampler: need one unique name per sampler, got {list(names)}")
        if mixing not in get_args(Mixing):
            raise ValueError(f"unknown mixing {mixing!r}; expected one of {', '.join(get_args(Mixing))}")
        if weights is not None and mixing == "round_robin":
            raise ValueError("weights apply to proportional mixing only (and to codiemb, as batches per epoch)")
        if not (temperature > 0 and np.isfinite(temperature)):
            raise ValueError(f"mixing temperature must be a finite number > 0, got {temperature}")
        if temperature != 1.0 and mixing != "proportional":
            raise ValueError("a mixing temperature applies to proportional mixing only")
        if weights is not None and mixing == "codiemb" and not all(float(w).is_integer() for w in weights):
            raise ValueError(f"codiemb mixing needs whole-number weights (batches per epoch), got {list(weights)}")
        if weights is not None and (len(weights) != len(samplers) or not all(w > 0 for w in weights)):
            raise ValueError(f"MixtureSampler: need one weight > 0 per dataset, got {list(weights)}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.samplers = list(samplers)
        self.names = list(names)
        self.mixing = mixing
        self.seed = seed
        counts = [s.num_batches(0) for s in self.samplers]
        self.weights = [float(w) for w in (weights if weights is not None else counts)]
        self.temperature = float(temperature)
        self.batches_per_epoch = int(sum(self.weights)) if mixing == "codiemb" else sum(counts)
        self._position = 0
        self._block: tuple[int, list[int]] | None = None

    # ------------------------------------------------------------------ schedule
    def dataset_at(self, position: int) -> int:
        """The dataset that batch ``position`` (0-based, over the whole run) comes from."""
        n = len(self.samplers)
        if self.mixing == "round_robin" or n == 1:
            return position % n
        if self.mixing == "codiemb":
            block, offset = divmod(position, self.batches_per_epoch)
        else:
            block, offset = divmod(position, _BLOCK)
        if self._block is None or self._block[0] != block:
            self._block = (block, self._schedule(block))
        return self._block[1][offset]

    def probabilities(self) -> list[float]:
        """Each dataset's share of batches: ``w_i^(1/T)`` normalised (``codiemb``: ``w_i`` over their sum)."""
        if self.mixing == "round_robin":
            return [1.0 / len(self.samplers)] * len(self.samplers)
        w = np.asarray(self.weights, dtype=np.float64)
        if self.mixing == "proportional" and self.temperature != 1.0:  # in logs: w**(1/T) may overflow
            logw = np.log(w) / self.temperature
            w = np.exp(logw - logw.max())
        return (w / sum(w.tolist())).tolist()

    def _schedule(self, block: int) -> list[int]:
        """The datasets of one block of positions: 1024 proportional draws, or one codiemb epoch's shuffle."""
        n = len(self.samplers)
        if self.mixing == "codiemb":
            rng = np.random.default_rng([_STREAM, self.seed, _CODIEMB, block])
            counts = [int(w) for w in self.weights]
            return rng.permutation(np.repeat(np.arange(n), counts)).tolist()
        rng = np.random.default_rng([_STREAM, self.seed, block])
        return rng.choice(n, size=_BLOCK, p=np.asarray(self.probabilities())).tolist()

    def next_batch(self) -> tuple[int, list[int]]:
        """(dataset index, that dataset's example indices) of the next batch; the position moves on."""
        dataset = self.dataset_at(self._position)
        indices = self.samplers[dataset].next_batch()
        self._position += 1
        return dataset, indices

    # ------------------------------------------------------------------ position
    @property
    def position(self) -> int:
        """The number of batches handed out so far."""
        return self._position

    @property
    def epoch(self) -> int:
        """The mixture epoch of the next batch: ``position // batches_per_epoch``."""
        return self._position // self.batches_per_epoch

    def num_batches(self, epoch: int) -> int:
        """Batches in mixture epoch ``epoch`` (the same for every epoch: ``batches_per_epoch``)."""
        return self.batches_per_epoch

    def state_dict(self) -> dict[str, Any]:
        """The position, every dataset sampler's state, and the settings they are valid for."""
        return {
            "position": self._position,
            "mixing": self.mixing,
            "seed": self.seed,
            "names": list(self.names),
            "weights": list(self.weights),
            "temperature": self.temperature,
            "samplers": [s.state_dict() for s in self.samplers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state``'s position; ValueError if it was saved with other datasets or settings."""
        if "samplers" not in state:
            raise ValueError("sampler state is a single dataset's; this run mixes several datasets")
        for key in ("mixing", "seed", "names", "weights", "temperature"):
            mine = self.state_dict()[key]
            saved = state.get(key, 1.0 if key == "temperature" else None)  # states saved before temperatures: 1
            if saved != mine:
                raise ValueError(f"sampler state was saved with {key}={saved!r}, this mixture has {mine!r}")
        for name, sampler, saved in zip(self.names, self.samplers, state["samplers"], strict=True):
            try:
                sampler.load_state_dict(saved)
            except ValueError as err:
                raise ValueError(f"dataset {name!r}: {err}") from None
        self._position = int(state["position"])
