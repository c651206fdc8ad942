"""Config loading: defaults <- YAML <- overrides, strict keys and types with dotted paths, round trip."""

import textwrap
from pathlib import Path

import pytest

from contrastkit.training.config import (
    Config,
    ConfigError,
    OptimConfig,
    apply_override,
    dump_config,
    load_config,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path=None, overrides=()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value


def test_defaults_yaml_then_overrides(tmp_path) -> None:
    path = write(
        tmp_path,
        """
        model: {path: some/model}
        optim:
          lr: 1e-4          # YAML 1.1 would read this as a string
          schedule: cosine
        scale: {matryoshka_dims: [16, 8]}
        """,
    )
    cfg = load_config(path, ["optim.lr=3e-5", "data.train=a.jsonl", "objective.hparams.margin=0.2"])
    assert cfg.optim.lr == 3e-5  # the override wins over the file
    assert cfg.optim.schedule == "cosine"  # from the file
    assert cfg.optim.weight_decay == OptimConfig().weight_decay  # default
    assert cfg.model.path == "some/model"
    assert cfg.data.train == ("a.jsonl",)  # one path becomes a one-element list
    assert cfg.scale.matryoshka_dims == (16, 8)
    assert cfg.objective.hparams == {"margin": 0.2}
    assert load_config(None, []) == Config()


@pytest.mark.parametrize(
    "text, path, suggestion",
    [
        ("optim: {lrr: 0.1}", "optim.lrr", "optim.lr"),
        ("train: {chekpoint_every: 3}", "train.chekpoint_every", "train.checkpoint_every"),
        ("optimizer: {lr: 0.1}", "optimizer", "optim"),
        ("lr: 0.1", "lr", "optim.lr"),  # a leaf given at the wrong level: its full path
        ("train: {learning_rate: 0.1}", "train.learning_rate", None),
        ("scale: {gradcache_chunks: 4}", "scale.gradcache_chunks", "scale.gradcache_chunk"),
    ],
)
def test_unknown_key_names_its_path_and_the_closest_key(tmp_path, text, path, suggestion) -> None:
    file = write(tmp_path, text)
    err = error_of(file)
    assert err.path == path
    assert str(err).startswith(f"{file}:1: {path}: unknown key")  # the file and line of the key
    if suggestion is not None:
        assert f"did you mean {suggestion!r}?" in str(err)
    else:
        assert "valid keys here:" in str(err) and "steps" in str(err)


def test_unknown_key_in_an_override() -> None:
    err = error_of(overrides=["data.batchsize=8"])
    assert str(err) == "data.batchsize: unknown key; did you mean 'data.batch_size'?"


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=fast", "optim.lr: expected float, got str 'fast'"),
        ("data.batch_size=2.5", "data.batch_size: expected int, got float 2.5"),
        ("data.batch_size=true", "data.batch_size: expected int, got bool True"),
        ("train.resume=yes please", "train.resume: expected bool, got str 'yes please'"),
        ("objective.similarity=cos", "objective.similarity: expected one of 'cosine', 'dot', got str 'cos'"),
        ("scale.gradcache_chunk=[1]", "scale.gradcache_chunk: expected int or null, got list"),
        ("optim.betas=[0.9]", "optim.betas: expected list of 2 (float, float), got a list of 1"),
        ("scale.matryoshka_dims=[8, x]", "scale.matryoshka_dims[1]: expected int, got str 'x'"),
        ("model.prompts.query=7", "model.prompts.query: expected str, got int 7"),
        ("model=3", "model: expected a mapping (section), got int 3"),
    ],
)
def test_wrong_type_names_path_expected_and_got(override, message) -> None:
    assert str(error_of(overrides=[override])) == message


def test_wrong_type_in_a_yaml_file(tmp_path) -> None:
    file = write(tmp_path, "train:\n  steps: ten\n")
    err = error_of(file)
    assert (err.path, str(err)) == ("train.steps", f"{file}:2: train.steps: expected int or null, got str 'ten'")


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=-1", "optim.lr: must be in (0, 1.0], got -1.0"),
        ("data.batch_size=0", "data.batch_size: must be >= 1, got 0"),
        ("train.device=tpu", "train.device: unknown device 'tpu': expected auto, cpu, cuda, cuda:N or mps"),
        ("optim.warmup_ratio=1.5", "optim.warmup_ratio: must be in [0, 1]"),
    ],
)
def test_invalid_values_name_their_path(override, message) -> None:
    assert str(error_of(overrides=[override])) == message


def test_cross_field_checks() -> None:
    assert load_config(None, ["train.steps=3", "train.epochs=2"]).train.steps == 3  # steps wins, as documented
    err = error_of(overrides=["scale.matryoshka_dims=[8, 4]", "scale.matryoshka_weights=[1]"])
    assert err.path == "scale.matryoshka_weights"


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("optim.lr", "expected KEY=VALUE"),
        ("=3", "is not a dotted key"),
        ("optim..lr=3", "is not a dotted key"),
        ("optim.l r=3", "is not a dotted key"),
        ("scale.matryoshka_dims=[8, 4", "is not valid YAML"),
        ('model.path="unclosed', "is not valid YAML"),
    ],
)
def test_override_syntax_errors(override, fragment) -> None:
    err = error_of(overrides=[override])
    assert fragment in str(err)
    assert override.split("=")[0] in str(err) or override in str(err)


def test_override_into_a_value_is_an_error() -> None:
    data = {"optim": {"lr": 0.1}}
    with pytest.raises(ConfigError, match=r"optim.lr is a value, not a section"):
        apply_override(data, "optim.lr.x=1")


def test_override_values_are_yaml_scalars_or_plain_text() -> None:
    cfg = load_config(
        None,
        [
            "model.prompts.query=query: ",  # not valid as a YAML scalar: kept as text
            "model.path='1e-3'",  # quoted: a string
            "optim.grad_clip=null",
            "objective.hparams={margin: 0.2, ks: [1, 2]}",
        ],
    )
    assert cfg.model.prompts == {"query": "query: "}
    assert cfg.model.path == "1e-3"
    assert cfg.optim.grad_clip is None
    assert cfg.objective.hparams == {"margin": 0.2, "ks": (1, 2)}


def test_yaml_errors_and_bad_files(tmp_path) -> None:
    err = error_of(write(tmp_path, "optim:\n  lr: [1, 2\n"))
    assert "cfg.yaml" in str(err) and "line" in str(err) and "invalid YAML" in str(err)
    assert "top level must be a mapping" in str(error_of(write(tmp_path, "- 1\n- 2\n")))
    assert "cannot read config file" in str(error_of(tmp_path / "missing.yaml"))
    assert load_config(write(tmp_path, "# nothing\n")) == Config()


def test_dump_then_load_is_identity(tmp_path) -> None:
    cfg = load_config(
        None,
        [
            "model.path=m",
            "model.prompts.query=query: ",
            "data.train=[a.jsonl, b.csv]",
            "data.columns={anchor: q, positive: d}",
            "objective.hparams={k: [1, 2], s: x}",
            "scale.matryoshka_dims=[8, 4]",
            "optim.lr=1e-5",
            "train.steps=7",
        ],
    )
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temp file


def test_config_is_frozen() -> None:
    cfg = load_config(None, [])
    with pytest.raises(AttributeError):
        cfg.optim.lr = 1.0  # type: ignore[misc]


def test_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "configs" / "example.yaml", ["train.steps=20"])
    assert cfg.model.path == "all-MiniLM-L6-v2" and cfg.optim.lr == 2e-5 and cfg.train.steps == 20
