"""The training loop: ``train(config) -> TrainResult``.

Example (the CLI ``contrastkit train CONFIG.yaml key=value ...`` does the same)::

    >>> from contrastkit.training import load_config, train
    >>> cfg = load_config("configs/example.yaml", ["train.steps=100"])  # doctest: +SKIP
    >>> result = train(cfg)  # doctest: +SKIP
    >>> result.final_model  # a sentence-transformers folder  # doctest: +SKIP

One optimizer step: set the learning rate of this step (warmup + schedule);
for each of ``grad_accumulation`` micro-batches, draw a batch from the
sampler and backpropagate its loss (:class:`BatchLoss`: dense, tiled,
GradCache, queue, Matryoshka, data-parallel; with ``data.datasets`` the
batch comes from one dataset and gets that dataset's loss and prompts, see
:mod:`contrastkit.training.sources`); unscale (fp16), measure and
clip the gradient norm; then either update (AdamW) or, when the loss or
the gradient norm is not finite, skip the update (:mod:`guard`). An update
that leaves a weight or an optimizer moment non-finite (one fused check
after each update) is undone and the step is skipped too. Then log, run
callbacks, evaluate and checkpoint at their intervals; a skipped step never
gets a checkpoint. A run whose every step was skipped raises
:class:`TrainingDivergedError` and saves nothing; a run whose last step was
skipped writes ``final/`` from the last good step and says so
(:attr:`TrainResult.last_step_skipped`; the CLI exits with status 3).

With ``model.lora.enabled`` only LoRA adapters are trained
(:mod:`contrastkit.training.lora`); they are merged into the encoder's
weights after the final checkpoint, before ``final/`` is written. The
``eval`` section adds evaluation callbacks
(:mod:`contrastkit.training.evaluation`) to those passed in.

Run folder (``train.output_dir``): ``config.yaml`` (the resolved config),
``env.json``, ``metrics.jsonl``, ``tensorboard/`` (when tensorboard is
installed), ``checkpoints/step-*/`` and ``final/`` (the trained encoder, a
sentence-transformers folder, with its model card ``README.md``:
:mod:`contrastkit.training.model_card`). With ``train.resume=true`` the run continues
from the newest intact checkpoint (a damaged newer one is skipped with a
warning: :func:`~contrastkit.training.checkpoint.newest_intact_checkpoint`);
on CPU the result is bitwise identical to an uninterrupted run. The folder
is checked and locked before anything is loaded, and an interrupted run's
leftovers are removed then (:mod:`contrastkit.training.rundir`).
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from contrastkit.data.examples import Batch, Example, collate
from contrastkit.data.mixture import MixtureSampler
from contrastkit.encoders.base import Encoder
from contrastkit.scale.distributed import average_gradients, mean_over_ranks, no_sync, world
from contrastkit.training import faults
from contrastkit.training.build import build_encoder, count_steps, view_examples
from contrastkit.training.callbacks import Callback, CallbackContext, StopTraining, run_evaluation
from contrastkit.training.checkpoint import (
    MANIFEST,
    CorruptCheckpointError,
    checkpoint_size,
    latest_checkpoint,
    list_checkpoints,
    newest_intact_checkpoint,
)
from contrastkit.training.config import Config, dump_config
from contrastkit.training.device import (
    EmbedForward,
    autocast_dtype,
    grad_scaler,
    init_distributed,
    resolve_device,
)
from contrastkit.training.evaluation import build_evaluation_callbacks
from contrastkit.training.guard import BadStepGuard, TrainingDivergedError, UpdateSnapshot, require_finite
from contrastkit.training.lora import add_lora, merge_lora
from contrastkit.training.model_card import CardFacts, command_line, dataset_facts, write_model_card
from contrastkit.training.optim import LRSchedule, build_optimizer, clip_gradients
from contrastkit.training.rng import seed_everything
from contrastkit.training.rundir import RunDir
from contrastkit.training.runlog import METRICS_FILE, RunLog
from contrastkit.training.schema import ConfigError
from contrastkit.training.sharding import Sharding
from contrastkit.training.sources import build_data_sampler, build_routing, load_sources
from contrastkit.training.state import RunState, restore_run_state, save_run_state


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train`: where things are, how many steps ran, the last logged loss."""

    output_dir: Path
    final_model: Path
    steps: int
    loss: float
    skipped_steps: int
    last_checkpoint: Path | None
    last_step_skipped: bool = False


class Trainer:
    """One training run of ``config``; see the module docstring.

    Args:
        config: the resolved :class:`Config`.
        encoder: a ready encoder instead of ``load_encoder(config.model...)``.
        examples: ready examples instead of reading ``config.data.train``.
        callbacks: :class:`Callback` instances (evaluation, diagnostics).
    """

    def __init__(
        self,
        config: Config,
        *,
        encoder: Encoder | None = None,
        examples: Sequence[Example] | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.config = config
        self.callbacks = list(callbacks)
        self._given_encoder = encoder
        self._given_examples = examples
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.saved_step: int | None = None
        self.last_good_step = 0
        self._owns_group = False
        self.run_dir: RunDir | None = None
        self._notes: list[str] = []

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Build everything, read the data and the model (before writing anything), then resume if asked."""
        cfg = self.config
        self.device = resolve_device(cfg.train.device)
        self._owns_group = init_distributed(self.device)
        self.rank, self.world = world()
        self.output_dir = Path(cfg.train.output_dir)
        self._hold_run_dir()  # before anything expensive: a bad or busy output_dir stops here
        resume_from = self._resume_point()
        seed_everything(cfg.train.seed)
        self._build()
        self.log = RunLog(cfg, self.output_dir, total_steps=self.total_steps, main=self.rank == 0)
        self.state = RunState(
            cfg,
            self.encoder,
            self.batch_loss,
            self.optimizer,
            self.sampler,
            self.guard,
            self.scaler,
            self.schedule,
            self.sharding,
        )
        changed: list[str] = []
        if resume_from is not None:
            self.step, changed = restore_run_state(self.state, resume_from)  # the RNG states last of all
            self.last_checkpoint, self.saved_step, self.last_good_step = resume_from, self.step, self.step
        self.log.start(self.step, resumed=resume_from is not None)
        for note in self._notes:
            self.log.warn(note)
        if isinstance(self.sampler, MixtureSampler):
            self.log.message(self.routing.describe(self.sampler))
        if self.lora_summary is not None:
            self.log.message(self.lora_summary.describe())
        if self.sharding is not None:
            self.log.message(self.sharding.describe())
        if changed:
            self.log.message(f"note: the config differs from the checkpoint's in {', '.join(changed)}")
        if cfg.train.resume and resume_from is None:
            self.log.message(f"note: train.resume is set but {self.output_dir} has no checkpoint: starting afresh")
        if self.rank == 0:
            dump_config(cfg, self.output_dir / "config.yaml")

    def _build(self) -> None:
        """Examples, encoder, loss, sampler, optimizer, schedule, forward wrapper (DDP), scaler, guard."""
        cfg = self.config
        self.sources = load_sources(cfg.data, view_examples(cfg.views, cfg.data, self._given_examples))
        self.examples = [ex for source in self.sources for ex in source.examples]
        encoder = self._given_encoder if self._given_encoder is not None else build_encoder(cfg.model)
        self.lora_summary = add_lora(encoder, cfg.model.lora) if cfg.model.lora.enabled else None
        fsdp = cfg.scale.fsdp and self.world > 1  # FSDP moves only this rank's shards to the device
        self.encoder = (encoder if fsdp else encoder.to(self.device)).train()
        self.callbacks = [*build_evaluation_callbacks(cfg.eval, cfg.model, encoder), *self.callbacks]
        self.routing = build_routing(cfg, self.sources, encoder)  # one BatchLoss per distinct objective
        self.batch_loss = self.routing.module.to(self.device)
        if cfg.data.batch_size < self.world:
            raise ConfigError("data.batch_size", f"{cfg.data.batch_size} is less than the {self.world} processes")
        self.sampler = build_data_sampler(cfg.data, self.sources)
        self.total_steps = count_steps(cfg.train, self.sampler, cfg.optim.grad_accumulation)
        # FSDP (one process ignores scale.fsdp; the config refuses it with model.lora) before the optimizer:
        # the optimizer holds the shards
        self.sharding = Sharding(encoder, self.batch_loss, self.device) if fsdp else None
        self.optimizer = build_optimizer(cfg.optim, encoder, self.batch_loss)
        self.schedule = LRSchedule(cfg.optim, self.total_steps)
        forward: nn.Module = EmbedForward(encoder, autocast_dtype(cfg.train.precision, self.device), self.device.type)
        if self.world > 1 and self.sharding is None:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # encoders often hold parameters the embedding does not use (BERT's pooler under mean pooling)
            forward = nn.parallel.DistributedDataParallel(forward, device_ids=ids, find_unused_parameters=True)
        self.forward = forward
        self.scaler = grad_scaler(cfg.train.precision, self.device)
        self.guard = BadStepGuard(cfg.train.max_bad_steps)
        self.snapshot = UpdateSnapshot(self.optimizer)
        self._step_sources: list[int] = []

    def _full_encoder(self) -> Encoder:
        """The encoder with whole weights: itself, or under FSDP a gathered CPU copy on rank 0 (the sharded
        encoder on other ranks). Under FSDP every rank must call it (a collective)."""
        full = self.sharding.full_encoder() if self.sharding is not None else None
        return full if full is not None else self.encoder

    def _hold_run_dir(self) -> None:
        """Check, lock and clean ``train.output_dir`` on rank 0; every rank raises rank 0's error."""
        error: ConfigError | None = None
        if self.rank == 0:
            self.run_dir = RunDir(self.output_dir)
            try:
                self.run_dir.acquire()
            except ConfigError as err:
                error = err
            else:
                removed = self.run_dir.remove_leftovers()
                if removed:
                    names = ", ".join(p.name for p in removed)
                    self._notes.append(f"note: removed {len(removed)} leftovers of an interrupted run: {names}")
        if self.world > 1:
            box = [None if error is None else (error.path, error.message)]
            dist.broadcast_object_list(box, src=0)
            if box[0] is not None:
                raise ConfigError(*box[0])
        elif error is not None:
            raise error

    def _resume_point(self) -> Path | None:
        """The newest intact checkpoint to resume from (damaged newer ones noted); an error when earlier
        checkpoints would be overwritten, or when none is intact."""
        found = list_checkpoints(self.output_dir)
        if found and not self.config.train.resume:
            raise ConfigError(
                "train.output_dir",
                f"{self.output_dir} holds checkpoints of an earlier run (latest {found[-1][1].name}); "
                "set train.resume=true to continue it, or choose another output_dir",
            )
        try:
            path, damaged, checksummed = newest_intact_checkpoint(self.output_dir)
        except CorruptCheckpointError as err:
            raise ConfigError("train.resume", f"cannot resume: {err.reason}") from None
        self._notes += [f"warning: {problem}; skipped" for problem in damaged]
        if path is not None and damaged:
            self._notes.append(f"warning: resuming from {path.name}, the newest intact checkpoint")
        if path is not None and not checksummed:
            self._notes.append(
                f"note: checkpoint {path} has no {MANIFEST} (an older contrastkit): its files were checked by "
                "loading them, they cannot be checksummed"
            )
        if path is not None:
            self._check_room(path)
        return path

    def _check_room(self, checkpoint: Path) -> None:
        """Refuse to resume when the disk cannot hold one more checkpoint the size of ``checkpoint`` (the next
        one is written before old ones are pruned): better now than after loading the model and the data."""
        size, free = checkpoint_size(checkpoint), shutil.disk_usage(self.output_dir).free
        if free < size:
            raise ConfigError(
                "train.output_dir",
                f"{free / 2**20:.1f} MiB free on the device of {self.output_dir}, but a checkpoint of this run "
                f"takes {size / 2**20:.1f} MiB ({checkpoint.name}): free some space or move the run folder",
            )

    # ------------------------------------------------------------------ steps
    def _next_batch(self) -> tuple[int, Batch]:
        """(dataset index, batch): the sampler's next batch, across epoch ends."""
        if isinstance(self.sampler, MixtureSampler):
            source, indices = self.sampler.next_batch()
        else:
            source, indices = 0, self.sampler.next_batch()
        examples = self.sources[source].examples
        return source, collate([examples[i] for i in indices])

    def _backward(self) -> tuple[float, float]:
        """All micro-batches of one step: backpropagate; returns (mean loss, gradient norm after unscaling)."""
        accum = self.config.optim.grad_accumulation
        scale = self.scaler.scale if self.scaler is not None else None
        losses = []
        self._step_sources = []
        for micro in range(accum):
            source, batch = self._next_batch()
            loss_fn = self.routing.loss_for(source)  # the dataset's objective and prompts
            with no_sync(self.forward, micro < accum - 1):
                losses.append(loss_fn(self.encoder, self.forward, batch, weight=1 / accum, scale_loss=scale))
            self.log.count(len(batch))
            self._step_sources.append(source)
        average_gradients(self.batch_loss.parameters())  # DDP averages the encoder's; this, the loss module's
        loss = mean_over_ranks(torch.stack(losses).mean())
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        return float(loss), clip_gradients(self.optimizer, self.config.optim.grad_clip)

    def train_step(self) -> bool:
        """One optimizer step (or a skipped one); returns whether it was good."""
        lr_factor = self.schedule.apply(self.optimizer, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss, grad_norm = self._backward()
        overflow = self.scaler is not None and math.isfinite(loss) and not math.isfinite(grad_norm)
        self.step += 1
        weights_finite = True
        if math.isfinite(loss) and (overflow or math.isfinite(grad_norm)):
            weights_finite = self._update(grad_norm)
        good = self.guard.record(self.step, loss, 0.0 if overflow else grad_norm, weights_finite=weights_finite)
        if good:
            self.last_good_step = self.step
            self.routing.discard() if overflow else self.routing.commit()
        else:
            if self.scaler is not None and weights_finite:  # an undone update already updated the scaler
                self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.routing.discard()
        metrics: dict[str, Any] = {"loss": loss, "lr": self.config.optim.lr * lr_factor, "grad_norm": grad_norm}
        if not weights_finite:
            metrics["nonfinite_update"] = True
        metrics["epoch"] = self.sampler.epoch
        if isinstance(self.sampler, MixtureSampler):
            metrics["dataset"] = ",".join(dict.fromkeys(self.sampler.names[s] for s in self._step_sources))
        metrics.update(self.routing.temperatures())
        self.log.step(self.step, metrics, good=good, streak=self.guard.streak)
        return good

    def _update(self, grad_norm: float) -> bool:
        """Apply the optimizer step; when it leaves a non-finite weight or moment (on any rank), undo it from
        the snapshot taken before it (:class:`UpdateSnapshot`: only when the update could overflow).
        Returns whether the update was kept."""
        need = self.snapshot.needed(grad_norm)
        if self.world > 1:  # ranks see different shards (FSDP): all copy, or none
            need = self._any_rank(need)
        self.snapshot.take() if need else self.snapshot.skip()
        try:
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            finite = self.snapshot.updated_finite()
        except RuntimeError as err:  # torch's per-tensor AdamW raises when its step size overflows a float,
            if "overflow" not in str(err):  # with some parameters already updated
                raise
            finite = False
        if self.world > 1:
            finite = not self._any_rank(not finite)
        if not finite:
            if not self.snapshot.taken:  # the bound said it could not happen: stop rather than keep NaN
                raise TrainingDivergedError(
                    f"step {self.step}: the update made weights non-finite and no copy was kept to undo it; "
                    "nothing of this step was saved. Lower optim.lr."
                )
            self.snapshot.restore()
        return finite

    def _any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (one small all-reduce)."""
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0.0)

    # ------------------------------------------------------------------ run
    def fit(self) -> TrainResult:
        """Set up, train to ``total_steps``, write the final checkpoint and model; see the module docstring."""
        try:
            self.setup()
            try:
                self._loop()
                self._finish()
            finally:
                self.log.close()
        finally:
            if self.run_dir is not None:
                self.run_dir.release()
            if self._owns_group:
                dist.destroy_process_group()
        return TrainResult(
            output_dir=self.output_dir,
            final_model=self.output_dir / "final",
            steps=self.step,
            loss=self.log.last_loss,
            skipped_steps=self.guard.total,
            last_checkpoint=self.last_checkpoint,
            last_step_skipped=self.last_good_step != self.step,
        )

    def _loop(self) -> None:
        cfg = self.config.train
        due = False
        while self.step < self.total_steps:
            good = self.train_step()
            if self.guard.exhausted:
                raise self.guard.error(str(self.last_checkpoint) if self.last_checkpoint else None)
            stop = False
            try:
                for cb in self.callbacks:
                    cb.on_step_end(self._context(self.log.last_metrics))
                if cfg.eval_every and self.step % cfg.eval_every == 0:
                    self._evaluate()
            except StopTraining:
                stop = True
            due = due or bool(cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)
            if due and good:
                self.save_checkpoint()
                due = False
            faults.step_done(self.step)
            if stop:
                break

    def _finish(self) -> None:
        if self.step > 0 and self.guard.total >= self.step:
            raise TrainingDivergedError(
                f"no step made an update: all {self.step} steps were skipped (a non-finite loss, gradient or "
                "update each time); nothing was saved. Lower optim.lr, raise objective.temperature, check the "
                "data, or use train.precision=fp32."
            )
        if self.last_good_step != self.step:
            where = f"the last checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint"
            self.log.warn(
                f"warning: the last step ({self.step}) was skipped: it gets no checkpoint ({where}); final/ holds "
                f"the weights after step {self.last_good_step}, the last good step"
            )
        elif self.saved_step != self.step:
            self.save_checkpoint()
        final = self.output_dir / "final"
        if self.lora_summary is not None:
            merge_lora(self.encoder)  # on every rank, so that all go on with the same (merged) model
        encoder = self._full_encoder()
        if self.rank == 0:
            require_finite(encoder.state_dict(), f"the final model {final}")
            encoder.save(final)
        if self.world > 1:
            dist.barrier()
        if not (self.config.train.eval_every and self.step % self.config.train.eval_every == 0):
            with contextlib.suppress(StopTraining):
                self._evaluate(encoder)
        if self.rank == 0:  # after the final evaluation, whose results it lists
            facts = CardFacts(
                self.config,
                dataset_facts(self.config.data, self.sources, given=self._given_examples is not None),
                self.step,
                self.guard.total,
                self.log.last_loss,
                command_line(),
            )
            write_model_card(final, facts, self.output_dir / METRICS_FILE)
        ctx = self._context(self.log.last_metrics, encoder)
        for cb in self.callbacks:
            cb.on_train_end(ctx)

    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current step (rank 0) and prune old ones."""
        path = save_run_state(self.state, self.output_dir, self.step, metrics=self.log.last_metrics)
        if self.world > 1:
            dist.barrier()
        written = path if self.rank == 0 else latest_checkpoint(self.output_dir)
        if written is None:  # rank 0 wrote it before the barrier
            raise RuntimeError(f"no checkpoint of step {self.step} in {self.output_dir}")
        self.last_checkpoint = written
        self.saved_step = self.step
        self.log.checkpoint(self.step, written)
        return written

    def _context(self, metrics: dict, encoder: Encoder | None = None) -> CallbackContext:
        encoder = self.encoder if encoder is None else encoder
        return CallbackContext(self.config, encoder, self.output_dir, self.step, self.total_steps, dict(metrics))

    def _evaluate(self, encoder: Encoder | None = None) -> None:
        """Run the evaluation callbacks on ``encoder`` (default: the whole-weights encoder, gathered under FSDP)."""
        if not self.callbacks:
            return
        encoder = self._full_encoder() if encoder is None else encoder
        results = run_evaluation(self.callbacks, self._context(self.log.last_metrics, encoder))
        if results:
            self.log.evaluation(self.step, results)


def train(
    config: Config,
    *,
    encoder: Encoder | None = None,
    examples: Sequence[Example] | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train as ``config`` says; see :class:`Trainer` for the optional ready-made pieces."""
    return Trainer(config, encoder=encoder, examples=examples, callbacks=callbacks).fit()
