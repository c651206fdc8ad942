"""Data-parallel training (two CPU processes, gloo) equals one process on the global batch.

Each case runs three child processes at once (``tiny_run.py``): one plain
process, and two ranks of a torchrun-style job (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT`` set as torchrun would). Both see global
batches of 8; each rank encodes 4 examples, candidates (or views) are
gathered with gradient, and DDP averages the gradients. Dropout is off so
the two computations are the same function: the trained weights agree up
to float32 rounding.
"""

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import TinyEncoder, make_pairs, rank_jobs, run_jobs, write_jsonl

from contrastkit.training.logging import read_metrics

COMMON = [
    "train.steps=3",
    "train.log_every=1",
    "train.checkpoint_every=0",
    "data.batch_size=8",
    "optim.lr=1e-2",
    "optim.grad_clip=null",
    "objective.temperature=0.1",
]
CASES = {
    "infonce_negatives": ["objective.name=infonce"],
    "gradcache_learnable_tau": ["scale.gradcache_chunk=3", "objective.learnable_temperature=true"],
    # a fast temperature: its gradient is each rank's share until the trainer averages it over ranks
    "learnable_tau_fast": ["objective.learnable_temperature=true", "optim.temperature_lr=0.5"],
    "clip_matryoshka": ["objective.name=clip", "scale.matryoshka_dims=[8, 4]"],
    "simcse_sup_views": ["objective.name=simcse_sup"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    data = str(write_jsonl(make_pairs(32, seed=4, negatives=True), root / "triplets.jsonl"))
    jobs = []
    for case, extra in CASES.items():
        base = {"data": data, "overrides": [*COMMON, *extra], "dropout": 0.0}
        jobs += rank_jobs(case, base, root / case)
    status, logs = run_jobs(jobs, root)
    return root, status, logs


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_match_one_process(runs, case) -> None:
    root, status, logs = runs
    for name in ("single", "rank0", "rank1"):
        assert status[f"{case}/{name}"] == 0, logs[f"{case}/{name}"]
    single = load_file(root / case / "single" / "final" / "model.safetensors")
    ddp = load_file(root / case / "ddp" / "final" / "model.safetensors")
    for key in single:
        assert torch.allclose(single[key], ddp[key], atol=2e-5, rtol=1e-4), key
    last = "checkpoints/step-000000003/loss.safetensors"
    if (root / case / "single" / last).is_file():  # the loss module's weights (a learnable temperature) too
        single_loss, ddp_loss = (load_file(root / case / run / last) for run in ("single", "ddp"))
        assert single_loss.keys() == ddp_loss.keys()
        for key in single_loss:
            assert torch.allclose(single_loss[key], ddp_loss[key], atol=2e-5, rtol=1e-4), key
    initial = TinyEncoder(dropout=0.0).state_dict()
    assert any(not torch.allclose(initial[k], single[k]) for k in single)  # it did train
    ones = [r["loss"] for r in read_metrics(root / case / "single" / "metrics.jsonl")]
    twos = [r["loss"] for r in read_metrics(root / case / "ddp" / "metrics.jsonl")]
    assert twos == pytest.approx(ones, rel=1e-4)  # rank 0 logs the global loss
    assert "training for 3 steps" in logs[f"{case}/rank0"] and "training for" not in logs[f"{case}/rank1"]
