"""Fuzzing every public reader: mutated inputs either read or raise DataError, never anything else.

The targets (valid seed files and the public function that reads them) and
the mutations (byte flips, truncation, nesting, huge numbers, odd Unicode,
wrong types, broken fields, compression damage) are those of
``bench/fuzz_readers.py``, which runs 100,000 inputs; here hypothesis draws a
bounded, derandomized sample per target so CI stays fast and deterministic,
plus inputs of its own: arbitrary JSON values in place of a record and
arbitrary text fields in a TSV.
"""

from __future__ import annotations

import contextlib
import json
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.bench.bench_helpers import load_bench

from contrastkit.data import DataError, load_examples

FAST = settings(
    max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.fixture(scope="module")
def fuzz() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as mp:
        yield load_bench("fuzz_readers", "fuzz_readers.py", mp)


@pytest.fixture(scope="module")
def targets(fuzz: ModuleType) -> dict[str, object]:
    return {t.name: t for t in fuzz.targets()}


def check(fuzz: ModuleType, target: object, files: dict[str, bytes]) -> None:
    """Read ``files`` through ``target`` in a fresh folder; fail on any exception but DataError."""
    with tempfile.TemporaryDirectory() as tmp:
        fuzz.write_files(Path(tmp), files)
        outcome = fuzz.read_outcome(target, Path(tmp))
    assert outcome is None, f"{target.name}: {outcome}\ninput: { ({k: v[:400] for k, v in files.items()})!r}"


NAMES = [
    *("jsonl", "jsonl-graded", "jsonl-multilabel", "jsonl-gz", "csv-labelled", "tsv-graded", "tsv-quoted"),
    *("text", "text-gz", "parquet", "image-text", "image-png", "image-jpeg", "mnist-idx"),
    *("beir", "sts", "labelled-folder", "pairs-folder", "rarb"),
]


def test_every_target_reads_its_seed_cleanly(fuzz, targets):
    """The seeds are valid input, so a mutation that breaks them tests the error path, not a broken seed."""
    assert set(NAMES) | {"hf-saved", "hf-jsonl"} == set(targets)
    for target in targets.values():
        with tempfile.TemporaryDirectory() as tmp:
            fuzz.write_files(Path(tmp), target.files)
            target.read(Path(tmp))


@pytest.mark.parametrize("name", NAMES)
def test_mutated_inputs_raise_only_data_errors(fuzz, targets, name):
    @FAST
    @given(st.integers(min_value=0, max_value=2**32 - 1))
    def run(seed: int) -> None:
        check(fuzz, targets[name], fuzz.mutated_files(targets[name], random.Random(seed)))

    run()


@pytest.mark.parametrize("name", ["hf-saved", "hf-jsonl"])
def test_mutated_hugging_face_datasets_raise_only_data_errors(fuzz, targets, name):
    pytest.importorskip("datasets")

    @settings(FAST, max_examples=4)
    @given(st.integers(min_value=0, max_value=2**32 - 1))
    def run(seed: int) -> None:
        check(fuzz, targets[name], fuzz.mutated_files(targets[name], random.Random(seed)))

    run()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@FAST
@given(role=st.sampled_from(["anchor", "positive", "negative", "score", "label", "labels", "group"]), value=JSON_VALUES)
def test_any_json_value_in_any_role(tmp_path_factory, role, value):
    folder = tmp_path_factory.mktemp("json")
    record = {"anchor": "a", "positive": "b", role: value}
    path = folder / "t.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    for kind in (None, "graded", "labelled", "multilabel", "triplet"):
        with contextlib.suppress(DataError):
            load_examples(path, kind=kind)


@FAST
@given(fields=st.lists(st.text(max_size=12), min_size=1, max_size=4))
def test_any_text_fields_in_a_tsv_row(tmp_path_factory, fields):
    folder = tmp_path_factory.mktemp("tsv")
    path = folder / "t.tsv"
    path.write_text(
        "sentence1\tsentence2\tscore\n" + "\t".join(fields) + "\n", encoding="utf-8", errors="surrogatepass"
    )
    for kind in ("graded", "pair"):
        with contextlib.suppress(DataError):
            load_examples(path, kind=kind)
