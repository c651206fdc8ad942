"""MTEBEncoder: a contrastkit Encoder runs through mteb.evaluate offline (mock tasks, a local task), known scores."""

import math
import socket
from collections.abc import Sequence

import pytest
import torch
from torch import Tensor

from contrastkit.encoders.base import Encoder, Features

mteb = pytest.importorskip("mteb", reason="mteb is not installed")
from datasets import Dataset, DatasetDict  # noqa: E402  (mteb depends on datasets)
from mteb.abstasks.sts import AbsTaskSTS  # noqa: E402
from mteb.abstasks.task_metadata import TaskMetadata  # noqa: E402
from mteb.mocks import MockRetrievalTask, MockSTSTask  # noqa: E402
from mteb.models.models_protocols import EncoderProtocol  # noqa: E402

from contrastkit.evaluation.mteb import MTEBEncoder  # noqa: E402
from contrastkit.evaluation.reasoning import instruction_for  # noqa: E402


class TableEncoder(Encoder):
    """Looks each (prompt + text) up in a table of vectors chosen by the test; records what it encodes."""

    def __init__(self, table: dict[str, Sequence[float]], prompts: dict[str, str] | None = None) -> None:
        super().__init__(normalize=False, prompts=prompts)
        self.keys = {text: i for i, text in enumerate(table)}
        self.register_buffer("table", torch.tensor(list(table.values()), dtype=torch.float32))
        self.seen: list[str] = []

    @property
    def dim(self) -> int:
        return self.table.shape[1]

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        full = [(prompt or "") + t for t in texts]
        self.seen.extend(full)
        return {"index": torch.tensor([self.keys[t] for t in full], dtype=torch.long)}

    def forward(self, features: Features) -> Tensor:
        return self.table[features["index"]]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """HF offline, and any socket connection fails the test: nothing may be fetched."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def run(model, tasks):
    return {r.task_name: r for r in mteb.evaluate(model, tasks, cache=None, show_progress_bar=False).task_results}


# MockRetrievalTask: q1 -> d1, q2 -> d2; documents reach the model as "title text"
D1 = "Title of d2 This is another positive sentence"
D2 = "Title of d1 This is a positive sentence"
Q1, Q2 = "This is a test sentence", "This is another test sentence"


def test_protocol_and_meta() -> None:
    model = MTEBEncoder(TableEncoder({"a": [1.0, 0.0]}), name="org/tiny")
    assert isinstance(model, EncoderProtocol)
    meta = model.mteb_model_meta
    assert (meta.name, meta.revision, meta.embed_dim, meta.modalities) == ("org/tiny", "local", 2, ["text"])
    assert meta.similarity_fn_name.value == "cosine"
    sim = model.similarity([[1.0, 0.0], [0.0, 2.0]], [[3.0, 3.0]])
    assert sim.shape == (2, 1) and sim.flatten().tolist() == pytest.approx([math.sqrt(0.5)] * 2)
    assert model.similarity_pairwise([[1.0, 0.0]], [[-2.0, 0.0]]).tolist() == pytest.approx([-1.0])


@pytest.mark.parametrize(("swap", "ndcg"), [(False, 1.0), (True, 1 / math.log2(3))])
def test_mock_retrieval_known_ndcg_with_query_prompt(swap: bool, ndcg: float) -> None:
    a, b = [1.0, 0.1], [0.1, 1.0]
    q1, q2 = (b, a) if swap else (a, b)
    table = {D1: a, D2: b, f"query: {Q1}": q1, f"query: {Q2}": q2}
    enc = TableEncoder(table, prompts={"query": "query: "})
    result = run(MTEBEncoder(enc), [MockRetrievalTask()])["MockRetrievalTask"]
    for split in ("test", "val"):
        scores = result.scores[split][0]
        assert scores["ndcg_at_10"] == pytest.approx(ndcg, abs=1e-5)
        assert scores["main_score"] == pytest.approx(ndcg, abs=1e-5)
    assert set(enc.seen) == set(table)  # documents without prompt, queries with the "query" prompt


def test_mock_sts_spearman_sign() -> None:
    task = MockSTSTask()  # gold scores: pair 1 similar (1), pair 2 not (0)
    s1 = ["This is a test sentence", "This is another test sentence"]
    s2 = ["dette er en test sætning", "denne her matche ikke den ovenstående"]
    for first_close, expected in ((True, 1.0), (False, -1.0)):
        close, far = [1.0, 0.2], [1.0, 0.0]  # cosines 0.98 and 0 with s1[0]; swapped roles for s1[1]
        table = {s1[0]: [1.0, 0.0], s1[1]: [0.0, 1.0]}
        table[s2[0]] = close if first_close else [0.0, 1.0]
        table[s2[1]] = far if first_close else [0.2, 1.0]
        result = run(MTEBEncoder(TableEncoder(table)), [task])["MockSTSTask"]
        assert result.scores["test"][0]["cosine_spearman"] == pytest.approx(expected)


class LocalSTS(AbsTaskSTS):
    """A task defined here, with an instruction: 5 pairs whose cosines have a known rank order."""

    metadata = TaskMetadata(
        name="ContrastkitLocalSTS",
        description="Local STS task for the contrastkit adapter test.",
        reference="https://example.org/none",
        dataset={"path": "NA", "revision": "NA"},
        type="STS",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="cosine_spearman",
        date=("2024-01-01", "2024-01-02"),
        domains=[],
        task_subtypes=[],
        license="cc-by-4.0",
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
        prompt="Judge:",
    )
    min_score, max_score = 0, 5
    ANGLES = (0, 20, 45, 70, 90)  # sentence2 of pair i at ANGLES[i] degrees from sentence1 (x axis)
    GOLD = (5.0, 4.0, 3.0, 1.0, 2.0)  # the last two swapped against the cosine order

    def load_data(self, **kwargs) -> None:
        self.dataset = DatasetDict(
            {
                "test": Dataset.from_dict(
                    {
                        "sentence1": [f"left {i}" for i in range(5)],
                        "sentence2": [f"right {i}" for i in range(5)],
                        "score": list(self.GOLD),
                    }
                )
            }
        )
        self.data_loaded = True


def local_table(prefix: str) -> dict[str, list[float]]:
    table = {f"{prefix}left {i}": [1.0, 0.0] for i in range(5)}
    for i, deg in enumerate(LocalSTS.ANGLES):
        table[f"{prefix}right {i}"] = [math.cos(math.radians(deg)), math.sin(math.radians(deg))]
    return table


def test_local_task_spearman_and_task_instruction() -> None:
    # ranks of cosines 5,4,3,2,1 against gold ranks 5,4,3,1,2: Spearman = 1 - 6*2/(5*24) = 0.9
    enc = TableEncoder(local_table(""))
    result = run(MTEBEncoder(enc), [LocalSTS()])["ContrastkitLocalSTS"]
    assert result.scores["test"][0]["cosine_spearman"] == pytest.approx(0.9)
    assert not any(t.startswith("Judge:") for t in enc.seen)
    # with task_instructions, a symmetric task's string prompt goes in front of both sentences
    enc2 = TableEncoder(local_table("Judge: "))
    result2 = run(MTEBEncoder(enc2, task_instructions=True), [LocalSTS()])["ContrastkitLocalSTS"]
    assert result2.scores["test"][0]["cosine_spearman"] == pytest.approx(0.9)
    assert len(enc2.seen) == 10 and all(t.startswith("Judge: ") for t in enc2.seen)
    # ... while the encoder's own prompt for the task type is (MTEB's priority order)
    enc3 = TableEncoder(local_table("sts: "), prompts={"STS": "sts: ", "query": "never: "})
    result3 = run(MTEBEncoder(enc3), [LocalSTS()])["ContrastkitLocalSTS"]
    assert result3.scores["test"][0]["cosine_spearman"] == pytest.approx(0.9)
    assert enc3.seen and all(t.startswith("sts: ") for t in enc3.seen)


def test_prompt_priority_and_instruction_sides() -> None:
    meta = MockRetrievalTask().metadata
    prompts = {"query": "q: ", "Retrieval-query": "rq: ", f"{meta.name}": "task: ", "document": "d: "}
    model = MTEBEncoder(TableEncoder({"a": [1.0, 0.0]}, prompts=prompts))
    query, document = mteb.types.PromptType.query, mteb.types.PromptType.document
    assert model.prompt_for(meta, query) == "task: "
    del model.model_prompts[meta.name]
    assert model.prompt_for(meta, query) == "rq: " and model.prompt_for(meta, document) == "d: "
    assert model.prompt_for(meta, None) is None
    sided = meta.model_copy(update={"prompt": {"query": "Find it.", "document": "Doc."}})
    plain = meta.model_copy(update={"prompt": "Find it."})
    assert MTEBEncoder.instruction_for(sided, query) == "Find it."
    assert MTEBEncoder.instruction_for(sided, document) == "Doc."
    assert MTEBEncoder.instruction_for(plain, query) == "Find it." == MTEBEncoder.instruction_for(plain, None)
    assert MTEBEncoder.instruction_for(plain, document) is None and MTEBEncoder.instruction_for(sided, None) is None


def test_task_instruction_reaches_retrieval_queries() -> None:
    task = MockRetrievalTask()
    task.metadata = task.metadata.model_copy(update={"prompt": {"query": "Find:"}})
    a, b = [1.0, 0.1], [0.1, 1.0]
    enc = TableEncoder({D1: a, D2: b, f"Find: {Q1}": a, f"Find: {Q2}": b})
    result = run(MTEBEncoder(enc, task_instructions=True), [task])["MockRetrievalTask"]
    assert result.scores["test"][0]["ndcg_at_10"] == pytest.approx(1.0)
    assert f"Find: {Q1}" in enc.seen and Q1 not in enc.seen


RARB_TASKS = ["ARCChallenge", "AlphaNLI", "HellaSwag", "WinoGrande", "PIQA", "SIQA", "Quail", "SpartQA", "TempReasonL1",
              "TempReasonL2Pure", "TempReasonL2Fact", "TempReasonL2Context", "TempReasonL3Pure", "TempReasonL3Fact",
              "TempReasonL3Context", "RARbCode", "RARbMath"]  # fmt: skip


def test_rarb_instructions_match_mtebs_task_prompts() -> None:
    for name in RARB_TASKS:
        prompt = mteb.get_task(name).metadata.prompt
        assert instruction_for(name) == (prompt["query"] if isinstance(prompt, dict) else prompt), name
