"""The offline quickstart task: docstring -> code search over the Python standard library on this machine.

Every public function and method of the standard library's public modules
(``sysconfig.get_paths()["stdlib"]``; files are parsed with :mod:`ast`, never
imported) with a docstring gives a pair:

* query: the first paragraph of the docstring (whitespace collapsed; a leading
  call-signature paragraph such as ``"wrap(text, width=70)"`` is skipped), at
  least ``min_query_words`` words and at most ``max_query_chars`` characters;
* document: the function's source, decorators included, dedented, with its
  docstring (and the docstrings of functions and classes nested in it)
  removed and comments kept, at most ``max_doc_chars`` characters, and a body
  that does more than ``pass`` / ``...`` / ``raise NotImplementedError``.

Pairs whose query or whose document occurs more than once in the whole pool
are dropped (ambiguous, and a leak between the splits). Public means: no
leading underscore in the function, class or module path (``__init__.py``
stands for its package); test packages, ``site-packages`` and private modules
(``_pyio``, ``_pydecimal``, ...) are skipped.

Split: a module goes to the held-out test side when a stable hash (SHA-256)
of its dotted name falls below ``test_fraction``, so train and test share no
module and the split does not depend on the seed or on the process. The test
corpus is the code of every held-out pair; the test queries are up to
``max_test_queries`` of them, chosen by a stable hash of the pair id (also
seed-independent, so runs with different seeds are scored on the same
queries); each query has exactly one relevant document, its own function.
``seed`` only chooses which train pairs are kept when there are more than
``max_train``. The task depends on the Python version whose stdlib is read
(:attr:`CodeSearchTask.source` records it).

Example::

    >>> task = build_code_search(seed=0, max_train=200, max_test_queries=50)   # doctest: +SKIP
    >>> task.train[0].anchor, task.train[0].positives[0]                      # doctest: +SKIP
"""

from __future__ import annotations

import ast
import gc
import hashlib
import os
import random
import re
import sys
import sysconfig
import tokenize
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from contrastkit.data.examples import Example

_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->.*)?$")
_FunctionNode = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class CodePair:
    """One (docstring paragraph, code) pair; ``id`` is ``"module:Qualified.name"``."""

    id: str
    module: str
    query: str
    code: str


@dataclass(frozen=True)
class CodeSearchTask:
    """Train pairs and a held-out retrieval set (BEIR layout) from disjoint modules.

    Attributes:
        train: ``Example(anchor=query, positives=(code,), group=pair id, source="stdlib:<module>")``.
        test_queries: ``"q:<pair id>"`` -> query text.
        test_corpus: ``"d:<pair id>"`` -> code, for every held-out pair.
        test_qrels: ``"q:<pair id>"`` -> ``{"d:<pair id>": 1}``.
        train_modules, test_modules: the modules of each side (disjoint).
        source: the Python version and stdlib folder read.
    """

    train: list[Example]
    test_queries: dict[str, str]
    test_corpus: dict[str, str]
    test_qrels: dict[str, dict[str, int]]
    train_modules: tuple[str, ...]
    test_modules: tuple[str, ...]
    source: str


def build_code_search(
    seed: int = 0,
    *,
    max_train: int | None = 10_000,
    max_test_queries: int | None = 1_000,
    test_fraction: float = 0.2,
    root: str | Path | None = None,
    max_files: int | None = None,
    min_query_words: int = 5,
    max_query_chars: int = 400,
    max_doc_chars: int = 2_000,
) -> CodeSearchTask:
    """Build the stdlib code-search task (see the module docstring); deterministic for a given stdlib and seed.

    ``root`` defaults to this interpreter's stdlib folder; ``max_files`` keeps
    that many modules (chosen by stable hash) for a faster, smaller build.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    root = Path(root) if root is not None else Path(sysconfig.get_paths()["stdlib"])
    files = list(iter_modules(root))
    if max_files is not None:
        keep = set(sorted((m for m, _ in files), key=lambda m: _stable_hash(m, "files"))[:max_files])
        files = [(m, p) for m, p in files if m in keep]
    kwargs = {"min_query_words": min_query_words, "max_query_chars": max_query_chars, "max_doc_chars": max_doc_chars}
    pool: list[CodePair] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # parsing allocates millions of AST nodes: the cyclic collector alone would triple the time
    try:
        for module, path in files:
            try:
                with tokenize.open(path) as fh:
                    text = fh.read()
            except (SyntaxError, UnicodeDecodeError, OSError):
                continue
            pool += extract_pairs(text, module, **kwargs)
    finally:
        if gc_was_enabled:
            gc.enable()
    pool = _unique(pool)
    train = [p for p in pool if not is_test_module(p.module, test_fraction)]
    test = [p for p in pool if is_test_module(p.module, test_fraction)]
    if max_train is not None and len(train) > max_train:
        kept = set(random.Random(seed).sample(range(len(train)), max_train))
        train = [p for i, p in enumerate(train) if i in kept]
    queries = test
    if max_test_queries is not None and len(test) > max_test_queries:
        chosen = set(sorted((p.id for p in test), key=lambda i: _stable_hash(i, "queries"))[:max_test_queries])
        queries = [p for p in test if p.id in chosen]
    return CodeSearchTask(
        train=[Example(anchor=p.query, positives=(p.code,), group=p.id, source=f"stdlib:{p.module}") for p in train],
        test_queries={f"q:{p.id}": p.query for p in queries},
        test_corpus={f"d:{p.id}": p.code for p in test},
        test_qrels={f"q:{p.id}": {f"d:{p.id}": 1} for p in queries},
        train_modules=tuple(sorted({p.module for p in train})),
        test_modules=tuple(sorted({p.module for p in test})),
        source=f"Python {sys.version.split()[0]} stdlib at {root}",
    )


def iter_modules(root: Path) -> Iterator[tuple[str, Path]]:
    """(dotted module name, path) of the public ``.py`` modules under ``root``, in sorted path order."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith("_") and d.isidentifier()]
        package = Path(folder).relative_to(root).parts
        for name in files:
            stem = name[:-3]
            if not name.endswith(".py") or not stem.isidentifier():
                continue
            if stem == "__init__" and package:
                found.append((".".join(package), Path(folder, name)))
            elif not stem.startswith("_"):
                found.append((".".join((*package, stem)), Path(folder, name)))
    yield from sorted(found, key=lambda item: item[1])


def is_test_module(module: str, test_fraction: float) -> bool:
    """Whether ``module`` is held out: its stable hash, as a fraction of 2**64, is below ``test_fraction``."""
    return _stable_hash(module) / 2**64 < test_fraction


def extract_pairs(
    text: str,
    module: str,
    *,
    min_query_words: int = 5,
    max_query_chars: int = 400,
    max_doc_chars: int = 2_000,
) -> list[CodePair]:
    """The pairs of one module's source ``text``: its public top-level functions and public classes' methods."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for node in tree.body:
        if isinstance(node, _FunctionNode):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            found += [(f"{node.name}.{m.name}", m) for m in node.body if isinstance(m, _FunctionNode)]
    pairs: list[CodePair] = []
    seen: Counter[str] = Counter()
    for qualname, func in found:
        if func.name.startswith("_"):
            continue
        query = docstring_query(ast.get_docstring(func), min_words=min_query_words, max_chars=max_query_chars)
        code = strip_docstrings(func, lines) if query else None
        if query is None or code is None or len(code) > max_doc_chars:
            continue
        seen[qualname] += 1
        suffix = f"#{seen[qualname]}" if seen[qualname] > 1 else ""
        pairs.append(CodePair(id=f"{module}:{qualname}{suffix}", module=module, query=query, code=code))
    return pairs


def docstring_query(docstring: str | None, *, min_words: int = 5, max_chars: int = 400) -> str | None:
    """The first paragraph of a (cleaned) docstring, whitespace collapsed, or None when it does not qualify."""
    if not docstring:
        return None
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", docstring.strip())]
    paragraphs = [p for p in paragraphs if p]
    if paragraphs and _SIGNATURE.match(paragraphs[0]):
        paragraphs = paragraphs[1:]
    if not paragraphs:
        return None
    query = paragraphs[0]
    if len(query.split()) < min_words or len(query) > max_chars:
        return None
    return query


def strip_docstrings(func: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> str | None:
    """Source of ``func`` (1-based line numbers into ``lines``) without its docstrings, dedented; None if unusable.

    Unusable: the docstring shares a line with other code, the body is only
    the docstring or trivial (``pass``, ``...``, ``raise NotImplementedError``),
    or the result does not parse.
    """
    body = func.body[1:]
    if not body or all(_trivial(stmt) for stmt in body):
        return None
    drop: set[int] = set()
    replace: dict[int, str] = {}
    for owner in [
        func,
        *(n for n in ast.walk(func) if n is not func and isinstance(n, (*_FunctionNode, ast.ClassDef))),
    ]:
        doc = _docstring_node(owner)
        if doc is None:
            continue
        first, last = doc.lineno, doc.end_lineno or doc.lineno
        if not _alone_on_lines(doc, lines):
            return None
        drop.update(range(first, last + 1))
        if len(owner.body) == 1:  # a nested def whose body is only its docstring keeps a valid body
            replace[first] = lines[first - 1][: doc.col_offset] + "pass"
        elif last < len(lines) and not lines[last].strip():
            drop.add(last + 1)  # the blank line that followed the docstring
    start = min([func.lineno, *(d.lineno for d in func.decorator_list)])
    indent = lines[func.lineno - 1][: func.col_offset]
    out = []
    for number in range(start, (func.end_lineno or func.lineno) + 1):
        line = replace.get(number, None if number in drop else lines[number - 1])
        if line is not None:
            out.append((line[len(indent) :] if line.startswith(indent) else line).rstrip())
    code = "\n".join(out)
    try:
        ast.parse(code)
    except SyntaxError:
        return None
    return code


def _nested_definitions(statements: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Function and class definitions nested in ``statements`` (statement bodies only, not expressions)."""
    for stmt in statements:
        if isinstance(stmt, (*_FunctionNode, ast.ClassDef)):
            yield stmt
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(stmt, field, None)
            if isinstance(children, list):
                yield from _nested_definitions(children)


def _docstring_node(node: ast.AST) -> ast.Expr | None:
    body = getattr(node, "body", None)
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def _alone_on_lines(doc: ast.Expr, lines: list[str]) -> bool:
    """Only whitespace before the docstring on its first line and nothing but a comment after it on its last."""
    first = lines[doc.lineno - 1].encode()
    last = lines[(doc.end_lineno or doc.lineno) - 1].encode()
    after = last[doc.end_col_offset or len(last) :].strip()
    return not first[: doc.col_offset].strip() and (not after or after.startswith(b"#"))


def _trivial(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return True
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def _unique(pool: list[CodePair]) -> list[CodePair]:
    """Drop every pair whose query (case- and space-insensitive) or code occurs more than once in the pool."""
    queries = Counter(p.query.lower() for p in pool)
    codes = Counter(p.code for p in pool)
    return [p for p in pool if queries[p.query.lower()] == 1 and codes[p.code] == 1]


def _stable_hash(text: str, purpose: str = "split") -> int:
    """A 64-bit hash of ``text`` that is the same in every process; ``purpose`` decorrelates its uses."""
    return int.from_bytes(hashlib.sha256(f"contrastkit-stdlib:{purpose}:{text}".encode()).digest()[:8], "big")
