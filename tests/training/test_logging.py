"""Progress line, metrics.jsonl (including the cut on resume), optional TensorBoard, environment info."""

import importlib.util
import io
import json

from contrastkit.training.logging import (
    TENSORBOARD_MISSING,
    MetricsLog,
    ProgressLine,
    TensorBoardLog,
    environment_info,
    format_duration,
    plural,
    read_metrics,
)


def test_progress_line_reports_loss_rate_and_eta() -> None:
    stream = io.StringIO()
    progress = ProgressLine(total_steps=100, start_step=20, stream=stream)
    progress.started -= 10.0  # pretend 10 s have passed
    progress.count(500)
    progress.show(40, {"loss": 1.23456, "lr": 2e-5})
    line = stream.getvalue()
    assert line.startswith("step 40/100 | loss 1.2346 | lr 2.00e-05 | ")
    assert "50.0 pairs/s" in line  # 500 examples in 10 s, one decimal (a slow run is not "0 pairs/s")
    assert "ETA 0:00:30" in line  # 20 steps in 10 s, 60 to go
    assert line.endswith("\n")  # not a terminal: one line per report, no carriage returns
    assert format_duration(float("nan")) == "?" and format_duration(3725) == "1:02:05"


def test_metrics_log_appends_and_cuts_back_on_resume(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    for step in (1, 2, 3, 4):
        log.write(step, {"loss": float(step), "skipped": step == 4})
    log.write(4, {"loss": float("nan")})
    log.close()
    with open(path, "a") as f:
        f.write('{"step": 5, "lo')  # a line cut by a kill
    assert [r["step"] for r in read_metrics(path)[:5]] == [1, 2, 3, 4, 4]

    resumed = MetricsLog(path, resume_step=2)  # the checkpoint was at step 2: 3, 4 will be recomputed
    resumed.write(3, {"loss": 30.0})
    resumed.close()
    records = read_metrics(path)
    assert [(r["step"], r["loss"]) for r in records] == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_non_finite_values_are_valid_json(tmp_path) -> None:
    log = MetricsLog(tmp_path / "m.jsonl")
    log.write(1, {"loss": float("inf"), "grad_norm": float("nan")})
    log.close()
    line = (tmp_path / "m.jsonl").read_text().strip()
    assert json.loads(line) == {"step": 1, "loss": "inf", "grad_norm": "nan"}
    assert "NaN" not in line and "Infinity" not in line


def test_tensorboard_is_optional(tmp_path) -> None:
    board = TensorBoardLog(tmp_path / "tb")
    assert board.active == (importlib.util.find_spec("tensorboard") is not None)
    board.write(1, {"loss": 1.0, "note": "text is ignored"})
    board.close()
    assert not TensorBoardLog(tmp_path / "off", enabled=False).active


def test_missing_tensorboard_is_said_once(tmp_path, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    monkeypatch.setattr(TensorBoardLog, "_missing_noted", False)
    stream = io.StringIO()
    boards = [TensorBoardLog(tmp_path / f"tb{i}", stream=stream) for i in range(2)]
    assert not any(b.active for b in boards)
    assert stream.getvalue() == TENSORBOARD_MISSING + "\n"  # once, naming the package and the switch
    assert "pip install tensorboard" in TENSORBOARD_MISSING and "train.tensorboard=false" in TENSORBOARD_MISSING
    TensorBoardLog(tmp_path / "off", enabled=False, stream=stream)
    assert stream.getvalue().count("note:") == 1


def test_plural_and_the_start_line(tmp_path) -> None:
    from contrastkit.training.config import load_config
    from contrastkit.training.runlog import start_line

    assert (plural(1, "step"), plural(0, "step"), plural(2, "process", "processes")) == (
        "1 step",
        "0 steps",
        "2 processes",
    )
    cfg = load_config(None, ["model.path=m", "data.train=t.jsonl"])
    one = start_line(cfg, tmp_path, 1, 0, resumed=False, processes=1)
    assert one.startswith("contrastkit: training for 1 step, objective ") and "processes" not in one
    four = start_line(cfg, tmp_path, 30, 10, resumed=True, processes=4)
    assert four.startswith("contrastkit: resuming at step 10 of 30 steps on 4 processes, objective ")


def test_environment_info_is_json() -> None:
    info = environment_info()
    assert {"torch", "python", "contrastkit", "devices", "argv"} <= set(info)
    json.dumps(info)
