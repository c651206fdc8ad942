"""``eval.keep_best``: the model of the best dev evaluation of each named metric is kept in ``best-<metric>/`` and
listed in ``best.json``; further dev sets (``eval.sts_sets``, ``eval.retrieval_sets``) are logged beside the first."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_eval_callbacks import write_beir, write_sts
from training_helpers import TinyEncoder, make_pairs, state_of, write_jsonl

from contrastkit.training import Callback, ConfigError, load_config, train
from contrastkit.training.logging import read_metrics


class Weights(Callback):
    """Each step's weights (the evaluation of a step sees them)."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_step_end(self, ctx) -> None:
        self.states[ctx.step] = state_of(ctx.encoder)


def overrides(tmp_path, *extra: str) -> list[str]:
    data = write_jsonl(make_pairs(32), tmp_path / "pairs.jsonl")
    beir, sts = write_beir(tmp_path / "tinybeir"), write_sts(tmp_path / "sts.tsv")
    return [
        f"data.train={data}", "data.batch_size=4", "train.steps=6", "train.eval_every=1", "train.progress=false",
        "optim.lr=5e-2", f"train.output_dir={tmp_path / 'run'}", f"eval.retrieval.path={beir}",
        f"eval.sts.path={sts}", f"eval.sts_sets=[{{path: {sts}, name: sts-again}}]", *extra,
    ]  # fmt: skip


def test_the_best_step_of_each_metric_is_kept_and_recorded(tmp_path) -> None:
    weights = Weights()
    keep = "eval.keep_best=[sts/spearman, tinybeir/ndcg@10, sts-again/spearman]"
    train(load_config(None, overrides(tmp_path, keep)), encoder=TinyEncoder(), callbacks=[weights])
    run = tmp_path / "run"
    records = [r for r in read_metrics(run / "metrics.jsonl") if "eval/sts/spearman" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(r["eval/sts-again/spearman"] == r["eval/sts/spearman"] for r in records)  # the second set is logged
    best = json.loads((run / "best.json").read_text())
    assert set(best) == {"sts/spearman", "tinybeir/ndcg@10", "sts-again/spearman"}
    for metric, entry in best.items():
        values = [r[f"eval/{metric}"] for r in records]
        step = records[values.index(max(values))]["step"]  # the first step reaching the maximum
        assert entry["step"] == step and entry["value"] == pytest.approx(max(values))
        saved = load_file(str(run / entry["folder"] / "model.safetensors"))
        assert entry["folder"] == "best-" + metric.replace("/", "-")
        for key, value in weights.states[step].items():
            assert torch.equal(saved[key], value), (metric, key)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("eval.keep_best=[sts/pearson]",), r"^eval\.keep_best\[0\]: 'sts/pearson' is not a logged metric"),
        (("eval.sts_sets=[{path: STS}]",), r"^eval\.sts_sets\[0\]\.name: 'sts/spearman' is logged by eval\.sts too"),
    ],
)
def test_unknown_kept_metrics_and_clashing_set_names_fail_before_training(tmp_path, extra, message) -> None:
    extra = tuple(e.replace("STS", str(tmp_path / "sts.tsv")) for e in extra)
    with pytest.raises(ConfigError, match=message):
        train(load_config(None, overrides(tmp_path, *extra)), encoder=TinyEncoder())
    assert not (tmp_path / "run").exists()


class Scores(Callback):
    """Returns the next of a fixed list of scores at each evaluation."""

    def __init__(self, values: list[float]) -> None:
        self.values = list(values)

    def on_eval(self, ctx) -> dict[str, float]:
        return {"dev/spearman": self.values.pop(0)}


def test_a_resumed_run_keeps_a_better_earlier_best_and_nan_never_counts(tmp_path) -> None:
    from contrastkit.training.callbacks import CallbackContext
    from contrastkit.training.evaluation import KeepBest

    encoder = TinyEncoder()
    record = tmp_path / "best.json"
    record.write_text(json.dumps({"dev/spearman": {"step": 3, "value": 0.5, "folder": "best-dev-spearman"}}))
    keep = KeepBest([Scores([0.4, float("nan"), 0.6])], ["dev/spearman"])
    for step in (4, 5, 6):
        ctx = CallbackContext(load_config(None, []), encoder, tmp_path, step=step, total_steps=6)
        keep.on_eval(ctx)
        best = json.loads(record.read_text())["dev/spearman"]
        assert best["step"] == (3 if step < 6 else 6)  # 0.4 and NaN do not beat the earlier 0.5; 0.6 does
    assert (tmp_path / "best-dev-spearman" / "model.safetensors").is_file()


def test_merge_best_merges_the_kept_models_after_training(tmp_path) -> None:
    keep = "eval.keep_best=[sts/spearman, tinybeir/ndcg@10]"
    train(load_config(None, overrides(tmp_path, keep, "eval.merge_best=uniform")), encoder=TinyEncoder())
    run = tmp_path / "run"
    best = json.loads((run / "best.json").read_text())
    folders = list(dict.fromkeys(entry["folder"] for entry in best.values()))
    states = [load_file(str(run / f / "model.safetensors")) for f in folders]
    merged = load_file(str(run / "merged" / "model.safetensors"))
    for key, value in merged.items():
        assert torch.allclose(value, sum(s[key] for s in states) / len(states), atol=1e-7), key
    assert json.loads((run / "merged" / "merge.json").read_text())["method"] == "uniform"
    (tmp_path / "again").mkdir()
    with pytest.raises(ConfigError, match=r"^eval\.merge_best: needs eval\.keep_best"):
        load_config(None, overrides(tmp_path / "again", "eval.merge_best=uniform"))
