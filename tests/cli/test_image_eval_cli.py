"""``contrastkit eval`` on the image task types with tiny saved pixel / image models: JSON layout, errors exit 2."""

import json

import pytest

from contrastkit.cli import main as cli_main
from contrastkit.data.render import Renderer
from contrastkit.encoders.pixel import build_image_encoder, build_pixel_encoder

TINY = {"hidden": 32, "layers": 1, "heads": 2}


@pytest.fixture(scope="module")
def image_model(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("models") / "image"
    build_image_encoder(image_size=(8, 8), patch_size=4, channels=1, **TINY).save(folder)
    return str(folder)


@pytest.fixture(scope="module")
def pixel_model(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("models") / "pixel"
    build_pixel_encoder(renderer=Renderer(width=128), **TINY).save(folder)
    return str(folder)


def test_image_classification_on_digits(image_model, tmp_path, capsys) -> None:
    out = tmp_path / "digits.json"
    status = cli_main.main(["eval", image_model, "--task", "image-classification", "--data", "digits",
                            "--option", "limit=300", "--option", "n_shot=4", "--option", "n_experiments=2",
                            "--json", str(out)])  # fmt: skip
    assert status == 0
    obj = json.loads(out.read_text())
    assert list(obj) == ["task", "data", "split", "metrics"]
    assert (obj["task"], obj["data"], obj["split"]) == ("image-classification", "digits", "test")
    assert set(obj["metrics"]) == {"accuracy", "accuracy_std", "knn_accuracy", "main_score"}
    assert 0.0 <= obj["metrics"]["knn_accuracy"] <= 1.0
    assert "image-classification on digits (test):" in capsys.readouterr().out


def test_visual_sts_with_a_text_model_side_by_side(pixel_model, tmp_path) -> None:
    data = tmp_path / "sts"
    data.mkdir()
    rows = ["sentence1\tsentence2\tscore", "a cat sat\ta cat sits\t4.5", "the dog ran\ta red car\t0.5",
            "hello world\thello there world\t4.0", "rain falls\tsun shines\t1.0"]  # fmt: skip
    (data / "test.tsv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out.json"
    status = cli_main.main(["eval", pixel_model, "--task", "visual-sts", "--data", str(data),
                            "--option", f"text_model={pixel_model}", "--json", str(out)])  # fmt: skip
    assert status == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert set(metrics) == {"spearman", "pearson", "text_spearman", "text_pearson", "main_score"}
    assert metrics["text_spearman"] == pytest.approx(metrics["spearman"])  # the same model on both sides


def test_image_task_errors_exit_2_and_write_nothing(image_model, tmp_path, capsys) -> None:
    out = tmp_path / "out.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    # a folder without MNIST files fails before the model is loaded (the model path does not exist)
    assert cli_main.main(["eval", str(tmp_path / "no-model"), "--task", "image-clustering", "--data", str(empty),
                          "--json", str(out)]) == 2  # fmt: skip
    assert "no t10k-images-idx3-ubyte.gz" in capsys.readouterr().err
    assert cli_main.main(["eval", image_model, "--task", "zero-shot-classification", "--data", "digits",
                          "--option", "limit=50", "--json", str(out)]) == 2  # fmt: skip
    assert "needs a text tower" in capsys.readouterr().err
    assert cli_main.main(["eval", image_model, "--task", "image-classification", "--data", "digits",
                          "--split", "train"]) == 2  # fmt: skip
    assert "use split 'test'" in capsys.readouterr().err
    assert not out.exists()
