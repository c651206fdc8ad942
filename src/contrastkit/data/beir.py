"""BEIR retrieval folders: corpus, queries and graded relevance judgements.

A BEIR folder holds ``corpus.jsonl`` (lines ``{"_id", "title", "text"}``),
``queries.jsonl`` (lines ``{"_id", "text"}``) and ``qrels/<split>.tsv``
(header ``query-id<TAB>corpus-id<TAB>score``, then one judgement per line, no
quoting). :func:`load_beir` reads one split into a :class:`BeirDataset`:

- ``corpus``: doc id -> text, ``title + " " + text`` when the title is
  non-empty (the text BEIR's sentence-transformers models encode), else the
  text; every document of the file is kept;
- ``queries``: query id -> text, only the queries judged in the split (as
  BEIR's own loader does);
- ``qrels``: query id -> {doc id -> integer relevance}, in file order,
  zero grades kept (they are judged non-relevant).

Ids are strings (integer ids in the JSON are converted). Every qrels id must
exist in the corpus/queries: a missing one is a
:class:`~contrastkit.data.errors.DataError` naming the qrels file, its line
and the id, as are duplicate ids, empty texts and malformed lines.

Example::

    >>> data = load_beir("scifact", split="train")  # doctest: +SKIP
    >>> examples = data.to_examples()  # doctest: +SKIP
    >>> # one example per query: its relevant docs are the positives
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from contrastkit.data.errors import DataError
from contrastkit.data.examples import Example
from contrastkit.data.formats import text_lines
from contrastkit.data.readers import json_records
from contrastkit.data.records import clip, integer

QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass(frozen=True)
class BeirDataset:
    """One split of a BEIR folder; see the module docstring.

    Construction checks that every qrels id is in ``queries``/``corpus``
    (DataError otherwise), so a dataset built by hand is as safe as a loaded one.
    """

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for qid, docs in self.qrels.items():
            if qid not in self.queries:
                raise DataError(f"qrels query-id {qid!r} is not in the queries")
            for doc_id in docs:
                if doc_id not in self.corpus:
                    raise DataError(f"qrels corpus-id {doc_id!r} (query {qid!r}) is not in the corpus")

    def to_examples(self, *, min_score: int = 1) -> list[Example]:
        """One example per judged query: anchor = query text, positives = its docs with grade >= ``min_score``.

        ``group`` is the query id, ``source`` the dataset name. Queries with no
        document at ``min_score`` or above have no positive and are left out
        (:meth:`unanswered` lists them). Positives keep the qrels file order.
        """
        examples = []
        for qid, docs in self.qrels.items():
            positives = tuple(self.corpus[d] for d, grade in docs.items() if grade >= min_score)
            if positives:
                examples.append(Example(self.queries[qid], positives=positives, group=qid, source=self.name))
        return examples

    def unanswered(self, *, min_score: int = 1) -> list[str]:
        """Ids of judged queries with no document at grade ``min_score`` or above."""
        return [qid for qid, docs in self.qrels.items() if not any(g >= min_score for g in docs.values())]


def load_beir(folder: str | Path, split: str = "test", *, title: bool = True) -> BeirDataset:
    """Read ``folder``'s corpus, queries and ``qrels/<split>.tsv``; ``title=False`` ignores titles.

    Raises FileNotFoundError for a missing file (listing the available
    splits) and :class:`DataError` for bad content (file, line, problem).
    """
    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for path in (folder / "corpus.jsonl", folder / "queries.jsonl"):
        if not path.is_file():
            raise FileNotFoundError(f"BEIR folder {folder}: no {path.name}")
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise FileNotFoundError(f"BEIR folder {folder}: no qrels/{split}.tsv (splits: {', '.join(splits) or 'none'})")
    corpus = _read_texts(folder / "corpus.jsonl", title=title)
    all_queries = _read_texts(folder / "queries.jsonl", title=False)
    qrels = read_qrels(qrels_path, corpus=corpus, queries=all_queries)
    queries = {qid: all_queries[qid] for qid in qrels}
    return BeirDataset(corpus, queries, qrels, name=folder.name)


def read_qrels(
    path: str | Path, *, corpus: dict[str, str] | None = None, queries: dict[str, str] | None = None
) -> dict[str, dict[str, int]]:
    """A qrels TSV as {query id: {doc id: grade}}; ids checked against ``corpus``/``queries`` when given."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    for number, line in text_lines(path):
        fields = line.split("\t")
        if number == 1:
            if tuple(f.strip().lower().replace("_", "-") for f in fields) != QRELS_HEADER:
                raise DataError(
                    f"expected the header {'<TAB>'.join(QRELS_HEADER)}, got {clip(line)!r}", path=path, line=1
                )
            continue
        if not line.strip():
            continue
        try:
            qid, doc_id, grade = _judgement(fields, corpus, queries)
        except DataError as e:
            raise DataError(e.problem, path=path, line=number) from None
        if doc_id in qrels.setdefault(qid, {}):
            raise DataError(f"duplicate judgement for query {qid!r} and doc {doc_id!r}", path=path, line=number)
        qrels[qid][doc_id] = grade
    return qrels


def _judgement(
    fields: list[str], corpus: dict[str, str] | None, queries: dict[str, str] | None
) -> tuple[str, str, int]:
    if len(fields) != 3:
        raise DataError(f"expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}")
    qid, doc_id, score = (f.strip() for f in fields)
    if not qid or not doc_id:
        raise DataError("empty query-id or corpus-id")
    try:
        grade = integer(score)
    except DataError as e:
        raise DataError(f"wrong value in column 'score': {e.problem}") from None
    if grade is None:
        raise DataError(f"wrong type in column 'score': expected an integer grade, got {clip(score)!r}")
    if queries is not None and qid not in queries:
        raise DataError(f"query-id {qid!r} is not in queries.jsonl")
    if corpus is not None and doc_id not in corpus:
        raise DataError(f"corpus-id {doc_id!r} is not in corpus.jsonl")
    return qid, doc_id, grade


def _read_texts(path: Path, *, title: bool) -> dict[str, str]:
    """id -> text of a BEIR corpus/queries JSONL file, with the title joined when ``title``."""
    texts: dict[str, str] = {}
    for number, record in json_records(path):
        try:
            key = _field(record, "_id", allow_int=True)
            text = _field(record, "text", allow_empty=title)
            head = _field(record, "title", allow_empty=True, optional=True) if title else ""
            joined = f"{head} {text}".strip() if head.strip() else text
            if not joined.strip():
                raise DataError("empty text in columns 'title' and 'text'")
        except DataError as e:
            raise DataError(e.problem, path=path, line=number) from None
        if key in texts:
            raise DataError(f"duplicate _id {key!r}", path=path, line=number)
        texts[key] = joined
    return texts


def _field(
    record: dict[str, object], name: str, *, allow_int: bool = False, allow_empty: bool = False, optional: bool = False
) -> str:
    if name not in record:
        if optional:
            return ""
        raise DataError(f"missing column {name!r} (present: {', '.join(record) or 'none'})")
    value = record[name]
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(f"wrong type in column {name!r}: expected a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DataError(f"empty text in column {name!r}")
    return value
