"""``contrastkit eval --option``: an unknown option lists the task's valid ones (before the data or the model is
read), and each task's declared options are exactly the keyword arguments its runner passes on."""

from __future__ import annotations

import inspect

import pytest

from contrastkit.cli.main import main
from contrastkit.evaluation.tasks import EvalOptions, check_params, get_task, run_task


@pytest.mark.parametrize(
    "task, option, listed",
    [
        ("sts", "foo=1", "task sts: unknown option(s) foo; valid options: none (it takes no options)"),
        ("classification", "kk=3", "task classification: unknown option(s) kk; valid options: methods, k, "
         "samples_per_label, n_experiments, max_iter, seed"),
        ("image-clustering", "n_init=3", "task image-clustering: unknown option(s) n_init; valid options: limit, "
         "test_fraction, split_seed, kmeans_batch_size, seed"),
    ],
)  # fmt: skip
def test_unknown_option_lists_the_valid_ones_before_anything_is_read(tmp_path, capsys, task, option, listed) -> None:
    missing = tmp_path / "nothing-here"  # neither the data nor the model exists: the options are checked first
    assert main(["eval", str(missing), "--task", task, "--data", str(missing), "--option", option]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"contrastkit eval: error: {listed}"
    assert "got an unexpected keyword argument" not in err and "Traceback" not in err


def test_run_task_checks_python_params_too() -> None:
    with pytest.raises(ValueError, match=r"task retrieval: unknown option\(s\) k; valid options: k_values"):
        run_task("retrieval", object(), "unused", options=EvalOptions(params={"k": 5}))
    check_params("retrieval", {"k_values": [1, 10]})  # a valid one passes


def _keywords(func: object, supplied: set[str]) -> set[str]:
    """Keyword-only parameters of ``func`` the runner leaves to ``params`` (``cache`` is a Python object)."""
    kinds = (inspect.Parameter.KEYWORD_ONLY,)
    return {n for n, p in inspect.signature(func).parameters.items() if p.kind in kinds} - supplied - {"cache"}


def test_declared_options_match_the_runners_signatures() -> None:
    from contrastkit.evaluation import (
        classification,
        clustering,
        image,
        image_zero_shot,
        pair_classification,
        reasoning,
        retrieval,
        sts,
    )

    prompt = {"batch_size", "prompt_name"}
    two_prompts = {"batch_size", "query_prompt_name", "doc_prompt_name"}
    split = {"limit", "test_fraction", "split_seed"}
    expected = {
        "sts": _keywords(sts.evaluate_sts, prompt),
        "retrieval": _keywords(retrieval.evaluate_retrieval, two_prompts | {"doc_encoder"}),
        "reasoning": _keywords(reasoning.run_reasoning, two_prompts),
        "classification": _keywords(classification.evaluate_classification, prompt),
        "clustering": _keywords(clustering.evaluate_clustering, prompt),
        "pair-classification": _keywords(pair_classification.evaluate_pair_classification, prompt),
        "image-classification": _keywords(image.classify_embeddings, set()) | split,
        "image-clustering": _keywords(image.cluster_embeddings, set()) | split,
        "zero-shot-classification": _keywords(image_zero_shot.class_embeddings, {"batch_size"})
        | split
        | {"template", "text_model"},
        "visual-sts": {"text_model", "renderer"},
    }
    for name, options in expected.items():
        assert set(get_task(name).options) == options, name


def test_max_length_past_the_models_positions_exits_2_before_encoding(tmp_path, capsys) -> None:
    from tiny_models import tiny_bert_folder

    model = tiny_bert_folder(tmp_path / "bert", ["a", "b", "cat", "dog"], max_length=32)
    data = tmp_path / "sts"
    data.mkdir()
    (data / "test.tsv").write_text("sentence1\tsentence2\tscore\na cat\ta dog\t1\ncat\tdog\t3\n")
    capsys.readouterr()  # the folder writer's progress bar
    assert main(["eval", str(model), "--task", "sts", "--data", str(data), "--max-length", "40"]) == 2
    err = capsys.readouterr().err.strip()  # before: exit 0 on short texts, an IndexError on the first long one
    assert err.endswith("error: --max-length: 40 is more tokens than the model has positions for (32); use <= 32")
