"""RAR-b runner on analytic embeddings: known rankings, nDCG@10 and multiple-choice accuracy per instruction mode."""

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torch import Tensor

from contrastkit.data.errors import DataError
from contrastkit.encoders.base import Encoder, Features
from contrastkit.evaluation.cache import CachedEncoder, EmbeddingCache
from contrastkit.evaluation.reasoning import (
    RARB_INSTRUCTIONS,
    MultipleChoiceItem,
    evaluate_multiple_choice,
    instruction_for,
    load_multiple_choice,
    with_instruction,
)
from contrastkit.evaluation.reasoning import run_reasoning as _run_reasoning

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CONTRASTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
PIQA = "Given the following goal, retrieve a possible solution."


class TableEncoder(Encoder):
    """Looks each (prompt + text) up in a table of vectors chosen by the test; records every text it encodes."""

    def __init__(self, table: dict[str, Sequence[float]]) -> None:
        super().__init__(normalize=False)
        self.keys = {text: i for i, text in enumerate(table)}
        self.register_buffer("table", torch.tensor(list(table.values()), dtype=torch.float32))
        self.seen: list[str] = []

    @property
    def dim(self) -> int:
        return self.table.shape[1]

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        full = [(prompt or "") + t for t in texts]
        self.seen.extend(full)
        return {"index": torch.tensor([self.keys[t] for t in full], dtype=torch.long)}

    def forward(self, features: Features) -> Tensor:
        return self.table[features["index"]]


def polar(degrees: float, norm: float = 1.0) -> list[float]:
    return [norm * math.cos(math.radians(degrees)), norm * math.sin(math.radians(degrees))]


# pooled corpus: six candidate answers at these angles (norms vary: cosine must ignore them)
DOC_ANGLES = {"d0": 0, "d1": 40, "d2": 90, "d3": 130, "d4": 200, "d5": 260}
DOC_TEXT = {d: f"answer {d}" for d in DOC_ANGLES}
# question i: (goal, its two candidates, gold index), plain angle, instructed angle
QUESTIONS = [
    ("goal zero", ("d0", "d1"), 0, 30, 5),
    ("goal one", ("d2", "d3"), 1, 125, 125),
    ("goal two", ("d4", "d5"), 0, 240, 215),
]


def table() -> dict[str, list[float]]:
    out = {DOC_TEXT[d]: polar(a, 1 + i) for i, (d, a) in enumerate(DOC_ANGLES.items())}
    for goal, _, _, plain, instructed in QUESTIONS:
        out[goal] = polar(plain, 3.0)
        out[f"{PIQA} {goal}"] = polar(instructed, 0.5)
    return out


def write_folder(root: Path, *, goal_override: str | None = None, labels: Sequence[int] | None = None) -> Path:
    """A PIQA-layout folder: BEIR files + original/valid.jsonl and valid-labels.lst (+ meta.json)."""
    (root / "qrels").mkdir(parents=True)
    (root / "original").mkdir()
    with (root / "corpus.jsonl").open("w") as f:
        for d, text in DOC_TEXT.items():
            f.write(json.dumps({"_id": d, "title": "", "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for i, (goal, *_) in enumerate(QUESTIONS):
            f.write(json.dumps({"_id": f"x-{i}", "text": goal}) + "\n")
    rows = [f"x-{i}\t{cands[gold]}\t1" for i, (_, cands, gold, *_) in enumerate(QUESTIONS)]
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    with (root / "original" / "valid.jsonl").open("w") as f:
        for i, (goal, (a, b), *_) in enumerate(QUESTIONS):  # originals carry stray whitespace, the corpus does not
            goal = goal_override if (goal_override and i == 1) else goal
            f.write(json.dumps({"goal": goal, "sol1": DOC_TEXT[a] + " ", "sol2": DOC_TEXT[b]}) + "\n")
    gold = labels if labels is not None else [q[2] for q in QUESTIONS]
    (root / "original" / "valid-labels.lst").write_text("".join(f"{g}\n" for g in gold))
    meta = {"name": "piqa", "original_files": ["original/valid.jsonl", "original/valid-labels.lst"]}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


NDCG_RANK2 = 1 / math.log2(3)


def run_reasoning(*args, **kwargs):
    """The runner with a fresh embedding cache, so tests never share cached rows."""
    return _run_reasoning(*args, cache=EmbeddingCache(), **kwargs)


def test_both_modes_known_rankings_metrics_and_accuracy(tmp_path: Path) -> None:
    encoder = TableEncoder(table())
    result = run_reasoning(encoder, write_folder(tmp_path / "piqa"), "test", batch_size=2)
    # plain: q0 at 30 deg ranks d1 (10 deg) before gold d0; q1 at 125 finds d3 first; q2 at 240 ranks d5 before d4
    plain = result.retrieval["plain"].rankings
    assert [d for d, _ in plain["x-0"]] == ["d1", "d0", "d2", "d3", "d5", "d4"]
    assert [d for d, _ in plain["x-1"]] == ["d3", "d2", "d4", "d1", "d0", "d5"]
    assert [d for d, _ in plain["x-2"]] == ["d5", "d4", "d3", "d0", "d2", "d1"]
    m = result.metrics
    assert m["ndcg@10"] == pytest.approx((2 * NDCG_RANK2 + 1) / 3, abs=1e-9)
    assert m["recall@1"] == pytest.approx(1 / 3) and m["recall@10"] == pytest.approx(1.0)
    assert m["mrr@10"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["accuracy@1"] == pytest.approx(1 / 3)  # only q1's own pair is right
    assert result.multiple_choice["plain"].predictions == {"x-0": 1, "x-1": 1, "x-2": 1}
    # the instruction moves q0 to 5 deg and q2 to 215 deg: every gold first, in both settings
    assert m["ndcg@10/instruction"] == pytest.approx(1.0) and m["accuracy@1/instruction"] == pytest.approx(1.0)
    assert result.instruction == PIQA and result.task == "piqa"
    assert (result.num_queries, result.num_docs, result.num_questions) == (3, 6, 3)
    assert all(0.0 <= v <= 1.0 for v in m.values())


def test_each_distinct_text_is_encoded_once(tmp_path: Path) -> None:
    encoder = TableEncoder(table())
    run_reasoning(encoder, write_folder(tmp_path / "piqa"), batch_size=4)
    # corpus once (MCR candidates reuse it), each question once plain and once instructed
    assert sorted(encoder.seen) == sorted(table())


def test_single_modes_and_metric_names(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "piqa")
    plain = run_reasoning(TableEncoder(table()), folder, instruction=False)
    assert plain.instruction is None and "accuracy@1" in plain.metrics
    assert not any(k.endswith("/instruction") for k in plain.metrics)
    instructed = run_reasoning(TableEncoder(table()), folder, instruction=True)
    assert instructed.metrics and all(k.endswith("/instruction") for k in instructed.metrics)
    assert {"ndcg@10/instruction", "recall@10/instruction", "accuracy@1/instruction"} <= set(instructed.metrics)
    with pytest.raises(ValueError, match="instruction must be"):
        run_reasoning(TableEncoder(table()), folder, instruction="yes")  # type: ignore[arg-type]


def test_instruction_lookup_override_and_unknown_task(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "piqa")
    custom = {**table(), **{f"Pick. {q[0]}": polar(q[4]) for q in QUESTIONS}}
    result = run_reasoning(TableEncoder(custom), folder, instruction=True, instruction_text="Pick.")
    assert result.instruction == "Pick." and result.metrics["accuracy@1/instruction"] == 1.0
    with pytest.raises(KeyError, match="no RAR-b instruction"):
        run_reasoning(TableEncoder(table()), folder, task="mystery-task")
    # the plain mode needs no instruction, whatever the task
    assert "ndcg@10" in run_reasoning(TableEncoder(table()), folder, task="mystery-task", instruction=False).metrics


def test_multiple_choice_optional_required_or_skipped(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "piqa")
    skipped = run_reasoning(TableEncoder(table()), folder, multiple_choice=False)
    assert "accuracy@1" not in skipped.metrics and skipped.notes and not skipped.multiple_choice
    for path in (folder / "original").iterdir():
        path.unlink()
    (folder / "meta.json").unlink()
    absent = run_reasoning(TableEncoder(table()), folder, task="piqa")
    assert "ndcg@10" in absent.metrics and "accuracy@1" not in absent.metrics
    assert "no multiple-choice items" in absent.notes[0]
    with pytest.raises(DataError, match="no multiple-choice items"):
        run_reasoning(TableEncoder(table()), folder, task="piqa", multiple_choice=True)


def test_inconsistent_original_files_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"valid\.jsonl, line 2: question does not match query 'x-1'"):
        load_multiple_choice(write_folder(tmp_path / "a", goal_override="another goal"))
    with pytest.raises(DataError, match="gold candidate of 'x-0' is not qrels document 'd0'"):
        load_multiple_choice(write_folder(tmp_path / "b", labels=[1, 1, 0]))
    with pytest.raises(DataError, match="not a candidate index"):
        load_multiple_choice(write_folder(tmp_path / "c", labels=[0, 2, 0]))
    bad = write_folder(tmp_path / "d")
    (bad / "original" / "valid-labels.lst").write_text("0\n1\n")
    with pytest.raises(DataError, match="more questions than"):
        load_multiple_choice(bad)
    with pytest.raises(FileNotFoundError, match=r"qrels/dev\.tsv"):
        run_reasoning(TableEncoder(table()), write_folder(tmp_path / "e"), "dev")


def test_multiple_choice_ties_go_to_the_first_candidate() -> None:
    enc = TableEncoder({"q": [1.0, 0.0], "same a": [1.0, 1.0], "same b": [1.0, 1.0], "far": [-1.0, 0.0]})
    items = [
        MultipleChoiceItem("gold-first", "q", ("same a", "same b", "far"), 0),
        MultipleChoiceItem("gold-second", "q", ("same a", "same b"), 1),
        MultipleChoiceItem("far-first", "q", ("far", "same b"), 1),
    ]
    result = evaluate_multiple_choice(enc, items, batch_size=2)
    assert result.predictions == {"gold-first": 0, "gold-second": 0, "far-first": 1}
    assert result.accuracy == pytest.approx(2 / 3) and result.num_questions == 3
    assert result.scores["far-first"] == pytest.approx([-1.0, math.sqrt(0.5)], abs=1e-6)
    with pytest.raises(ValueError, match="no multiple-choice question"):
        evaluate_multiple_choice(enc, [])
    with pytest.raises(ValueError, match=">= 2 candidates"):
        MultipleChoiceItem("x", "q", ("far",), 0)


def test_a_cached_encoder_keeps_its_cache_and_hits_skip_the_encoder(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "piqa")
    encoder, cache = TableEncoder(table()), EmbeddingCache()
    first = _run_reasoning(CachedEncoder(encoder, cache), folder)
    assert cache.stats.misses == len(table()) and len(encoder.seen) == len(table())
    again = _run_reasoning(CachedEncoder(encoder, cache), folder)
    assert len(encoder.seen) == len(table()) and again.metrics == first.metrics and again.encode_seconds < 1


def test_instruction_strings_and_aliases() -> None:
    assert instruction_for("PIQA") == instruction_for("physicaliqa") == PIQA
    assert instruction_for("ARCChallenge") == "Retrieve the answer to the question."
    assert instruction_for("quail") == instruction_for("SIQA")
    assert instruction_for("TempReasonL2Fact") == "Given the following question and facts, retrieve the correct answer."
    assert instruction_for("RARbCode") == "Retrieve the answer for the following coding problem."
    assert instruction_for("tempreason-l3-context") == (
        "Given the following question, facts and contexts, retrieve the correct answer."
    )
    assert RARB_INSTRUCTIONS["winogrande"].endswith("to fill in the missing underscored part.")
    assert with_instruction(None, " q ") == " q " and with_instruction("Do.", " q ") == "Do.  q"
    assert with_instruction("", "q") == "q"


@pytest.mark.skipif(not (SHARED / "piqa" / "original").is_dir(), reason="shared PIQA data not available")
def test_shared_piqa_multiple_choice_items_match_the_qrels() -> None:
    items = load_multiple_choice(SHARED / "piqa", "test")
    assert items is not None and len(items) == 1838
    assert {len(item.candidates) for item in items} == {2}
    assert items[0].qid == "piqa-val-0" and items[0].answer == 0
