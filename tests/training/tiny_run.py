"""Process launcher for the crash tests: imports once, then forks one child process per training run.

Protocol: each line on stdin is a JSON list of jobs, either
``{"name", "output_dir", "data", "overrides": [...], "env": {...}, "log"}``
(the in-test :class:`TinyEncoder`, ``"dropout"`` 0.2 unless given) or ``{"name", "cli": [argv],
"env", "log"}`` (the real ``contrastkit train ...``). The launcher forks one
child per job (all at once), waits for them and prints one JSON line
``{name: status}``: the exit code, or minus the signal number (-9 for
SIGKILL). A child sets its ``env`` (the fault-injection variables are read
by the loop), uses one CPU thread and writes its stdout/stderr to ``log``.

Forking from a process that has imported torch (but computed nothing) costs
milliseconds, where starting Python, torch and transformers costs seconds.
"""

import json
import os
import sys
import traceback

import torch

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: tiny_models
from training_helpers import TinyEncoder

from contrastkit.cli.main import main as contrastkit_main
from contrastkit.training import load_config, train


def child(job: dict) -> None:
    code = 1
    try:
        fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.update(job.get("env", {}))
        torch.set_num_threads(1)
        if "cli" in job:
            code = contrastkit_main(job["cli"])
        else:
            overrides = [f"train.output_dir={job['output_dir']}", f"data.train={job['data']}", *job["overrides"]]
            train(load_config(None, overrides), encoder=TinyEncoder(dropout=job.get("dropout", 0.2)))
            code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def status(raw: int) -> int:
    return -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)


def main() -> None:
    for line in sys.stdin:
        jobs = json.loads(line)
        pids = {}
        for job in jobs:
            pid = os.fork()
            if pid == 0:
                child(job)
            pids[pid] = job["name"]
        results = {pids[pid]: status(os.waitpid(pid, 0)[1]) for pid in list(pids)}
        print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
