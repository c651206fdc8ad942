"""``contrastkit export FOLDER --onnx [--int8]``: the exported graphs give PyTorch's embeddings (cosine >= 0.999)
through sentence-transformers' ONNX backend; refusals exit 2 and write nothing.

The export tests need the ``export`` extra (optimum-onnx, onnxruntime) in a working state and are skipped
otherwise (optimum-onnx 0.1 does not import with transformers 5: its skip reason says so)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from tests.encoders.encoder_helpers import WORDS, tiny_bert_folder

import contrastkit.encoders.export as export
from contrastkit.cli.main import main
from contrastkit.encoders import load_encoder

TEXTS = [" ".join(WORDS[(i * 5 + k * 3) % len(WORDS)] for k in range(3 + i % 9)) for i in range(12)]
needs_extra = pytest.mark.skipif(
    export.export_unavailable() is not None, reason=f"export extra not usable: {export.export_unavailable()}"
)


@pytest.fixture()
def model(tmp_path):
    """A saved sentence-transformers folder (tiny random BERT, mean pooling, normalised, a query prompt)."""
    load_encoder(tiny_bert_folder(tmp_path / "hf"), prompts={"query": "what is "}).save(tmp_path / "st")
    return tmp_path / "st"


def cosines(folder, **kwargs) -> torch.Tensor:
    from sentence_transformers import SentenceTransformer

    torch_model = SentenceTransformer(str(folder), device="cpu")
    onnx_model = SentenceTransformer(str(folder), backend="onnx", device="cpu", **kwargs)
    pairs = [(m.encode(TEXTS, convert_to_tensor=True), m.encode_query(TEXTS, convert_to_tensor=True)) for m in
             (torch_model, onnx_model)]  # fmt: skip
    return torch.cat([torch.cosine_similarity(a, b) for a, b in zip(*pairs, strict=True)])


@needs_extra
def test_export_onnx_and_int8_match_pytorch(model, capsys) -> None:
    assert main(["export", str(model), "--onnx", "--int8"]) == 0
    names = sorted(p.name for p in (model / "onnx").glob("*.onnx"))
    assert names[0] == "model.onnx" and len(names) == 2 and "int8_avx2" in names[1]
    assert f"wrote {model / 'onnx' / names[1]}" in capsys.readouterr().out
    assert cosines(model).min() >= 0.999
    assert cosines(model, model_kwargs={"file_name": f"onnx/{names[1]}"}).min() >= 0.999


@needs_extra
def test_export_to_another_folder_keeps_the_source_untouched(model, tmp_path) -> None:
    before = sorted(p.relative_to(model) for p in model.rglob("*"))
    assert main(["export", str(model), "--onnx", "--out", str(tmp_path / "exported")]) == 0
    assert sorted(p.relative_to(model) for p in model.rglob("*")) == before
    assert (tmp_path / "exported" / "onnx" / "model.onnx").is_file()
    assert (tmp_path / "exported" / "modules.json").read_text() == (model / "modules.json").read_text()
    assert cosines(tmp_path / "exported").min() >= 0.999


def test_without_the_extra_it_says_what_to_install(model, monkeypatch, capsys) -> None:
    monkeypatch.setattr(export, "export_unavailable", lambda: "ModuleNotFoundError: No module named 'optimum'")
    assert main(["export", str(model), "--onnx"]) == 2
    err = capsys.readouterr().err
    assert "No module named 'optimum'" in err and "pip install 'contrastkit[export]'" in err
    assert not (model / "onnx").exists()


def test_bad_options_are_refused(model, capsys) -> None:
    assert main(["export", str(model), "--int8"]) == 2
    assert "pass --onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(model), "--onnx", "--quantization", "avx3"])
    assert exit_info.value.code == 2 and "invalid choice: 'avx3'" in capsys.readouterr().err
    assert not (model / "onnx").exists()


def test_a_folder_that_is_not_a_text_model_is_refused(tmp_path, capsys) -> None:
    hf = tiny_bert_folder(tmp_path / "hf")  # a plain Hugging Face folder: no modules.json
    assert main(["export", str(hf), "--onnx"]) == 2
    assert "no modules.json" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), "--onnx"]) == 2
    assert "no such model folder" in capsys.readouterr().err
