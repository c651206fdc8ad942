"""Shared pieces of the training tests: a tiny in-test encoder and tiny data.

``TinyEncoder`` implements the :class:`contrastkit.encoders.base.Encoder`
contract with a hashing word tokenizer, an embedding table, dropout and a
linear layer, so the loop's tests do not depend on transformers. The word
``__nan__`` in a text makes that text's embedding NaN (to test skipped
steps). Its ``save`` writes ``model.safetensors`` + ``tiny.json`` (enough to
reload it with :meth:`TinyEncoder.load`).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import Tensor, nn

from contrastkit.data.examples import Example
from contrastkit.encoders.base import Encoder, Features
from contrastkit.training import faults
from tiny_models import tiny_bert_folder

NAN_WORD = "__nan__"


class TinyEncoder(Encoder):
    """Hashing tokenizer -> embeddings -> masked mean -> dropout -> linear (-> l2 normalise)."""

    def __init__(self, vocab: int = 97, width: int = 16, dim: int = 8, dropout: float = 0.1, seed: int = 0) -> None:
        super().__init__(normalize=True, prompts={"query": "query: ", "doc": "doc: "})
        gen = torch.Generator().manual_seed(seed)
        self.vocab, self.width, self._dim, self.p = vocab, width, dim, dropout
        self.embed = nn.Embedding(vocab, width)
        self.proj = nn.Linear(width, dim)
        self.norm = nn.LayerNorm(width)
        self.pooler = nn.Linear(width, width)  # never used, like BERT's pooler under mean pooling (DDP must cope)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(vocab, width, generator=gen))
            self.proj.weight.copy_(torch.randn(dim, width, generator=gen) / width**0.5)
            self.proj.bias.zero_()
            self.pooler.weight.copy_(torch.randn(width, width, generator=gen))
            self.pooler.bias.zero_()
        self.dropout = nn.Dropout(dropout)

    @property
    def dim(self) -> int:
        return self._dim

    def _id(self, word: str) -> int:
        return 1 if word == NAN_WORD else 2 + zlib.crc32(word.encode()) % (self.vocab - 2)

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        rows = [[self._id(w) for w in ((prompt or "") + t).split()] or [0] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def forward(self, features: Features) -> Tensor:
        ids, mask = features["input_ids"], features["attention_mask"].unsqueeze(-1).float()
        h = self.norm(self.embed(ids))
        pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1)
        out = self.proj(self.dropout(pooled))
        poisoned = (ids == 1).any(1, keepdim=True)
        out = torch.where(poisoned, torch.full_like(out, float("nan")), out)
        return F.normalize(out, dim=-1) if self.normalize else out

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_model(self, str(path / "model.safetensors"))
        cfg = {"vocab": self.vocab, "width": self.width, "dim": self._dim, "dropout": self.p}
        (path / "tiny.json").write_text(json.dumps(cfg))

    @classmethod
    def load(cls, path: str | Path) -> TinyEncoder:
        path = Path(path)
        enc = cls(**json.loads((path / "tiny.json").read_text()))
        load_model(enc, str(path / "model.safetensors"))
        return enc


WORDS = (
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
)


def make_pairs(n: int, seed: int = 0, *, negatives: bool = False) -> list[Example]:
    """``n`` distinct (anchor, positive[, negative]) examples of random words; the positive shares words."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        words = rng.sample(WORDS, 4)
        anchor = " ".join(words)
        if anchor in seen:
            continue
        seen.add(anchor)
        positive = " ".join([*words[:2], rng.choice(WORDS), f"p{len(out)}"])
        negs = (" ".join([*rng.sample(WORDS, 3), f"n{len(out)}"]),) if negatives else ()
        out.append(Example(anchor, (positive,), negs))
    return out


def write_jsonl(examples: Sequence[Example], path: str | Path) -> Path:
    """Examples as JSONL with anchor/positive[/negative] columns."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as f:
        for ex in examples:
            record = {"anchor": ex.anchor, "positive": ex.positives[0]}
            if ex.negatives:
                record["negative"] = ex.negatives[0]
            f.write(json.dumps(record) + "\n")
    return path


def state_of(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_bitwise_equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs (max abs diff {(a[k].float() - b[k].float()).abs().max()})"


class PoisonedEncoder(TinyEncoder):
    """A :class:`TinyEncoder` whose forward returns NaN on the listed training-mode calls (0-based).

    The loop embeds anchors then candidates: step s (1-based) makes calls
    2(s-1) and 2(s-1)+1 without GradCache.
    """

    def __init__(self, poison_calls: set[int] | range, **kwargs) -> None:
        super().__init__(**kwargs)
        self.poison_calls = set(poison_calls)
        self.calls = 0

    def forward(self, features: Features) -> Tensor:
        out = super().forward(features)
        if self.training:
            if self.calls in self.poison_calls:
                out = out * float("nan")
            self.calls += 1
        return out


def tiny_bert(folder: str | Path, **config) -> Path:
    """A 2-layer, 32-wide random BERT (dropout 0.1) and a WordPiece tokenizer over WORDS, as a Hugging Face folder;
    ``config`` overrides ``BertConfig`` fields."""
    Path(folder).mkdir(parents=True)
    return tiny_bert_folder(folder, WORDS, **config)


class Launcher:
    """``tiny_run.py``: imports once, forks one child process per run (see its docstring)."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in (faults.KILL_AT_STEP, faults.KILL_IN_CHECKPOINT)}
        cmd = [sys.executable, str(Path(__file__).parent / "tiny_run.py")]
        env["OMP_NUM_THREADS"] = "1"
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def round(self, jobs: list[dict]) -> dict[str, int]:
        self.proc.stdin.write(json.dumps(jobs) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the launcher died"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def free_port() -> int:
    """A free TCP port on the loopback address (for a gloo rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_jobs(name: str, base: dict, root: Path) -> list[dict]:
    """Launcher jobs for one run in a single process (``root/single``) and on two gloo ranks (``root/ddp``)."""
    port = str(free_port())
    jobs = [{**base, "name": f"{name}/single", "output_dir": str(root / "single"), "env": {}}]
    for rank in (0, 1):
        env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        jobs.append({**base, "name": f"{name}/rank{rank}", "output_dir": str(root / "ddp"), "env": env})
    return jobs


def run_jobs(jobs: list[dict], logs: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Run ``jobs`` through one :class:`Launcher`; each job's exit status and log text, by name."""
    for job in jobs:
        job["log"] = str(logs / (job["name"].replace("/", "-") + ".log"))
    launcher = Launcher()
    try:
        status = launcher.round(jobs)
    finally:
        launcher.close()
    return status, {job["name"]: Path(job["log"]).read_text() for job in jobs}


def assert_ranks_match_one_process(name: str, base: dict, root: Path) -> tuple[dict, dict]:
    """Train ``base`` in one process and on two ranks; both exit 0 and end with the same weights (2e-5).
    Returns the two final state dicts (single, ddp)."""
    from safetensors.torch import load_file

    status, logs = run_jobs(rank_jobs(name, base, root), root)
    for job, code in status.items():
        assert code == 0, logs[job]
    single = load_file(root / "single" / "final" / "model.safetensors")
    ddp = load_file(root / "ddp" / "final" / "model.safetensors")
    for key in single:
        assert torch.allclose(single[key], ddp[key], atol=2e-5, rtol=1e-4), key
    return single, ddp
