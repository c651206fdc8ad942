"""Malformed content that used to escape the readers as a raw exception is now a located DataError.

Each case names one mechanism: damaged gzip streams, JSON nested past the
parser's recursion limit, integers longer than Python reads from text, ints
beyond float range, labels that look like numbers but are not integers, image
and IDX decoders, and the metadata files of STS and RAR-b folders.
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest

from contrastkit.data import DataError, load_beir, load_examples, load_image
from contrastkit.data.formats import parse_json
from contrastkit.data.images import read_idx
from contrastkit.data.records import integer
from contrastkit.evaluation.multiple_choice import load_multiple_choice
from contrastkit.evaluation.sts import read_sts

PAIRS = b"".join(b'{"anchor": "q%d", "positive": "p%d"}\n' % (i, i) for i in range(200))


def write(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def corrupt_deflate(data: bytes) -> bytes:
    """``data`` gzipped with one byte of the deflate stream changed so that zlib itself fails (not the CRC)."""
    packed = gzip.compress(data, mtime=0)
    for at in range(10, len(packed) - 8):
        damaged = packed[:at] + bytes([packed[at] ^ 0xFF]) + packed[at + 1 :]
        try:
            gzip.decompress(damaged)
        except gzip.zlib.error:
            return damaged
        except (OSError, EOFError):
            continue
    raise AssertionError("no single-byte change breaks the deflate stream")


def test_zlib_error_in_a_gzipped_jsonl_is_located(tmp_path):
    path = write(tmp_path, "t.jsonl.gz", corrupt_deflate(PAIRS))
    with pytest.raises(DataError, match=r"t\.jsonl\.gz, line \d+: not a readable gzip file \(error: ") as info:
        load_examples(path)
    assert info.value.line is not None and info.value.path == str(path)


def test_truncated_gzip_names_the_line_where_reading_stopped(tmp_path):
    path = write(tmp_path, "s.txt.gz", gzip.compress(b"a line\n" * 5000, mtime=0)[:-40])
    with pytest.raises(DataError, match="EOFError") as info:
        load_examples(path)
    assert info.value.line > 1


def test_json_nested_past_the_recursion_limit(tmp_path):
    path = write(tmp_path, "t.jsonl", '{"anchor": "a", "positive": "b"}\n{"anchor": ' + "[" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"line 2: invalid JSON: arrays or objects nested too deeply"):
        load_examples(path)


def test_integer_over_4300_digits_in_json(tmp_path):
    path = write(tmp_path, "g.jsonl", '{"anchor": "a", "positive": "b", "score": ' + "1" * 5000 + "}\n")
    with pytest.raises(DataError, match=r"g\.jsonl, line 1: an integer of 5000 digits \(at most 4300"):
        load_examples(path, kind="graded")


def test_int_score_beyond_float_range(tmp_path):
    path = write(tmp_path, "g.jsonl", '{"anchor": "a", "positive": "b", "score": -' + "9" * 400 + "}\n")
    with pytest.raises(
        DataError, match=r"line 1: wrong value in column 'score': score an int of at least 400 digits is"
    ):
        load_examples(path, kind="graded")


@pytest.mark.parametrize("label", ["--5", "²", "+-3", "٣", "5-"])
def test_number_like_labels_that_are_not_integers(tmp_path, label):
    path = write(tmp_path, "l.csv", f"text,label\nfine,1\nhello,{label}\n")
    with pytest.raises(DataError, match=r"row 2 \(line 3\): wrong value in column 'label': label .* looks like a num"):
        load_examples(path, kind="labelled")


def test_integer_labels_and_names_still_read(tmp_path):
    path = write(tmp_path, "l.tsv", "text\tlabel\na\t-5\nb\t+7\nc\t 12 \nd\tB-PER\ne\t-\n")
    assert [ex.label for ex in load_examples(path, kind="labelled")] == [-5, 7, 12, "B-PER", "-"]
    long = write(tmp_path, "long.tsv", "text\tlabel\na\t" + "1" * 4301 + "\n")
    with pytest.raises(DataError, match=r"row 1 \(line 2\): wrong value in column 'label': label is an integer of"):
        load_examples(long, kind="labelled")


def test_integer_is_what_the_text_visibly_says():
    assert [integer(t) for t in ("7", " -3 ", "+0", "1_000", "²", "٣", "--5", "")] == [
        7,
        -3,
        0,
        None,
        None,
        None,
        None,
        None,
    ]


def test_parse_json_errors_carry_no_location_and_name_the_problem():
    with pytest.raises(DataError, match="at column 7") as info:
        parse_json('{"a": }')
    assert info.value.path is None and info.value.line is None
    assert parse_json("[1, 2.5]") == [1, 2.5]


def test_qrels_grade_that_is_not_an_ascii_integer(tmp_path):
    write(tmp_path, "corpus.jsonl", json.dumps({"_id": "d1", "text": "doc"}) + "\n")
    write(tmp_path, "queries.jsonl", json.dumps({"_id": "q1", "text": "query"}) + "\n")
    for grade, problem in (("²", "expected an integer grade, got '²'"), ("9" * 4400, "an integer of 4400 digits")):
        write(tmp_path, "qrels/test.tsv", f"query-id\tcorpus-id\tscore\nq1\td1\t{grade}\n")
        with pytest.raises(DataError, match=rf"test\.tsv, line 2: wrong \w+ in column 'score': {problem}"):
            load_beir(tmp_path, "test")


def test_idx_with_a_broken_deflate_stream_or_negative_sizes(tmp_path):
    labels = struct.pack(">ii", 2049, 2) + b"\x01\x02"
    with pytest.raises(DataError, match=r"cannot read the IDX file \(error: "):
        read_idx(write(tmp_path, "a.gz", corrupt_deflate(labels * 50)), magic=2049)
    images = struct.pack(">iiii", 2051, -2, -3, 1) + bytes(6)
    with pytest.raises(DataError, match=r"negative size in the IDX header \(-2, -3, 1\)"):
        read_idx(write(tmp_path, "b", images), magic=2051)


BROKEN_PNG = (  # a 6 x 5 PNG whose IDAT chunk got 4 bytes longer than its length says (found by fuzzing)
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x06\x00\x00\x00\x05\x08\x02\x00\x00\x00\xe9:\n\xb1"
    b"\x00\x00\x00\x14IDATx\x9cc\xe4:!\xc7\x80\n\x98\x180\x00;*\xfbl\xd9B\x00YV\x00\xfapR\x8d\xb8"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


def test_image_decoder_failures_of_any_kind_are_data_errors(tmp_path):
    broken = write(tmp_path, "broken.png", BROKEN_PNG)  # PIL raises SyntaxError for it
    with pytest.raises(DataError, match=r"broken\.png: cannot read the image \(SyntaxError: broken PNG file"):
        load_image(broken)


def test_image_text_path_too_long_for_the_file_system(tmp_path):
    path = write(tmp_path, "c.jsonl", json.dumps({"image": "x" * 5000 + ".png", "caption": "a cat"}) + "\n")
    with pytest.raises(DataError, match=r"c\.jsonl, line 1: cannot look up the image file in column 'image'"):
        load_examples(path, kind="image_text")


def test_sts_meta_json_that_cannot_be_used_is_ignored(tmp_path):
    write(tmp_path, "test.tsv", "sentence1\tsentence2\tscore\na\tb\t1\nc\td\t2\n")
    for meta in ("[" * 100_000, '{"subsets": [{"subset": "x", "row_range": [0, 1e999]}]}'):
        write(tmp_path, "meta.json", meta)
        assert read_sts(tmp_path, "test").subsets == ()


def test_rarb_files_with_bad_utf8_deep_json_or_huge_names(tmp_path):
    write(
        tmp_path,
        "corpus.jsonl",
        json.dumps({"_id": "d1", "text": "one"}) + "\n" + json.dumps({"_id": "d2", "text": "two"}),
    )
    write(tmp_path, "queries.jsonl", json.dumps({"_id": "q1", "text": "goal"}) + "\n")
    write(tmp_path, "qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    write(tmp_path, "original/valid.jsonl", json.dumps({"goal": "goal", "sol1": "one", "sol2": "two"}) + "\n")
    labels = write(tmp_path, "original/valid-labels.lst", b"\xff0\n")
    with pytest.raises(DataError, match=r"valid-labels\.lst, line 1: bad UTF-8 at byte 0"):
        load_multiple_choice(tmp_path)
    labels.write_bytes(b"0\n")
    assert [item.answer for item in load_multiple_choice(tmp_path)] == [0]
    write(tmp_path, "meta.json", "[" * 100_000)  # unreadable meta: the originals are found without it
    assert len(load_multiple_choice(tmp_path)) == 1
    write(tmp_path, "meta.json", json.dumps({"original_files": ["x" * 5000 + ".jsonl", "y" * 5000 + ".lst"]}))
    assert load_multiple_choice(tmp_path) is None


def test_parquet_column_name_that_is_not_utf8(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"anchorX": ["a"], "positive": ["b"]}), path)
    path.write_bytes(path.read_bytes().replace(b"anchorX", b"anchor\xf8"))
    with pytest.raises(DataError, match=r"t\.parquet: not a readable Parquet file \(UnicodeDecodeError: "):
        load_examples(path)


def test_saved_hf_dataset_with_a_damaged_state_file(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "ds"
    datasets.Dataset.from_dict({"anchor": ["a"], "positive": ["b"]}).save_to_disk(str(folder))
    state = json.loads((folder / "state.json").read_text())
    del state["_format_type"]
    (folder / "state.json").write_text(json.dumps(state))
    with pytest.raises(DataError, match=r"ds: cannot open the Hugging Face dataset: KeyError: '_format_type'"):
        load_examples(folder, format="hf")


@pytest.mark.parametrize(
    "content, problem",
    [
        ("[" * 100_000, "nested too deeply"),
        ('{"task": "sts", "data": "d", "split": "test", "metrics": {"spearman": ' + "1" * 5000 + "}}", "5000 digits"),
        ('{"task": "sts", "data": "d", "split": "test", "metrics": {"spearman": ' + "1" * 400 + "}}", "too large"),
    ],
)
def test_results_files_of_compare_fail_as_value_errors_naming_the_file(tmp_path, content, problem):
    from contrastkit.evaluation.report import load_results

    path = write(tmp_path, "results.json", content)
    with pytest.raises(ValueError, match=problem) as info:
        load_results(path)
    assert str(path) in str(info.value)


def test_is_file_takes_a_name_the_file_system_refuses_for_a_miss(tmp_path):
    from contrastkit.data.formats import is_file

    assert is_file(write(tmp_path, "a.txt", "x")) and not is_file(tmp_path)
    assert not is_file(tmp_path / ("n" * 5000))  # Path.is_file raises OSError (name too long) here
