"""A model folder's own Python code never runs unless the caller sets ``trust_remote_code``.

Each folder below carries a module that writes a marker file when it is
imported, and stdin answers "y" to any prompt: without the flag the marker
must never appear, and the error names the file and the flag.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from encoder_helpers import tiny_bert_folder

from contrastkit.cli import main as cli_main
from contrastkit.encoders import DecoderEncoder, ModelFolderError, TextEncoder, load_encoder
from contrastkit.encoders.io import check_remote_code, hf_kwargs

_MODULE = "ck_custom_code"


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    return tiny_bert_folder(tmp_path_factory.mktemp("remote") / "hf")


def _custom_folder(plain: Path, tmp_path: Path, *, config: dict | None = None, tokenizer: dict | None = None) -> Path:
    """A copy of ``plain`` with a marker-writing module and the given edits to its JSON files."""
    folder = tmp_path / "model"
    shutil.copytree(plain, folder)
    marker = tmp_path / "MARKER"
    (folder / f"{_MODULE}.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    for name, edits in (("config.json", config), ("tokenizer_config.json", tokenizer)):
        if edits:
            data = json.loads((folder / name).read_text())
            data.update(edits)
            (folder / name).write_text(json.dumps(data))
    return folder


_AUTO_MAP = {"AutoConfig": f"{_MODULE}.Config", "AutoModel": f"{_MODULE}.Model"}
FOLDERS = {
    "unknown model_type + auto_map": {"config": {"model_type": "ck-custom", "auto_map": _AUTO_MAP}},
    "known model_type + auto_map": {"config": {"auto_map": _AUTO_MAP}},
    "unknown model_type + code": {"config": {"model_type": "ck-custom"}},
    "tokenizer auto_map": {"tokenizer": {"auto_map": {"AutoTokenizer": [f"{_MODULE}.Tok", None]}}},
}
LOADERS: dict[str, Callable[[Path], object]] = {
    "load_encoder": load_encoder,
    "kind=decoder": lambda p: load_encoder(p, kind="decoder"),
    "kind=static": lambda p: load_encoder(p, kind="static"),
    "TextEncoder.from_folder": TextEncoder.from_folder,
    "DecoderEncoder.from_folder": DecoderEncoder.from_folder,
}


@pytest.mark.parametrize("case", FOLDERS)
@pytest.mark.parametrize("loader", LOADERS)
def test_custom_code_is_refused_and_never_imported(plain, tmp_path, monkeypatch, case, loader):
    folder = _custom_folder(plain, tmp_path, **FOLDERS[case])
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 4))
    with pytest.raises(ModelFolderError) as info:
        LOADERS[loader](folder)
    assert not (tmp_path / "MARKER").exists()
    msg = str(info.value)
    named = "tokenizer_config.json" if case == "tokenizer auto_map" else "config.json"
    assert str(folder / named) in msg
    assert "trust_remote_code=True" in msg and "model.trust_remote_code" in msg


def test_cli_with_stdin_yes_never_runs_the_code(plain, tmp_path, monkeypatch, capsys):
    """The path a user takes: the eval command on a terminal that answers "y"; exit 2, no traceback."""
    folder = _custom_folder(plain, tmp_path, config={"model_type": "ck-custom", "auto_map": _AUTO_MAP})
    data = tmp_path / "sts"
    data.mkdir()
    (data / "test.tsv").write_text("sentence1\tsentence2\tscore\nthe cat\ta cat\t4.0\nhello\tworld\t1.0\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 4))
    status = cli_main.main(["eval", str(folder), "--task", "sts", "--data", str(data)])
    err = capsys.readouterr().err
    assert not (tmp_path / "MARKER").exists()
    assert status == 2
    assert str(folder / "config.json") in err and "trust_remote_code" in err


def test_plain_folder_passes_and_the_flag_is_always_explicit(plain):
    check_remote_code(plain, trust_remote_code=False)
    assert hf_kwargs(False)["trust_remote_code"] is False
    assert hf_kwargs(True)["trust_remote_code"] is True


def test_the_flag_lets_the_check_through(plain, tmp_path):
    folder = _custom_folder(plain, tmp_path, config={"model_type": "ck-custom", "auto_map": _AUTO_MAP})
    check_remote_code(folder, trust_remote_code=True)  # the caller opted in: transformers decides
    with pytest.raises(ModelFolderError):
        check_remote_code(folder, trust_remote_code=False)


def test_onnx_export_refuses_the_folder_before_loading_it(plain, tmp_path, monkeypatch):
    from contrastkit.encoders.export import export_onnx

    folder = _custom_folder(plain, tmp_path, config={"model_type": "ck-custom", "auto_map": _AUTO_MAP})
    st = tmp_path / "st"
    st.mkdir()
    (st / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}])
    )
    for item in folder.iterdir():
        shutil.copy(item, st / item.name)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 4))
    with pytest.raises(ModelFolderError, match="trust_remote_code"):
        export_onnx(st, tmp_path / "out")
    assert not (tmp_path / "MARKER").exists() and not (tmp_path / "out").exists()
