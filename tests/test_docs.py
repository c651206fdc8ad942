"""The docs' Python and shell examples run, and the objective catalogue page matches the registry."""

import os
import re
from pathlib import Path

import pytest
from tests import docs_shell

from contrastkit import objectives
from contrastkit.cli.objectives import _row, markdown_catalogue

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("page", [p for p in PAGES if _python_blocks(p)], ids=lambda p: p.name)
def test_examples_run(page: Path) -> None:
    for block in _python_blocks(page):
        exec(compile(block, str(page), "exec"), {})


def test_catalogue_page_is_generated_from_registry() -> None:
    page = (ROOT / "docs" / "objectives.md").read_text().strip()
    expected = markdown_catalogue([_row(i) for i in objectives.infos()]).strip()
    assert page == expected, "docs/objectives.md is stale: run `contrastkit objectives --markdown > docs/objectives.md`"


SHARED = ROOT.parent / "shared" / "data"


def test_shell_examples_are_tagged() -> None:
    """A command in an untagged or ``text`` block would escape the smoke run below: tag it ``bash``."""
    assert [c for page in PAGES for c in docs_shell.untagged_commands(page)] == []


def tiny_model():  # type: ignore[no-untyped-def]
    """A random static encoder over MiniLM's tokenizer: token overlap drives its similarities (so mining and
    retrieval have something to find), and it encodes thousands of texts a second."""
    import torch
    from tokenizers import Tokenizer

    from contrastkit.encoders.auto import resolve_model_path
    from contrastkit.encoders.static import StaticEncoder

    torch.manual_seed(0)
    tokenizer = Tokenizer.from_file(str(resolve_model_path("all-MiniLM-L6-v2") / "tokenizer.json"))
    return StaticEncoder(tokenizer, dim=32, max_length=128)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data pack not found at {SHARED}")
@pytest.mark.parametrize(
    "page", [p for p in PAGES if any(not b.template for b in docs_shell.shell_blocks(p))], ids=lambda p: p.name
)
def test_shell_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shell example not marked ``# template`` runs as written from the repository root, as a smoke
    variant (tests/docs_shell.py): real paths, commands and flags, a tiny model in place of the named one
    (:func:`tiny_model`, after the named one was found)."""
    import contrastkit.encoders as encoders
    from contrastkit.cli import analyze
    from contrastkit.cli.main import main
    from contrastkit.encoders.auto import resolve_model_path

    def tiny(model, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not docs_shell.produced_earlier(model):
            resolve_model_path(model)  # the example's model must exist (folder or offline alias)
        return tiny_model()

    for target in (encoders, analyze):
        monkeypatch.setattr(target, "load_encoder", tiny)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sandbox = docs_shell.make_sandbox(tmp_path)
    monkeypatch.chdir(sandbox)
    assert docs_shell.run_page(page, sandbox, main) > 0
    assert os.getcwd() == str(sandbox)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data pack not found at {SHARED}")
@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("contrastkit eval all-MiniLM-L6-v2 --task sts --data ../shared/data/stsbx", "stsbx"),
        ("contrastkit eval all-MiniLM-L6-v2 --task sts --data ../shared/data/stsb --jsn out.json", "refuses"),
        ("contrastkit eval no-such-model --task sts --data ../shared/data/stsb", "no-such-model"),
        ("contrastkit train configs/example.yaml optim.lrr=1e-5", "cannot resolve"),
        ("contrastkit train configs/example.yaml data.train=pairs.jsonl", "training file pairs.jsonl"),
        ("contrastkit train configs/exampel.yaml", "cannot resolve"),
        ("contrastkit mine --data scifact --method bm25 --out runs/n.jsonl", "failed"),
        ("python bench/quality.py --onlyy x", "has no option --onlyy"),
        ("bash scripts/nothing.sh", "script scripts/nothing.sh does not exist"),
        ("contrastkit frobnicate", "no command"),
        ("curl https://example.com", "no smoke variant"),
    ],
)
def test_the_smoke_variant_still_fails_on_a_wrong_path_flag_key_or_model(
    command: str, error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contrastkit.cli.main import main

    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(f"```bash\n# template: not run\ncurl x\n```\n\n```bash\n{command}\n```\n")
    sandbox = docs_shell.make_sandbox(tmp_path / "box")
    monkeypatch.chdir(sandbox)
    monkeypatch.setattr(docs_shell, "ROOT", tmp_path)
    with pytest.raises(AssertionError, match=re.escape(error)) as failure:
        docs_shell.run_page(page, sandbox, main)
    assert str(failure.value).startswith("docs/page.md:7: ")  # the page and line of the example


# What an example uses -> the optional extra (pyproject.toml) it needs
EXTRAS = {
    "mining": r"--method (bm25|hybrid)|\bbm25s\b|\bfaiss\b|--index (flat|hnsw|ivf)",
    "lora": r"lora: \{?enabled: true|lora\.enabled=true|LoraConfig",
    "mteb": r"\bimport mteb\b|contrastkit\.evaluation\.mteb",
    "hf": r"format: hf|format=\"hf\"",
    "export": r"contrastkit export|bench/export\.py|export_dynamic_quantized",
}


def test_examples_name_the_extras_they_need() -> None:
    """A code example that needs an optional extra names it (``contrastkit[extra]``, ``.[extra,...]`` or
    "the extra extra") in the block or the paragraph before it."""
    missing = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in docs_shell.blocks(page):
            start = sum(len(line) + 1 for line in text.split("\n")[: block.line - 1])
            context = text[max(0, start - 700) : start] + block.text
            for extra, pattern in EXTRAS.items():
                named = re.search(rf"[\[,]{extra}[\],]|the {extra} extra", context)
                if re.search(pattern, block.text) and not named:
                    missing.append(f"{page.name}:{block.line} needs the {extra} extra and does not say so")
    assert missing == []
