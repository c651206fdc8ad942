"""Reader fuzzing: mutated files through contrastkit's public readers; any exception but DataError is a bug.

Every reader of training and evaluation data promises one failure mode for bad
content: a :class:`~contrastkit.data.errors.DataError` naming the file and the
place. This script checks that promise on mutated copies of small valid
inputs (the *targets*: JSONL, gzipped JSONL, CSV, TSV, text, Parquet, Hugging
Face datasets, image-text pairs, image files, MNIST IDX, BEIR, STS,
labelled-text, labelled-pair and RAR-b multiple-choice folders). Each input
is one target's files with one file mutated (byte flips, insertions,
deletions, truncation, deep nesting, huge numbers, odd Unicode, values of the
wrong type, broken fields, compression damage; one to three mutations
stacked), read through the target's public function. An input that reads
cleanly or raises DataError passes; anything else is counted, and the first
few of each kind are printed with the input that raised it.

Usage::

    .venv/bin/python bench/fuzz_readers.py --inputs 100000 --seed 0 [--json OUT]

The test suite (``tests/data/test_fuzz_readers.py``) drives the same targets
and mutations with hypothesis, a few dozen inputs each.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from contrastkit.data import DataError, load_beir, load_examples, load_image, load_mnist_idx, to_pixel_values

Reader = Callable[[Path], object]


@dataclass(frozen=True)
class Target:
    """A public reader and the valid files it reads (``files``: path relative to a folder -> bytes).

    ``mutable`` are the files a mutation may touch; ``weight`` is the target's
    share of the inputs (slow readers, e.g. Hugging Face ``datasets``, get less).
    """

    name: str
    files: dict[str, bytes]
    mutable: tuple[str, ...]
    read: Reader
    weight: float = 1.0


# ---------------------------------------------------------------- valid inputs
def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


PAIRS = _jsonl([{"anchor": f"question {i}", "positive": f"answer {i}", "negative": [f"wrong {i}"]} for i in range(4)])
GRADED = _jsonl([{"sentence1": f"a {i}", "sentence2": f"b {i}", "score": i * 1.25} for i in range(4)])
LABELLED = _jsonl([{"text": f"text {i}", "labels": [i % 2, "x"], "group": i} for i in range(4)])
CSV = b"text,label\n" + b"".join(b'"t %d, quoted",%d\n' % (i, i % 3) for i in range(4))
TSV = b"sentence1\tsentence2\tscore\n" + b"".join(b"first %d\tsecond %d\t%d.5\n" % (i, i, i) for i in range(4))
TEXT = b"".join(b"sentence number %d\n" % i for i in range(4))
QRELS = b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td1\t0\n"
CORPUS = _jsonl([{"_id": "d1", "title": "T", "text": "doc one"}, {"_id": "d2", "title": "", "text": "doc two"}])
QUERIES = _jsonl([{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second"}])
STS_META = json.dumps({"subsets": [{"subset": "a", "row_range": [0, 2]}, {"subset": "b", "row_range": [2, 4]}]})
PAIRS_TSV = b"sentence1\tsentence2\tlabel\n" + b"".join(b"x %d\ty %d\t%d\n" % (i, i, i % 2) for i in range(4))
LABELLED_TSV = b"text\tlabel\tgroup\n" + b"".join(b"text %d\t%d\tg\n" % (i, i % 2) for i in range(4))


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (6, 5), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (8, 8), 77).save(buffer, format="JPEG")
    return buffer.getvalue()


def _idx(magic: int, shape: tuple[int, ...], data: bytes) -> bytes:
    return gzip.compress(struct.pack(f">i{len(shape)}i", magic, *shape) + data, mtime=0)


def _parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"anchor": ["a", "b", "c"], "positive": ["x", "y", "z"], "score": [0.5, 1.0, 2.0]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=2)
    return buffer.getvalue()


def _saved_dataset() -> dict[str, bytes]:
    import datasets

    with tempfile.TemporaryDirectory() as tmp:
        datasets.disable_progress_bars()
        datasets.Dataset.from_dict({"anchor": ["a", "b"], "positive": ["x", "y"]}).save_to_disk(tmp)
        return {f"ds/{p.name}": p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}


RARB_QUESTIONS = _jsonl([{"goal": "first", "sol1": "doc one", "sol2": "doc two"}])
RARB_CORPUS = _jsonl([{"_id": "d1", "text": "doc one"}, {"_id": "d2", "text": "doc two"}])
RARB_QUERIES = _jsonl([{"_id": "q1", "text": "first"}])
RARB_META = json.dumps({"original_files": ["original/valid.jsonl", "original/valid-labels.lst"]}).encode()


# ---------------------------------------------------------------- the public readers
def _image_text(folder: Path) -> object:
    examples = load_examples(folder / "captions.jsonl", kind="image_text")
    return to_pixel_values([ex.anchor for ex in examples], size=(4, 4), channels=3)


def _sts(folder: Path) -> object:
    from contrastkit.evaluation.sts import read_sts

    return read_sts(folder, "test")


def _labelled(folder: Path) -> object:
    from contrastkit.evaluation.datafiles import read_labelled

    return read_labelled(folder, "test")


def _pairs(folder: Path) -> object:
    from contrastkit.evaluation.datafiles import read_pairs

    return read_pairs(folder, "test")


def _rarb(folder: Path) -> object:
    from contrastkit.evaluation.multiple_choice import load_multiple_choice

    return load_multiple_choice(folder, "test")


def targets() -> list[Target]:
    """Every target, built once (Parquet, image and dataset seeds are written by their libraries)."""
    graded = {"columns": {"anchor": "sentence1", "positive": "sentence2"}, "kind": "graded"}
    return [
        Target("jsonl", {"t.jsonl": PAIRS}, ("t.jsonl",), lambda d: load_examples(d / "t.jsonl")),
        Target("jsonl-graded", {"g.jsonl": GRADED}, ("g.jsonl",), lambda d: load_examples(d / "g.jsonl", **graded)),
        Target(
            "jsonl-multilabel",
            {"m.jsonl": LABELLED},
            ("m.jsonl",),
            lambda d: load_examples(d / "m.jsonl", kind="multilabel"),
        ),
        Target(
            "jsonl-gz",
            {"t.jsonl.gz": gzip.compress(PAIRS, mtime=0)},
            ("t.jsonl.gz",),
            lambda d: load_examples(d / "t.jsonl.gz"),
        ),
        Target("csv-labelled", {"t.csv": CSV}, ("t.csv",), lambda d: load_examples(d / "t.csv", kind="labelled")),
        Target("tsv-graded", {"t.tsv": TSV}, ("t.tsv",), lambda d: load_examples(d / "t.tsv", kind="graded")),
        Target("tsv-quoted", {"t.tsv": TSV}, ("t.tsv",), lambda d: load_examples(d / "t.tsv", quoting=True)),
        Target("text", {"s.txt": TEXT}, ("s.txt",), lambda d: load_examples(d / "s.txt")),
        Target(
            "text-gz",
            {"s.txt.gz": gzip.compress(TEXT, mtime=0)},
            ("s.txt.gz",),
            lambda d: load_examples(d / "s.txt.gz"),
        ),
        Target("parquet", {"t.parquet": _parquet()}, ("t.parquet",), lambda d: load_examples(d / "t.parquet")),
        Target(
            "hf-saved",
            (saved := _saved_dataset()),
            tuple(saved),
            lambda d: load_examples(d / "ds", format="hf"),
            weight=0.01,
        ),
        Target(
            "hf-jsonl",
            {"t.jsonl": PAIRS},
            ("t.jsonl",),
            lambda d: load_examples(d / "t.jsonl", format="hf"),
            weight=0.01,
        ),
        Target(
            "image-text",
            {"captions.jsonl": _jsonl([{"image": "img.png", "caption": "green"}]), "img.png": _png()},
            ("captions.jsonl", "img.png"),
            _image_text,
        ),
        Target("image-png", {"i.png": _png()}, ("i.png",), lambda d: load_image(d / "i.png")),
        Target("image-jpeg", {"i.jpg": _jpeg()}, ("i.jpg",), lambda d: load_image(d / "i.jpg")),
        Target(
            "mnist-idx",
            {
                "t10k-images-idx3-ubyte.gz": _idx(2051, (2, 2, 2), bytes(range(8))),
                "t10k-labels-idx1-ubyte.gz": _idx(2049, (2,), b"\x03\x07"),
            },
            ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
            load_mnist_idx,
        ),
        Target(
            "beir",
            {"corpus.jsonl": CORPUS, "queries.jsonl": QUERIES, "qrels/test.tsv": QRELS},
            ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"),
            lambda d: load_beir(d, "test"),
        ),
        Target("sts", {"test.tsv": TSV, "meta.json": STS_META.encode()}, ("test.tsv", "meta.json"), _sts),
        Target("labelled-folder", {"test.tsv": LABELLED_TSV}, ("test.tsv",), _labelled),
        Target("pairs-folder", {"test.tsv": PAIRS_TSV}, ("test.tsv",), _pairs),
        Target(
            "rarb",
            {
                "corpus.jsonl": RARB_CORPUS,
                "queries.jsonl": RARB_QUERIES,
                "qrels/test.tsv": b"query-id\tcorpus-id\tscore\nq1\td1\t1\n",
                "meta.json": RARB_META,
                "original/valid.jsonl": RARB_QUESTIONS,
                "original/valid-labels.lst": b"0\n",
            },
            ("original/valid.jsonl", "original/valid-labels.lst", "meta.json", "queries.jsonl"),
            _rarb,
        ),
    ]


# ---------------------------------------------------------------- mutations
HUGE_NUMBERS = ("9" * 309, "1" * 400, "7" * 4301, "-" + "3" * 5000, "1e999", "-1e400", "NaN", "Infinity", "1e-400",
                "0x10", "1_000", "--5", "+-3", "²", "٣", "1.5e308", "4.9e-324", "-0", "00012")  # fmt: skip
ODD_TEXT = ("²", "--5", "\u202e", "\u2028", "\u200b", "\ufeff", "\x00", "\udcff", "e\u0301", "\U0001f600", "ǅ",
            "\\u0000", "\\ud800", '"', "\t", "\r", "\n", ",", "\\", "", " ", "null", "[]", "{}")  # fmt: skip
WRONG_VALUES = ("null", "true", "[]", "{}", "1.5", '""', '" "', "[null]", '[""]', '{"a": 1}', "[[[]]]", "-1", "0")
RAW_BYTES = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x00", b"\x1f\x8b", b"\r", b"\x85", b"PAR1")


def _pick_span(data: bytes, rng: random.Random) -> tuple[int, int]:
    start = rng.randrange(len(data) + 1)
    return start, min(len(data), start + rng.choice((1, 2, 4, 16, 64)))


def _flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _insert(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    payload = (
        rng.choice(RAW_BYTES) if rng.random() < 0.5 else bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    )
    return data[:at] + payload + data[at:]


def _delete(data: bytes, rng: random.Random) -> bytes:
    start, end = _pick_span(data, rng)
    return data[:start] + data[end:]


def _duplicate(data: bytes, rng: random.Random) -> bytes:
    start, end = _pick_span(data, rng)
    return data[:end] + data[start:end] * rng.choice((1, 2, 100)) + data[end:]


def _value_spans(text: str) -> list[tuple[int, int]]:
    """Spans of JSON-ish values and delimited fields: quoted strings, numbers, and text between separators."""
    spans, i = [], 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            spans.append((i, min(j + 1, len(text))))
            i = j + 1
        elif c.isalnum() or c in "-+.":
            j = i
            while j < len(text) and text[j] not in ',\t\n:"[]{} ':
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


def _replace_value(data: bytes, rng: random.Random) -> bytes:
    """One value or field replaced by a huge number, odd text, a value of the wrong type or deep nesting."""
    text = data.decode("utf-8", errors="surrogateescape")
    spans = _value_spans(text)
    if not spans:
        return _insert(data, rng)
    start, end = rng.choice(spans)
    kind = rng.randrange(4)
    if kind == 0:
        new = rng.choice(HUGE_NUMBERS)
    elif kind == 1:
        odd = rng.choice(ODD_TEXT)
        new = json.dumps(odd) if text[start] == '"' and rng.random() < 0.5 else odd
    elif kind == 2:
        new = rng.choice(WRONG_VALUES)
    else:
        depth = rng.choice((10, 500, 5000, 100_000))
        new = rng.choice("[{") * depth if rng.random() < 0.5 else "[" * depth + "1" + "]" * depth
    return (text[:start] + new + text[end:]).encode("utf-8", errors="surrogateescape")


def _lines(data: bytes, rng: random.Random) -> bytes:
    """Line-level damage: a line dropped, doubled, swapped, emptied, or a separator added or removed."""
    lines = data.split(b"\n")
    i = rng.randrange(len(lines))
    op = rng.randrange(6)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[i])
    elif op == 2:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 3:
        lines[i] = b""
    elif op == 4:
        lines[i] += rng.choice((b"\t", b",", b'"', b"\t\t", b"\r"))
    else:
        lines[i] = lines[i].replace(rng.choice((b"\t", b",", b'"', b":")), b"", 1)
    return b"\n".join(lines)


CONTENT_MUTATIONS = (_flip, _truncate, _insert, _delete, _duplicate, _replace_value, _replace_value, _lines)


def mutate(name: str, data: bytes, rng: random.Random) -> bytes:
    """``data`` (the content of file ``name``) with one to three mutations; a ``.gz`` file is damaged
    either as compressed bytes (CRC, header, truncation, deflate blocks) or in its content, recompressed."""
    if name.endswith(".gz") and rng.random() < 0.5:
        for _ in range(rng.choice((1, 1, 2))):
            data = rng.choice((_flip, _truncate, _insert, _delete))(data, rng)
        return data
    gz = name.endswith(".gz")
    content = gzip.decompress(data) if gz else data
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        content = rng.choice(CONTENT_MUTATIONS)(content, rng)
    return gzip.compress(content, mtime=0) if gz else content


# ---------------------------------------------------------------- running
def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` under ``folder`` (replacing what is there)."""
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def read_outcome(target: Target, folder: Path) -> str | None:
    """None when ``target.read(folder)`` succeeds or raises DataError; else the exception's type and message."""
    try:
        target.read(folder)
    except DataError:
        return None
    except Exception as err:  # every other exception is the finding
        return f"{type(err).__name__}: {str(err)[:200]}"
    return None


def mutated_files(target: Target, rng: random.Random) -> dict[str, bytes]:
    """The target's files with one mutable file mutated."""
    name = rng.choice(target.mutable)
    return {**target.files, name: mutate(name, target.files[name], rng)}


def fuzz(inputs: int, seed: int, *, show: int = 3) -> dict[str, object]:
    """Run ``inputs`` mutated inputs (targets drawn by weight, seeded); counts of failures by target and kind."""
    rng = random.Random(seed)
    all_targets = targets()
    weights = [t.weight for t in all_targets]
    per_target: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    examples: dict[str, str] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(inputs):
            target = rng.choices(all_targets, weights)[0]
            per_target[target.name] += 1
            folder = Path(tmp) / target.name
            files = mutated_files(target, rng)
            write_files(folder, files)
            outcome = read_outcome(target, folder)
            if outcome is not None:
                kind = f"{target.name}: {outcome.split(':')[0]}"
                failures[kind] += 1
                if failures[kind] <= show:
                    print(f"[{n}] {target.name}: {outcome}", file=sys.stderr)
                    examples.setdefault(kind, repr({k: v[:300] for k, v in files.items()}))
            if (n + 1) % 10_000 == 0:
                print(f"{n + 1} inputs, {sum(failures.values())} non-DataError so far", file=sys.stderr)
    return {
        "inputs": inputs,
        "seed": seed,
        "seconds": round(time.perf_counter() - start, 1),
        "non_data_errors": sum(failures.values()),
        "by_kind": dict(failures),
        "per_target": dict(per_target),
        "examples": examples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="number of mutated inputs (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input stream (default 0)")
    parser.add_argument("--json", dest="json_out", help="write the counts as JSON here")
    args = parser.parse_args()
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()  # its "Failed to load JSON" lines for inputs that are meant to fail
    except ImportError:
        traceback.print_exc()
    report = fuzz(args.inputs, args.seed)
    summary = {k: v for k, v in report.items() if k != "examples"}
    print(json.dumps(summary, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if report["non_data_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
