"""Encode progress: silent when short, periodic lines off a terminal, a tqdm bar on one, a summary line;
wired into every encoder's ``encode`` loop and turned on by ``contrastkit eval`` / ``mine`` / ``analyze``."""

from __future__ import annotations

import io

import pytest
import torch
from tests.encoders.encoder_helpers import bert_tokenizer, tiny_bert_folder

from contrastkit.encoders import progress
from contrastkit.encoders.progress import EncodeProgress, enabled_for


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_every_interval_after_the_delay_and_a_summary() -> None:
    clock, out = Clock(), io.StringIO()
    p = EncodeProgress(1000, stream=out, delay=3, every=30, enabled=True, clock=clock)
    clock.now += 1
    p.update(100)
    assert out.getvalue() == ""  # within the delay: nothing
    clock.now += 3
    p.update(100)  # 200 done after 4 s
    clock.now += 10
    p.update(100)  # within the interval: no new line
    clock.now += 30
    p.update(100)  # 400 done after 44 s
    clock.now += 6
    p.update(600)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "encoding: 200/1,000 texts (20.0%), 50.0 texts/s, ETA 0:00:16"
    assert lines[1].startswith("encoding: 400/1,000 texts (40.0%), 9.1 texts/s")
    assert lines[2] == "encoded 1,000 texts in 0:00:50 (20.0 texts/s)"
    assert len(lines) == 3


def test_short_or_disabled_encodes_print_nothing() -> None:
    for enabled, seconds in ((True, 2.0), (False, 100.0)):
        clock, out = Clock(), io.StringIO()
        with EncodeProgress(10, stream=out, delay=3, enabled=enabled, clock=clock) as p:
            clock.now += seconds
            p.update(10)
        assert out.getvalue() == ""


def test_a_terminal_gets_a_bar() -> None:
    clock, out = Clock(), Tty()
    with EncodeProgress(50, stream=out, delay=3, enabled=True, clock=clock, unit="images") as p:
        clock.now += 5
        p.update(20)
        p.update(30)
    text = out.getvalue()
    assert "encoding:" in text and "50/50" in text and "\r" in text
    assert text.rstrip().splitlines()[-1].startswith("encoded 50 images in")


def test_library_default_is_off_and_enabled_for_restores() -> None:
    assert not progress.is_enabled()
    with enabled_for(True):
        assert EncodeProgress(1).enabled
    assert not progress.is_enabled() and not EncodeProgress(1).enabled


def test_encoder_encode_reports_progress(tmp_path, monkeypatch, capsys) -> None:
    from contrastkit.encoders import load_encoder

    bert_tokenizer(tmp_path / "m")
    encoder = load_encoder(tiny_bert_folder(tmp_path / "m"))
    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    with enabled_for(True):
        out = encoder.encode(["the cat", "a dog runs", "hello world"] * 3, batch_size=4)
    assert out.shape[0] == 9 and torch.isfinite(out).all()
    err = capsys.readouterr().err
    assert "encoding: 4/9 texts" in err and "encoded 9 texts in" in err


def _sts(folder):
    folder.mkdir()
    rows = ["the cat sat\ta cat sat\t4.5", "hello world\tthe dog runs\t0.5", "a big dog\tthe big dog\t4.0"]
    (folder / "test.tsv").write_text("sentence1\tsentence2\tscore\n" + "\n".join(rows) + "\n")
    return folder


@pytest.mark.parametrize("command", ["eval", "analyze", "mine"])
def test_cli_commands_report_encode_progress(command, tmp_path, monkeypatch, capsys) -> None:
    from contrastkit.cli.main import main

    bert_tokenizer(tmp_path / "m")
    model = str(tiny_bert_folder(tmp_path / "m"))
    data = str(_sts(tmp_path / "sts"))
    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(f'{{"anchor": "q {w}", "positive": "{w} dog"}}\n' for w in ("the", "a", "big", "red")))
    argv = {
        "eval": [model, "--task", "sts", "--data", data],
        "analyze": [model, "--data", data, "--out", str(tmp_path / "a"), "--no-token-level"],
        "mine": ["--data", str(pairs), "--model", model, "--out", str(tmp_path / "n.jsonl"), "--num-negatives", "1"],
    }[command]
    assert main([command, *argv]) == 0
    assert "encoded " in capsys.readouterr().err
