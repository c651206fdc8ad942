"""``contrastkit train CONFIG.yaml key=value``: end to end on a tiny random BERT, and its error handling."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import yaml

from contrastkit.cli.main import main
from contrastkit.encoders import load_encoder
from tiny_models import tiny_bert_folder

WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu")


def tiny_bert(folder):
    """A 2-layer, 32-wide random BERT (dropout on) with a WordPiece tokenizer over WORDS."""
    folder.mkdir(parents=True)
    return tiny_bert_folder(folder, WORDS)


def pairs(path, n=24):
    with open(path, "w") as f:
        for i in range(n):
            words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(4)]
            record = {"anchor": " ".join([*words, f"a{i}"]), "positive": " ".join([*words[:2], f"p{i}"])}
            f.write(json.dumps(record) + "\n")
    return path


@pytest.fixture()
def setup(tmp_path):
    model = tiny_bert(tmp_path / "bert")
    data = pairs(tmp_path / "pairs.jsonl")
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"path": str(model), "pooling": "mean", "normalize": True},
                "data": {"train": str(data), "batch_size": 8},
                "objective": {"name": "infonce", "temperature": 0.05},
                "optim": {"lr": 1e-3, "warmup_steps": 1},
                "train": {"checkpoint_every": 2, "log_every": 1},
            }
        )
    )
    return tmp_path, config


def test_train_end_to_end_writes_a_sentence_transformers_model(setup, capsys) -> None:
    from sentence_transformers import SentenceTransformer

    root, config = setup
    out = root / "out"
    assert main(["train", str(config), "train.steps=4", f"train.output_dir={out}", "optim.lr=2e-3"]) == 0
    assert "trained 4 steps" in capsys.readouterr().out

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["optim"]["lr"] == 2e-3 and saved["train"]["steps"] == 4  # overrides applied and recorded
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000000002", "step-000000004"]

    texts = ["alpha beta gamma", "delta epsilon"]
    ours = load_encoder(out / "final").encode(texts)
    theirs = SentenceTransformer(str(out / "final"), device="cpu").encode(texts, convert_to_tensor=True)
    assert torch.allclose(ours, theirs.cpu(), atol=1e-5)
    before = load_encoder(root / "bert", pooling="mean").encode(texts)
    assert not torch.allclose(ours, before, atol=1e-4)  # it trained


def test_bad_override_is_one_line_and_writes_nothing(setup, capsys) -> None:
    root, config = setup
    out = root / "out"
    assert main(["train", str(config), "optim.lrr=1", f"train.output_dir={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "contrastkit train: error: optim.lrr: unknown key; did you mean 'optim.lr'?"
    assert main(["train", str(config), "optim.lr", f"train.output_dir={out}"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["train", str(config), "data.train=missing.jsonl", f"train.output_dir={out}"]) == 2
    assert "missing.jsonl" in capsys.readouterr().err
    assert not out.exists()


def test_print_config_and_overrides_without_a_file(setup, capsys) -> None:
    _, config = setup
    assert main(["train", str(config), "train.steps=9", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["steps"] == 9 and printed["data"]["batch_size"] == 8
    assert main(["train", "--print-config", "optim.lr=0.5"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["optim"]["lr"] == 0.5


def test_a_diverged_run_exits_with_status_3(setup, capsys, monkeypatch) -> None:
    from contrastkit.cli import train as train_cmd
    from contrastkit.training import TrainingDivergedError

    def diverge(config):
        raise TrainingDivergedError("training diverged: 5 consecutive steps ...")

    monkeypatch.setattr(train_cmd, "train", diverge)
    _, config = setup
    assert main(["train", str(config), "train.steps=2"]) == 3
    assert capsys.readouterr().err.strip() == "contrastkit train: training diverged: 5 consecutive steps ..."


def many_answers(path, questions=5, answers=4):
    """TREC-QA style pairs: every question (anchor) has several answers."""
    with open(path, "w") as f:
        for q in range(questions):
            for k in range(answers):
                anchor = f"{WORDS[q]} {WORDS[q + 1]}"
                f.write(json.dumps({"anchor": anchor, "positive": f"{WORDS[(q + k) % len(WORDS)]} p{q}x{k}"}) + "\n")
    return path


def test_data_that_cannot_fill_a_batch_is_refused_before_anything_is_written(setup, capsys) -> None:
    root, config = setup
    data, out = many_answers(root / "trec.jsonl"), root / "out"
    argv = ["train", str(config), f"data.train={data}", "train.steps=3", f"train.output_dir={out}"]
    assert main(argv) == 2  # batch 8 > the 5 distinct questions
    err = capsys.readouterr().err
    assert "data.batch_size" in err and "the largest duplicate-free batch found has 5 examples" in err
    assert not out.exists()
    with pytest.warns(UserWarning, match=r"skipped for sharing a text with their batch \(duplicates=skip\)"):
        assert main([*argv, "data.batch_size=4", "data.duplicates=skip", "train.steps=1"]) == 0
    assert "trained 1 step (loss" in capsys.readouterr().out  # not "1 steps"
