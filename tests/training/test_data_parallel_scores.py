"""A score (list) objective under data parallelism (two CPU processes, gloo) equals one process on the global batch:
each rank embeds its pairs, both sides are gathered with gradient and every rank computes the whole list loss."""

from pathlib import Path

import torch
from training_helpers import WORDS, TinyEncoder, assert_ranks_match_one_process

from contrastkit.training.logging import read_metrics


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
    single, _ = assert_ranks_match_one_process(
        "cosent", {"data": data, "overrides": overrides, "dropout": 0.0}, tmp_path
    )
    initial = TinyEncoder(dropout=0.0).state_dict()
    assert any(not torch.allclose(initial[k], single[k]) for k in single)  # it did train
    ones = [r["loss"] for r in read_metrics(tmp_path / "single" / "metrics.jsonl")]
    twos = [r["loss"] for r in read_metrics(tmp_path / "ddp" / "metrics.jsonl")]
    assert torch.allclose(torch.tensor(twos), torch.tensor(ones), rtol=1e-4)  # rank 0 logs the global loss
