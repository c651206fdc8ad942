"""The stdlib code-search task: deterministic, module-disjoint split, docstrings stripped, fast to build."""

import ast
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from contrastkit.data.stdlib_code import (
    CodeSearchTask,
    build_code_search,
    docstring_query,
    extract_pairs,
    is_test_module,
    iter_modules,
)

BUILD_SECONDS: list[float] = []


@pytest.fixture(scope="module")
def task() -> CodeSearchTask:
    start = time.perf_counter()
    built = build_code_search(seed=0)
    BUILD_SECONDS.append(time.perf_counter() - start)
    return built


def _digest(t: CodeSearchTask) -> str:
    payload = [[e.anchor, e.positives, e.group, e.source] for e in t.train]
    payload += [t.test_queries, t.test_corpus, t.test_qrels]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def test_builds_in_a_few_seconds_with_a_useful_size(task: CodeSearchTask) -> None:
    assert BUILD_SECONDS[0] < 20, f"build took {BUILD_SECONDS[0]:.1f}s"
    assert len(task.train) > 1000 and len(task.test_queries) > 200
    assert len(task.test_corpus) >= len(task.test_queries)
    assert "stdlib" in task.source


def test_train_and_test_share_no_module(task: CodeSearchTask) -> None:
    assert task.train_modules and task.test_modules
    assert not set(task.train_modules) & set(task.test_modules)
    assert {e.source.removeprefix("stdlib:") for e in task.train} == set(task.train_modules)
    test_modules = {doc_id[2:].split(":")[0] for doc_id in task.test_corpus}
    assert test_modules == set(task.test_modules)
    assert all(is_test_module(m, 0.2) for m in test_modules)
    assert not any(is_test_module(m, 0.2) for m in task.train_modules)


def test_queries_and_documents(task: CodeSearchTask) -> None:
    pairs = [(e.anchor, e.positives[0]) for e in task.train]
    pairs += [(q, task.test_corpus["d:" + qid[2:]]) for qid, q in task.test_queries.items()]
    for query, code in pairs:
        assert query != code
        assert query not in code
        assert len(query.split()) >= 5
    queries = [q.lower() for q, _ in pairs]
    assert len(set(queries)) == len(queries)  # unique queries: no test query is also a train query
    codes = [e.positives[0] for e in task.train] + list(task.test_corpus.values())
    assert len(set(codes)) == len(codes)
    for qid, rel in task.test_qrels.items():
        assert qid in task.test_queries and list(rel.values()) == [1] and next(iter(rel)) in task.test_corpus


def test_docstrings_are_stripped_from_documents(task: CodeSearchTask) -> None:
    codes = [e.positives[0] for e in task.train] + list(task.test_corpus.values())
    for code in codes:
        tree = ast.parse(code)  # every document is valid Python
        assert isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                assert ast.get_docstring(node) is None, code
        assert not code.startswith((" ", "\t")) and len(code) <= 2000


def test_deterministic_for_a_seed_across_processes() -> None:
    small = {"max_files": 60, "max_train": 40, "max_test_queries": 10}
    here = build_code_search(seed=3, **small)
    assert _digest(here) == _digest(build_code_search(seed=3, **small))
    script = (
        "import json, sys; from contrastkit.data.stdlib_code import build_code_search; "
        f"t = build_code_search(seed=3, **{small!r}); "
        "json.dump([[e.anchor, e.positives, e.group, e.source] for e in t.train] "
        "+ [t.test_queries, t.test_corpus, t.test_qrels], sys.stdout)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    payload = [[e.anchor, list(e.positives), e.group, e.source] for e in here.train]
    payload += [here.test_queries, here.test_corpus, here.test_qrels]
    assert json.loads(out) == payload
    # the seed picks the train subsample only; the test side does not depend on it
    other = build_code_search(seed=4, **small)
    assert [e.group for e in other.train] != [e.group for e in here.train]
    assert (other.test_queries, other.test_corpus) == (here.test_queries, here.test_corpus)
    assert len(here.train) == 40 and len(here.test_queries) == 10


SOURCE = textwrap.dedent(
    '''\
    """Module docstring."""
    import functools


    @functools.lru_cache(maxsize=None)
    def cached_total(values, start=0):
        """Add up all the values given, starting from start.

        More details that are not part of the query.
        """

        total = start  # keep the comment
        for v in values:
            total += v
        return total


    def short(x):
        """Too short."""
        return x


    def _private(x):
        """A private helper function is never taken."""
        return x


    def stub(x):
        """An abstract function whose body is trivial only."""
        raise NotImplementedError


    def signature(a, b):
        """signature(a, b) -> int

        Compare two numbers and return the larger one here.
        """
        return max(a, b)


    def shares_line(x):
        """Héllo wörld, this docstring shares its line."""; return x


    def nested(x):
        """The outer function with a documented inner helper."""
        def inner():
            """Inner docstring that must go away."""
        class Box:
            """Box docstring that must go away too."""
            value = 1
        return inner, Box


    class Public:
        """Class docstring."""

        def method(self, y):
            """Return the argument multiplied by two for you."""
            return 2 * y

        def method(self, y):
            """A redefinition of the method with another docstring."""
            return 3 * y


    class _Hidden:
        def method(self):
            """Methods of private classes are never taken."""
            return 1
    '''
)


def test_extract_pairs_on_synthetic_source() -> None:
    pairs = {p.id: p for p in extract_pairs(SOURCE.replace("import functools", "import functools\f"), "pkg.mod")}
    assert sorted(pairs) == ["pkg.mod:Public.method", "pkg.mod:Public.method#2", "pkg.mod:cached_total",
                             "pkg.mod:nested", "pkg.mod:signature"]  # fmt: skip
    cached = pairs["pkg.mod:cached_total"]
    assert cached.query == "Add up all the values given, starting from start."
    assert cached.code == textwrap.dedent(
        """\
        @functools.lru_cache(maxsize=None)
        def cached_total(values, start=0):
            total = start  # keep the comment
            for v in values:
                total += v
            return total"""
    )
    assert pairs["pkg.mod:signature"].query == "Compare two numbers and return the larger one here."
    assert pairs["pkg.mod:Public.method"].code == "def method(self, y):\n    return 2 * y"
    nested = pairs["pkg.mod:nested"].code
    assert "must go away" not in nested and "    def inner():\n        pass" in nested and "value = 1" in nested
    assert all(p.module == "pkg.mod" for p in pairs.values())
    assert extract_pairs("def broken(:\n", "m") == []


def test_docstring_query_rules() -> None:
    assert docstring_query("Return   the\n  answer to everything.\n\nMore.") == "Return the answer to everything."
    assert docstring_query("Four words only here.") is None
    assert docstring_query("f(x) -> y") is None
    assert docstring_query("word " * 200) is None
    assert docstring_query(None) is None


def test_iter_modules_skips_private_test_and_site_packages(tmp_path: Path) -> None:
    for rel in ["top.py", "_priv.py", "__init__.py", "pkg/__init__.py", "pkg/mod.py", "pkg/_hidden.py",
                "pkg/tests/test_x.py", "pkg/sub/deep.py", "_private_pkg/x.py", "site-packages/y/z.py",
                "config-3.11/a.py", "pkg/data.txt"]:  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    assert [m for m, _ in iter_modules(tmp_path)] == ["pkg", "pkg.mod", "pkg.sub.deep", "top"]
