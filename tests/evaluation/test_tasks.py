"""The task registry: every type runs from a folder, JSON layout exactly {task, data, split, metrics}, prompts,
the shared cache across tasks, and malformed folders failing in the load phase with the reader's error."""

import json
import math
import sys

import pytest
from task_helpers import VectorEncoder, polar, write_beir, write_tsv

from contrastkit.data.errors import DataError
from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.tasks import (
    EvalOptions,
    TaskResult,
    get_task,
    load_task_data,
    run_task,
    task_names,
)

TYPES = ["sts", "retrieval", "reasoning", "classification", "clustering", "pair-classification"]


def test_registry_has_the_six_types() -> None:
    assert task_names()[: len(TYPES)] == TYPES  # the image task types (evaluation/image_tasks.py) follow
    assert get_task("pair_classification").name == "pair-classification" and get_task(" STS ").name == "sts"
    with pytest.raises(KeyError, match="unknown task type 'nli'; expected one of sts, retrieval"):
        get_task("nli")
    assert all(get_task(t).default_split == "test" for t in TYPES)


def test_json_layout_is_exact_and_round_trips() -> None:
    result = TaskResult("sts", "data/stsb", "test", {"spearman": 0.5, "pearson": 0.25}, details=object(), seconds=3.0)
    obj = result.to_json()
    assert list(obj) == ["task", "data", "split", "metrics"]
    assert obj == {"task": "sts", "data": "data/stsb", "split": "test", "metrics": {"spearman": 0.5, "pearson": 0.25}}
    back = TaskResult.from_json(json.loads(json.dumps(obj)))
    assert back == result and back.details is None
    for bad in ({**obj, "model": "x"}, {k: v for k, v in obj.items() if k != "split"}, [obj],
                {**obj, "metrics": {"spearman": "high"}}, {**obj, "split": 3}):  # fmt: skip
        with pytest.raises(ValueError, match=r"r\.json"):
            TaskResult.from_json(bad, source="r.json")


def _sts(tmp_path):
    table = {"s1": polar(0), "t1": polar(0), "s2": polar(0), "t2": polar(90), "s3": polar(0), "t3": polar(45)}
    rows = [("s1", "t1", 5), ("s2", "t2", 0), ("s3", "t3", 5 * math.sqrt(0.5))]  # gold = 5 x cosine
    write_tsv(tmp_path / "test.tsv", ("sentence1", "sentence2", "score"), rows)
    return table, tmp_path


def test_sts_from_a_folder_with_prompt_defaults(tmp_path) -> None:
    table, folder = _sts(tmp_path)
    result = run_task("sts", VectorEncoder(table), folder, options=EvalOptions(cache=EmbeddingCache()))
    assert result.to_json() == {"task": "sts", "data": str(folder), "split": "test",
                                "metrics": {"spearman": pytest.approx(1.0), "pearson": pytest.approx(1.0)}}  # fmt: skip
    assert result.details.cosine == pytest.approx([1.0, 0.0, math.sqrt(0.5)], abs=1e-6)
    # a prompt named like the task is used by default; an explicit name wins; the cache keys on the prompt
    prompted = {f"sts: {k}": v for k, v in table.items()} | {f"other: {k}": v for k, v in table.items()}
    encoder = VectorEncoder(prompted, prompts={"sts": "sts: ", "other": "other: "})
    run_task("sts", encoder, folder, options=EvalOptions(cache=EmbeddingCache()))
    run_task("sts", encoder, folder, options=EvalOptions(cache=EmbeddingCache(), prompt_name="other"))
    assert all(t.startswith("sts: ") for t in encoder.encode_calls[0])
    assert all(t.startswith("other: ") for t in encoder.encode_calls[1])


def test_tasks_share_the_cache(tmp_path) -> None:
    table, folder = _sts(tmp_path)
    encoder, cache = VectorEncoder(table), EmbeddingCache()
    first = run_task("sts", encoder, folder, options=EvalOptions(cache=cache))
    second = run_task("sts", encoder, folder, options=EvalOptions(cache=cache, batch_size=1))
    assert first.metrics == second.metrics and len(encoder.encode_calls) == 1


def test_retrieval_and_reasoning_on_a_beir_folder(tmp_path) -> None:
    corpus = {"d1": "doc one", "d2": "doc two", "d3": "doc three"}
    queries = {"q1": "find one", "q2": "find two"}
    table = {"doc one": polar(0), "doc two": polar(90), "doc three": polar(45), "q: find one": polar(10),
             "q: find two": polar(80), "find one": polar(80), "find two": polar(10)}  # fmt: skip
    folder = write_beir(tmp_path / "beir", corpus, queries, {"q1": {"d1": 1}, "q2": {"d2": 1}})
    encoder = VectorEncoder(table, prompts={"query": "q: "})
    result = run_task("retrieval", encoder, folder, options=EvalOptions(cache=EmbeddingCache()))
    assert result.metrics["ndcg@10"] == pytest.approx(1.0) and result.metrics["mrr@10"] == pytest.approx(1.0)
    assert {"ndcg@1", "recall@100", "map"} <= set(result.metrics)
    without = run_task("retrieval", encoder, folder, options=EvalOptions(cache=EmbeddingCache(), query_prompt_name=""))
    assert without.metrics["ndcg@1"] == 0.0  # unprompted queries point at the wrong documents

    reasoning = run_task(
        "reasoning", encoder, folder,
        options=EvalOptions(cache=EmbeddingCache(), params={"instruction": False}),
    )  # fmt: skip
    assert reasoning.task == "reasoning" and reasoning.metrics["ndcg@10"] == pytest.approx(1.0)
    assert all(0.0 <= v <= 1.0 for v in reasoning.metrics.values())


def test_reasoning_reports_a_clear_error_when_its_module_is_missing(tmp_path, monkeypatch) -> None:
    folder = write_beir(tmp_path / "beir", {"d1": "x"}, {"q1": "y"}, {"q1": {"d1": 1}})
    monkeypatch.setitem(sys.modules, "contrastkit.evaluation.reasoning", None)  # import fails
    with pytest.raises(ValueError, match="task type 'reasoning' is not available"):
        load_task_data("reasoning", folder)


def test_classification_clustering_and_pairs_from_folders(tmp_path) -> None:
    table = {f"t{i}": polar(90 * (i % 2) + i) for i in range(12)}
    write_tsv(tmp_path / "cls" / "train.tsv", ("text", "label"), [(f"t{i}", i % 2) for i in range(8)])
    write_tsv(tmp_path / "cls" / "test.tsv", ("text", "label"), [(f"t{i}", i % 2) for i in range(8, 12)])
    options = EvalOptions(cache=EmbeddingCache(), params={"k": 1})
    cls = run_task("classification", VectorEncoder(table), tmp_path / "cls", options=options)
    assert cls.metrics == {"accuracy": 1.0, "f1": 1.0, "knn_accuracy": 1.0, "knn_f1": 1.0}
    with pytest.raises(ValueError, match="trains its probes on the 'train' split"):
        load_task_data("classification", tmp_path / "cls", "train")

    clu = run_task("clustering", VectorEncoder(table), tmp_path / "cls", options=EvalOptions(cache=EmbeddingCache()))
    assert clu.metrics["v_measure"] == 1.0 and clu.split == "test"

    write_tsv(tmp_path / "pairs" / "dev.tsv", ("sentence1", "sentence2", "label"),
              [("t0", "t2", 1), ("t0", "t1", 0), ("t3", "t5", 1), ("t4", "t5", 0)])  # fmt: skip
    pairs = run_task("pair-classification", VectorEncoder(table), tmp_path / "pairs", split="dev",
                     options=EvalOptions(cache=EmbeddingCache()))  # fmt: skip
    assert pairs.split == "dev" and pairs.metrics["ap"] == 1.0


@pytest.mark.parametrize(
    ("task", "files", "match"),
    [
        ("sts", {}, r"no such data folder"),
        ("sts", {"dev.tsv": "sentence1\tsentence2\tscore\na\tb\t1\n"}, r"no test.tsv .*splits here: dev"),
        ("sts", {"test.tsv": "sentence1\tscore\na\t1\n"}, r"missing column 'positive' or 'positives' or 'sentence2'"),
        ("sts", {"test.tsv": "sentence1\tsentence2\tscore\na\tb\t1\nc\td\t-\n"}, r"row 2 \(line 3\): wrong type"),
        ("retrieval", {"corpus.jsonl": "", "queries.jsonl": ""}, r"no qrels/test.tsv"),
        ("retrieval", {"queries.jsonl": ""}, r"no corpus.jsonl"),
        ("reasoning", {"corpus.jsonl": ""}, r"no queries.jsonl"),
        ("classification", {"test.tsv": "text\tlabel\na\t1\n"}, r"no train.tsv"),
        ("clustering", {"test.jsonl": '{"text": "a"}\n'}, r"line 1: cannot infer|missing column"),
        ("pair-classification", {"test.tsv": "sentence1\tsentence2\tlabel\na\tb\t7\n"}, r"expected 0 or 1"),
    ],
)
def test_malformed_folders_fail_in_the_load_phase(tmp_path, task, files, match) -> None:
    folder = tmp_path / "data"
    if files:
        folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(DataError, match=match):
        load_task_data(task, folder)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        run_task("sts", VectorEncoder({}), "x", options=EvalOptions(batch_size=0))
