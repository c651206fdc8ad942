"""Readers: formats, column mapping, kinds, located errors, streaming, and the shared data pack."""

from __future__ import annotations

import csv
import gzip
import json
import os
import tracemalloc
import types
from pathlib import Path

import pytest

from contrastkit.data import DataError, Example, load_examples, read_examples
from contrastkit.data.readers import json_records


def shared_data() -> Path:
    env = os.environ.get("CONTRASTKIT_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    if not root.is_dir():
        pytest.skip(f"shared data pack not found at {root} (set CONTRASTKIT_SHARED_DATA)")
    return root


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def jsonl(*records: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


# ---------------------------------------------------------------- formats and mapping
def test_jsonl_triplets_with_lists_and_blank_lines(tmp_path):
    path = write(
        tmp_path,
        "t.jsonl",
        jsonl({"anchor": "a", "positive": "p", "negative": ["n1", "n2"]})
        + "\n   \n"
        + jsonl({"anchor": "b", "positive": ["p1", "p2"], "negative": []}),
    )
    got = load_examples(path)
    assert got == [
        Example("a", ("p",), ("n1", "n2"), source=str(path)),
        Example("b", ("p1", "p2"), (), source=str(path)),
    ]


def test_column_mapping_and_group(tmp_path):
    rows = [{"question": "q1", "answer": "a1", "hard_negative": "h1", "qid": 7, "anchor": "ignored"}]
    path = write(tmp_path, "m.jsonl", jsonl(*rows))
    [ex] = load_examples(path, columns={"anchor": "question", "positive": "answer", "group": "qid"})
    assert (ex.anchor, ex.positives, ex.negatives, ex.group) == ("q1", ("a1",), ("h1",), "7")
    # a column mapped to one role is not also taken by another role's default names
    swapped = write(tmp_path, "s.jsonl", jsonl({"anchor": "doc", "text": "question"}))
    [ex] = load_examples(swapped, columns={"positive": "anchor"})
    assert (ex.anchor, ex.positives) == ("question", ("doc",))


def test_kind_is_inferred_or_enforced(tmp_path):
    path = write(tmp_path, "k.jsonl", jsonl({"text": "hello", "label": 3}, {"text": "bye", "label": "x"}))
    assert [(e.anchor, e.label) for e in load_examples(path)] == [("hello", 3), ("bye", "x")]
    multi = write(tmp_path, "ml.jsonl", jsonl({"text": "t", "labels": [1, "b"]}))
    assert load_examples(multi)[0].labels == (1, "b")
    # kind restricts the roles read: the negative column is ignored for pairs
    trip = write(tmp_path, "tr.jsonl", jsonl({"anchor": "a", "positive": "p", "negative": "n"}))
    assert load_examples(trip, kind="pair")[0].negatives == ()


def test_csv_quoting_and_tsv_without_quoting(tmp_path):
    rows = [["anchor", "positive"], ['he said "hi", then left', "line one\nline two"], ["b", "c"]]
    with (tmp_path / "q.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    got = load_examples(tmp_path / "q.csv")
    assert [(e.anchor, e.positives) for e in got] == [(rows[1][0], (rows[1][1],)), ("b", ("c",))]
    # TSV: a text that starts with a quote is kept verbatim (no quoting)
    tsv = write(tmp_path, "s.tsv", 'sentence1\tsentence2\tscore\n"Quoted" start\tplain\t4.250\nx\ty\t0\n')
    got = load_examples(tsv)
    assert [(e.anchor, e.positives, e.score) for e in got] == [('"Quoted" start', ("plain",), 4.25), ("x", ("y",), 0.0)]


def test_csv_multi_column_negatives_and_int_labels(tmp_path):
    path = write(tmp_path, "n.csv", "q,pos,neg_1,neg_2\nq1,p1,n1,n2\n")
    [ex] = load_examples(path, columns={"anchor": "q", "positive": "pos", "negative": ["neg_1", "neg_2"]})
    assert ex.negatives == ("n1", "n2")
    lab = write(tmp_path, "l.csv", "text,label\nt1,2\nt2,-1\nt3,cat\n")
    assert [e.label for e in load_examples(lab)] == [2, -1, "cat"]


def test_text_gzip_bom_and_several_files(tmp_path):
    txt = write(tmp_path, "s.txt", "\ufefffirst\r\n\nsecond\n")
    assert [e.anchor for e in load_examples(txt)] == ["first", "second"]
    gz = tmp_path / "g.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.write(jsonl({"anchor": "a", "positive": "b"}))
    both = load_examples([txt, gz])
    assert [e.anchor for e in both] == ["first", "second", "a"] and both[2].source == str(gz)


def test_json_records_yields_line_numbers(tmp_path):
    path = write(tmp_path, "r.jsonl", '{"a": 1}\n\n{"b": 2}\n')
    assert list(json_records(path)) == [(1, {"a": 1}), (3, {"b": 2})]


# ---------------------------------------------------------------- located errors
BAD = [
    # (file name, content, place in the message, problem in the message)
    ("a.jsonl", jsonl({"anchor": "a", "positive": "p"}, {"anchor": "b"}), "line 2", "missing column 'positive'"),
    ("b.jsonl", jsonl({"anchor": "a", "positive": "p"}, {"anchor": "  ", "positive": "p"}), "line 2", "empty text"),
    ("c.jsonl", b'{"anchor": "a", "positive": "p"}\n{"anchor": "\xff", "positive": "p"}\n', "line 2", "bad UTF-8"),
    ("d.jsonl", jsonl({"anchor": 5, "positive": "p"}), "line 1", "wrong type in column 'anchor'"),
    ("e.jsonl", jsonl({"anchor": "a", "positive": ["p", 3]}), "line 1", "wrong type in column 'positive[1]'"),
    ("f.jsonl", jsonl({"anchor": "a", "positive": "p"}) + '{"anchor": "a",\n', "line 2", "invalid JSON"),
    ("g.jsonl", jsonl(["anchor", "positive"]), "line 1", "wrong type: expected a JSON object"),
    ("h.jsonl", jsonl({"anchor": "a", "positive": "p", "score": "high"}), "line 1", "wrong type in column 'score'"),
    ("i.jsonl", jsonl({"anchor": "a", "positive": []}), "line 1", "no positive text"),
    ("j.jsonl", jsonl({"text": "a", "label": 1.5}), "line 1", "wrong type in column 'label'"),
    ("k.jsonl", jsonl({"anchor": "a", "positive": "p", "label": 1}), "line 1", "cannot infer the example kind"),
    ("l.csv", "anchor,positive\na,p\n,p\n", "row 2 (line 3)", "empty text in column 'anchor'"),
    ("m.csv", "anchor,positive\na,p\nb\n", "row 2 (line 3)", "wrong number of fields"),
    ("n.csv", "sentence1,sentence2,label\na,p,1\n", "line 1", "cannot infer the example kind"),
    ("o.tsv", b"sentence1\tsentence2\tscore\na\tb\t1\n\xc3(\tb\t2\n", "line 3", "bad UTF-8"),
    ("p.tsv", "sentence1\tsentence2\tscore\na\tb\t1\nc\td\tn/a\n", "row 2 (line 3)", "wrong type in column 'score'"),
    ("q.tsv", "sentence1\tsentence2\tscore\na\tb\tnan\n", "row 1 (line 2)", "not finite"),
    ("r.csv", "", "line 1", "empty file"),
    ("s.csv", 'anchor,positive\n"a,b\n', "row 1 (line 2)", "malformed record: unexpected end of data"),
    ("t.csv", 'anchor,positive\na,b\n"c"d,e\n', "row 2 (line 3)", "malformed record"),
]


@pytest.mark.parametrize(("name", "content", "place", "problem"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_located(tmp_path, name, content, place, problem):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        load_examples(path)
    message = str(info.value)
    assert message.startswith(f"{path}, {place}: "), message
    assert problem in message, message
    assert isinstance(info.value, ValueError) and info.value.path == str(path)


@pytest.mark.parametrize(
    ("kind", "columns", "problem"),
    [
        ("triplet", None, "missing column 'negative' or 'negatives' or 'hard_negative' or 'neg' for role 'negative'"),
        (None, {"anchor": "question"}, "missing column 'question' (mapped to role 'anchor'"),
    ],
)
def test_missing_columns_in_header(tmp_path, kind, columns, problem):
    path = write(tmp_path, "h.csv", "anchor,positive\na,p\n")
    with pytest.raises(DataError, match="line 1") as info:
        load_examples(path, kind=kind, columns=columns)
    assert problem in str(info.value) and "present: anchor, positive" in str(info.value)


def test_bad_arguments_fail_before_iteration(tmp_path):
    path = write(tmp_path, "x.jsonl", jsonl({"anchor": "a"}))
    with pytest.raises(ValueError, match="unknown format"):
        read_examples(path, format="xml")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_examples(write(tmp_path, "x.json", "[]"))
    with pytest.raises(ValueError, match="unknown role"):
        read_examples(path, columns={"query": "q"})
    with pytest.raises(ValueError, match="does not use"):
        read_examples(path, kind="pair", columns={"negative": "n"})
    with pytest.raises(ValueError, match="unknown kind"):
        read_examples(path, kind="quadruplet")
    with pytest.raises(FileNotFoundError):
        read_examples(tmp_path / "missing.jsonl")


def test_parquet_needs_pyarrow_or_reads(tmp_path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(ImportError, match="pip install pyarrow"):
            list(read_examples(write(tmp_path, "x.parquet", b"PAR1")))
        return
    table = pa.table({"anchor": ["a", "b"], "positive": [["p1", "p2"], ["q"]], "score": [1.0, None]})
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"row 2: wrong type in column 'score'"):
        list(read_examples(tmp_path / "t.parquet"))
    assert next(read_examples(tmp_path / "t.parquet", kind="pair")).positives == ("p1", "p2")


# ---------------------------------------------------------------- streaming
def test_reading_is_lazy(tmp_path):
    path = write(tmp_path, "lazy.jsonl", jsonl({"anchor": "a", "positive": "p"}) + "not json\n")
    stream = read_examples(path)
    assert isinstance(stream, types.GeneratorType)
    assert next(stream).anchor == "a"  # the bad second line has not been read yet
    with pytest.raises(DataError, match="line 2: invalid JSON"):
        next(stream)


@pytest.mark.parametrize(
    ("name", "head"), [("big.jsonl", jsonl({"anchor": "a", "positive": "p"})), ("big.tsv", "anchor\tpositive\na\tp\n")]
)
def test_first_example_of_a_file_larger_than_memory(tmp_path, name, head):
    path = write(tmp_path, name, head)
    size = max(1 << 40, 4 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    try:
        with path.open("r+b") as f:
            f.truncate(size)  # sparse: the rest of the file reads as NUL bytes
    except OSError as e:
        pytest.skip(f"no sparse file of {size} bytes here: {e}")
    assert path.stat().st_size == size
    assert next(read_examples(path)) == Example("a", ("p",), source=str(path))


def test_memory_stays_bounded_over_a_whole_file(tmp_path):
    line = json.dumps({"anchor": "x" * 80, "positive": "y" * 80, "negative": "z" * 80}) + "\n"
    path = write(tmp_path, "many.jsonl", line * 10_000)  # ~2.6 MB
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_examples(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < 512 * 1024, f"peak {peak} bytes while streaming a {path.stat().st_size}-byte file"


# ---------------------------------------------------------------- the shared data pack
def test_snli_triplets():
    path = shared_data() / "snli_triplets" / "train.jsonl"
    examples = load_examples(path, kind="triplet")
    assert len(examples) == 5883
    assert all(len(e.positives) == 1 and len(e.negatives) == 1 for e in examples)
    first = json.loads(path.read_text().splitlines()[0])
    assert examples[0] == Example(first["anchor"], (first["positive"],), (first["negative"],), source=str(path))


def test_stsb_dev_graded_pairs_without_quoting():
    path = shared_data() / "stsb" / "dev.tsv"
    examples = load_examples(path, kind="graded")
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    assert len(examples) == len(lines) == 1500
    expected = [line.split("\t") for line in lines]
    assert [(e.anchor, e.positives[0], e.score) for e in examples] == [(a, b, float(s)) for a, b, s in expected]
    assert all(0.0 <= e.score <= 5.0 for e in examples)
