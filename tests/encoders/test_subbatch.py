"""Length-sorted sub-batches and trimmed padding give the plain embeddings and gradients."""

from __future__ import annotations

import pytest
import torch
from encoder_helpers import WORDS, tiny_bert_folder

from contrastkit.encoders import TextEncoder
from contrastkit.encoders.subbatch import embed_sub_batches, inverse_permutation, length_order, trim_padding

TEXTS = [" ".join(WORDS[i : i + 1 + (7 * i) % 11]) for i in range(9)]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> TextEncoder:
    folder = tiny_bert_folder(tmp_path_factory.mktemp("bert"))
    return TextEncoder.from_folder(folder, pooling="mean").eval()


def test_trim_drops_only_trailing_all_padding_columns() -> None:
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    features = {"input_ids": torch.arange(10).view(2, 5), "attention_mask": mask, "lengths": torch.tensor([2, 3])}
    out = trim_padding(features)
    assert out["input_ids"].tolist() == [[0, 1, 2], [5, 6, 7]]
    assert out["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert out["lengths"] is features["lengths"]  # not aligned with the mask: untouched


def test_trim_keeps_left_padding() -> None:
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    features = {"input_ids": torch.ones(2, 4, dtype=torch.long), "attention_mask": mask}
    assert trim_padding(features) is features
    pixels = {"pixel_values": torch.zeros(2, 1, 16, 64)}
    assert trim_padding(pixels) is pixels and length_order(pixels) is None


def test_length_order_and_its_inverse() -> None:
    mask = torch.tensor([[1, 0, 0], [1, 1, 1], [1, 1, 0], [1, 0, 0]])
    order = length_order({"attention_mask": mask})
    assert order.tolist() == [1, 2, 0, 3]  # longest first, ties in input order
    rows = torch.arange(4)[order]
    assert rows[inverse_permutation(order)].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("size", [1, 2, 4, 9, 20])
def test_sub_batches_match_one_call_forward_and_gradients(encoder: TextEncoder, size: int) -> None:
    features = encoder.tokenize(TEXTS)
    weights = torch.randn(len(TEXTS), encoder.dim, generator=torch.Generator().manual_seed(size))

    def grads(embed) -> tuple[torch.Tensor, list[torch.Tensor]]:
        encoder.zero_grad()
        out = embed()
        (out * weights).sum().backward()
        return out.detach(), [p.grad.clone() for p in encoder.parameters() if p.grad is not None]

    plain, plain_grads = grads(lambda: encoder(features))
    sub, sub_grads = grads(lambda: embed_sub_batches(encoder, features, size))
    torch.testing.assert_close(sub, plain, atol=1e-5, rtol=1e-5)
    assert len(sub_grads) == len(plain_grads)
    for a, b in zip(sub_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_sub_batches_call_forward_on_shorter_inputs(encoder: TextEncoder) -> None:
    features = encoder.tokenize(TEXTS)
    widths: list[int] = []

    def spy(f):
        widths.append(f["input_ids"].shape[1])
        return encoder(f)

    embed_sub_batches(spy, features, 3)
    assert len(widths) == 3 and widths[0] == features["input_ids"].shape[1] and widths[-1] < widths[0]
    assert sum(widths) * 3 < features["input_ids"].shape[1] * len(TEXTS)


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="sub-batch size"):
        embed_sub_batches(lambda f: f, {"attention_mask": torch.ones(1, 1)}, 0)
