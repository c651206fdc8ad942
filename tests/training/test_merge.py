"""Checkpoint merging (``contrastkit.training.merge`` and ``contrastkit merge``): each method's formula on
hand-built tensors, the identity on a model merged with itself, the refusals, and merged folders that load."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tests.encoders.encoder_helpers import tiny_bert_folder

from contrastkit.cli.main import main
from contrastkit.encoders import load_encoder
from contrastkit.training.merge import MergeSettings, delta_weights, merge_folders, merge_tensor, ties_delta, trim

SENTENCES = ["the cat sat on the mat", "a big red dog runs fast", "hello world"]


def st_folder(root: Path, seed: int) -> Path:
    """A saved sentence-transformers folder of a tiny random BERT (seed picks the weights)."""
    load_encoder(tiny_bert_folder(root / f"hf{seed}", seed=seed), prompts={"query": "q: "}).save(root / f"st{seed}")
    return root / f"st{seed}"


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(base, a, b): three tiny models of one architecture; a and b are the base plus small random changes."""
    root = tmp_path_factory.mktemp("merge")
    base = st_folder(root, 0)
    out = []
    for name, seed in (("a", 1), ("b", 2)):
        folder = root / name
        load_encoder(base).save(folder)
        gen = torch.Generator().manual_seed(seed)
        state = {k: (v + 0.01 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v)
                 for k, v in weights(folder).items()}  # fmt: skip
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        out.append(folder)
    return base, out[0], out[1]


# --------------------------------------------------------------------------- formulas on hand-built tensors


def test_uniform_is_the_parameter_mean() -> None:
    a, b = torch.tensor([1.0, 2.0, -4.0]), torch.tensor([3.0, 0.0, 4.0])
    assert torch.equal(merge_tensor([a, b], None, MergeSettings("uniform")), torch.tensor([2.0, 1.0, 0.0]))


def test_task_arithmetic_adds_the_scaled_task_vectors() -> None:
    base, a, b = torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0]), torch.tensor([1.5, 3.0])
    # tau_a = (1, -1), tau_b = (0.5, 2): base + 0.4 * (1.5, 1) = (1.6, 1.4)
    out = merge_tensor([a, b], base, MergeSettings("task-arithmetic", scale=0.4))
    assert torch.allclose(out, torch.tensor([1.6, 1.4]))
    default = merge_tensor([a, b], base, MergeSettings("task-arithmetic"))  # scale 1/K: the mean
    assert torch.allclose(default, (a + b) / 2)


def test_ties_trims_elects_the_sign_and_takes_the_disjoint_mean() -> None:
    t1 = torch.tensor([0.5, -0.1, 0.3, 0.0, -0.8])
    t2 = torch.tensor([0.4, 0.2, -0.9, 0.05, -0.1])
    t3 = torch.tensor([-0.6, 0.3, 0.1, 0.02, -0.7])
    # density 0.6: keep the 3 largest magnitudes of each
    assert torch.equal(trim(t1, 0.6), torch.tensor([0.5, 0.0, 0.3, 0.0, -0.8]))
    assert torch.equal(trim(t2, 0.6), torch.tensor([0.4, 0.2, -0.9, 0.0, 0.0]))
    assert torch.equal(trim(t3, 0.6), torch.tensor([-0.6, 0.3, 0.0, 0.0, -0.7]))
    # sums (0.3, 0.5, -0.6, 0, -1.5): signs (+, +, -, 0, -); agreeing means:
    # e0: (0.5 + 0.4) / 2; e1: (0.2 + 0.3) / 2; e2: -0.9; e3: none -> 0; e4: (-0.8 - 0.7) / 2
    expected = torch.tensor([0.45, 0.25, -0.9, 0.0, -0.75])
    assert torch.allclose(ties_delta([t1, t2, t3], 0.6), expected)
    base = torch.ones(5)
    out = merge_tensor([base + t1, base + t2, base + t3], base, MergeSettings("ties", density=0.6, scale=2.0))
    assert torch.allclose(out, base + 2.0 * expected)


def test_delta_guided_weights_follow_the_deviation_from_the_base() -> None:
    base = torch.tensor([0.0, 1.0, 2.0, 5.0])
    a = torch.tensor([3.0, 1.0, 1.0, 5.0])  # |tau_a| = (3, 0, 1, 0)
    b = torch.tensor([-1.0, 3.0, 5.0, 5.0])  # |tau_b| = (1, 2, 3, 0)
    w = delta_weights([a, b], base)
    assert torch.allclose(w, torch.tensor([[0.75, 0.0, 0.25, 0.5], [0.25, 1.0, 0.75, 0.5]]))
    out = merge_tensor([a, b], base, MergeSettings("delta-guided"))
    # 0.75 * 3 + 0.25 * -1 = 2; 0 * 1 + 1 * 3 = 3; 0.25 * 1 + 0.75 * 5 = 4; nothing moved: 5
    assert torch.allclose(out, torch.tensor([2.0, 3.0, 4.0, 5.0]))


# --------------------------------------------------------------------------- folders


@pytest.mark.parametrize("method", ["uniform", "task-arithmetic", "ties", "delta-guided"])
def test_a_model_merged_with_itself_is_itself(models, tmp_path, method) -> None:
    base, a, _ = models
    out = merge_folders([a, a], tmp_path / "m", method=method, base=base, density=1.0)
    merged, original = weights(out), weights(a)
    assert merged.keys() == original.keys()
    for key, value in original.items():
        assert torch.allclose(merged[key], value, atol=1e-6, rtol=0), key


def test_uniform_merge_of_two_folders_is_the_mean_and_loads_everywhere(models, tmp_path) -> None:
    from sentence_transformers import SentenceTransformer

    _, a, b = models
    assert main(["merge", str(a), str(b), "--method", "uniform", "--out", str(tmp_path / "m")]) == 0
    out = tmp_path / "m"
    wa, wb, merged = weights(a), weights(b), weights(out)
    for key in wa:
        if wa[key].is_floating_point():
            assert torch.allclose(merged[key], (wa[key] + wb[key]) / 2, atol=1e-7), key
    assert (out / "modules.json").read_text() == (a / "modules.json").read_text()
    assert (out / "tokenizer.json").read_text() == (a / "tokenizer.json").read_text()
    ours = load_encoder(out).encode(SENTENCES)
    theirs = torch.as_tensor(SentenceTransformer(str(out), device="cpu").encode(SENTENCES))
    assert torch.allclose(torch.as_tensor(ours).float(), theirs, atol=1e-5)
    assert not list(tmp_path.glob(".m.tmp-*"))  # the temporary folder was renamed away


def test_incompatible_models_are_refused_naming_the_folders_and_tensor(models, tmp_path, capsys) -> None:
    _, a, _ = models
    wide = tmp_path / "wide"
    load_encoder(tiny_bert_folder(tmp_path / "hfw", seed=0)).save(wide)
    state = weights(wide)
    key = "embeddings.word_embeddings.weight"
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    save_file(state, str(wide / "model.safetensors"), metadata={"format": "pt"})
    assert main(["merge", str(a), str(wide), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert str(a) in err and str(wide) in err and key in err
    assert not (tmp_path / "m").exists()


def test_a_method_that_needs_the_base_and_an_out_over_an_input_are_refused(models, tmp_path, capsys) -> None:
    _, a, b = models
    assert main(["merge", str(a), str(b), "--method", "delta-guided", "--out", str(tmp_path / "m")]) == 2
    assert "--base" in capsys.readouterr().err
    assert main(["merge", str(a), str(b), "--out", str(a)]) == 2
    assert "would overwrite" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_non_finite_results_are_never_written(models, tmp_path) -> None:
    base, a, _ = models
    bad = tmp_path / "bad"
    load_encoder(a).save(bad)
    state = weights(bad)
    state["pooler.dense.bias" if "pooler.dense.bias" in state else next(iter(state))][0] = float("inf")
    save_file(state, str(bad / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="non-finite"):
        merge_folders([a, bad], tmp_path / "m", method="task-arithmetic", base=base)
    assert not (tmp_path / "m").exists()


def test_a_base_may_hold_extra_buffers_but_a_model_may_not(models, tmp_path) -> None:
    """all-MiniLM-L6-v2's file keeps an ``embeddings.position_ids`` buffer that newer saves leave out."""
    base, a, b = models
    old_base = tmp_path / "old_base"
    load_encoder(base).save(old_base)
    state = weights(old_base)
    state["embeddings.position_ids"] = torch.arange(64).unsqueeze(0)
    save_file(state, str(old_base / "model.safetensors"), metadata={"format": "pt"})
    out = merge_folders([a, b], tmp_path / "m", method="delta-guided", base=old_base)
    assert "embeddings.position_ids" not in weights(out)
    with pytest.raises(ValueError, match=r"'embeddings\.position_ids' is in .*old_base but not in"):
        merge_folders([old_base, a], tmp_path / "m2")
