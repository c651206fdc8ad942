"""Shared tiny data for the mining tests: a toy corpus and an analytic bag-of-words encoder."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from contrastkit.mining.pipeline import MiningData

CORPUS = [
    "the cat sat on the mat",
    "a dog chased the cat around the yard",
    "stock markets fell sharply on monday",
    "the central bank raised interest rates",
    "cats and dogs are common household pets",
    "interest rates affect stock prices",
    "the yard was full of autumn leaves",
    "a kitten is a young cat",
]
QUERIES = ["which cat sat on a mat", "why did stock markets fall", "what is a kitten"]
POSITIVES = [[0], [2, 5], [7]]


def toy_data() -> MiningData:
    return MiningData(
        list(QUERIES),
        ["q0", "q1", "q2"],
        [list(p) for p in POSITIVES],
        list(CORPUS),
        [f"d{i}" for i in range(len(CORPUS))],
    )


class BagEncoder:
    """Hashed bag of words, 64 dims: a deterministic encoder with no model."""

    def __init__(self) -> None:
        self.prompts: dict[str, str] = {}

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, prompt_name: str | None = None) -> torch.Tensor:
        out = torch.zeros(len(texts), 64)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        return out
