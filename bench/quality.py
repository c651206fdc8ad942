"""Recipe quality: each contrastkit recipe (configs/recipes/) against its sentence-transformers peer.

For every recipe, in the same run: contrastkit trains the recipe's config
(``contrastkit.training.train``, what ``contrastkit train CONFIG`` runs), and
sentence-transformers trains the standard equivalent (``SentenceTransformerTrainer``
with ``MultipleNegativesRankingLoss``, scale 20, or the cached variant) on the
same examples, in the same batches (contrastkit's duplicate-free batch
sampler's order, fed to ST as its batch sampler), from the same base model,
for the same number of steps, batch size and seed, with ST's AdamW and linear
warmup schedule at the learning rate of ST's own example for that setup
(:data:`PEERS`). Every model, and the untrained base model, is then scored by
the same contrastkit evaluation (``_quality_work.evaluate``: STS-B dev,
SICK-R trial, STS12-14, SciFact test, PIQA) in a fresh process.

Each training and evaluation is a fresh subprocess (``_quality_work.py``);
results are kept as JSON under ``--work`` so that ``--only`` reruns a part
and a finished part is not redone (``--force`` redoes it). Data the recipes
need is written first (``--prepare``): LA(SER)^3 pairs, mined SciFact
negatives, the static model's pairs (paths as in the recipe configs).

Usage::

    python bench/quality.py --out bench/results/quality.md        # everything (hours on 2 shared cores)
    python bench/quality.py --only nli_supervised                  # one recipe (+ the base model)
    python bench/quality.py --prepare                              # only write the recipes' data
    python bench/quality.py --report-only --out bench/results/quality.md
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import machine_info, report_head, run_json_subprocess, save_report
from _quality_work import DATA, EVAL_SETS, ROOT

WORK = Path(__file__).resolve().parent / "_quality_work.py"
RECIPE_DIR = ROOT / "configs" / "recipes"
RECIPE_DATA = ROOT / "runs" / "recipes" / "data"
BASE = "all-MiniLM-L6-v2"
HELD_OUT = ("STS12", "STS13", "STS14", "SciFact", "PIQA")  # never used to choose a setting
SUPERVISED_MARGIN = 1.0


@dataclass(frozen=True)
class Peer:
    """The sentence-transformers equivalent of a recipe; model, max length, batch size, steps and seed are the
    recipe config's.

    ``data`` is a file under the shared data folder or ``@name`` for a prepared file; ``same_text``: the
    positive is the anchor itself (ST's SimCSE); ``negatives``: hard-negative columns kept per row.
    """

    data: str
    lr: float
    source: str  # where the lr and the setup come from
    name: str = "st"  # results file suffix: <recipe>_<name>_{train,eval}.json
    title: str = "ST peer"
    kind: str | None = None
    negatives: int = 0
    same_text: bool = False
    loss: str = "mnrl"
    mini_batch_size: int | None = None
    warmup_ratio: float = 0.1
    static: bool = False
    scale: float = 20.0


@dataclass(frozen=True)
class Recipe:
    """A recipe config (``configs/recipes/<name>.yaml``), its peers and the prepared data it reads.

    ``peers[0]`` is the peer the targets compare against; later ones are extra rows (e.g. the peer at the
    recipe's own learning rate and temperature, to show where a difference comes from). ``peer_from``:
    the peers are another recipe's (same data and settings), trained once and shown for both.
    ``earlier``: results of an earlier version of the recipe (``<name>_contrastkit_{train,eval}.json``),
    shown under it when present, never used for the targets.
    """

    name: str
    supervised: bool
    peers: tuple[Peer, ...] = ()
    prepared: str | None = None  # the @name of its prepared training file, if any
    static: bool = False
    peer_from: str | None = None
    earlier: tuple[tuple[str, str], ...] = ()  # (results name, title): earlier versions' rows, when present

    @property
    def peer(self) -> Peer:
        return (RECIPES[self.peer_from] if self.peer_from else self).peers[0]

    def all_peers(self) -> tuple[tuple[str, Peer], ...]:
        """(owner recipe name, peer) for each peer row of this recipe."""
        owner = RECIPES[self.peer_from] if self.peer_from else self
        return tuple((owner.name, peer) for peer in owner.peers)


PREPARED = {
    "laser": "wiki1m_laser_self.jsonl",
    "mined_pairs": "scifact_train_mined.jsonl",
    "mined_grouped": "scifact_train_grouped.jsonl",
    "static_pairs": "static_pairs.jsonl",
}

_SIMCSE_PEER = Peer(
    data="wiki1m_head/sentences.txt",
    lr=5e-5,
    same_text=True,
    source="ST's SimCSE example (train_stsb_simcse.py: MNRL on (s, s), lr 5e-5, batch 128, max_seq_length 32)",
)
_STATIC_PEER = Peer(
    data="@static_pairs",
    lr=0.2,
    static=True,
    source="ST's static-embedding recipe (StaticEmbedding + MNRL, lr 2e-1, warmup_ratio 0.1), "
    "initialised from MiniLM's input embeddings like ours",
)
RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "nli_supervised",
            supervised=True,
            peers=(
                Peer(
                    data="snli_triplets/train.jsonl",
                    kind="triplet",
                    negatives=1,
                    lr=5e-5,
                    source="ST's NLI example (training_nli_v2.py: MNRL with the contradiction as hard negative, "
                    "batch 128, 1 epoch, warmup_ratio 0.1, Trainer default lr 5e-5)",
                ),
            ),
            earlier=(
                ("nli_supervised_lr2e-5", "nli_supervised, first version (lr 2e-5)"),
                ("nli_supervised_padded", "nli_supervised before the padding-free forward (dropout draws differ)"),
            ),
        ),
        Recipe("unsup_simcse", supervised=False, peers=(_SIMCSE_PEER,)),
        Recipe("unsup_laser", supervised=False, prepared="laser", peer_from="unsup_simcse"),
        Recipe(
            "retrieval_scifact",
            supervised=True,
            prepared="mined_grouped",
            peers=(
                Peer(
                    data="@mined_pairs",
                    negatives=1,
                    lr=2e-5,
                    source="ST's MS MARCO MNRL example (train_bi-encoder_mnrl.py: (query, positive, mined negative) "
                    "rows, lr 2e-5); the same mined file, as the rows MNRL takes: one per (query, positive) with "
                    "the first negative, queries without a negative left out",
                ),
            ),
        ),
        Recipe(
            "static_from_minilm",
            supervised=True,
            prepared="static_pairs",
            static=True,
            peers=(
                _STATIC_PEER,
                replace(
                    _STATIC_PEER,
                    name="st_matched",
                    title="ST peer at the recipe's lr 0.05 and temperature 0.1",
                    lr=0.05,
                    scale=10.0,
                    source="the same, at the recipe's lr (0.05) and temperature (0.1, MNRL scale 10)",
                ),
            ),
        ),
    )
}


# ---------------------------------------------------------------------------- running jobs
def run_job(job: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``_quality_work.py JOB SPEC`` in a fresh process (cwd: the repository root); its JSON result."""
    print(f"[{time.strftime('%H:%M:%S')}] {job} {json.dumps(spec)[:160]}", flush=True)
    start = time.perf_counter()
    result = run_json_subprocess([sys.executable, str(WORK), job, json.dumps(spec)], timeout=timeout)
    print(f"[{time.strftime('%H:%M:%S')}] {job} done in {time.perf_counter() - start:.0f} s", flush=True)
    return result


def cached(path: Path, force: bool, make: Any) -> dict[str, Any]:
    """The JSON at ``path``, or ``make()`` written there (atomically) when missing or ``force``."""
    if path.exists() and not force:
        return json.loads(path.read_text(encoding="utf-8"))
    from contrastkit.mining.pipeline import atomic_write

    result = make()
    atomic_write(path, json.dumps(result, indent=2))
    return result


def train_and_score(work: Path, slug: str, spec: dict[str, Any], sets: list, timeout: float) -> tuple[dict, dict]:
    """``train_contrastkit`` with ``spec``, then its model scored on ``sets`` (``evaluate``); each result cached
    as ``work/<slug>_{train,eval}.json``."""
    trained = cached(work / f"{slug}_train.json", False, lambda: run_job("train_contrastkit", spec, timeout))
    scored = cached(work / f"{slug}_eval.json", False, lambda: run_job("evaluate", {
        "model": trained["model"], "sets": sets}, timeout))  # fmt: skip
    return trained, scored


def resolve_data(entry: str, data_dir: Path) -> str:
    """A recipe's data path: ``../shared/data/...`` -> the data folder, ``runs/recipes/data/...`` -> ``data_dir``."""
    for prefix, root in (("../shared/data/", DATA), ("runs/recipes/data/", data_dir)):
        if entry.startswith(prefix):
            return str(root / entry[len(prefix) :])
    return entry


def peer_data(peer: Peer, data_dir: Path) -> str:
    return str(data_dir / PREPARED[peer.data[1:]]) if peer.data.startswith("@") else str(DATA / peer.data)


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Write the recipes' data under ``--data-dir`` (skipping files that exist unless ``--force``)."""
    d, out = args.data_dir, {}
    jobs = [
        ("laser", "prepare_laser", {
            "sentences": str(DATA / "wiki1m_head" / "sentences.txt"), "model": BASE,
            "max_length": args.laser_max_length, "seed": 0, "out": str(d / PREPARED["laser"]),
        }),
        ("mined_pairs", "prepare_mined", {
            "scifact": str(DATA / "scifact"), "model": BASE, "cache_dir": str(args.work / "cache" / "base"),
            "num_negatives": 2, "range_min": 10, "range_max": 50, "relative_margin": 0.05, "seed": 0,
            "pairs": str(d / PREPARED["mined_pairs"]), "grouped": str(d / PREPARED["mined_grouped"]),
        }),
        ("static_pairs", "prepare_static", {
            "sources": [str(DATA / "snli_triplets" / "train.jsonl"), str(DATA / "mrpc_pairs" / "train.jsonl"),
                        str(DATA / "trecqa_pairs" / "train.jsonl")],
            "seed": 0, "out": str(d / PREPARED["static_pairs"]),
        }),
    ]  # fmt: skip
    for name, job, spec in jobs:
        target = d / PREPARED[name]
        if target.exists() and not args.force:
            out[name] = {"out": str(target), "skipped": "exists"}
            continue
        out[name] = run_job(job, spec, args.timeout)
    return out


@functools.cache
def recipe_seed(recipe: Recipe) -> int:
    """The recipe config's own seed (``data.seed``; its runs' results carry no seed in their names)."""
    from contrastkit.training import load_config

    return load_config(RECIPE_DIR / f"{recipe.name}.yaml").data.seed


def seed_parts(recipe: Recipe, seed: int | None) -> tuple[str, ...]:
    """Results-name parts of a run at ``seed``: none at the recipe's own seed (or None), ``seed<N>`` otherwise."""
    return () if seed is None or seed == recipe_seed(recipe) else (f"seed{seed}",)


def contrastkit_spec(recipe: Recipe, args: argparse.Namespace, seed: int | None = None) -> dict[str, Any]:
    """The recipe config with the prepared data's paths; at another ``seed``, data order and training seed set."""
    from contrastkit.training import load_config

    path = RECIPE_DIR / f"{recipe.name}.yaml"
    config = load_config(path)
    train = [resolve_data(t, args.data_dir) for t in config.data.train]
    tag = seed_parts(recipe, seed)
    overrides = [
        f"data.train={json.dumps(train)}",
        f"train.output_dir={args.work.joinpath(recipe.name, 'contrastkit', *tag)}",
        "train.progress=false",
        "train.tensorboard=false",
        *([f"data.seed={seed}", f"train.seed={seed}"] if tag else []),
    ]
    return {"config": str(path), "overrides": overrides, "threads": args.threads}


def st_spec(recipe: Recipe, peer: Peer, args: argparse.Namespace, seed: int | None = None) -> dict[str, Any]:
    from contrastkit.training import load_config

    config = load_config(RECIPE_DIR / f"{recipe.name}.yaml")
    if config.train.steps is None:
        raise ValueError(f"{recipe.name}: the recipe must fix train.steps (the peer runs the same number)")
    fields = {k: v for k, v in asdict(peer).items() if k not in ("data", "source", "name", "title")}
    return {
        **fields,
        "data": peer_data(peer, args.data_dir),
        "model": config.model.path,
        "batch_size": config.data.batch_size,
        "max_seq_length": config.model.max_length,
        "steps": config.train.steps,
        "seed": config.data.seed if seed is None else seed,
        "out": str(args.work.joinpath(recipe.name, peer.name, *seed_parts(recipe, seed), "model")),
        "threads": args.threads,
    }


def results_path(args: argparse.Namespace, *parts: str) -> Path:
    return args.work / "results" / ("_".join(parts) + ".json")


def run_recipe(recipe: Recipe, args: argparse.Namespace, seed: int | None = None) -> None:
    """Train each side of ``--sides`` at ``seed`` (None: the recipe's own) if not done, then evaluate it if not
    done; a shared peer runs once. Other seeds than the recipe's run its first peer only."""
    jobs = []
    tag = seed_parts(recipe, seed)
    if "contrastkit" in args.sides:
        spec = contrastkit_spec(recipe, args, seed)
        jobs.append((recipe.name, "contrastkit", lambda: run_job("train_contrastkit", spec, args.timeout)))
    if "st" in args.sides:
        for owner, peer in recipe.all_peers()[: 1 if tag else None]:
            spec_st = st_spec(RECIPES[owner], peer, args, seed)
            jobs.append((owner, peer.name, lambda s=spec_st: run_job("train_st", s, args.timeout)))
    for owner, side, make in jobs:
        trained = cached(results_path(args, owner, side, *tag, "train"), args.force, make)
        spec = {"model": trained["model"], "batch_size": args.eval_batch_size, "threads": args.threads}
        cached(
            results_path(args, owner, side, *tag, "eval"),
            args.force,
            lambda s=spec: run_job("evaluate", s, args.timeout),
        )


def run_base(args: argparse.Namespace, static: bool) -> None:
    """The untrained references: MiniLM (its SciFact corpus embeddings cached for mining), its static init."""
    spec = {"model": BASE, "batch_size": args.eval_batch_size, "cache_dir": str(args.work / "cache" / "base")}
    cached(results_path(args, "base", "eval"), args.force, lambda: run_job("evaluate", spec, args.timeout))
    if static:
        folder = args.data_dir / "static_init"
        if not folder.exists() or args.force:
            run_job("save_static_init", {"model": BASE, "out": str(folder)}, args.timeout)
        spec = {"model": str(folder), "batch_size": args.eval_batch_size, "threads": args.threads}
        cached(results_path(args, "static_init", "eval"), args.force, lambda: run_job("evaluate", spec, args.timeout))


def run_speed(args: argparse.Namespace) -> None:
    """Encoding speed of the trained static model vs the base transformer, same sentences, same process."""
    trained = json.loads(results_path(args, "static_from_minilm", "contrastkit", "train").read_text())
    spec = {
        "models": {"static": trained["model"], "MiniLM": BASE},
        "batch_sizes": args.speed_batch_sizes,
        "repeats": args.speed_repeats,
        "threads": args.threads,
        "wait": args.speed_wait,
    }
    cached(results_path(args, "speed"), args.force, lambda: run_job("encode_speed", spec, args.timeout))


# ---------------------------------------------------------------------------- report
LABELS = [label for label, *_ in EVAL_SETS]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def averages(scores: dict[str, float]) -> tuple[float, float]:
    """(mean over every evaluated set, mean over the held-out sets); NaN where a set is missing."""
    every = [scores[k] for k in LABELS if k in scores]
    held = [scores[k] for k in HELD_OUT if k in scores]
    return (
        mean(every) if len(every) == len(LABELS) else float("nan"),
        mean(held) if len(held) == len(HELD_OUT) else float("nan"),
    )


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def score_cells(scores: dict[str, float]) -> list[str]:
    every, held = averages(scores)
    return [fmt(scores.get(k)) for k in LABELS] + [f"**{fmt(every)}**", fmt(held)]


def load(args: argparse.Namespace, *parts: str) -> dict[str, Any] | None:
    path = results_path(args, *parts)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def train_cells(train: dict[str, Any] | None) -> list[str]:
    if train is None:
        return ["-", "-"]
    return [f"{train['train_s']:.0f}", f"{train['peak_rss'] / 1e9:.2f} GB"]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def seeds_done(args: argparse.Namespace, recipe: Recipe, owner: str, side: str) -> dict[int, dict[str, float]]:
    """Seed -> scores of every evaluated run of ``owner``'s ``side`` (the recipe's own seed and ``seed<N>`` ones)."""
    own = load(args, owner, side, "eval")
    found = {recipe_seed(recipe): own} if own else {}
    for path in (args.work / "results").glob(f"{owner}_{side}_seed*_eval.json"):
        seed = path.name[len(f"{owner}_{side}_seed") : -len("_eval.json")]
        if seed.isdigit():
            found[int(seed)] = json.loads(path.read_text(encoding="utf-8"))
    return {seed: result["scores"] for seed, result in sorted(found.items())}


def mean_scores(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per-set mean over runs (sets every run has)."""
    return {k: mean([r[k] for r in runs]) for k in runs[0] if all(k in r for r in runs)}


def seed_rows(args: argparse.Namespace, recipe: Recipe) -> tuple[list[str], tuple[float, float] | None]:
    """Mean rows over the seeds at which both the recipe and its first peer were evaluated (when more than one),
    and (ours, peer) averages of those means."""
    owner, peer = recipe.all_peers()[0]
    ours, theirs = seeds_done(args, recipe, recipe.name, "contrastkit"), seeds_done(args, recipe, owner, peer.name)
    both = sorted(set(ours) & set(theirs))
    if len(both) < 2:
        return [], None
    a, b = mean_scores([ours[s] for s in both]), mean_scores([theirs[s] for s in both])
    tag = f"mean of seeds {', '.join(map(str, both))}"
    diff = {k: a[k] - b[k] for k in a if k in b}
    rows = [
        _row([f"**{recipe.name}**, {tag}", *score_cells(a), "", ""]),
        _row([f"{peer.title} of {owner}, {tag}", *score_cells(b), "", ""]),
        _row([f"*difference of the means ({len(both)} seeds)*", *score_cells(diff), "", ""]),
    ]
    return rows, (averages(a)[0], averages(b)[0])


def comparison(args: argparse.Namespace) -> tuple[list[str], list[tuple[Recipe, float, float]]]:
    """The score table's rows and, per recipe with it and its first peer evaluated, (recipe, ours avg, peer avg).

    Each recipe: its row, its peers' rows (a shared peer is shown again under every recipe that uses it)
    and the difference to its first peer; where both ran at several seeds (``--seeds``), the means over
    those seeds, which the targets then use.
    """
    header = ["model", *LABELS, "avg", "held-out avg", "train s", "peak RSS"]
    rows = [_row(header), "|" + "---|" * len(header)]
    pairs = []
    for ref, title in (("base", "all-MiniLM-L6-v2 (untrained base)"), ("static_init", "static init (untrained)")):
        base = load(args, ref, "eval")
        if base:
            rows.append(_row([title, *score_cells(base["scores"]), "-", "-"]))
    for recipe in RECIPES.values():
        ours = load(args, recipe.name, "contrastkit", "eval")
        if ours:
            train = load(args, recipe.name, "contrastkit", "train")
            rows.append(_row([f"**{recipe.name}**", *score_cells(ours["scores"]), *train_cells(train)]))
        for name, title in recipe.earlier:
            result = load(args, name, "contrastkit", "eval")
            if result:
                train = load(args, name, "contrastkit", "train")
                rows.append(_row([title, *score_cells(result["scores"]), *train_cells(train)]))
        first = None
        for owner, peer in recipe.all_peers():
            theirs = load(args, owner, peer.name, "eval")
            if theirs:
                first = first or theirs
                train = load(args, owner, peer.name, "train")
                rows.append(_row([f"{peer.title} of {owner}", *score_cells(theirs["scores"]), *train_cells(train)]))
            elif first is None:
                first = False  # the first peer is missing: no difference row
        if ours and first:
            diff = {k: ours["scores"][k] - first["scores"][k] for k in ours["scores"] if k in first["scores"]}
            rows.append(_row([f"*difference ({recipe.name} - {recipe.peer.title})*", *score_cells(diff), "", ""]))
            extra, means = seed_rows(args, recipe)
            rows += extra
            pairs.append((recipe, *(means or (averages(ours["scores"])[0], averages(first["scores"])[0]))))
    return rows, pairs


def targets(args: argparse.Namespace, pairs: list[tuple[Recipe, float, float]]) -> list[str]:
    lines = []
    for recipe, ours, theirs in pairs:
        verdict = "PASS" if ours >= theirs else "FAIL"
        lines.append(f"- [{verdict}] {recipe.name} matches its peer on average: {ours:.2f} vs {theirs:.2f}")
    supervised = [(r, o - t) for r, o, t in pairs if r.supervised]
    if supervised:
        best, margin = max(supervised, key=lambda p: p[1])
        verdict = "PASS" if margin >= SUPERVISED_MARGIN else "FAIL"
        each = ", ".join(f"{r.name} {m:+.2f}" for r, m in supervised)
        lines.append(
            f"- [{verdict}] best supervised recipe ({best.name}) beats its peer by >= {SUPERVISED_MARGIN} point "
            f"on average: {margin:+.2f} (every supervised recipe: {each})"
        )
    static = load(args, "static_from_minilm", "contrastkit", "train")
    if static:
        verdict = "PASS" if static["train_s"] < 900 else "FAIL"
        lines.append(f"- [{verdict}] static model trains in under 15 minutes: {static['train_s']:.0f} s")
    speed = load(args, "speed")
    if speed:
        ratio = speed["per_s"]["static"] / speed["per_s"]["MiniLM"]
        verdict = "PASS" if ratio >= 50 else "FAIL"
        lines.append(
            f"- [{verdict}] static model encodes >= 50x faster than all-MiniLM-L6-v2: {ratio:.0f}x "
            f"({speed['per_s']['static']:.0f} sentences/s at batch {speed['best_batch']['static']} vs "
            f"{speed['per_s']['MiniLM']:.0f} at batch {speed['best_batch']['MiniLM']}, each model at its faster "
            f"batch size of {', '.join(map(str, speed['batch_sizes']))}; {speed['sentences']} STS-B dev sentences, "
            f"others' CPU {100 * speed['cpu_others']:.0f}%)"
        )
    return lines


def diagnostics_rows(args: argparse.Namespace) -> list[str]:
    rows = ["| model | alignment | uniformity | isotropy | mean cosine |", "|---|---|---|---|---|"]
    keys = [(("base", "eval"), "all-MiniLM-L6-v2"), (("static_init", "eval"), "static init")]
    for recipe in RECIPES.values():
        keys.append(((recipe.name, "contrastkit", "eval"), recipe.name))
        if not recipe.peer_from:
            keys += [((recipe.name, peer.name, "eval"), f"{peer.title} of {recipe.name}") for peer in recipe.peers]
    for parts, title in keys:
        result = load(args, *parts)
        if result and result.get("diagnostics"):
            d = result["diagnostics"]
            cells = [fmt(d["alignment"], 3), fmt(d["uniformity"], 3), fmt(d["isotropy"], 3), fmt(d["mean_cosine"], 3)]
            rows.append("| " + " | ".join([title, *cells]) + " |")
    return rows


def report(args: argparse.Namespace, command: str, info: dict[str, Any]) -> str:
    rows, pairs = comparison(args)
    peers = [
        f"- {r.name} ({peer.title}): {peer.source}; {peer.loss.upper()} at scale {peer.scale:g}, lr {peer.lr:g}"
        for r in RECIPES.values()
        if not r.peer_from
        for peer in r.peers
    ] + [f"- {r.name}: the peer of {r.peer_from}" for r in RECIPES.values() if r.peer_from]
    return "\n".join([
        *report_head("## Recipes vs sentence-transformers: quality (CPU)", command, info),
        "Scores x 100: Spearman (STS sets), nDCG@10 (SciFact test, PIQA as retrieval without instruction), all by "
        "contrastkit's evaluation (transformers read at 256 tokens). avg: the 7 sets; held-out avg: "
        f"{', '.join(HELD_OUT)} (never used to choose a setting; STS-B dev and SICK-R trial were). train s: wall "
        "seconds from reading the data to the saved model (2 shared cores); peak RSS: the training process's.",
        "",
        *rows,
        "",
        "Peers (same base model, examples, batches, steps, batch size and seed as the recipe):",
        "",
        *peers,
        "",
        "Targets:",
        "",
        *targets(args, pairs),
        "",
        "Diagnostics on STS-B dev (alignment: pairs scoring >= 4, lower = closer; uniformity: lower = more "
        "uniform; isotropy: 1 = isotropic; mean cosine: 0 = no shared direction):",
        "",
        *diagnostics_rows(args),
        "",
    ])  # fmt: skip


# ---------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="*", choices=list(RECIPES), default=None, help="run these recipes (default: all)")
    p.add_argument("--sides", nargs="*", choices=("contrastkit", "st"), default=["contrastkit", "st"])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "quality", help="runs and results (JSON) go here")
    p.add_argument("--data-dir", type=Path, default=RECIPE_DATA, help="prepared recipe data (the configs' paths)")
    p.add_argument("--prepare", action="store_true", help="only write the recipes' data")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from the results")
    p.add_argument("--force", action="store_true", help="redo parts whose results exist")
    p.add_argument(
        "--seeds", type=int, nargs="*", default=None,
        help="run each recipe and its first peer at these seeds (data order and training); the report adds the "
        "mean over every seed both sides have (default: the recipe's own seed only)",
    )  # fmt: skip
    p.add_argument("--laser-max-length", type=int, default=128, help="LA(SER)^3 L_max in tokens")
    p.add_argument("--threads", type=int, default=None, help="torch threads of each job (default: torch's)")
    p.add_argument("--eval-batch-size", type=int, default=32)
    p.add_argument("--speed-batch-sizes", type=int, nargs="+", default=[64, 1024], help="each model's best counts")
    p.add_argument("--speed-repeats", type=int, default=5)
    p.add_argument("--speed-wait", type=float, default=900.0, help="seconds to wait for a quiet CPU before timing")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per job")
    p.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    os.chdir(ROOT)  # the recipes' relative paths (runs/...) are relative to the repository root
    args.work, args.data_dir = args.work.resolve(), args.data_dir.resolve()
    command = " ".join(["python", "bench/quality.py", *(argv if argv is not None else sys.argv[1:])])
    info = machine_info()
    start = time.perf_counter()
    if not args.report_only:
        prepared = prepare(args)
        if args.prepare:
            print(json.dumps(prepared, indent=2))
            return
        names = args.only or list(RECIPES)
        run_base(args, static="static_from_minilm" in names)
        for seed in args.seeds or [None]:
            for name in names:
                run_recipe(RECIPES[name], args, seed)
        if "static_from_minilm" in names and "contrastkit" in args.sides:
            run_speed(args)
    text = report(args, command, info)
    print("\n" + text)
    print(f"total wall time: {time.perf_counter() - start:.0f} s")
    save_report(text, args.out)


if __name__ == "__main__":
    main()
