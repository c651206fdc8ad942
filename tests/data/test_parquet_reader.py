"""Parquet: column mapping, row indices in errors, wrong types, one row group in memory at a time."""

from __future__ import annotations

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from contrastkit.data import DataError, Example, load_examples, read_examples  # noqa: E402


def write(tmp_path, name: str, columns: dict, **kwargs) -> str:
    path = tmp_path / name
    pq.write_table(pa.table(columns), path, **kwargs)
    return path


def test_column_mapping_lists_and_groups(tmp_path):
    path = write(
        tmp_path,
        "m.parquet",
        {
            "question": ["q1", "q2"],
            "answer": ["a1", "a2"],
            "neg_1": ["n1", "m1"],
            "neg_2": ["n2", "m2"],
            "qid": [10, 11],
            "unused": [[1, 2], [3]],
        },
    )
    columns = {"anchor": "question", "positive": "answer", "negative": ["neg_1", "neg_2"], "group": "qid"}
    assert load_examples(path, columns=columns) == [
        Example("q1", ("a1",), ("n1", "n2"), group="10", source=str(path)),
        Example("q2", ("a2",), ("m1", "m2"), group="11", source=str(path)),
    ]
    labelled = write(tmp_path, "l.parquet", {"text": ["x", "y"], "label": ["pos", "neg"]})
    assert [e.label for e in load_examples(labelled)] == ["pos", "neg"]  # kind inferred from the schema


@pytest.mark.parametrize(
    ("columns", "row", "problem"),
    [
        ({"anchor": ["a", "b", "c"], "positive": ["p", "q", "r"], "score": [1.0, 2.0, float("nan")]}, 3, "not finite"),
        ({"anchor": ["a", "b", None], "positive": ["p", "q", "r"]}, 3, "wrong type in column 'anchor': expected a "),
        ({"anchor": [1, 2], "positive": ["p", "q"]}, 1, "wrong type in column 'anchor': expected a string, got int 1"),
        ({"anchor": ["a", "b"], "positive": [["p"], []]}, 2, "no positive text in column 'positive'"),
        ({"anchor": ["a", "b"], "positive": [["p"], ["q", None]]}, 2, "wrong type in column 'positive[1]'"),
        ({"text": ["a", "b"], "label": [1.0, 2.0]}, 1, "wrong type in column 'label'"),
    ],
)
def test_bad_values_name_the_row(tmp_path, columns, row, problem):
    path = write(tmp_path, "bad.parquet", columns)
    with pytest.raises(DataError) as info:
        load_examples(path)
    assert str(info.value).startswith(f"{path}, row {row}: "), str(info.value)
    assert problem in str(info.value) and info.value.row == row


def test_row_index_counts_across_row_groups(tmp_path):
    anchors = [f"a{i}" for i in range(250)]
    anchors[234] = ""
    path = write(tmp_path, "groups.parquet", {"anchor": anchors, "positive": ["p"] * 250}, row_group_size=100)
    assert pq.ParquetFile(path).num_row_groups == 3
    with pytest.raises(DataError, match=r"row 235: empty text in column 'anchor'"):
        load_examples(path)


def test_schema_problems_and_unreadable_files(tmp_path):
    path = write(tmp_path, "s.parquet", {"anchor": ["a"], "positive": ["p"]})
    with pytest.raises(DataError, match=r"s.parquet: missing column 'negative' .* in the schema"):
        load_examples(path, kind="triplet")
    with pytest.raises(DataError, match=r"missing column 'question' \(mapped to role 'anchor'; present: anchor, pos"):
        load_examples(path, columns={"anchor": "question"})
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"junk.parquet: not a readable Parquet file"):
        load_examples(junk)


def test_one_row_group_in_memory_at_a_time(tmp_path):
    """Arrow memory while streaming stays near one row group, far below the whole decoded file."""
    n, group = 40_000, 2_000
    text = "x" * 200
    path = write(tmp_path, "big.parquet", {"anchor": [f"{i} {text}" for i in range(n)], "positive": ["p"] * n},
                 row_group_size=group, compression="snappy")  # fmt: skip
    meta = pq.read_metadata(path)  # the decoded size, without decoding (a freed table would shift the baseline)
    whole_bytes = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    pool = pa.default_memory_pool()
    base = pool.bytes_allocated()
    peak = 0
    count = 0
    for i, example in enumerate(read_examples(path)):
        count += 1
        peak = max(peak, pool.bytes_allocated() - base)  # every row: a sparse sample can miss the live batch
        if i % 500 == 0:
            assert example.anchor.startswith(f"{i} ")
    assert count == n
    assert 0 < peak < whole_bytes / 5, f"peak Arrow memory {peak} vs {whole_bytes} for the whole table"
