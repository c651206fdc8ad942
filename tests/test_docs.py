"""The docs' Python examples run, and the objective catalogue page matches the registry."""

import re
from pathlib import Path

import pytest

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
