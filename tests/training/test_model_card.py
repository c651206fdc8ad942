"""A trained ``final/`` carries a model card (``README.md``) saying what the model is and how it was made."""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import yaml
from tests.encoders.encoder_helpers import WORDS, tiny_bert_folder

from contrastkit import __version__
from contrastkit.cli.main import main
from contrastkit.training.model_card import command_line

ROWS = 16


def text(i: int, n: int) -> str:
    return " ".join(WORDS[(i * 5 + k * 3) % len(WORDS)] for k in range(n))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``contrastkit train`` (2 steps, STS evaluated at each) on a tiny BERT; returns (run folder, argv, paths)."""
    root = tmp_path_factory.mktemp("card")
    model = tiny_bert_folder(root / "bert")
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps({"anchor": text(i, 9), "positive": text(i + 1, 6)}) + "\n" for i in range(ROWS)))
    sts = root / "sts.tsv"
    rows = [f"{text(i, 5)}\t{text(2 * i, 4)}\t{i % 5}" for i in range(8)]
    sts.write_text("sentence1\tsentence2\tscore\n" + "\n".join(rows) + "\n")
    config = root / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"path": str(model), "max_length": 8},
                "data": {"train": str(data), "batch_size": 8},
                "objective": {"name": "infonce", "temperature": 0.07},
                "optim": {"lr": 1e-3},
                "eval": {"sts": {"path": str(sts), "name": "tinysts"}},
                "train": {"steps": 2, "eval_every": 1, "checkpoint_every": 0, "progress": False},
            }
        )
    )
    argv = ["train", str(config), f"train.output_dir={root / 'run'}", "optim.weight_decay=0.02"]
    mp = pytest.MonkeyPatch()
    mp.setattr(sys, "argv", ["/usr/local/bin/contrastkit", *argv])
    try:
        assert main(argv) == 0
    finally:
        mp.undo()
    return root / "run", argv, model, data


def test_the_card_says_what_the_model_is_and_how_it_was_made(trained) -> None:
    run, argv, model, data = trained
    card = (run / "final" / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["library_name"] == "sentence-transformers" and "infonce" in header["tags"]
    assert f"| base model | `{model}` |" in card
    assert "| max seq length | `64` |" in card  # the base's inference length, not the training 8
    assert "| pooling | `mean_tokens` |" in card and "| normalized | `True` |" in card
    assert "| objective | `infonce` (temperature=0.07, similarity=cosine) |" in card
    assert "weight decay 0.02" in card and "| steps | 2 |" in card
    assert f"| data.train | `{data}` | {ROWS} |" in card
    assert f"contrastkit {__version__}" in card
    assert "contrastkit " + " ".join(argv) in card
    resolved = yaml.safe_load(card.split("```yaml\n")[1].split("```")[0])
    assert resolved == yaml.safe_load((run / "config.yaml").read_text())


def test_the_card_lists_the_evaluations_logged_during_training(trained) -> None:
    run = trained[0]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evaluated = [(r["step"], r["eval/tinysts/spearman"]) for r in records if "eval/tinysts/spearman" in r]
    assert [step for step, _ in evaluated] == [1, 2]
    card = (run / "final" / "README.md").read_text()
    assert "| step | tinysts/spearman |" in card
    for step, value in evaluated:
        assert f"| {step} | {value:.4f} |" in card


def test_sentence_transformers_loads_a_folder_with_its_card(trained) -> None:
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(trained[0] / "final"), device="cpu").encode(["the cat"]).shape == (1, 32)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/contrastkit", "train", "a b.yaml", "x=1"], "contrastkit train 'a b.yaml' x=1"),
        (["/src/contrastkit/__main__.py", "train", "c.yaml"], "contrastkit train c.yaml"),
        (["bench/run.py", "--fast"], "python bench/run.py --fast"),
    ],
)
def test_the_command_line_is_written_as_typed(argv, expected) -> None:
    assert command_line(argv) == expected
