"""FSDP (``scale.fsdp``) and exact multi-process resume, with two CPU processes (gloo).

``tiny_run.py`` forks every process of a round at once: one-process runs and
the two ranks of torchrun-style jobs (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT`` set as torchrun would), all through the
real CLI on a random 2-layer BERT.

* Parity: two FSDP ranks (each block and the root sharded) equal one
  process on the global batch, plain and with GradCache, with dropout off so
  both compute the same function: same logged losses, same weights (the
  learnable temperature included) up to float32 rounding, the same STS
  evaluation during training (on the whole encoder, gathered to rank 0),
  and ``final/`` is the whole model.
* Resume: two ranks SIGKILLed after step 3 and resumed from the step-2
  checkpoint end bitwise equal to an uninterrupted two-rank run, with dropout
  on and texts of uneven lengths (each rank draws its own masks, so each
  rank's generators are saved), under DDP and under FSDP.
"""

from __future__ import annotations

import re
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from training_helpers import WORDS, Launcher, assert_bitwise_equal, make_pairs, tiny_bert, write_jsonl

from contrastkit.data.examples import Example
from contrastkit.encoders import load_encoder
from contrastkit.training import faults
from contrastkit.training.checkpoint import latest_checkpoint
from contrastkit.training.logging import read_metrics

PARITY = {"fsdp": [], "fsdp_gradcache": ["scale.gradcache_chunk=3"]}
RESUME = {"ddp": ["scale.fsdp=false"], "fsdp": []}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uneven_pairs(n: int) -> list[Example]:
    """Triplets whose anchors have 4 to 10 words: ranks see different lengths, so their dropout draws differ."""
    return [
        replace(ex, anchor=" ".join([ex.anchor, *WORDS[: i % 7]]))
        for i, ex in enumerate(make_pairs(n, seed=4, negatives=True))
    ]


def write_sts(path: Path) -> Path:
    """Pairs of WORDS with made-up scores (what is compared is the score, not its meaning)."""
    rows = [(" ".join(WORDS[i : i + 3]), " ".join(WORDS[i + 1 : i + 5]), i % 5) for i in range(12)]
    path.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows))
    return path


def write_config(root: Path, name: str, *, dropout: float, steps: int) -> Path:
    bert = tiny_bert(root / f"bert_{name}", hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    config = {
        "model": {"path": str(bert), "pooling": "mean"},
        "data": {"train": str(write_jsonl(uneven_pairs(32), root / f"{name}.jsonl")), "batch_size": 8},
        "objective": {"name": "infonce", "temperature": 0.1, "learnable_temperature": True},
        "optim": {"lr": 1e-2, "temperature_lr": 0.1, "grad_clip": 1.0},
        "scale": {"fsdp": True},
        "train": {"steps": steps, "log_every": 1, "checkpoint_every": 2, "seed": 3, "eval_every": 2},
        "eval": {"sts": {"path": str(write_sts(root / f"{name}_sts.tsv"))}},
    }  # fmt: skip
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def job(root: Path, config: Path, name: str, out: str, extra: list[str], env: dict[str, str]) -> dict:
    cli = ["train", str(config), f"train.output_dir={root / out}", *extra]
    return {"name": name, "cli": cli, "env": env, "log": str(root / f"{name.replace('/', '-')}.log")}


def two_ranks(root: Path, config: Path, name: str, out: str, extra: list[str], env=None) -> list[dict]:
    port, jobs = str(free_port()), []
    for rank in (0, 1):
        dist_env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
        dist_env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, **(env or {}))
        jobs.append(job(root, config, f"{name}/rank{rank}", out, extra, dist_env))
    return jobs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fsdp")
    parity = write_config(root, "parity", dropout=0.0, steps=3)
    resume = write_config(root, "resume", dropout=0.1, steps=4)
    first: list[dict] = []
    for case, extra in PARITY.items():
        first.append(job(root, parity, f"{case}/single", f"{case}/single", extra, {}))
        first += two_ranks(root, parity, f"{case}/two", f"{case}/two", extra)
    for mode, extra in RESUME.items():
        first += two_ranks(root, resume, f"{mode}/full", f"{mode}/full", extra)
        first += two_ranks(root, resume, f"{mode}/killed", f"{mode}/killed", extra, {faults.KILL_AT_STEP: "3"})
    again: list[dict] = []
    for mode, extra in RESUME.items():
        again += two_ranks(root, resume, f"{mode}/resumed", f"{mode}/killed", [*extra, "train.resume=true"])
    launcher = Launcher()
    try:
        status = launcher.round(first)
        status.update(launcher.round(again))
    finally:
        launcher.close()
    logs = {p.stem: p.read_text() for p in root.glob("*.log")}
    return {"root": root, "status": status, "logs": logs}


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    ckpt = latest_checkpoint(out)
    assert ckpt is not None
    weights = {f"model.{k}": v for k, v in load_file(ckpt / "model.safetensors").items()}
    weights.update({f"loss.{k}": v for k, v in load_file(ckpt / "loss.safetensors").items()})
    return weights


@pytest.mark.parametrize("case", list(PARITY))
def test_fsdp_ranks_match_one_process(runs, case) -> None:
    root, status, logs = runs["root"], runs["status"], runs["logs"]
    for name in ("single", "two/rank0", "two/rank1"):
        assert status[f"{case}/{name}"] == 0, logs[f"{case}-{name.replace('/', '-')}"]
    line = next(line for line in logs[f"{case}-two-rank0"].splitlines() if line.startswith("FSDP: "))
    local, total = (int(n.replace(",", "")) for n in re.findall(r"holds ([\d,]+) of its ([\d,]+)", line)[0])
    assert "sharded over 2 processes (2 blocks + root)" in line
    assert total == sum(t.numel() for t in load_file(root / "bert_parity" / "model.safetensors").values())
    assert total / 2 - 100 <= local <= total / 2 + 100  # half of every tensor (rounded up per tensor)
    single, sharded = final_weights(root / case / "single"), final_weights(root / case / "two")
    assert single.keys() == sharded.keys()
    # the sharded blocks run BERT's own padded forward, the one process the padding-free one: the same function
    # up to rounding, which AdamW's normalised steps (lr 1e-2) carry to about 3e-5; a wrong gradient moves 1e-3+
    for key in single:
        assert torch.allclose(single[key], sharded[key], atol=1e-4, rtol=1e-4), key
    initial = load_file(root / "bert_parity" / "model.safetensors")
    assert any(not torch.equal(initial[k], single[f"model.model.{k}"]) for k in initial)  # it did train
    ones, twos = (read_metrics(root / case / run / "metrics.jsonl") for run in ("single", "two"))
    assert len([r for r in ones if "loss" in r]) == 3
    assert [r["loss"] for r in twos if "loss" in r] == pytest.approx([r["loss"] for r in ones if "loss" in r], rel=1e-4)
    # evaluation (steps 2 and 3) runs on the whole encoder gathered to rank 0
    key = "eval/parity_sts/spearman"
    evals = [[r[key] for r in rows if key in r] for rows in (ones, twos)]
    assert len(evals[0]) == 2 and evals[1] == pytest.approx(evals[0], abs=1e-6)


def test_fsdp_final_folder_is_the_whole_model(runs) -> None:
    root = runs["root"]
    trained = {k.removeprefix("model."): v for k, v in final_weights(root / "fsdp" / "two").items()}
    encoder = load_encoder(root / "fsdp" / "two" / "final")
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, trained[key]), key


@pytest.mark.parametrize("mode", list(RESUME))
def test_two_ranks_resume_bitwise(runs, mode) -> None:
    root, status, logs = runs["root"], runs["status"], runs["logs"]
    for name in ("full/rank0", "full/rank1", "resumed/rank0", "resumed/rank1"):
        assert status[f"{mode}/{name}"] == 0, logs[f"{mode}-{name.replace('/', '-')}"]
    assert status[f"{mode}/killed/rank0"] == status[f"{mode}/killed/rank1"] == -9
    assert_bitwise_equal(final_weights(root / mode / "full"), final_weights(root / mode / "killed"))
    full = load_file(root / mode / "full" / "final" / "model.safetensors")
    assert_bitwise_equal(full, load_file(root / mode / "killed" / "final" / "model.safetensors"))
