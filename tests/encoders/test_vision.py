"""VisionTower: ViT / CNN shapes, key padding (padding invariance), determinism, config checks."""

from __future__ import annotations

import pytest
import torch

from contrastkit.data.render import Renderer
from contrastkit.encoders.vision import VisionConfig, VisionTower

STRIP = VisionConfig(image_size=(16, 256), hidden=32, layers=2, heads=2)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread, and do not slow to a crawl when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tower(config: VisionConfig = STRIP, seed: int = 0) -> VisionTower:
    torch.manual_seed(seed)
    return VisionTower(config).eval()


def test_vit_and_cnn_output_shapes():
    x = torch.rand(3, 1, 16, 256)
    states, mask = _tower()(x)
    assert states.shape == (3, 16, 32) and mask.shape == (3, 16) and mask.all()
    cls_states, cls_mask = _tower(VisionConfig(image_size=(16, 256), hidden=32, layers=1, heads=2, pooling="cls"))(x)
    assert cls_states.shape == (3, 17, 32) and cls_mask[:, 0].all()
    cnn = _tower(VisionConfig(arch="cnn", image_size=(32, 48), patch_size=8, channels=3, hidden=16, layers=4))
    states, mask = cnn(torch.rand(2, 3, 32, 48))
    assert states.shape == (2, 4 * 6, 16) and mask.shape == (2, 24)
    assert cnn.pool(states, mask).shape == (2, 16)


def test_vit_is_invariant_to_padding_width_and_padded_content():
    """A short strip pooled over its mask gives the same vector whatever follows it (1e-5)."""
    tower = _tower()
    r = Renderer(width=256)
    image = torch.from_numpy(r.render("short text")).float().div(255).view(1, 1, 16, 256)
    count = r.patch_count("short text")
    full_mask = torch.arange(16).unsqueeze(0) < count
    full = tower.pool(*tower(image, full_mask))
    narrow_width = (count + 2) * 16
    narrow = tower.pool(*tower(image[..., :narrow_width], full_mask[:, : count + 2]))
    torch.testing.assert_close(narrow, full, atol=1e-5, rtol=0)
    noisy = image.clone()
    noisy[..., count * 16 :] = torch.rand_like(noisy[..., count * 16 :])  # garbage in the padded patches
    torch.testing.assert_close(tower.pool(*tower(noisy, full_mask)), full, atol=1e-5, rtol=0)
    # and the real patches' states themselves do not move
    torch.testing.assert_close(
        tower(noisy, full_mask)[0][:, :count], tower(image, full_mask)[0][:, :count], atol=1e-5, rtol=0
    )


def test_padding_invariance_in_a_mixed_batch():
    tower = _tower()
    x = torch.rand(2, 1, 16, 256)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, :5] = True
    mask[1, :16] = True
    batch = tower.pool(*tower(x, mask))
    alone = tower.pool(*tower(x[:1, ..., :80], mask[:1, :5]))
    torch.testing.assert_close(batch[:1], alone, atol=1e-5, rtol=0)


def test_deterministic_by_seed_and_different_across_seeds():
    x = torch.rand(2, 1, 16, 256)
    a, b, c = _tower(seed=1), _tower(seed=1), _tower(seed=2)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert torch.equal(a(x)[0], b(x)[0])
    assert not torch.equal(a(x)[0], c(x)[0])


def test_invert_reads_ink():
    plain = _tower(seed=3)
    inverted = VisionTower(VisionConfig(**{**STRIP.to_dict(), "invert": True})).eval()
    inverted.load_state_dict(plain.state_dict())
    x = torch.rand(2, 1, 16, 256)
    torch.testing.assert_close(inverted(x)[0], plain(1 - x)[0])


def test_gradients_reach_every_parameter():
    tower = _tower().train()
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[0, 8:] = False
    tower.pool(*tower(torch.rand(2, 1, 16, 256), mask)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.parameters())


def test_input_errors():
    tower = _tower()
    with pytest.raises(ValueError, match=r"must be \(n, 1, H, W\)"):
        tower(torch.rand(2, 3, 16, 256))
    with pytest.raises(ValueError, match=r"does not fit 16x256"):
        tower(torch.rand(2, 1, 16, 272))
    with pytest.raises(ValueError, match=r"does not fit"):
        tower(torch.rand(2, 1, 16, 40))
    with pytest.raises(ValueError, match=r"patch_mask must be \(n, 16\)"):
        tower(torch.rand(2, 1, 16, 256), torch.ones(2, 15, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"at least one True"):
        tower(torch.rand(2, 1, 16, 256), torch.zeros(2, 16, dtype=torch.bool))


def test_config_checks_and_round_trip():
    assert VisionConfig.from_dict(STRIP.to_dict()) == STRIP
    assert STRIP.grid == (1, 16) and STRIP.num_patches == 16
    with pytest.raises(ValueError, match=r"heads \(3\) must divide hidden \(32\)"):
        VisionConfig(hidden=32, heads=3)
    with pytest.raises(ValueError, match=r"power-of-two"):
        VisionConfig(arch="cnn", image_size=(24, 24), patch_size=12)
    with pytest.raises(ValueError, match=r"at least 4 layers"):
        VisionConfig(arch="cnn", layers=2)
    with pytest.raises(ValueError, match=r"pooling='cls' needs arch='vit'"):
        VisionConfig(arch="cnn", pooling="cls")
    with pytest.raises(ValueError, match=r"multiples of patch_size"):
        VisionConfig(image_size=(16, 100))
    with pytest.raises(ValueError, match=r"unknown keys \['depth'\]"):
        VisionConfig.from_dict({"depth": 3})
