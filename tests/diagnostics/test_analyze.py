"""analyze() end to end on a tiny random BERT: every section present, sample sizes honoured, reproducible."""

import math
import zlib

import pytest
import torch
from diag_helpers import PAIRS, SENTENCES, tiny_encoder

from contrastkit.diagnostics.analyze import AnalyzeSettings, analyze
from contrastkit.encoders.base import Encoder


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_encoder(tmp_path_factory.mktemp("bert"))


def _finite(d):
    return all(math.isfinite(v) for v in d.values())


def test_pairs_with_scores(encoder):
    scores = [float(i % 6) for i in range(len(PAIRS))]
    settings = AnalyzeSettings(n_anisotropy=5, min_contexts=2, hubness_k=3, n_buckets=2)
    report = analyze(encoder, pairs=PAIRS, scores=scores, settings=settings, name="tiny")
    assert report.model == "tiny" and report.embedding.n == len(SENTENCES)  # the distinct pair texts
    assert report.pairs is not None and report.pairs.n_pairs == len(PAIRS) and report.pairs.n_positive == 4
    assert report.pairs.spearman is not None and report.pairs.length_buckets
    assert report.layers is not None and len(report.layers.layers) == 3 and report.layers.anisotropy_sample == 5
    assert report.layers.sentences == len(PAIRS)  # the first sentences, as the thesis's reference set
    assert report.token_classes is not None and len(report.token_classes) == 3
    scalars = report.scalars()
    assert {"mean_cosine", "isotropy", "effective_rank", "uniformity", "hubness", "alignment", "auc"} <= set(scalars)
    assert {"spearman", "token_anisotropy", "adjusted_self_similarity", "adjusted_intra_similarity"} <= set(scalars)
    assert _finite(scalars) and set(report.seconds) == {"encode", "embedding", "pairs", "token_level"}
    again = analyze(encoder, pairs=PAIRS, scores=scores, settings=settings, name="tiny")
    assert again.scalars() == scalars


def test_texts_with_labels_and_sample_caps(encoder):
    labels = [i % 3 for i in range(len(SENTENCES))]
    settings = AnalyzeSettings(max_texts=8, uniformity_sample=5, max_token_sentences=6, min_contexts=2)
    report = analyze(encoder, SENTENCES, labels=labels, settings=settings)
    assert report.pairs is None and report.embedding.n == 8 and report.embedding.uniformity_n == 5
    assert report.embedding.tolerance is not None and report.layers.sentences == 6


class _Hashing(Encoder):
    """A non-transformer encoder: token-level measures are skipped, the rest runs."""

    @property
    def dim(self) -> int:
        return 16

    def tokenize(self, texts, *, prompt=None):
        return {
            "x": torch.stack(
                [
                    torch.tensor([float(zlib.crc32(w.encode()) % 7) for w in (t + " pad" * 16).split()[:16]])
                    for t in texts
                ]
            )
        }

    def forward(self, features):
        return torch.nn.functional.normalize(features["x"] + 0.1, dim=-1)


def test_non_transformer_encoders_skip_the_token_level():
    report = analyze(_Hashing(), SENTENCES, settings=AnalyzeSettings(hubness_k=3))
    assert report.layers is None and report.token_classes is None
    assert "not a transformer TextEncoder" in report.notes[0]
    off = analyze(_Hashing(), SENTENCES, settings=AnalyzeSettings(token_level=False, hubness_k=3))
    assert off.notes == ["token-level measures not requested"]


def test_input_errors(encoder):
    with pytest.raises(ValueError, match="scores"):
        analyze(encoder, pairs=PAIRS, scores=[1.0])
    with pytest.raises(ValueError, match="labels"):
        analyze(encoder, SENTENCES, labels=[1])
    with pytest.raises(ValueError, match="at least 2"):
        analyze(encoder, ["only one"])
