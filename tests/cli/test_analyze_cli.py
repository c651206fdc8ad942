"""``contrastkit analyze``: STS, BEIR and sentence data in; JSON, Markdown and PNGs out; clear errors."""

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from contrastkit.cli.analyze import add_parser
from tiny_models import tiny_bert_folder

WORDS = "the a cat dog sat on mat runs fast red bird sings in tree big house river flows".split()  # noqa: SIM905
SENTENCES = [
    "the cat sat on the mat",
    "a dog runs fast",
    "the red bird sings in the tree",
    "a big house on the river",
    "the river flows",
    "a red cat runs",
    "the dog sat in the house",
    "a bird sings",
]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert"), WORDS, hidden_size=16, intermediate_size=32)
    return folder


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="contrastkit")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["analyze", *argv])
    return args.run(args)


def write_sts(folder, rows, split="test"):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["sentence1\tsentence2\tscore", *("\t".join(map(str, r)) for r in rows)]
    (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


STS_ROWS = [(SENTENCES[i], SENTENCES[(i + 1) % 8], f"{(i * 0.7) % 5:.1f}") for i in range(8)]


def test_sts_folder_writes_the_report(model, tmp_path, capsys):
    data = write_sts(tmp_path / "sts", STS_ROWS)
    out = tmp_path / "report"
    assert run_cli(str(model), "--data", str(data), "--out", str(out), "--positive-score", "2.0") == 0
    report = json.loads((out / "diagnostics.json").read_text())
    assert report["pairs"]["n_pairs"] == 8 and report["pairs"]["spearman"] is not None
    assert report["pairs"]["n_positive"] == sum(float(r[2]) >= 2.0 for r in STS_ROWS)
    assert report["layers"] is not None and report["settings"]["positive_threshold"] == 2.0
    assert {p.name for p in out.glob("*.png")} == {"similarity_histogram.png", "layer_anisotropy.png",
                                                  "length_buckets.png"}  # fmt: skip
    assert (out / "diagnostics.md").read_text().startswith("# Embedding diagnostics: ")
    printed = capsys.readouterr().out
    assert "spearman" in printed and "diagnostics.md" in printed


def test_beir_folder_and_sentence_file(model, tmp_path, monkeypatch):
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "text": s}) + "\n" for i, s in enumerate(SENTENCES))
    )
    (beir / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": s}) + "\n" for i, s in enumerate(SENTENCES[:4]))
    )
    (beir / "qrels" / "dev.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i + 4}\t1\n" for i in range(4))
    )
    monkeypatch.chdir(tmp_path)
    assert run_cli(str(model), "--data", str(beir), "--split", "dev", "--no-token-level") == 0
    report = json.loads((tmp_path / "analysis" / model.name / "diagnostics.json").read_text())
    assert report["pairs"]["n_pairs"] == 4 and report["layers"] is None
    text = tmp_path / "sentences"
    text.mkdir()
    (text / "sentences.txt").write_text("\n".join(SENTENCES) + "\n")
    assert run_cli(str(model), "--data", str(text), "--out", str(tmp_path / "s")) == 0  # the folder's only file
    report = json.loads((tmp_path / "s" / "diagnostics.json").read_text())
    assert report["pairs"] is None and report["embedding"]["n"] == 8


def test_bad_data_exits_2_before_anything_is_written(model, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(str(model), "--data", str(tmp_path / "missing"), "--out", str(out)) == 2
    assert "no such data file or folder" in capsys.readouterr().err
    bad = write_sts(tmp_path / "bad", [("a cat", "a dog", "high")])
    assert run_cli(str(model), "--data", str(bad), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "test.tsv" in err and "line 2" in err
    assert run_cli(str(model), "--data", str(bad), "--split", "train", "--out", str(out)) == 2
    assert "no train." in capsys.readouterr().err
    assert not out.exists()
