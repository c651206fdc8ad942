"""Any2any retrieval, image-text recall, compositionality and multiple choice on embeddings the test chooses."""

import math

import numpy as np
import pytest
import torch
from image_eval_helpers import BarRenderer, FlattenEncoder, FunctionImageEncoder, angle_of, polar_image
from task_helpers import VectorEncoder, polar

from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.image_retrieval import (
    compositionality_metrics,
    compositionality_scores,
    evaluate_any2any,
    evaluate_compositionality,
    evaluate_document_retrieval,
    image_text_recall,
    multiple_choice_accuracy,
    render_pages,
)

IMAGES = FunctionImageEncoder(angle_of, 2)


def test_image_to_text_retrieval_metrics_by_hand() -> None:
    # query images at 0 and 90 degrees; documents (texts) at 10, 30, 60, 80, 100 degrees
    docs = {"d10": polar(10), "d30": polar(30), "d60": polar(60), "d80": polar(80), "d100": polar(100)}
    text = VectorEncoder(docs)
    queries = {"q0": polar_image(0), "q90": polar_image(90)}
    qrels = {"q0": {"d30": 1, "d60": 1}, "q90": {"d10": 1}}
    result = evaluate_any2any(IMAGES, queries, text, {d: d for d in docs}, qrels, query_modality="image",
                              doc_modality="text", k_values=(1, 2, 5), map_at=2, main_metric="ndcg@5",
                              cache=EmbeddingCache())  # fmt: skip
    # q0 ranks d10, d30, d60, d80, d100: relevant at ranks 2 and 3
    # q90 ranks d80 and d100 (tied at 10 degrees: the smaller id "d100" first), d60, d30, d10: relevant at rank 5
    assert [d for d, _ in result.rankings["q0"]] == ["d10", "d30", "d60", "d80", "d100"]
    assert [d for d, _ in result.rankings["q90"]][:2] == ["d100", "d80"]
    q0, q90 = result.per_query["q0"], result.per_query["q90"]
    idcg2 = 1 + 1 / math.log2(3)
    assert q0["ndcg@2"] == pytest.approx((1 / math.log2(3)) / idcg2)
    assert q0["ndcg@5"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / idcg2)
    assert (q0["recall@1"], q0["recall@2"], q0["recall@5"]) == (0.0, 0.5, 1.0)
    assert q0["map@2"] == pytest.approx((1 / 2) / 2) and q0["map"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert q90["mrr@5"] == pytest.approx(1 / 5) and q90["recall@2"] == 0.0 and q90["map@2"] == 0.0
    assert q90["ndcg@5"] == pytest.approx(1 / math.log2(6))
    assert result.metrics["ndcg@5"] == pytest.approx((q0["ndcg@5"] + q90["ndcg@5"]) / 2)
    assert result.metrics["main_score"] == result.metrics["ndcg@5"]
    with pytest.raises(ValueError, match="main_metric 'ndcg@10' is not among"):  # default main metric needs k = 10
        evaluate_any2any(IMAGES, queries, text, {d: d for d in docs}, qrels, query_modality="image",
                         doc_modality="text", k_values=(1, 2, 5), cache=EmbeddingCache())  # fmt: skip


def test_any2any_matches_a_brute_force_loop() -> None:
    queries = {f"q{i}": polar_image(i * 13) for i in range(5)}
    corpus = {f"i{j}": polar_image(j * 7 + 2) for j in range(9)}  # no query is equally far from two documents
    qrels = {f"q{i}": {f"i{(i * 2) % 9}": 1, f"i{(i * 5 + 1) % 9}": 2} for i in range(5)}
    result = evaluate_any2any(IMAGES, queries, IMAGES, corpus, qrels, query_modality="image", doc_modality="image")
    for qid, image in queries.items():
        q = np.array(angle_of(image))
        scores = {d: float(q @ np.array(angle_of(img))) for d, img in corpus.items()}
        expected = sorted(corpus, key=lambda d: (-scores[d], d))[:10]
        assert [d for d, _ in result.rankings[qid]] == expected
    assert result.metrics["main_score"] == result.metrics["ndcg@10"] and result.num_docs == 9


def test_any2any_input_errors() -> None:
    queries, corpus = {"q": polar_image(0)}, {"a": polar_image(1)}
    kw = {"query_modality": "image", "doc_modality": "image"}
    with pytest.raises(ValueError, match="no query has a relevant document"):
        evaluate_any2any(IMAGES, queries, IMAGES, corpus, {"q": {"a": 0}}, **kw)
    with pytest.raises(ValueError, match=r"1 relevant document\(s\) are not in the corpus, e.g. 'b' \(query 'q'\)"):
        evaluate_any2any(IMAGES, queries, IMAGES, corpus, {"q": {"b": 1}}, **kw)
    with pytest.raises(ValueError, match="k_values must be positive"):
        evaluate_any2any(IMAGES, queries, IMAGES, corpus, {"q": {"a": 1}}, k_values=(0,), **kw)
    with pytest.raises(ValueError, match="the corpus is empty"):
        evaluate_any2any(IMAGES, queries, IMAGES, {}, {"q": {"a": 1}}, **kw)


def test_image_text_recall_in_both_directions() -> None:
    # images at 0, 40, 80 degrees; texts: 2 captions of image 0 (at 30 and 100), 1 of image 1 (at 45), 1 of image 2 (85)
    images = [polar_image(a) for a in (0, 40, 80)]
    text = VectorEncoder({"c0a": polar(30), "c0b": polar(100), "c1": polar(45), "c2": polar(85)})
    got = image_text_recall(IMAGES, images, text, ["c0a", "c0b", "c1", "c2"], text_image=[0, 0, 1, 1 + 1],
                            k_values=(1, 2), cache=EmbeddingCache())  # fmt: skip
    # i2t: image 0's best text is c0a (30 deg away): hit@1; image 1 (40): c1 (5) hit@1; image 2 (80): c2 (5) hit@1
    # t2i: c0a (30) -> image 40 (10 away) wrong, then image 0 (30): hit@2; c0b (100) -> 80, 40, 0: miss@2;
    #      c1 (45) -> image 40: hit@1; c2 (85) -> image 80: hit@1
    assert got == {"i2t_recall@1": 1.0, "t2i_recall@1": 0.5, "i2t_recall@2": 1.0, "t2i_recall@2": 0.75}
    with pytest.raises(ValueError, match="every image needs at least one paired text"):
        image_text_recall(IMAGES, images, text, ["c0a", "c1"], text_image=[0, 1], cache=EmbeddingCache())
    with pytest.raises(ValueError, match=r"image index in \[0, 3\)"):
        image_text_recall(IMAGES, images, text, ["c0a", "c1"], text_image=[0, 5], cache=EmbeddingCache())


def test_compositionality_on_hand_built_matrices() -> None:
    right = [[0.9, 0.1], [0.2, 0.8]]  # both directions right
    text_only = [[0.5, 0.4], [0.6, 0.7]]  # rows: image 0 -> text 0, image 1 -> text 1; column 0 -> image 1: wrong
    image_only = [[0.5, 0.6], [0.1, 0.7]]  # row 0 -> text 1: wrong; columns: text 0 -> image 0, text 1 -> image 1
    neither = [[0.1, 0.9], [0.8, 0.2]]
    assert compositionality_metrics([right, text_only, image_only, neither]) == {
        "text_acc": 0.5, "image_acc": 0.5, "accuracy": 0.25}  # fmt: skip
    tie = [[0.5, 0.5], [0.5, 0.5]]  # argmax takes the first maximum: image 1 -> text 0, wrong
    assert compositionality_metrics([tie]) == {"text_acc": 0.0, "image_acc": 0.0, "accuracy": 0.0}
    aro = [[0.9, 0.3, 0.1]]  # 1 image x 3 texts: the text is right, image_acc can never be (as in mteb)
    assert compositionality_metrics([aro]) == {"text_acc": 1.0, "image_acc": 0.0, "accuracy": 0.0}
    with pytest.raises(ValueError, match="sample 0: expected a finite"):
        compositionality_metrics([[[float("nan")]]])


def test_compositionality_scores_from_encoders() -> None:
    text = VectorEncoder({"left": polar(0), "up": polar(90), "diag": polar(45)})
    samples = [([polar_image(0), polar_image(90)], ["left", "up"]), ([polar_image(10)], ["up", "diag", "left"])]
    scores = compositionality_scores(IMAGES, text, samples, cache=EmbeddingCache())
    assert [tuple(s.shape) for s in scores] == [(2, 2), (1, 3)]
    torch.testing.assert_close(scores[0], torch.eye(2), atol=1e-6, rtol=0)
    assert scores[1][0].argmax().item() == 2
    assert compositionality_metrics(scores) == {"text_acc": 0.5, "image_acc": 0.5, "accuracy": 0.5}
    # the second sample's image (10 degrees) is nearest "left" (0): text_acc fails there; image_acc: 1 image, 3 texts
    metrics = evaluate_compositionality(IMAGES, text, samples, main_metric="text_acc", cache=EmbeddingCache())
    assert metrics == {"text_acc": 0.5, "image_acc": 0.5, "accuracy": 0.5, "main_score": 0.5}
    with pytest.raises(ValueError, match="main_metric must be"):
        evaluate_compositionality(IMAGES, text, samples, main_metric="group")


def test_multiple_choice_accuracy() -> None:
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    candidates = [torch.tensor([[0.0, 1.0], [2.0, 0.1]]), torch.tensor([[0.0, 5.0], [1.0, 0.0], [0.0, 1.0]]),
                  torch.tensor([[1.0, 0.0], [0.0, 1.0]])]  # fmt: skip
    # query 0 -> candidate 1 (right); query 1: candidates 0 and 2 tie in cosine -> 0 (right); query 2: tie -> 0 (wrong)
    assert multiple_choice_accuracy(queries, candidates, [1, 0, 1]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="answer 3 is not a candidate index"):
        multiple_choice_accuracy(queries, candidates, [3, 0, 1])


def test_document_retrieval_on_rendered_pages() -> None:
    texts = {"p1": "cats sit on mats", "p2": "dogs run fast", "p3": "rain falls down"}
    pages = render_pages(texts, BarRenderer())
    assert pages["p1"].shape == (8, 64) and pages["p1"].dtype == np.uint8
    flatten = FlattenEncoder(8 * 64)
    # the query "encoder" embeds a query exactly as its page is embedded: a perfect reader
    table = {q: flatten.encode([BarRenderer().render(t)])[0].tolist() for q, t in texts.items()}
    qrels = {q: {q: 1} for q in texts}
    result = evaluate_document_retrieval(VectorEncoder(table), {q: q for q in texts}, flatten, pages, qrels,
                                         k_values=(1, 5), cache=EmbeddingCache())  # fmt: skip
    assert result.metrics["main_score"] == result.metrics["ndcg@5"] == pytest.approx(1.0)
    assert result.metrics["recall@1"] == 1.0
