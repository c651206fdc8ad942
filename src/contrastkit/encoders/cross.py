"""Cross-encoders: a transformer reads a (query, document) pair together and gives one relevance score.

Two kinds share one interface (:class:`CrossEncoderModel`):

| kind | model | score of (q, d) |
|---|---|---|
| classifier | ``AutoModelForSequenceClassification``, 1 logit | the logit of ``[CLS] q [SEP] d [SEP]`` |
| decoder (:class:`DecoderReranker`) | ``AutoModelForCausalLM`` | next-token ``logit("yes") - logit("no")`` |

A decoder reranker reads an (instruction, query, document) prompt.

The decoder score is the log-odds of "yes" over {"yes", "no"}, so
``sigmoid(score)`` is the seed paper's normalised yes probability (Dai, Zhang
et al., arXiv 2510.14824); :meth:`DecoderReranker.yes_no_logits` gives both
logits for objectives that use them separately.

* ``tokenize(pairs) -> Features``: padded model inputs (first dimension = pairs);
  ``tokenize(pairs, yes_no=True)`` tags the rows (a ``yes_no`` tensor, as
  dual encoders tag sides) so that ``forward`` returns each pair's (yes, no)
  logits instead, for objectives that need both (``url``).
* ``forward(features) -> (n,)``: scores with gradient (training); ``(n, 2)``
  for tagged features (a one-logit classifier's "no" logit is 0).
* ``score(pairs, batch_size=32) -> (n,)``: inference (eval mode, no gradient,
  longest pairs first, input order out), float32 on the CPU.
* ``save(folder)``: written atomically, safetensors only. A classifier folder
  is a Hugging Face sequence-classification folder whose ``config.json``
  names the identity activation, so ``sentence_transformers.CrossEncoder(folder)``
  loads it and ``predict`` returns exactly :meth:`score`. A decoder folder adds
  ``contrastkit_reranker.json`` (template and answer tokens).
* :meth:`CrossEncoderModel.from_folder` loads either kind back;
  :func:`load_cross_encoder` also starts a new classifier from an encoder body
  (any BERT-family folder, or the ``all-MiniLM-L6-v2`` alias) with a fresh
  one-logit head.

BERT-family classifiers run padding-free (:mod:`contrastkit.encoders.unpad`):
the same scores, fewer dense-layer rows on padded batches.

Example::

    ce = load_cross_encoder("all-MiniLM-L6-v2")          # MiniLM body, new head
    ce.score([("what is a cat", "a cat is a small mammal")])   # tensor([...])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch
import transformers
from torch import Tensor, nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from contrastkit import __version__
from contrastkit.encoders.base import Features
from contrastkit.encoders.io import (
    ModelFolderError,
    check_safetensors,
    decode_text,
    hf_kwargs,
    load_hf_model,
    load_hf_tokenizer,
    read_json,
    save_atomically,
    write_json,
)
from contrastkit.encoders.pooling import last_pool
from contrastkit.encoders.text import default_max_length
from contrastkit.encoders.unpad import supports_unpadded, unpadded_token_states

Pair = tuple[str, str]
RERANKER_FILE = "contrastkit_reranker.json"
"""Extra file of a saved :class:`DecoderReranker`: its prompt template and answer tokens."""
IDENTITY_ACTIVATION = "torch.nn.modules.linear.Identity"
YES_NO = "yes_no"
"""Feature key tagging rows whose (yes, no) logits ``forward`` returns instead of the score."""
DEFAULT_INSTRUCTION = "Judge whether the document answers the query."
DEFAULT_TEMPLATE = "{instruction}\nQuery: {query}\nDocument: {document}\nRelevant (yes or no):"


class CrossEncoderModel(nn.Module):
    """A one-logit sequence-classification transformer scoring (query, document) pairs; see the module docstring.

    Args:
        model: an ``AutoModelForSequenceClassification`` with ``num_labels == 1``.
        tokenizer: its tokenizer (pairs are encoded as ``tokenizer(queries, documents)``).
        max_length: truncate each pair to this many tokens (longest side first,
            as sentence-transformers does); None = the tokenizer's limit capped
            at the model's positions.
        unpad: run BERT-family models padding-free (same scores).
    """

    kind: ClassVar[str] = "classifier"
    scores_pairs: ClassVar[bool] = True
    """Marks a pair scorer for the trainer (it batches (query, document) pairs, not texts)."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int | None = None,
        unpad: bool = True,
    ) -> None:
        super().__init__()
        labels = getattr(model.config, "num_labels", None)
        if labels != 1:
            raise ValueError(f"a classifier cross-encoder needs one output logit (num_labels=1), got {labels}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length if max_length is not None else default_max_length(model, tokenizer)
        self.unpad = unpad
        self.train(model.training)

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_folder(
        cls, path: str | Path, *, max_length: int | None = None, trust_remote_code: bool = False
    ) -> CrossEncoderModel:
        """A saved cross-encoder: a sequence-classification folder (one logit) or a saved :class:`DecoderReranker`.

        Raises :class:`ModelFolderError` naming the folder when it holds
        neither (for an encoder body, use :func:`load_cross_encoder`).
        """
        from contrastkit.encoders.auto import resolve_model_path

        folder = resolve_model_path(path)
        if (folder / RERANKER_FILE).exists():
            return DecoderReranker.from_folder(folder, max_length=max_length, trust_remote_code=trust_remote_code)
        architectures = _architectures(folder)
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            raise ModelFolderError(
                f"{folder}: not a cross-encoder (config.json architectures {architectures}; expected a "
                "*ForSequenceClassification model); start one from an encoder body with load_cross_encoder"
            )
        model = load_hf_model(folder, AutoModelForSequenceClassification, trust_remote_code=trust_remote_code)
        if model.config.num_labels != 1:
            raise ModelFolderError(
                f"{folder / 'config.json'}: num_labels is {model.config.num_labels}; a reranker has one logit"
            )
        tokenizer = load_hf_tokenizer(folder, trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, max_length=max_length)

    @classmethod
    def from_body(
        cls,
        path: str | Path,
        *,
        max_length: int | None = None,
        seed: int | None = 0,
        trust_remote_code: bool = False,
    ) -> CrossEncoderModel:
        """A new cross-encoder: the transformer of ``path`` (an encoder or sentence-transformers folder) with a
        fresh one-logit head, initialised from ``seed`` (the global RNG is left as it was), or from the global
        RNG when ``seed`` is None (a training run seeds it)."""
        from contrastkit.encoders.auto import resolve_model_path

        folder = resolve_model_path(path)
        if seed is None:
            model = _quiet_load(folder, trust_remote_code)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = _quiet_load(folder, trust_remote_code)
        tokenizer = load_hf_tokenizer(folder, trust_remote_code=trust_remote_code)
        if max_length is None and (folder / "sentence_bert_config.json").exists():
            saved = read_json(folder / "sentence_bert_config.json")
            max_length = saved.get("max_seq_length") if isinstance(saved, dict) else None
        return cls(model, tokenizer, max_length=max_length)

    # ------------------------------------------------------------------ forward

    @property
    def dim(self) -> int:
        """Outputs per pair: 1 (the score)."""
        return 1

    def tokenize(self, pairs: Sequence[Pair], *, yes_no: bool = False) -> Features:
        """``input_ids``, ``attention_mask`` (``token_type_ids``) of the pairs, padded, cut to ``max_length``;
        with ``yes_no`` the rows are tagged for (yes, no) logits."""
        queries, documents = _split_pairs(pairs)
        encoded = self.tokenizer(
            queries,
            documents,
            padding=True,
            truncation=self.max_length is not None,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return _tag(dict(encoded), yes_no)

    def forward(self, features: Features) -> Tensor:
        """(n,) relevance scores with gradient; (n, 2) (yes, no) logits for tagged features."""
        if YES_NO in features:
            return self.yes_no_logits(features)
        return self._scores(features)

    def yes_no_logits(self, features: Features) -> Tensor:
        """(n, 2): the score as the "yes" logit and 0 as the "no" logit (a one-logit head has no other)."""
        scores = self._scores(features)
        return torch.stack([scores, torch.zeros_like(scores)], dim=-1)

    def _scores(self, features: Features) -> Tensor:
        device = self.model.device
        inputs = {k: v.to(device) for k, v in features.items() if k != YES_NO}
        if self.unpad and type(self.model).__name__ == "BertForSequenceClassification":
            body = self.model.get_submodule("bert")
            if supports_unpadded(body):
                hidden = unpadded_token_states(body, **inputs)
                pooler = getattr(body, "pooler", None)  # None when the model was built without one
                pooled = pooler(hidden) if pooler is not None else hidden[:, 0]
                head, dropout = self.model.get_submodule("classifier"), self.model.get_submodule("dropout")
                return head(dropout(pooled)).squeeze(-1)
        return self.model(**inputs).logits.squeeze(-1)

    @torch.no_grad()
    def score(self, pairs: Sequence[Pair], batch_size: int = 32) -> Tensor:
        """(len(pairs),) float32 CPU scores, eval mode, no gradient; longest pairs first, input order out."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        pairs = list(pairs)
        order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
        out = torch.empty(len(pairs))
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                out[torch.tensor(index)] = self(self.tokenize([pairs[i] for i in index])).float().cpu()
        finally:
            self.train(was_training)
        return out

    # ------------------------------------------------------------------ saving

    def save(self, folder: str | Path) -> None:
        """Write the model atomically (see the module docstring); ``CrossEncoder(folder)`` reproduces :meth:`score`."""
        save_atomically(folder, self._write)

    def _write(self, tmp: Path) -> None:
        self.model.config.sentence_transformers = {"activation_fn": IDENTITY_ACTIVATION, "version": "contrastkit"}
        self.model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer_max = self.tokenizer.model_max_length
        if self.max_length is not None:
            self.tokenizer.model_max_length = self.max_length  # sentence-transformers truncates at this length
        try:
            self.tokenizer.save_pretrained(str(tmp))
        finally:
            self.tokenizer.model_max_length = tokenizer_max
        versions = {"contrastkit": __version__, "transformers": transformers.__version__, "pytorch": torch.__version__}
        write_json(tmp / "contrastkit_cross.json", {"kind": self.kind, "max_length": self.max_length, **versions})


@dataclass(frozen=True)
class RerankPrompt:
    """The decoder reranker's prompt: ``template`` with ``{instruction}``, ``{query}``, ``{document}`` fields,
    and the two answer words whose next-token logits give the score."""

    template: str = DEFAULT_TEMPLATE
    instruction: str = DEFAULT_INSTRUCTION
    yes: str = " yes"
    no: str = " no"

    def render(self, query: str, document: str) -> str:
        return self.template.format(instruction=self.instruction, query=query, document=document)


class DecoderReranker(CrossEncoderModel):
    """A causal LM as a reranker: score = ``logit(yes) - logit(no)`` of the token after the rendered prompt.

    Args:
        model: an ``AutoModelForCausalLM`` (GPT-2, Llama, Qwen...).
        tokenizer: its tokenizer; ``prompt.yes`` and ``prompt.no`` must each be one token.
        prompt: the template and answer words (:class:`RerankPrompt`).
        max_length: truncate the rendered prompt to this many tokens, cutting
            the document's end (the answer position stays last).
    """

    kind: ClassVar[str] = "decoder"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        prompt: RerankPrompt | None = None,
        max_length: int | None = None,
    ) -> None:
        nn.Module.__init__(self)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = model
        self.tokenizer = tokenizer
        self.prompt = prompt or RerankPrompt()
        self.max_length = max_length if max_length is not None else default_max_length(model, tokenizer)
        self.unpad = False
        self.answer_ids = (_one_token(tokenizer, self.prompt.yes), _one_token(tokenizer, self.prompt.no))
        self.train(model.training)

    @classmethod
    def from_folder(
        cls, path: str | Path, *, max_length: int | None = None, trust_remote_code: bool = False
    ) -> DecoderReranker:
        """A causal LM folder; the prompt from ``contrastkit_reranker.json`` when present, else the default."""
        from contrastkit.encoders.auto import resolve_model_path

        folder = resolve_model_path(path)
        prompt, saved_max = RerankPrompt(), None
        if (folder / RERANKER_FILE).exists():
            saved = read_json(folder / RERANKER_FILE)
            try:
                prompt = RerankPrompt(**saved["prompt"])
                saved_max = saved.get("max_length")
            except (TypeError, KeyError) as err:
                raise ModelFolderError(f"{folder / RERANKER_FILE}: malformed reranker settings ({err})") from None
        model = load_hf_model(folder, AutoModelForCausalLM, trust_remote_code=trust_remote_code)
        tokenizer = load_hf_tokenizer(folder, trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, prompt=prompt, max_length=max_length if max_length is not None else saved_max)

    def tokenize(self, pairs: Sequence[Pair], *, yes_no: bool = False) -> Features:
        """Rendered prompts, left-padded (the answer position is the last column), document cut first."""
        texts = [self.prompt.render(q, self._fit(q, d)) for q, d in pairs]
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            encoded = dict(self.tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt"))
        finally:
            self.tokenizer.padding_side = side
        return _tag(encoded, yes_no)

    def _fit(self, query: str, document: str) -> str:
        """``document``, its end cut so that the rendered prompt has at most ``max_length`` tokens."""
        if self.max_length is None:
            return document
        overhead = len(self.tokenizer(self.prompt.render(query, ""), add_special_tokens=False)["input_ids"])
        budget = max(self.max_length - overhead, 0)
        ids = self.tokenizer(document, add_special_tokens=False)["input_ids"]
        return document if len(ids) <= budget else decode_text(self.tokenizer, ids[:budget])

    def yes_no_logits(self, features: Features) -> Tensor:
        """(n, 2) next-token logits of the yes and no answers, with gradient."""
        device = self.model.device
        ids = features["input_ids"].to(device)
        attention = features["attention_mask"].to(device)
        positions = (attention.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self.model.base_model(input_ids=ids, attention_mask=attention, position_ids=positions)
        last = last_pool(hidden.last_hidden_state, attention)
        head = self.model.get_output_embeddings()  # only the two answer rows of the LM head
        rows = torch.tensor(self.answer_ids, device=last.device)
        bias = None if head.bias is None else head.bias[rows]
        return torch.nn.functional.linear(last, head.weight[rows], bias)

    def _scores(self, features: Features) -> Tensor:
        """(n,) scores ``logit(yes) - logit(no)`` with gradient."""
        logits = self.yes_no_logits(features)
        return logits[:, 0] - logits[:, 1]

    def _write(self, tmp: Path) -> None:
        self.model.save_pretrained(str(tmp), safe_serialization=True)
        self.tokenizer.save_pretrained(str(tmp))
        settings = {"kind": self.kind, "prompt": asdict(self.prompt), "max_length": self.max_length}
        write_json(tmp / RERANKER_FILE, settings)


def load_cross_encoder(
    path: str | Path,
    *,
    max_length: int | None = None,
    seed: int | None = 0,
    trust_remote_code: bool = False,
) -> CrossEncoderModel:
    """A cross-encoder from ``path``: a saved one as it is (:meth:`CrossEncoderModel.from_folder`), a causal LM as a
    :class:`DecoderReranker`, anything else as an encoder body with a new head (:meth:`CrossEncoderModel.from_body`)."""
    from contrastkit.encoders.auto import resolve_model_path

    folder = resolve_model_path(path)
    architectures = _architectures(folder)
    if (folder / RERANKER_FILE).exists() or any(a.endswith("ForCausalLM") for a in architectures):
        return DecoderReranker.from_folder(folder, max_length=max_length, trust_remote_code=trust_remote_code)
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return CrossEncoderModel.from_folder(folder, max_length=max_length, trust_remote_code=trust_remote_code)
    return CrossEncoderModel.from_body(folder, max_length=max_length, seed=seed, trust_remote_code=trust_remote_code)


def _architectures(folder: Path) -> list[str]:
    config = read_json(folder / "config.json")
    if not isinstance(config, dict):
        raise ModelFolderError(f"{folder / 'config.json'}: expected a JSON object")
    return [str(a) for a in config.get("architectures") or []]


def _quiet_load(folder: Path, trust_remote_code: bool) -> PreTrainedModel:
    """The body of ``folder`` under a new one-logit head (transformers' "newly initialized" notice silenced)."""
    check_safetensors(folder)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        kwargs = hf_kwargs(trust_remote_code)
        config = transformers.AutoConfig.from_pretrained(str(folder), num_labels=1, **kwargs)
        config.architectures = None
        return AutoModelForSequenceClassification.from_pretrained(
            str(folder), config=config, use_safetensors=True, **kwargs
        )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelFolderError(f"{folder}: could not load the model ({type(err).__name__}: {err})") from err
    finally:
        transformers.logging.set_verbosity(verbosity)


def _tag(features: Features, yes_no: bool) -> Features:
    if yes_no:
        features[YES_NO] = torch.ones(features["input_ids"].shape[0], dtype=torch.bool)
    return features


def _split_pairs(pairs: Sequence[Pair]) -> tuple[list[str], list[str]]:
    queries, documents = [], []
    for i, pair in enumerate(pairs):
        if len(pair) != 2 or not all(isinstance(t, str) for t in pair):
            raise ValueError(f"pair {i}: expected (query, document) strings, got {pair!r}")
        queries.append(pair[0])
        documents.append(pair[1])
    return queries, documents


def _one_token(tokenizer: PreTrainedTokenizerBase, word: str) -> int:
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"answer word {word!r} is {len(ids)} tokens for this tokenizer; it must be exactly one")
    return int(ids[0])
