"""Model folders: clear errors for missing / malformed folders, safetensors only, atomic writes."""

from __future__ import annotations

import json
import shutil

import pytest
from encoder_helpers import tiny_bert_folder

from contrastkit.encoders import ModelFolderError, TextEncoder, load_encoder
from contrastkit.encoders.io import ModuleWriter, pooling_config, read_pooling_config, write_json, write_st_folder


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved sentence-transformers folder (Transformer, Pooling, Normalize)."""
    root = tmp_path_factory.mktemp("io")
    TextEncoder.from_folder(tiny_bert_folder(root / "hf")).save(root / "st")
    return root / "st"


@pytest.fixture
def copy(saved, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(saved, target)
    return target


def _error(path) -> str:
    with pytest.raises(ModelFolderError) as info:
        load_encoder(path)
    return str(info.value)


def test_missing_folder_names_path_and_says_nothing_is_downloaded(tmp_path):
    msg = _error(tmp_path / "nope")
    assert str(tmp_path / "nope") in msg and "no such model folder" in msg and "never downloads" in msg


def test_file_instead_of_folder(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert "not a folder" in _error(tmp_path / "f.txt")


def test_malformed_modules_json(copy):
    (copy / "modules.json").write_text("[{oops")
    msg = _error(copy)
    assert str(copy / "modules.json") in msg and "invalid JSON (line 1" in msg


def test_modules_json_not_a_list(copy):
    (copy / "modules.json").write_text("{}")
    assert "expected a non-empty JSON list" in _error(copy)


def test_unknown_module_type(copy):
    modules = json.loads((copy / "modules.json").read_text())
    modules[1]["type"] = "sentence_transformers.models.LSTM"
    (copy / "modules.json").write_text(json.dumps(modules))
    msg = _error(copy)
    assert "module 1" in msg and "'sentence_transformers.models.LSTM' is not supported" in msg


def test_wrong_module_order(copy):
    modules = json.loads((copy / "modules.json").read_text())
    (copy / "modules.json").write_text(json.dumps([modules[0], modules[2], modules[1]]))
    assert "module 1 is Normalize, expected Pooling after Transformer" in _error(copy)


def test_missing_config_json(copy):
    (copy / "config.json").unlink()
    msg = _error(copy)
    assert str(copy) in msg and "no config.json" in msg


def test_malformed_config_json(copy):
    (copy / "config.json").write_text('{"model_type": ')
    assert f"{copy / 'config.json'}: invalid JSON" in _error(copy)


def test_pickle_weights_are_refused(copy):
    (copy / "model.safetensors").rename(copy / "pytorch_model.bin")
    msg = _error(copy)
    assert "pytorch_model.bin" in msg and "safetensors only" in msg


def test_no_weights_at_all(copy):
    (copy / "model.safetensors").unlink()
    assert "no model weights" in _error(copy)


def test_missing_pooling_config(copy):
    (copy / "1_Pooling" / "config.json").unlink()
    assert f"{copy / '1_Pooling' / 'config.json'}: file not found" in _error(copy)


def test_unsupported_pooling_mode(copy):
    write_json(copy / "1_Pooling" / "config.json", {"embedding_dimension": 32, "pooling_mode": "max"})
    assert "pooling mode 'max' is not supported" in _error(copy)


def test_bad_prompts(copy):
    write_json(copy / "config_sentence_transformers.json", {"prompts": {"query": 3}})
    assert "'prompts' must map names to strings" in _error(copy)


def test_broken_tokenizer(copy):
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (copy / name).unlink(missing_ok=True)
    msg = _error(copy)
    assert str(copy) in msg and "tokenizer" in msg


def test_pooling_config_round_trip_old_and_new_keys(tmp_path):
    for mode in ("mean", "cls", "last", "weighted_mean"):
        write_json(tmp_path / "config.json", pooling_config(mode, 7))
        assert read_pooling_config(tmp_path) == (mode, 7)
    write_json(tmp_path / "config.json", {"embedding_dimension": 5, "pooling_mode": "lasttoken"})
    assert read_pooling_config(tmp_path) == ("last", 5)
    write_json(tmp_path / "config.json", {"word_embedding_dimension": 5, "pooling_mode_mean_tokens": True})
    assert read_pooling_config(tmp_path) == ("mean", 5)


def test_failed_write_leaves_no_folder_and_no_temp(tmp_path):
    def boom(folder):
        (folder / "partial.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_st_folder(tmp_path / "m", [ModuleWriter("Transformer", boom)], prompts={})
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_model(saved, tmp_path):
    target = tmp_path / "m"
    shutil.copytree(saved, target)

    def boom(folder):
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_st_folder(target, [ModuleWriter("Transformer", boom)], prompts={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert isinstance(load_encoder(target), TextEncoder)


def test_pickle_files_are_never_written(tmp_path):
    def writes_bin(folder):
        (folder / "pytorch_model.bin").write_bytes(b"x")

    with pytest.raises(RuntimeError, match="safetensors only"):
        write_st_folder(tmp_path / "m", [ModuleWriter("Transformer", writes_bin)], prompts={})
    assert list(tmp_path.iterdir()) == []
