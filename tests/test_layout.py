"""Repository habits the test runner depends on."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_test_file_names_are_unique() -> None:
    """tests/ has no __init__.py (helpers import by folder), so two test files may not share a basename."""
    counts = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert not [name for name, n in counts.items() if n > 1]
