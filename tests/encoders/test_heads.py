"""ProjectionHead and MultiHead: forward by hand, Dense-module saving, AMCL layout."""

from __future__ import annotations

import json

import pytest
import torch
from encoder_helpers import SENTENCES, st_encode, tiny_bert_folder

from contrastkit.encoders import MultiHead, ProjectionHead, TextEncoder, load_encoder


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tiny_bert_folder(tmp_path_factory.mktemp("bert"))
    return TextEncoder.from_folder(folder, normalize=False, prompts={"query": "query: "})


def test_projection_head_forward_by_hand(base):
    torch.manual_seed(0)
    head = ProjectionHead(base, dims=(16, 8), activation="gelu")
    features = base.tokenize(SENTENCES)
    with torch.no_grad():
        x = base(features)
        first, second = head.head[0].linear, head.head[1].linear
        expected = torch.nn.functional.normalize(
            torch.nn.functional.gelu(x @ first.weight.T + first.bias) @ second.weight.T + second.bias, dim=-1
        )
        torch.testing.assert_close(head(features), expected)
    assert head.dim == 8 and head.prompts is base.prompts
    assert not head.training  # follows the base


@pytest.mark.parametrize("activation", ["tanh", "relu", "identity"])
def test_projection_head_saves_as_dense_modules(base, tmp_path, activation):
    torch.manual_seed(1)
    head = ProjectionHead(base, dims=(16, 8), activation=activation)
    head.save(tmp_path / "m")
    modules = json.loads((tmp_path / "m" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Dense", "Dense", "Normalize"]
    ours = head.encode(SENTENCES, prompt_name="query")
    torch.testing.assert_close(st_encode(tmp_path / "m", SENTENCES, prompt_name="query"), ours, atol=1e-5, rtol=1e-5)
    back = load_encoder(tmp_path / "m")
    assert isinstance(back, ProjectionHead) and back.head[0].activation_name == activation
    torch.testing.assert_close(back.encode(SENTENCES, prompt_name="query"), ours, atol=1e-6, rtol=1e-6)


def test_multihead_blocks_are_normalised_heads(base):
    torch.manual_seed(2)
    multi = MultiHead(base, num_heads=3, dims=(16, 4))
    features = base.tokenize(SENTENCES)
    with torch.no_grad():
        out = multi(features)
        shared = base(features)
    assert out.shape == (len(SENTENCES), 12) and multi.dim == 12
    views = multi.per_head(out)
    assert views.shape == (3, len(SENTENCES), 4)
    for c in range(3):
        expected = torch.nn.functional.normalize(multi.heads[c](shared), dim=-1)
        torch.testing.assert_close(views[c], expected)
        torch.testing.assert_close(out[:, 4 * c : 4 * c + 4], expected)
    assert not torch.allclose(views[0], views[1])


def test_multihead_feeds_amcl(base):
    from contrastkit import objectives
    from contrastkit.objectives import amcl  # noqa: F401  (registers it)

    multi = MultiHead(base, num_heads=2, dims=(8,))
    f1, f2 = base.tokenize(SENTENCES[:3]), base.tokenize(SENTENCES[1:4])
    views = torch.stack([multi.per_head(multi(f1)), multi.per_head(multi(f2))], dim=1)
    loss = objectives.get("amcl", dim=8)(views)
    loss.backward()
    assert torch.isfinite(loss) and multi.heads[1][0].linear.weight.grad is not None


def test_multihead_saves_backbone_or_one_head(base, tmp_path):
    torch.manual_seed(3)
    multi = MultiHead(base, num_heads=2, dims=(8,))
    multi.save(tmp_path / "backbone")
    torch.testing.assert_close(
        st_encode(tmp_path / "backbone", SENTENCES), base.encode(SENTENCES), atol=1e-5, rtol=1e-5
    )
    multi.save(tmp_path / "head1", head=1)
    expected = multi.per_head(multi.encode(SENTENCES))[1]
    torch.testing.assert_close(st_encode(tmp_path / "head1", SENTENCES), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(IndexError):
        multi.save(tmp_path / "bad", head=2)


def test_mlp_validation(base):
    with pytest.raises(ValueError, match="non-empty list"):
        ProjectionHead(base, dims=())
    with pytest.raises(ValueError, match="unknown activation"):
        ProjectionHead(base, dims=(4,), activation="swish")


def test_loaded_head_must_fit_the_base(base, tmp_path):
    ProjectionHead(base, dims=(8,)).save(tmp_path / "m")
    from contrastkit.encoders.heads import DenseLayer

    layer = DenseLayer.from_folder(tmp_path / "m" / "2_Dense")
    assert layer.linear.in_features == 32 and layer.activation_name == "identity"
    with pytest.raises(ValueError, match="takes 32-d inputs but the base gives 8"):
        ProjectionHead(ProjectionHead(base, dims=(8,)), layers=[layer])
