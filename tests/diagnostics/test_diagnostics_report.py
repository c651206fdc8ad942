"""write_report: the JSON parses, the Markdown has its tables, the PNGs are real images."""

import json

import pytest
from diag_helpers import PAIRS, SENTENCES, tiny_encoder
from PIL import Image

from contrastkit.diagnostics.analyze import AnalyzeSettings, analyze
from contrastkit.diagnostics.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_encoder(tmp_path_factory.mktemp("bert"))


def test_full_report_files(encoder, tmp_path):
    scores = [float(i % 6) for i in range(len(PAIRS))]
    settings = AnalyzeSettings(min_contexts=2, hubness_k=3, n_buckets=2)
    report = analyze(encoder, pairs=PAIRS, scores=scores, settings=settings, name="tiny")
    files = write_report(report, tmp_path / "out" / "nested")
    data = json.loads(files.json.read_text())
    assert data["model"] == "tiny" and data["scalars"] == pytest.approx(report.scalars())
    assert len(data["layers"]["layers"]) == 3 and data["pairs"]["n_pairs"] == len(PAIRS)
    assert data["settings"]["min_contexts"] == 2 and len(data["token_classes"]) == 3
    assert sorted(p.name for p in files.plots) == [
        "layer_anisotropy.png",
        "length_buckets.png",
        "similarity_histogram.png",
    ]
    for png in files.plots:
        assert png.read_bytes()[:8] == PNG_MAGIC
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.size[0] > 200 and image.size[1] > 200
    md = files.markdown.read_text()
    assert md.startswith("# Embedding diagnostics: tiny")
    for needle in ("| measure | value |", "## Pairs", "## Per layer", "## Token classes", "![layer_anisotropy]"):
        assert needle in md
    assert not list(files.json.parent.glob("*.tmp"))


def test_report_without_pairs_or_layers(encoder, tmp_path):
    report = analyze(encoder, SENTENCES, settings=AnalyzeSettings(token_level=False, hubness_k=3))
    files = write_report(report, tmp_path)
    assert files.plots == [] and json.loads(files.json.read_text())["layers"] is None
    assert "token-level measures not requested" in files.markdown.read_text()
