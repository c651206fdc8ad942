"""The run folder (``train.output_dir``): checked, locked for the run, cleaned of a killed run's leftovers.

:meth:`RunDir.acquire` runs before the model and the data are loaded. It
creates the folder (and missing parents), takes an exclusive OS lock
(``fcntl.flock``) on ``output_dir/.contrastkit.lock``, writes this
process's id into it, and writes (then removes) a 4 KiB probe file, which
proves the disk takes new data. Every problem
is a :class:`~contrastkit.training.schema.ConfigError` on
``train.output_dir`` naming the path and the cause: the path is a file, a
parent is a file, no permission, a read-only or a full file system, or
another run holding the lock. A refused second run changes nothing in the
folder. The lock is released by the kernel when the process ends, however
it ends; :meth:`release` also removes what :meth:`acquire` created when the
run wrote nothing else (a configuration error found later leaves no empty
folder).

With the lock held, :meth:`remove_leftovers` deletes what an interrupted
run left: checkpoint temp, swap and prune folders and the final model's
temp folders (``.final.tmp-*``, ``.final.old-*``).
"""

from __future__ import annotations

import os
from pathlib import Path

from contrastkit.outputs import explain_os_error, output_problem, shape_problem
from contrastkit.training.checkpoint import remove_checkpoint_leftovers
from contrastkit.training.schema import ConfigError

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".contrastkit.lock"
KEY = "train.output_dir"
_FINAL_LEFTOVERS = (".final.tmp-", ".final.old-", ".config.yaml.tmp-", "metrics.jsonl.tmp")


def check_output_dir(path: Path) -> None:
    """Refuse ``path`` when it, or one of its existing parents, is not a folder (nothing is written);
    raises :class:`ConfigError` on ``train.output_dir``."""
    problem = shape_problem(path, folder=True)
    if problem is not None:
        raise ConfigError(KEY, problem)


class RunDir:
    """``train.output_dir`` held by this process for one run; see the module docstring."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path / LOCK_FILE
        self._fd: int | None = None
        self._created: list[Path] = []  # folders acquire() made, innermost last

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Create, lock and test-write the folder; :class:`ConfigError` on ``train.output_dir`` when impossible."""
        self._acquire()
        self._probe()

    def _acquire(self) -> None:
        check_output_dir(self.path)
        self._created = [p for p in reversed((self.path, *self.path.parents)) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock()
        except OSError as err:
            if self._created:  # a folder of ours: take the lock file away with it
                self.lock_path.unlink(missing_ok=True)
            self._undo_created()
            raise ConfigError(KEY, explain_os_error(err, self.path)) from None

    def _probe(self) -> None:
        """A fresh 4 KiB write in the folder (rewriting the lock file of an earlier run can succeed in place on
        a full disk); :class:`ConfigError` when it fails, with the lock released."""
        problem = output_problem(self.path, folder=True)
        if problem is not None:
            self.release()
            raise ConfigError(KEY, problem)

    def _lock(self) -> None:
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                        raise ConfigError(
                            KEY,
                            f"{self.path} is in use by another training run ({holder}, lock {self.lock_path}); "
                            "wait for it to finish or choose another output_dir",
                        ) from None
                if os.path.exists(self.lock_path) and os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino:
                    break  # locked the file that is still in place (not one a finishing run just removed)
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
            os.fsync(fd)  # a full disk fails here, before anything expensive
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def remove_leftovers(self) -> list[Path]:
        """Delete an interrupted run's hidden temp folders (only while holding the lock); returns them."""
        if not self.held:
            return []
        return remove_checkpoint_leftovers(self.path, _FINAL_LEFTOVERS)

    def release(self) -> None:
        """Unlock; when the folder holds nothing but the lock file and :meth:`acquire` created it, remove it."""
        if self._fd is None:
            return
        try:
            if self._created and [p.name for p in self.path.iterdir()] == [LOCK_FILE]:
                self.lock_path.unlink(missing_ok=True)
                self._undo_created()
        finally:
            os.close(self._fd)  # releases the lock
            self._fd = None

    def _undo_created(self) -> None:
        for folder in reversed(self._created):  # innermost first
            try:
                folder.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                break
        self._created = []
