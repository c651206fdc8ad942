"""BEIR folders: loading, examples, located errors, and SciFact from the shared data pack."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from contrastkit.data import BeirDataset, DataError, Example, load_beir
from contrastkit.data.beir import read_qrels


def shared_data() -> Path:
    env = os.environ.get("CONTRASTKIT_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    if not root.is_dir():
        pytest.skip(f"shared data pack not found at {root} (set CONTRASTKIT_SHARED_DATA)")
    return root


CORPUS = [
    {"_id": "d1", "title": "Title one", "text": "Body one."},
    {"_id": 2, "title": "", "text": "Body two."},
    {"_id": "d3", "text": "Body three."},
    {"_id": "d4", "title": "Only a title", "text": ""},
]
QUERIES = [{"_id": "q1", "text": "first?"}, {"_id": "q2", "text": "second?"}, {"_id": "q3", "text": "third?"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td3\t1\nq1\td1\t2\nq2\t2\t0\nq1\td4\t0\n"


def make_folder(root: Path, corpus=CORPUS, queries=QUERIES, qrels=QRELS, split="test") -> Path:
    folder = root / "toy"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        content = rows if isinstance(rows, (str, bytes)) else "".join(json.dumps(r) + "\n" for r in rows)
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    (folder / "qrels" / f"{split}.tsv").write_bytes(qrels.encode() if isinstance(qrels, str) else qrels)
    return folder


def test_load_and_examples(tmp_path):
    data = load_beir(make_folder(tmp_path))
    assert data.corpus == {"d1": "Title one Body one.", "2": "Body two.", "d3": "Body three.", "d4": "Only a title"}
    assert data.queries == {"q1": "first?", "q2": "second?"}  # q3 is not judged in this split
    assert data.qrels == {"q1": {"d3": 1, "d1": 2, "d4": 0}, "q2": {"2": 0}}
    assert list(data.qrels["q1"]) == ["d3", "d1", "d4"]  # file order
    assert data.to_examples() == [Example("first?", ("Body three.", "Title one Body one."), group="q1", source="toy")]
    assert data.unanswered() == ["q2"]
    assert [e.positives for e in data.to_examples(min_score=2)] == [("Title one Body one.",)]
    assert len(data.to_examples(min_score=0)) == 2


def test_titles_can_be_ignored(tmp_path):
    corpus = CORPUS[:3]
    data = load_beir(make_folder(tmp_path, corpus=corpus, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\n"), title=False)
    assert data.corpus["d1"] == "Body one."


BAD = [
    # (case, folder contents, file and line in the message, problem in the message)
    ("qrels query", {"qrels": QRELS + "q9\td1\t1\n"}, "qrels/test.tsv, line 6", "query-id 'q9' is not in queries"),
    ("qrels doc", {"qrels": QRELS + "q1\td9\t1\n"}, "qrels/test.tsv, line 6", "corpus-id 'd9' is not in corpus"),
    ("qrels grade", {"qrels": QRELS + "q1\td2\thigh\n"}, "qrels/test.tsv, line 6", "expected an integer grade"),
    ("qrels fields", {"qrels": QRELS + "q1 d2 1\n"}, "qrels/test.tsv, line 6", "expected 3 tab-separated fields"),
    ("qrels header", {"qrels": "q1\td1\t1\n"}, "qrels/test.tsv, line 1", "expected the header"),
    ("qrels duplicate", {"qrels": QRELS + "q1\td1\t1\n"}, "qrels/test.tsv, line 6", "duplicate judgement"),
    ("qrels utf8", {"qrels": QRELS.encode() + b"q1\t\xe9\t1\n"}, "qrels/test.tsv, line 6", "bad UTF-8"),
    ("corpus id", {"corpus": [*CORPUS, {"text": "x"}]}, "corpus.jsonl, line 5", "missing column '_id'"),
    ("corpus dup", {"corpus": [*CORPUS, {"_id": "d1", "text": "x"}]}, "corpus.jsonl, line 5", "duplicate _id 'd1'"),
    ("corpus empty", {"corpus": [*CORPUS, {"_id": "d5", "text": " "}]}, "corpus.jsonl, line 5", "empty text"),
    ("corpus type", {"corpus": [{"_id": "d1", "text": ["x"]}]}, "corpus.jsonl, line 1", "wrong type"),
    ("corpus json", {"corpus": '{"_id": "d1", "text": "x"}\n{"_id": \n'}, "corpus.jsonl, line 2", "invalid JSON"),
    ("query empty", {"queries": [{"_id": "q1", "text": ""}]}, "queries.jsonl, line 1", "empty text in column"),
]


@pytest.mark.parametrize(("what", "kwargs", "where", "problem"), BAD, ids=[case[0] for case in BAD])
def test_bad_folders_are_located(tmp_path, what, kwargs, where, problem):
    folder = make_folder(tmp_path, **kwargs)
    with pytest.raises(DataError) as info:
        load_beir(folder)
    message = str(info.value)
    assert message.startswith(f"{folder}/{where}: "), message
    assert problem in message, message


def test_missing_files_and_splits(tmp_path):
    folder = make_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no qrels/dev.tsv \(splits: test\)"):
        load_beir(folder, split="dev")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"no queries\.jsonl"):
        load_beir(folder)


def test_dataset_built_by_hand_is_checked():
    with pytest.raises(DataError, match="corpus-id 'd2'"):
        BeirDataset(corpus={"d1": "x"}, queries={"q": "y"}, qrels={"q": {"d2": 1}})
    with pytest.raises(DataError, match="query-id 'p'"):
        BeirDataset(corpus={"d1": "x"}, queries={"q": "y"}, qrels={"p": {"d1": 1}})


def test_read_qrels_without_id_checks(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("query-id\tcorpus-id\tscore\r\na\tb\t1\r\n\r\n")
    assert read_qrels(path) == {"a": {"b": 1}}


def test_scifact():
    folder = shared_data() / "scifact"
    test = load_beir(folder, "test")
    assert (len(test.corpus), len(test.queries), sum(map(len, test.qrels.values()))) == (5183, 300, 339)
    train = load_beir(folder, "train")
    assert (len(train.queries), sum(map(len, train.qrels.values()))) == (809, 919)
    assert not set(test.queries) & set(train.queries)
    examples = train.to_examples()
    assert len(examples) == 809 and sum(len(e.positives) for e in examples) == 919
    first_query = json.loads((folder / "queries.jsonl").read_text().splitlines()[0])
    first_doc = json.loads((folder / "corpus.jsonl").read_text().splitlines()[0])
    assert train.queries[first_query["_id"]] == first_query["text"]  # query 0 is a train query
    assert test.corpus[first_doc["_id"]] == f"{first_doc['title']} {first_doc['text']}"
    ex = next(e for e in examples if e.group == first_query["_id"])
    assert set(ex.positives) == {train.corpus[d] for d, g in train.qrels[first_query["_id"]].items() if g >= 1}
