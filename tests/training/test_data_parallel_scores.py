"""A score (list) objective under data parallelism (two CPU processes, gloo) equals one process on the global batch:
each rank embeds its pairs, both sides are gathered with gradient and every rank computes the whole list loss."""

import socket
from pathlib import Path

import torch
from safetensors.torch import load_file
from training_helpers import WORDS, Launcher, TinyEncoder

from contrastkit.training.logging import read_metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graded(path: Path, n: int = 32) -> str:
    gen = torch.Generator().manual_seed(3)
    words = WORDS[:14]
    lines = ["sentence1\tsentence2\tscore"]
    for i in range(n):
        a, b = torch.randint(0, len(words), (3,), generator=gen), torch.randint(0, len(words), (3,), generator=gen)
        score = float(torch.rand((), generator=gen)) * 5
        lines.append(f"{' '.join(words[k] for k in a)} {i}\t{' '.join(words[k] for k in b)}\t{score:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_cosent_on_two_ranks_matches_one_process(tmp_path) -> None:
    data = graded(tmp_path / "sts.tsv")
    overrides = ["train.steps=3", "train.log_every=1", "train.checkpoint_every=0", "data.batch_size=8",
                 "data.kind=graded", "optim.lr=1e-2", "optim.grad_clip=null", "objective.name=cosent",
                 "objective.temperature=0.05"]  # fmt: skip
    base = {"data": data, "overrides": overrides, "dropout": 0.0}
    port = str(free_port())
    jobs = [{**base, "name": "single", "output_dir": str(tmp_path / "single"), "env": {}}]
    for rank in (0, 1):
        env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        jobs.append({**base, "name": f"rank{rank}", "output_dir": str(tmp_path / "ddp"), "env": env})
    for j in jobs:
        j["log"] = str(tmp_path / f"{j['name']}.log")
    launcher = Launcher()
    try:
        status = launcher.round(jobs)
    finally:
        launcher.close()
    for j in jobs:
        assert status[j["name"]] == 0, Path(j["log"]).read_text()
    single = load_file(tmp_path / "single" / "final" / "model.safetensors")
    ddp = load_file(tmp_path / "ddp" / "final" / "model.safetensors")
    for key in single:
        assert torch.allclose(single[key], ddp[key], atol=2e-5, rtol=1e-4), key
    initial = TinyEncoder(dropout=0.0).state_dict()
    assert any(not torch.allclose(initial[k], single[k]) for k in single)  # it did train
    ones = [r["loss"] for r in read_metrics(tmp_path / "single" / "metrics.jsonl")]
    twos = [r["loss"] for r in read_metrics(tmp_path / "ddp" / "metrics.jsonl")]
    assert torch.allclose(torch.tensor(twos), torch.tensor(ones), rtol=1e-4)  # rank 0 logs the global loss
