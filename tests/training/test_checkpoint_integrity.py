"""Checkpoints are verified before use: a manifest of sizes and SHA-256, fallback to the newest intact one, a
located error when none is; a full disk cleans up after itself; pruning never leaves a listed partial one."""

import errno
import json
import os
import shutil

import pytest
from training_helpers import TinyEncoder, make_pairs

from contrastkit.training import checkpoint as ckpt_mod
from contrastkit.training import load_config, train
from contrastkit.training.checkpoint import (
    MANIFEST,
    CheckpointWriteError,
    CorruptCheckpointError,
    list_checkpoints,
    newest_intact_checkpoint,
    prune_checkpoints,
    verify_checkpoint,
)

BASE = ["data.batch_size=8", "optim.lr=1e-2", "objective.temperature=0.1", "train.progress=false"]


def config(out, *overrides: str):
    return load_config(None, [f"train.output_dir={out}", *BASE, *overrides])


def run(out, steps: int, *extra: str):
    cfg = config(out, f"train.steps={steps}", "train.checkpoint_every=2", "train.keep_checkpoints=3", *extra)
    return train(cfg, encoder=TinyEncoder(), examples=make_pairs(24))


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def as_folder(path):
    path.unlink()
    path.mkdir()


CORRUPTIONS = {
    "state.pt truncated": ("state.pt", truncate, "state.pt has"),
    "state.pt empty": ("state.pt", lambda p: p.write_bytes(b""), "state.pt has 0 bytes"),
    "optimizer.pt truncated": ("optimizer.pt", truncate, "optimizer.pt has"),
    "optimizer.pt empty": ("optimizer.pt", lambda p: p.write_bytes(b""), "optimizer.pt has 0 bytes"),
    "model.safetensors truncated": ("model.safetensors", truncate, "model.safetensors has"),
    "model.safetensors one byte flipped": ("model.safetensors", flip_byte, "model.safetensors does not match"),
    "state.pt a folder": ("state.pt", as_folder, "state.pt is a folder, not a file"),
    "model.safetensors missing": ("model.safetensors", os.unlink, "model.safetensors is missing"),
}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """One run with checkpoints at steps 2 and 4, copied per case."""
    out = tmp_path_factory.mktemp("base") / "run"
    run(out, 4)
    return out


def test_a_checkpoint_carries_a_manifest_of_sizes_and_sha256(base_run) -> None:
    path = list_checkpoints(base_run)[-1][1]
    files = json.loads((path / MANIFEST).read_text())["files"]
    names = sorted(p.name for p in path.iterdir() if p.name != MANIFEST)
    assert sorted(files) == names and "model.safetensors" in names
    assert all(files[n]["size"] == (path / n).stat().st_size and len(files[n]["sha256"]) == 64 for n in names)
    assert verify_checkpoint(path) is True


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_resume_falls_back_from_a_damaged_latest_checkpoint(tmp_path, base_run, case, capsys) -> None:
    name, damage, reason = CORRUPTIONS[case]
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    latest = list_checkpoints(out)[-1][1]
    damage(latest / name)
    with pytest.raises(CorruptCheckpointError, match=reason):
        verify_checkpoint(latest)
    capsys.readouterr()
    result = run(out, 6, "train.resume=true")
    err = capsys.readouterr().err
    assert f"warning: checkpoint {latest} is damaged: {reason}" in err
    assert "resuming from step-000000002, the newest intact checkpoint" in err
    assert result.steps == 6 and [s for s, _ in list_checkpoints(out)] == [2, 4, 6]  # step 4 written anew
    assert verify_checkpoint(list_checkpoints(out)[1][1])


def test_no_intact_checkpoint_is_a_located_error(tmp_path, base_run) -> None:
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    for _, path in list_checkpoints(out):
        truncate(path / "state.pt")
    with pytest.raises(ValueError, match=r"train.resume: cannot resume: no intact checkpoint in .*step-000000004 is "
                                         r"damaged: state.pt has .*step-000000002 is damaged"):  # fmt: skip
        run(out, 6, "train.resume=true")


def test_a_checkpoint_without_a_manifest_is_used_with_a_note(tmp_path, base_run, capsys) -> None:
    """Checkpoints written before manifests existed: listed and resumed from, said to be unverifiable."""
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    for _, path in list_checkpoints(out):
        (path / MANIFEST).unlink()
    path, damaged, checksummed = newest_intact_checkpoint(out)
    assert (path.name, damaged, checksummed) == ("step-000000004", [], False)
    assert run(out, 6, "train.resume=true").steps == 6
    assert f"note: checkpoint {path} has no manifest.json" in capsys.readouterr().err


def test_a_damaged_checkpoint_without_a_manifest_falls_back_when_it_does_not_load(tmp_path, base_run, capsys) -> None:
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    for _, path in list_checkpoints(out):
        (path / MANIFEST).unlink()
    latest = list_checkpoints(out)[-1][1]
    truncate(latest / "state.pt")
    assert run(out, 6, "train.resume=true").steps == 6
    err = capsys.readouterr().err
    assert f"warning: checkpoint {latest} is damaged: state.pt does not load" in err
    assert "resuming from step-000000002" in err


def test_a_full_disk_during_a_checkpoint_is_reported_and_cleaned_up(tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    real = ckpt_mod._torch_save

    def full_at_step_4(obj, path):
        if path.name == "state.pt" and obj["step"] == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(obj, path)

    monkeypatch.setattr(ckpt_mod, "_torch_save", full_at_step_4)
    with pytest.raises(CheckpointWriteError) as info:
        run(out, 6)
    message = str(info.value)
    assert "cannot write checkpoint step-000000004" in message and "No space left on device" in message
    assert f"the last complete checkpoint is {out / 'checkpoints' / 'step-000000002'}" in message
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-000000002"]  # no .tmp-* left
    monkeypatch.undo()
    assert run(out, 6, "train.resume=true").steps == 6  # the resume adds no garbage and goes on
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step-00000000{s}" for s in (2, 4, 6)]


def test_pruning_hides_a_checkpoint_before_deleting_it(tmp_path, base_run, monkeypatch) -> None:
    out = tmp_path / "run"
    shutil.copytree(base_run, out)

    def killed_mid_delete(path, *args, **kwargs):
        (path / "model.safetensors").unlink()  # part of the folder is gone, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.shutil, "rmtree", killed_mid_delete)
    with pytest.raises(KeyboardInterrupt):
        prune_checkpoints(out, keep=1)
    monkeypatch.undo()
    assert [s for s, _ in list_checkpoints(out)] == [4]  # the half-deleted step 2 is not listed
    assert [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".pruned-")]
    assert run(out, 6, "train.resume=true").steps == 6
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]


def test_list_checkpoints_skips_incomplete_folders(tmp_path, base_run) -> None:
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    half = out / "checkpoints" / "step-000000003"  # an older contrastkit's prune, killed mid-delete
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"x")
    assert [s for s, _ in list_checkpoints(out)] == [2, 4]
