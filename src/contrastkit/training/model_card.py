"""The model card of a trained model: ``final/README.md``, as sentence-transformers writes one.

:func:`write_model_card` writes it (atomically) into the saved model folder
after the final evaluation, from :class:`CardFacts` (what the run knew) and
what the folder itself says (the settings a sentence-transformers user gets:
modules, ``max_seq_length``, pooling, normalisation, prompts). The card has a
YAML header that the Hugging Face Hub reads (``library_name``, ``tags``,
``base_model`` for a Hub model), then:

* the base model and the saved model's settings;
* the objective and its hyperparameters, the batch, the optimizer and the
  scaling options, and the number of steps run (and skipped);
* each dataset: its files and how many training rows it gave;
* the evaluation results logged during training (``eval/...`` records of
  ``metrics.jsonl``), one row per evaluated step;
* how to use the model (sentence-transformers, ``contrastkit eval``);
* how to reproduce it: the contrastkit and library versions, the exact
  command line and the resolved config.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from contrastkit.evaluation.report import atomic_write
from contrastkit.training.config import Config, DataConfig, config_dict
from contrastkit.training.logging import environment_info
from contrastkit.training.sources import DataSource

CARD_FILE = "README.md"
HUB_ALIASES = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}
"""Local aliases of Hub models (``base_model`` in the card header is a Hub id)."""


@dataclass(frozen=True)
class DatasetFacts:
    """One training dataset: its name (``data.train`` or ``data.datasets[i]``), files and rows read."""

    name: str
    files: tuple[str, ...]
    rows: int


@dataclass(frozen=True)
class CardFacts:
    """What a run knows that its saved folder does not: config, data, steps, loss and command line."""

    config: Config
    datasets: tuple[DatasetFacts, ...]
    steps: int
    skipped_steps: int
    final_loss: float
    command: str


def dataset_facts(data: DataConfig, sources: Sequence[DataSource], *, given: bool = False) -> tuple[DatasetFacts, ...]:
    """Each source's name, files (none when the examples were ``given`` to ``train()``) and rows read."""
    facts = []
    for i, source in enumerate(sources):
        files = () if given else tuple(data.datasets[i].train if data.datasets else data.train)
        facts.append(
            DatasetFacts(
                source.name or ("data.train" if source.key == "data" else source.key), files, len(source.examples)
            )
        )
    return tuple(facts)


def command_line(argv: Sequence[str] | None = None) -> str:
    """``argv`` (default ``sys.argv``) as a shell line; the contrastkit entry point is written ``contrastkit``."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    program = Path(argv[0])
    if program.name == "contrastkit" or (program.name == "__main__.py" and program.parent.name == "contrastkit"):
        return shlex.join(["contrastkit", *argv[1:]])
    return shlex.join(["python", *argv])


def evaluation_history(metrics_file: Path) -> list[tuple[int, dict[str, float]]]:
    """``(step, {metric: value})`` of every ``eval/...`` record in ``metrics.jsonl``, in file order."""
    if not metrics_file.is_file():
        return []
    history = []
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill
            continue
        evals = {k[len("eval/") :]: v for k, v in record.items() if k.startswith("eval/")}
        if evals:
            history.append((int(record.get("step", 0)), evals))
    return history


def saved_settings(folder: Path) -> dict[str, Any]:
    """What sentence-transformers reads from ``folder``: modules, max_seq_length, pooling, prompts ({} if none)."""

    def read(name: str) -> Any:
        path = folder / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    modules = read("modules.json") or []
    settings: dict[str, Any] = {"modules": [str(m.get("type", "?")).rsplit(".", 1)[-1] for m in modules]}
    bert = read("sentence_bert_config.json") or {}
    if "max_seq_length" in bert:
        settings["max_seq_length"] = bert["max_seq_length"]
    for module in modules:
        pooling = read(f"{module.get('path', '')}/config.json") if module.get("path") else None
        if str(module.get("type", "")).endswith("Pooling") and isinstance(pooling, dict):
            settings["dimension"] = pooling.get("word_embedding_dimension", pooling.get("embedding_dimension"))
            active = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True]
            settings["pooling"] = pooling.get("pooling_mode") or ", ".join(k[len("pooling_mode_") :] for k in active)
    settings["normalized"] = "Normalize" in settings["modules"]
    st_config = read("config_sentence_transformers.json") or {}
    settings["prompts"] = st_config.get("prompts") or {}
    settings["default_prompt_name"] = st_config.get("default_prompt_name")
    return settings


def _front_matter(config: Config) -> str:
    objective = config.objective.name
    header: dict[str, Any] = {
        "library_name": "sentence-transformers",
        "pipeline_tag": "sentence-similarity",
        "tags": ["sentence-transformers", "sentence-similarity", "feature-extraction", "contrastkit", objective],
    }
    base = HUB_ALIASES.get(str(config.model.path))
    if base is not None:
        header["base_model"] = base
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n"


def _model_section(config: Config, settings: dict[str, Any]) -> list[str]:
    model = config.model
    base = model.path if model.path not in (None, "scratch") else "none (a new model, trained from scratch)"
    rows = [("base model", f"`{base}`")]
    if model.candidate is not None:
        rows.append(("candidate tower", f"`{model.candidate.path}`"))
    if settings.get("modules"):
        rows.append(("modules", " -> ".join(settings["modules"])))
    for key in ("max_seq_length", "dimension", "pooling", "normalized"):
        if key in settings:
            rows.append((key.replace("_", " "), f"`{settings[key]}`"))
    if model.max_length is not None:
        rows.append(("training max length", f"`{model.max_length}` (training only; the model reads max_seq_length)"))
    prompts = settings.get("prompts") or {}
    rows.append(("prompts", ", ".join(f"`{k}`: {v!r}" for k, v in prompts.items()) or "none"))
    if settings.get("default_prompt_name"):
        rows.append(("default prompt", f"`{settings['default_prompt_name']}`"))
    return ["## Model", "", *_table(("", ""), rows)]


def _training_section(facts: CardFacts) -> list[str]:
    cfg = facts.config
    obj, optim, data = cfg.objective, cfg.optim, cfg.data
    hparams: dict[str, Any] = {"temperature": obj.temperature, "learnable_temperature": obj.learnable_temperature}
    hparams |= {"similarity": obj.similarity, **obj.hparams}
    shown = ", ".join(f"{k}={v}" for k, v in hparams.items() if v is not None)
    schedule = f"{optim.schedule}, warmup " + (
        f"{optim.warmup_steps} steps" if optim.warmup_steps else f"ratio {optim.warmup_ratio}"
    )
    scaling = {k: v for k, v in config_dict(cfg)["scale"].items() if v not in (None, False, 0, [], ())}
    rows = [
        ("objective", f"`{obj.name}` ({shown})"),
        ("batch", f"{data.batch_size} x {optim.grad_accumulation} accumulation"),
        ("optimizer", f"AdamW, lr {optim.lr}, weight decay {optim.weight_decay}, {schedule}"),
        ("scaling", ", ".join(f"{k}={v}" for k, v in scaling.items()) or "none (dense in-batch loss)"),
        ("steps", f"{facts.steps}" + (f" ({facts.skipped_steps} skipped: non-finite)" if facts.skipped_steps else "")),
        ("final loss", f"{facts.final_loss:.4f}"),
        ("seed", f"{cfg.train.seed}"),
    ]
    datasets = [
        (d.name, ", ".join(f"`{f}`" for f in d.files) or "examples given to `train()` in Python", f"{d.rows:,}")
        for d in facts.datasets
    ]
    return [
        "## Training",
        "",
        *_table(("", ""), rows),
        "",
        "### Data",
        "",
        *_table(("dataset", "files", "rows"), datasets),
    ]


def _evaluation_section(history: list[tuple[int, dict[str, float]]]) -> list[str]:
    if not history:
        return ["## Evaluation during training", "", "None (no `eval` section in the config)."]
    names = list(dict.fromkeys(name for _, evals in history for name in evals))
    rows = [(str(step), *(_number(evals.get(n)) for n in names)) for step, evals in history]
    return ["## Evaluation during training", "", *_table(("step", *names), rows)]


def _usage_section(folder: Path) -> list[str]:
    return [
        "## Usage",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        f"model = SentenceTransformer({str(folder)!r})",
        'embeddings = model.encode(["A first sentence", "Another one"])',
        "```",
        "",
        f"`contrastkit eval {shlex.quote(str(folder))} --task sts --data DIR` scores it with the same settings.",
    ]


def _reproduce_section(facts: CardFacts) -> list[str]:
    env = environment_info()
    versions = ", ".join(
        f"{name} {env.get(key)}"
        for name, key in (
            ("contrastkit", "contrastkit"),
            ("sentence-transformers", "sentence_transformers"),
            ("transformers", "transformers"),
            ("torch", "torch"),
            ("python", "python"),
        )
    )
    resolved = yaml.safe_dump(config_dict(facts.config), sort_keys=False).rstrip()
    return [
        "## Reproduce",
        "",
        f"Versions: {versions}.",
        "",
        "Command:",
        "",
        "```bash",
        facts.command or "(not recorded)",
        "```",
        "",
        "Resolved config:",
        "",
        "```yaml",
        resolved,
        "```",
    ]


def model_card(facts: CardFacts, folder: Path, metrics_file: Path) -> str:
    """The Markdown card of the model saved in ``folder`` (see the module docstring)."""
    title = f"# {folder.parent.name or folder.name}: an embedding model trained with contrastkit"
    sections = [
        _model_section(facts.config, saved_settings(folder)),
        _training_section(facts),
        _evaluation_section(evaluation_history(metrics_file)),
        _usage_section(folder),
        _reproduce_section(facts),
    ]
    body = "\n\n".join("\n".join(s) for s in sections)
    return f"{_front_matter(facts.config)}\n{title}\n\n{body}\n"


def write_model_card(folder: Path, facts: CardFacts, metrics_file: Path) -> Path:
    """Write :func:`model_card` to ``folder / README.md`` (a temporary file, then a rename); returns its path."""
    return atomic_write(folder / CARD_FILE, model_card(facts, folder, metrics_file))


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else ("" if value is None else str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [" | ".join(str(c).replace("|", "\\|") for c in row) for row in rows]
    return [f"| {' | '.join(header)} |", "|" + "---|" * len(header), *(f"| {c} |" for c in cells)]
