"""Teacher-scored mining: the teacher's scores decide the false negatives, feed the report, and reach the records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from mining_helpers import CORPUS, QUERIES, BagEncoder, toy_data

from contrastkit.cli import mine as mine_cli
from contrastkit.cli.main import COMMANDS, main
from contrastkit.data.readers import load_examples
from contrastkit.mining import FilterConfig, MiningConfig, mine, to_grouped_records, to_records

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "encoders"))
from encoder_helpers import tiny_bert_folder

HIDDEN = CORPUS.index("a dog chased the cat around the yard")  # unlabelled; the teacher finds it relevant everywhere


def teacher(pairs):
    """Scores HIDDEN above every positive; otherwise word overlap."""
    return [10.0 if d == CORPUS[HIDDEN] else float(len(set(q.split()) & set(d.split()))) for q, d in pairs]


def _config(**filters) -> MiningConfig:
    return MiningConfig(method="dense", num_negatives=3, filters=FilterConfig(**filters), depth=8)


def test_teacher_drops_what_it_finds_relevant() -> None:
    data = toy_data()
    plain = mine(data, _config(absolute_margin=0.0, relative_margin=None), encoder=BagEncoder())
    assert HIDDEN in plain.negatives[0]  # the first stage mines it as a negative
    taught = mine(data, _config(absolute_margin=0.0, relative_margin=None), encoder=BagEncoder(), rescorer=teacher)
    assert HIDDEN not in taught.negatives[0]
    assert taught.negatives[0]  # others are still mined


@pytest.mark.filterwarnings("ignore::contrastkit.mining.FalseNegativeWarning")
def test_report_estimates_false_negatives_with_the_teacher() -> None:
    data = toy_data()
    kept = _config(relative_margin=None)  # no filter: the teacher's false negatives are mined, and counted
    first = mine(data, kept, encoder=BagEncoder())
    taught = mine(data, kept, encoder=BagEncoder(), rescorer=teacher)
    assert taught.quality["judge"] == "rescorer" and first.quality["judge"] == "dense"
    flagged = [
        teacher([(data.queries[q], data.corpus[d])])[0]
        >= min(teacher([(data.queries[q], data.corpus[p])])[0] for p in pos)
        for q, pos in enumerate(data.positives)
        for d in taught.negatives[q]
    ]
    rate = sum(flagged) / len(flagged)
    assert rate == pytest.approx(1 / 3)  # HIDDEN, mined for every query
    assert taught.quality["false_negative_rate"] == pytest.approx(rate)
    assert first.quality["false_negative_rate"] != pytest.approx(rate)


@pytest.mark.filterwarnings("ignore::contrastkit.mining.FalseNegativeWarning")
def test_records_carry_the_teacher_scores() -> None:
    data = toy_data()
    result = mine(data, _config(relative_margin=None), encoder=BagEncoder(), rescorer=teacher)
    records = to_records(data, result.negatives, scores=(result.positive_scores, result.negative_scores))
    for record in records:
        assert record["positive_scores"] == teacher([(record["anchor"], record["positive"])])
        assert record["negative_scores"] == teacher([(record["anchor"], d) for d in record["negative"]])


@pytest.mark.filterwarnings("ignore::contrastkit.mining.FalseNegativeWarning")
def test_grouped_records_keep_every_query_with_all_positives_and_scores() -> None:
    data = toy_data()
    result = mine(data, _config(absolute_margin=5.0, relative_margin=None), encoder=BagEncoder(), rescorer=teacher)
    assert any(not negs for negs in result.negatives)  # a query left without negatives is still written
    records = to_grouped_records(data, result.negatives, scores=(result.positive_scores, result.negative_scores))
    assert [r["anchor"] for r in records] == data.queries
    for record, pos in zip(records, data.positives, strict=True):
        assert record["positive"] == [data.corpus[p] for p in pos]
        assert record["positive_scores"] == teacher([(record["anchor"], p) for p in record["positive"]])
        assert record["negative_scores"] == teacher([(record["anchor"], d) for d in record["negative"]])


# ---------------------------------------------------------------- the CLI with a real (tiny) cross-encoder
@pytest.fixture(scope="module")
def cross_folder(tmp_path_factory) -> Path:
    from contrastkit.encoders.cross import load_cross_encoder

    root = tmp_path_factory.mktemp("teacher")
    load_cross_encoder(tiny_bert_folder(root / "body"), max_length=32, seed=1).save(root / "cross")
    return root / "cross"


def test_cli_rescore_writes_scores_training_can_read(
    tmp_path: Path, cross_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contrastkit.encoders.cross import CrossEncoderModel

    monkeypatch.setitem(COMMANDS, "mine", ("mine hard negatives", "contrastkit.cli.mine"))
    monkeypatch.setattr(mine_cli, "_encoder", lambda model: BagEncoder())
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"anchor": q, "positive": CORPUS[i]}) + "\n" for q, i in zip(QUERIES, [0, 2, 7]))
    )
    out, cache = tmp_path / "neg.jsonl", tmp_path / "cache"
    args = ["mine", "--data", str(pairs), "--model", "toy", "--relative-margin", "none", "--num-negatives", "2"]
    args += ["--rescore", str(cross_folder), "--teacher-cache", str(cache), "--layout", "grouped", "--out", str(out)]
    assert main(args) == 0
    examples = load_examples(out)
    assert len(examples) == len(QUERIES) and all(ex.teacher_scored for ex in examples)
    ce = CrossEncoderModel.from_folder(cross_folder)
    ex = examples[0]
    want = ce.score([(ex.anchor, t) for t in (*ex.positives, *ex.negatives)])
    assert torch.allclose(torch.tensor([*ex.positive_scores, *ex.negative_scores]), want, atol=1e-5)
    assert json.loads((tmp_path / "neg.report.json").read_text())["quality"]["judge"] == "rescorer"
    assert len(list(cache.glob("teacher-*.safetensors"))) == 1
    first = out.read_text()

    def refuse(self, pairs, batch_size=32):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(CrossEncoderModel, "score", refuse)
    assert main(args) == 0  # every pair is cached: the teacher is not asked again
    assert out.read_text() == first
    monkeypatch.undo()
    monkeypatch.setitem(COMMANDS, "mine", ("mine hard negatives", "contrastkit.cli.mine"))
    monkeypatch.setattr(mine_cli, "_encoder", lambda model: BagEncoder())
    short = tmp_path / "short.jsonl"
    assert main([*args[:-1], str(short), "--teacher-max-length", "8"]) == 0  # another length: scored again
    ex = load_examples(short)[0]
    want = CrossEncoderModel.from_folder(cross_folder, max_length=8).score([(ex.anchor, ex.positives[0])])
    assert ex.positive_scores[0] == pytest.approx(float(want[0]), abs=1e-5)
    assert len(list(cache.glob("teacher-*.safetensors"))) == 2


def test_cli_rescore_with_a_missing_folder_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(COMMANDS, "mine", ("mine hard negatives", "contrastkit.cli.mine"))
    monkeypatch.setattr(mine_cli, "_encoder", lambda model: BagEncoder())
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"anchor": QUERIES[0], "positive": CORPUS[0]}) + "\n")
    out = tmp_path / "neg.jsonl"
    code = main(
        ["mine", "--data", str(pairs), "--model", "toy", "--rescore", str(tmp_path / "nope"), "--out", str(out)]
    )
    assert code == 2 and not out.exists()
