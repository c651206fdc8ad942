"""Plumbing of bench/quality.py: the peer sees contrastkit's batches, data paths resolve, the report adds up."""

from __future__ import annotations

import argparse
import json

import pytest
from bench_helpers import load_bench

WORDS = ["red", "green", "blue", "cat", "dog", "fish", "sun", "moon", "star", "tree", "car", "bus"]


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as mp:
        work = load_bench("_quality_work", "_quality_work.py", mp)
        quality = load_bench("bench_quality", "quality.py", mp)
        yield quality, work


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer BERT (hidden 32) folder and 20 triplets."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("quality")
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]))
    tokenizer = BertTokenizerFast(str(root / "vocab.txt"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    rows = [
        {"anchor": f"{WORDS[i % 12]} {WORDS[(i + 1) % 12]} {i}", "positive": f"{WORDS[i % 12]} {i}",
         "negative": f"{WORDS[(i + 5) % 12]} {i}"}
        for i in range(20)
    ]  # fmt: skip
    data = root / "triplets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "bert", data


def test_peer_trains_on_contrastkit_batches_in_order(bench, tiny, tmp_path) -> None:
    pytest.importorskip("datasets")
    from contrastkit.data.readers import load_examples
    from contrastkit.data.sampler import BatchSampler

    _, work = bench
    model_path, data = tiny
    spec = {
        "data": str(data), "kind": "triplet", "negatives": 1, "lr": 1e-3, "loss": "mnrl", "warmup_ratio": 0.1,
        "scale": 20.0, "model": str(model_path), "batch_size": 4, "max_seq_length": 16, "steps": 7, "seed": 3,
        "out": str(tmp_path / "model"),
    }  # fmt: skip
    trainer, model = work.st_trainer(spec)
    examples = load_examples(data, kind="triplet")
    sampler = BatchSampler(examples, 4, seed=3, drop_last=True)
    loader = trainer.get_train_dataloader()
    for epoch in (0, 1):  # the trainer sets each epoch on its batch sampler
        loader.set_epoch(epoch)
        batches = list(loader)
        expected = sampler.plan(epoch).batches
        assert len(batches) == len(expected) == 5
        for batch, indices in zip(batches, expected, strict=True):
            anchors = model.tokenize([examples[i].anchor for i in indices])["input_ids"]
            negatives = model.tokenize([examples[i].negatives[0] for i in indices])["input_ids"]
            assert batch["anchor_input_ids"].tolist() == anchors.tolist()
            assert batch["negative_1_input_ids"].tolist() == negatives.tolist()
    assert sampler.plan(0).batches != sampler.plan(1).batches
    result = work.train_st(spec)
    assert result["steps"] == 7 and result["train_s"] > 0 and result["peak_rss"] > 0
    assert (tmp_path / "model" / "modules.json").exists()


def test_simcse_rows_repeat_the_sentence(bench) -> None:
    from contrastkit.data.examples import Example

    _, work = bench
    examples = [Example(anchor="a b", positives=(), negatives=()), Example(anchor="c", positives=(), negatives=())]
    assert work.st_rows(examples, 0, same_text=True) == {"anchor": ["a b", "c"], "positive": ["a b", "c"]}
    triplet = [Example(anchor="q", positives=("p", "p2"), negatives=("n1", "n2"))]
    assert work.st_rows(triplet, 1, same_text=False) == {"anchor": ["q"], "positive": ["p"], "negative_1": ["n1"]}


def test_recipe_data_paths_resolve(bench, tmp_path) -> None:
    quality, work = bench
    assert quality.resolve_data("../shared/data/stsb/dev.tsv", tmp_path) == str(work.DATA / "stsb" / "dev.tsv")
    assert quality.resolve_data("runs/recipes/data/x.jsonl", tmp_path) == str(tmp_path / "x.jsonl")
    assert quality.resolve_data("/abs/file.jsonl", tmp_path) == "/abs/file.jsonl"
    for recipe in quality.RECIPES.values():  # every peer reads a file that the recipe's data also comes from
        path = quality.peer_data(recipe.peer, tmp_path)
        assert path.endswith((".jsonl", ".txt"))


def _scores(value: float, **changes: float) -> dict[str, float]:
    from_labels = {
        label: value for label in ("STS-B dev", "SICK-R trial", "STS12", "STS13", "STS14", "SciFact", "PIQA")
    }
    return {**from_labels, **changes}


def test_report_averages_and_targets(bench, tmp_path) -> None:
    quality, _ = bench
    args = argparse.Namespace(work=tmp_path)
    results = {
        "base_eval": {
            "scores": _scores(70.0),
            "diagnostics": {"alignment": 0.5, "uniformity": -2.0, "isotropy": 0.4, "mean_cosine": 0.1},
        },
        "nli_supervised_contrastkit_eval": {"scores": _scores(72.0, PIQA=79.0)},  # avg 73.0, held-out 73.4
        "nli_supervised_st_eval": {"scores": _scores(71.5)},
        "nli_supervised_lr2e-5_contrastkit_eval": {"scores": _scores(71.0)},
        "nli_supervised_contrastkit_train": {"train_s": 100.0, "peak_rss": 2e9},
        "nli_supervised_st_train": {"train_s": 90.0, "peak_rss": 1.5e9},
        "unsup_simcse_contrastkit_eval": {"scores": _scores(60.0)},
        "unsup_simcse_st_eval": {"scores": _scores(61.0)},
        "unsup_laser_contrastkit_eval": {"scores": _scores(62.0)},
        "static_from_minilm_contrastkit_train": {"train_s": 120.0, "peak_rss": 1e9},
        "speed": {
            "per_s": {"static": 30000.0, "MiniLM": 400.0},
            "best_batch": {"static": 1024, "MiniLM": 64},
            "batch_sizes": [64, 1024],
            "sentences": 100,
            "cpu_others": 0.0,
        },
    }
    (tmp_path / "results").mkdir()
    for name, value in results.items():
        (tmp_path / "results" / f"{name}.json").write_text(json.dumps(value))
    assert quality.averages(_scores(72.0, PIQA=79.0)) == pytest.approx((73.0, 73.4))
    text = quality.report(args, "python bench/quality.py", {"cpu": "test"})
    assert (
        "| **nli_supervised** | 72.00 | 72.00 | 72.00 | 72.00 | 72.00 | 72.00 | 79.00 | **73.00** | 73.40 | 100 |"
        in text
    )
    assert "| *difference (nli_supervised - ST peer)* | 0.50 |" in text
    assert "| nli_supervised, first version (lr 2e-5) | 71.00 |" in text  # shown, not compared
    # unsup_laser shares unsup_simcse's peer: shown under both, compared under both
    assert text.count("| ST peer of unsup_simcse | 61.00 |") == 2
    assert "[FAIL] unsup_laser matches its peer on average: 62.00 vs 61.00" not in text
    assert "[PASS] unsup_laser matches its peer on average: 62.00 vs 61.00" in text
    assert "[PASS] nli_supervised matches its peer on average: 73.00 vs 71.50" in text
    assert "[FAIL] unsup_simcse matches its peer on average: 60.00 vs 61.00" in text
    assert "[PASS] best supervised recipe (nli_supervised) beats its peer by >= 1.0 point on average: +1.50" in text
    assert "[PASS] static model trains in under 15 minutes: 120 s" in text
    assert "[PASS] static model encodes >= 50x faster than all-MiniLM-L6-v2: 75x" in text
    assert "| all-MiniLM-L6-v2 | 0.500 | -2.000 | 0.400 | 0.100 |" in text


def test_mined_layouts_keep_every_query_for_contrastkit_and_mnrl_rows_for_the_peer(bench) -> None:
    from contrastkit.mining.pipeline import MiningData

    _, work = bench
    data = MiningData(
        queries=["q0", "q1", "q2"], query_ids=["0", "1", "2"], positives=[[0, 1], [2], [3]],
        corpus=["d0", "d1", "d2", "d3", "d4", "d5"], doc_ids=["a", "b", "c", "d", "e", "f"],
    )  # fmt: skip
    grouped, pairs = work.mined_layouts(data, [[4, 5], [], [5]], [0, 1, 2])
    assert grouped == [
        {"anchor": "q0", "positive": ["d0", "d1"], "negative": ["d4", "d5"]},
        {"anchor": "q1", "positive": ["d2"], "negative": []},  # no negative passed the filters: still trained
        {"anchor": "q2", "positive": ["d3"], "negative": ["d5"]},
    ]
    assert pairs == [  # one row per (query, positive), the first negative, q1 left out
        {"anchor": "q0", "positive": "d0", "negative": ["d4"]},
        {"anchor": "q0", "positive": "d1", "negative": ["d4"]},
        {"anchor": "q2", "positive": "d3", "negative": ["d5"]},
    ]
    assert work.mined_layouts(data, [[4, 5], [], [5]], [1])[1] == []


def test_beir_subset_holds_only_the_chosen_queries(bench, tmp_path) -> None:
    from contrastkit.data.beir import load_beir

    _, work = bench
    src = tmp_path / "src"
    (src / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": "", "text": f"doc {i}"} for i in range(4)]
    (src / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": f"q{i}", "text": f"query {i}"} for i in range(3)]
    (src / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (src / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\nq1\td2\t1\nq2\td3\t1\n")
    work.write_beir_subset(src, ["q1", "q2"], tmp_path / "dev")
    dev = load_beir(tmp_path / "dev", split="dev")
    assert dev.qrels == {"q1": {"d1": 1, "d2": 1}, "q2": {"d3": 1}}
    assert set(dev.queries) == {"q1", "q2"} and len(dev.corpus) == 4
    work.write_beir_subset(src, ["q1"], tmp_path / "small", corpus_size=3)
    small = load_beir(tmp_path / "small", split="dev")
    assert {"d1", "d2"} <= set(small.corpus) and len(small.corpus) == 3


def test_other_seeds_get_their_own_runs_and_the_targets_use_the_means(bench, tmp_path) -> None:
    quality, _ = bench
    args = argparse.Namespace(work=tmp_path, data_dir=tmp_path, threads=None)
    recipe = quality.RECIPES["nli_supervised"]
    own = quality.recipe_seed(recipe)
    assert quality.seed_parts(recipe, None) == quality.seed_parts(recipe, own) == ()
    ck = quality.contrastkit_spec(recipe, args, own + 1)
    assert f"data.seed={own + 1}" in ck["overrides"] and f"train.seed={own + 1}" in ck["overrides"]
    assert not any(
        o.startswith(("data.seed=", "train.seed=")) for o in quality.contrastkit_spec(recipe, args)["overrides"]
    )
    st = quality.st_spec(recipe, recipe.peer, args, own + 1)
    assert st["seed"] == own + 1 and f"seed{own + 1}" in st["out"]
    results = {  # seed own: ours 0.5 behind; seeds own+1, own+2: 1.0 and 0.2 ahead; own+3: ours only (not paired)
        "nli_supervised_contrastkit_eval": _scores(71.0),
        "nli_supervised_st_eval": _scores(71.5),
        f"nli_supervised_contrastkit_seed{own + 1}_eval": _scores(72.0),
        f"nli_supervised_st_seed{own + 1}_eval": _scores(71.0),
        f"nli_supervised_contrastkit_seed{own + 2}_eval": _scores(71.2),
        f"nli_supervised_st_seed{own + 2}_eval": _scores(71.0),
        f"nli_supervised_contrastkit_seed{own + 3}_eval": _scores(90.0),
    }
    (tmp_path / "results").mkdir()
    for name, scores in results.items():
        (tmp_path / "results" / f"{name}.json").write_text(json.dumps({"scores": scores}))
    text = quality.report(args, "python bench/quality.py", {"cpu": "test"})
    seeds = f"seeds {own}, {own + 1}, {own + 2}"
    assert f"| **nli_supervised**, mean of {seeds} | 71.40 |" in text
    assert f"| ST peer of nli_supervised, mean of {seeds} | 71.17 |" in text
    assert "| *difference of the means (3 seeds)* | 0.23 |" in text
    assert "[PASS] nli_supervised matches its peer on average: 71.40 vs 71.17" in text
