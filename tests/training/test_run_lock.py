"""train.output_dir: checked before anything is loaded, locked for the run, cleaned of a killed run's leftovers."""

import errno
import os
import subprocess
import sys

import pytest
from training_helpers import TinyEncoder, make_pairs

from contrastkit.cli.main import main as cli_main
from contrastkit.training import load_config, train
from contrastkit.training import rundir as rundir_mod
from contrastkit.training.checkpoint import list_checkpoints
from contrastkit.training.rundir import LOCK_FILE, RunDir

BASE = ["data.batch_size=8", "optim.lr=1e-2", "objective.temperature=0.1", "train.progress=false"]


def config(out, *overrides: str):
    return load_config(None, [f"train.output_dir={out}", *BASE, *overrides])


class NeverBuilt(TinyEncoder):
    """An encoder whose use would show that the run went past the output_dir check."""

    def tokenize(self, texts, *, prompt=None):
        raise AssertionError("the model was used before the output folder was checked")


def missing_data(out, tmp_path):
    """A config whose data file does not exist: an output_dir error must come first."""
    return config(out, "train.steps=2", f"data.train={tmp_path / 'no-such.jsonl'}")


def snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_output_dir_that_is_a_file_is_refused_before_loading(tmp_path) -> None:
    out = tmp_path / "out"
    out.write_text("x")
    with pytest.raises(ValueError, match=rf"train.output_dir: {out} is a file, not a folder"):
        train(missing_data(out, tmp_path))
    assert out.read_text() == "x"


def test_output_dir_under_a_file_is_refused(tmp_path) -> None:
    (tmp_path / "parent").write_text("x")
    out = tmp_path / "parent" / "deeper" / "run"
    with pytest.raises(ValueError, match=rf"train.output_dir: cannot create {out}: its parent .*parent is a file"):
        train(missing_data(out, tmp_path))


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.EROFS, "is on a read-only file system"),
        (errno.ENOSPC, "no space left on the device of"),
        (errno.EACCES, "no permission to write in"),
    ],
)
def test_unwritable_output_dir_is_refused_and_nothing_is_left(tmp_path, monkeypatch, code, words) -> None:
    """The lock file's first write is the probe (tests run as root, where permissions do not stop writes: the
    OS error is injected)."""
    out = tmp_path / "new" / "run"

    def refuse(fd):
        raise OSError(code, os.strerror(code), str(out / LOCK_FILE))

    monkeypatch.setattr(rundir_mod.os, "fsync", refuse)
    with pytest.raises(ValueError, match=rf"train.output_dir: .*{words}"):
        train(missing_data(out, tmp_path))
    assert not (tmp_path / "new").exists()  # the folders it created are gone again


def test_cli_exits_2_with_a_located_message(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.write_text("x")
    status = cli_main(["train", f"train.output_dir={out}", f"data.train={tmp_path / 'missing.jsonl'}"])
    assert status == 2
    assert f"train.output_dir: {out} is a file, not a folder" in capsys.readouterr().err


def test_a_second_run_on_a_locked_folder_is_refused_and_touches_nothing(tmp_path) -> None:
    out = tmp_path / "run"
    train(config(out, "train.steps=2", "train.checkpoint_every=1"), encoder=TinyEncoder(), examples=make_pairs(16))
    holder = RunDir(out)  # flock locks conflict between open files, also within one process
    holder.acquire()
    try:
        before = snapshot(out)
        with pytest.raises(ValueError, match=rf"train.output_dir: {out} is in use by another training run \(pid "):
            train(config(out, "train.steps=4", "train.resume=true"), encoder=NeverBuilt(), examples=make_pairs(16))
        assert snapshot(out) == before
    finally:
        holder.release()
    result = train(config(out, "train.steps=4", "train.resume=true"), encoder=TinyEncoder(), examples=make_pairs(16))
    assert result.steps == 4  # released: the next run goes on


def test_the_lock_is_held_by_another_process_until_it_ends(tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    code = (  # what RunDir.acquire does, in a process that starts in milliseconds (no torch)
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
        "os.write(fd, f'pid {os.getpid()} on here'.encode()); print('locked', flush=True); sys.stdin.read()"
    )
    lock = str(out / LOCK_FILE)
    proc = subprocess.Popen([sys.executable, "-c", code, lock], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"locked"
        with pytest.raises(ValueError, match=rf"is in use by another training run \(pid {proc.pid} "):
            RunDir(out).acquire()
    finally:
        proc.kill()  # no clean-up runs: the kernel drops the lock
        proc.wait()
    again = RunDir(out)
    again.acquire()
    again.release()


def test_leftovers_of_a_killed_run_are_removed_at_start(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    train(config(out, "train.steps=2", "train.checkpoint_every=1"), encoder=TinyEncoder(), examples=make_pairs(16))
    leftovers = [
        out / ".final.tmp-abc123",
        out / "checkpoints" / ".tmp-step-000000003-999999",
        out / "checkpoints" / ".pruned-step-000000001-999999",
    ]
    for folder in leftovers:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"partial")
    train(config(out, "train.steps=3", "train.resume=true"), encoder=TinyEncoder(), examples=make_pairs(16))
    assert not any(p.exists() for p in leftovers)
    assert "removed 3 leftovers of an interrupted run" in capsys.readouterr().err
    assert [s for s, _ in list_checkpoints(out)] == [2, 3]


def test_a_run_failing_in_setup_leaves_no_folder(tmp_path) -> None:
    out = tmp_path / "fresh" / "run"
    with pytest.raises(FileNotFoundError):
        train(missing_data(out, tmp_path))
    assert not (tmp_path / "fresh").exists()


def test_a_resume_on_a_full_disk_is_refused_before_loading(tmp_path, monkeypatch) -> None:
    """Rewriting the lock file of the earlier run can succeed in place on a full disk: a fresh probe file cannot."""
    from contrastkit import outputs

    out = tmp_path / "run"
    train(config(out, "train.steps=2", "train.checkpoint_every=1"), encoder=TinyEncoder(), examples=make_pairs(16))
    before = [entry for entry in snapshot(out) if entry[0] != LOCK_FILE]

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs.tempfile, "TemporaryFile", full)
    with pytest.raises(ValueError, match=rf"train.output_dir: no space left on the device of {out}"):
        train(config(out, "train.steps=4", "train.resume=true"), encoder=NeverBuilt(), examples=make_pairs(16))
    assert [entry for entry in snapshot(out) if entry[0] != LOCK_FILE] == before
    monkeypatch.undo()
    result = train(config(out, "train.steps=4", "train.resume=true"), encoder=TinyEncoder(), examples=make_pairs(16))
    assert result.steps == 4  # the refused run released the lock


def test_a_resume_without_room_for_a_checkpoint_is_refused_before_loading(tmp_path, monkeypatch) -> None:
    """Not full, but short of one checkpoint's size (the next is written before old ones are pruned)."""
    import shutil

    from contrastkit.training import loop

    out = tmp_path / "run"
    train(config(out, "train.steps=2", "train.checkpoint_every=1"), encoder=TinyEncoder(), examples=make_pairs(16))
    real = shutil.disk_usage
    monkeypatch.setattr(loop.shutil, "disk_usage", lambda path: real(path)._replace(free=1000))
    with pytest.raises(ValueError, match=r"train.output_dir: 0.0 MiB free on the device of .* but a checkpoint"):
        train(config(out, "train.steps=4", "train.resume=true"), encoder=NeverBuilt(), examples=make_pairs(16))
