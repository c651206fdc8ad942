"""The import contract of docs/architecture.md: no package imports one above it.

``objectives <- scale <- training <- cli``; ``data``, ``encoders``, ``evaluation``,
``mining`` and ``diagnostics`` sit between the algebra and training and never import
``training`` or ``cli``. The check reads the source (every ``import`` statement,
including imports inside functions), so a lazy import cannot hide an inversion.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "contrastkit"

# package -> the contrastkit packages it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "objectives": frozenset(),
    "scale": frozenset({"objectives"}),
    "data": frozenset({"objectives"}),
    "encoders": frozenset({"objectives", "data"}),
    "evaluation": frozenset({"objectives", "data", "encoders"}),
    "mining": frozenset({"objectives", "data", "encoders", "evaluation"}),
    "diagnostics": frozenset({"objectives", "data", "encoders", "evaluation"}),
    "training": frozenset({"objectives", "scale", "data", "encoders", "evaluation", "mining", "diagnostics"}),
    "cli": frozenset({"objectives", "scale", "data", "encoders", "evaluation", "mining", "diagnostics", "training"}),
    # the top-level modules: `import contrastkit` loads the algebra; `python -m contrastkit` the CLI
    "": frozenset({"objectives", "scale", "cli"}),
}


def imported_packages(path: Path, root: Path) -> set[tuple[str, int]]:
    """``(package, line)`` for every ``contrastkit.<package>`` that ``path`` imports."""
    rel = path.relative_to(root)
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                base = list(rel.parts[:-1])[: max(len(rel.parts) - node.level, 0)]
                names.append(".".join(["contrastkit", *base, *([node.module] if node.module else [])]))
            else:
                names.append(node.module or "")
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        for name in names:
            parts = name.split(".")
            if parts[0] == "contrastkit" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def violations(root: Path) -> list[str]:
    """Every import in the tree at ``root`` that ``ALLOWED`` forbids, as ``file:line: a -> b``."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        package = rel.parts[0] if len(rel.parts) > 1 else ""
        allowed = ALLOWED.get(package)
        assert allowed is not None, f"{rel}: package {package!r} has no place in the layering (add it to ALLOWED)"
        for target, line in sorted(imported_packages(path, root)):
            if target != package and target in ALLOWED and target not in allowed:
                bad.append(f"{rel}:{line}: {package or 'contrastkit'} -> {target}")
    return bad


def test_the_package_keeps_its_layers() -> None:
    assert violations(SRC) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("objectives/x.py", "from contrastkit.scale import tiled\n", "objectives/x.py:1: objectives -> scale"),
        ("data/y.py", "def f():\n    from ..training import loop\n", "data/y.py:2: data -> training"),
        ("evaluation/z.py", "import contrastkit.cli.main\n", "evaluation/z.py:1: evaluation -> cli"),
    ],
)
def test_an_inverted_import_is_caught(tmp_path: Path, module: str, source: str, expected: str) -> None:
    """The check itself: a lower layer importing a higher one (top level, lazily, or by plain import) is reported."""
    path = tmp_path / module
    path.parent.mkdir(parents=True)
    path.write_text(source)
    (tmp_path / "scale").mkdir()
    (tmp_path / "scale" / "ok.py").write_text("from ..objectives import base\n")
    assert violations(tmp_path) == [expected]
