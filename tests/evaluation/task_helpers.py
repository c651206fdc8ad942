"""Analytic encoders and tiny data folders for the evaluation-task tests: embeddings chosen by the test."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from contrastkit.encoders.base import Encoder, Features


class VectorEncoder(Encoder):
    """Looks each (prompt + text) up in a table of vectors; records every ``encode`` call and every text encoded."""

    def __init__(self, table: dict[str, Sequence[float]], prompts: dict[str, str] | None = None) -> None:
        super().__init__(normalize=False, prompts=prompts)
        self.keys = {text: i for i, text in enumerate(table)}
        self.register_buffer("table", torch.tensor([list(v) for v in table.values()], dtype=torch.float32))
        self.encode_calls: list[list[str]] = []

    @property
    def dim(self) -> int:
        return self.table.shape[1]

    def encode(self, texts, *, batch_size=64, prompt=None, prompt_name=None) -> Tensor:
        resolved = self.resolve_prompt(prompt, prompt_name)
        self.encode_calls.append([(resolved or "") + t for t in texts])
        return super().encode(texts, batch_size=batch_size, prompt=resolved)

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.encode_calls for t in call]

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        return {"index": torch.tensor([self.keys[(prompt or "") + t] for t in texts], dtype=torch.long)}

    def forward(self, features: Features) -> Tensor:
        return self.table[features["index"]]


def polar(degrees: float, norm: float = 1.0) -> list[float]:
    """A 2-d vector at ``degrees`` with length ``norm``."""
    return [norm * math.cos(math.radians(degrees)), norm * math.sin(math.radians(degrees))]


def write_tsv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    """A tab-separated file, no quoting, trailing newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header), *("\t".join(str(x) for x in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, records: Sequence[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_beir(folder: Path, corpus: dict[str, str], queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> Path:
    """A BEIR folder with a ``test`` qrels split."""
    write_jsonl(folder / "corpus.jsonl", [{"_id": d, "title": "", "text": t} for d, t in corpus.items()])
    write_jsonl(folder / "queries.jsonl", [{"_id": q, "text": t} for q, t in queries.items()])
    rows = [(q, d, g) for q, docs in qrels.items() for d, g in docs.items()]
    write_tsv(folder / "qrels" / "test.tsv", ("query-id", "corpus-id", "score"), rows)
    return folder
