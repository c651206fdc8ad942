"""Decoder-only language models (GPT-2, Llama, Qwen...) as encoders, through a prompt template.

:class:`DecoderEncoder` renders each text with a
:class:`~contrastkit.encoders.prompt_template.PromptTemplate` (presets
``prompteol``, ``hierarchical``, ``rationale``, ``e5_mistral``, ``gritlm``),
runs the model and pools its final-layer states. A prompt given to
``encode``/``tokenize`` (or named from ``prompts``) replaces the template's
``instruction`` verbatim.

With a generating template (``rationale``) the model first writes a rationale
after the prompt (sampling at ``temperature``/``top_p``, at most
``max_new_tokens``; the input text is cut to ``max_input_tokens`` first); the
rationale is appended and the whole is embedded. Rationales are cached by a
hash of the prompt string, the sampling settings and the seed; each is
sampled with its own generator seed derived from (seed, hash), so results do
not depend on batching or order. :meth:`DecoderEncoder.metadata` reports the
seed and the rationales' number and mean length.

Pooling over final-layer states:

| pooling | positions |
|---|---|
| ``last`` | the last non-pad token (left or right padding) |
| ``mean`` | every non-pad token |
| ``mean_excl_prompt`` | the tokens of the input text and of the generated rationale only |

``mean_excl_prompt`` leaves out system prompt, instruction, suffix and chat
markup; a token straddling a boundary of the input text counts as input.

Position ids follow the attention mask, so left and right padding give the
same embeddings. ``save`` writes a sentence-transformers folder (the model,
last-token or mean pooling) plus the template in ``contrastkit_decoder.json``;
sentence-transformers ignores the template, so its embeddings match only for
templates that add nothing (``PromptTemplate()``);
:func:`contrastkit.encoders.load_encoder` restores the template.

Example::

    enc = DecoderEncoder(model, tokenizer, "prompteol")   # any AutoModel decoder
    enc.encode(["a cat sat"])   # last state of 'This sentence: "a cat sat" means in one word:"'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedModel, PreTrainedTokenizerBase

from contrastkit.encoders.base import Features
from contrastkit.encoders.io import (
    DECODER_FILE,
    ModelFolderError,
    ModuleWriter,
    SavableEncoder,
    check_folder,
    decode_text,
    load_hf_model,
    load_hf_tokenizer,
    normalize_writer,
    pooling_config,
    read_json,
    write_json,
)
from contrastkit.encoders.pooling import PoolingMode, pool
from contrastkit.encoders.prompt_template import DecoderPooling, PromptTemplate, Rendered, truncate_text
from contrastkit.encoders.text import inference_length, read_transformer_config, write_transformer


@dataclass(frozen=True)
class Rationale:
    """A generated rationale and its length in generated tokens."""

    text: str
    tokens: int


class RationaleCache:
    """Generated rationales by key (a hash of prompt, sampling settings and seed), optionally kept in a JSONL file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.entries: dict[str, Rationale] = {}
        if self.path is not None and self.path.exists():
            for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    row = json.loads(line)
                    self.entries[row["key"]] = Rationale(row["text"], int(row["tokens"]))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                    raise ValueError(f"{self.path}:{number}: bad rationale cache line ({err})") from None

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> Rationale:
        return self.entries[key]

    def put(self, key: str, rationale: Rationale) -> None:
        self.entries[key] = rationale
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "text": rationale.text, "tokens": rationale.tokens}) + "\n")


class DecoderEncoder(SavableEncoder):
    """A decoder-only LM read through a :class:`PromptTemplate`; see the module docstring.

    Args:
        model: ``AutoModel`` or, for generating templates, ``AutoModelForCausalLM``
            (states come from its base model, the LM head is not run).
        tokenizer: a fast tokenizer (offsets are needed); a missing pad token
            is set to the EOS token.
        template: a :class:`PromptTemplate` or a preset name.
        max_length: longest model input; the input text is cut to fit the
            template (a rationale is cut from its end). None = ``save_max_length``.
        save_max_length: the ``max_seq_length`` written by :meth:`save` (a
            shorter training ``max_length`` does not leak into the saved
            model); None = the model's limit. An attribute, settable later.
        prompts: prompt name -> instruction (replaces ``template.instruction``).
        seed: sampling seed of generating templates (recorded in :meth:`metadata`).
        cache_path: JSONL file keeping rationales across runs (None: in memory).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        template: PromptTemplate | str = "prompteol",
        *,
        max_length: int | None = None,
        save_max_length: int | None = None,
        prompts: dict[str, str] | None = None,
        seed: int = 0,
        cache_path: str | Path | None = None,
    ) -> None:
        resolved = PromptTemplate.preset(template) if isinstance(template, str) else template
        super().__init__(normalize=resolved.normalize, prompts=prompts)
        self.template = resolved
        if not tokenizer.is_fast:
            raise TypeError("DecoderEncoder needs a fast tokenizer (character offsets locate the input text)")
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError("the tokenizer has neither a pad token nor an EOS token to pad with")
            tokenizer.pad_token = tokenizer.eos_token
        if resolved.generate and not model.can_generate():
            raise ValueError(
                f"template generates a rationale but {type(model).__name__} cannot generate; "
                "load the model with AutoModelForCausalLM"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.save_max_length = inference_length(model, tokenizer, save_max_length)
        self.max_length = max_length if max_length is not None else self.save_max_length
        self.seed = seed
        self.cache = RationaleCache(cache_path)
        self.train(model.training)  # start in the model's mode (eval after from_pretrained)

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        template: PromptTemplate | str | None = None,
        *,
        pooling: DecoderPooling | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        prompts: dict[str, str] | None = None,
        seed: int | None = None,
        cache_path: str | Path | None = None,
        trust_remote_code: bool = False,
    ) -> DecoderEncoder:
        """A Hugging Face folder or one saved by :meth:`save` (its template and seed unless given here).

        ``pooling`` / ``normalize`` override the template's.
        """
        folder = check_folder(Path(path))
        saved = read_json(folder / DECODER_FILE) if (folder / DECODER_FILE).exists() else {}
        if not isinstance(saved, dict):
            raise ModelFolderError(f"{folder / DECODER_FILE}: expected a JSON object")
        if template is None:
            try:
                template = PromptTemplate.from_dict(saved["template"]) if "template" in saved else "prompteol"
            except (TypeError, ValueError) as err:
                raise ModelFolderError(f"{folder / DECODER_FILE}: bad template ({err})") from None
        resolved = PromptTemplate.preset(template) if isinstance(template, str) else template
        if pooling is not None:
            resolved = dataclasses.replace(resolved, pooling=pooling)
        if normalize is not None:
            resolved = dataclasses.replace(resolved, normalize=normalize)
        auto_class = AutoModelForCausalLM if resolved.generate else AutoModel
        cfg = read_transformer_config(folder)
        return cls(
            load_hf_model(folder, auto_class, trust_remote_code=trust_remote_code),
            load_hf_tokenizer(folder, trust_remote_code=trust_remote_code),
            resolved,
            max_length=max_length,
            save_max_length=cfg.get("max_seq_length"),
            prompts=prompts,
            seed=int(saved.get("seed", 0)) if seed is None else seed,
            cache_path=cache_path,
        )

    @property
    def dim(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    # ------------------------------------------------------------------ inputs

    def render(self, text: str, *, prompt: str | None = None) -> tuple[str, list[tuple[int, int]]]:
        """(input string, character spans pooled by ``mean_excl_prompt``) for one text.

        The text is cut to ``template.max_input_tokens`` tokens, then (when the
        rendered input exceeds ``max_length``) to what fits around the template.
        """
        if self.template.max_input_tokens is not None:
            text = truncate_text(self.tokenizer, text, self.template.max_input_tokens)
        rendered = self.template.render(text, self.tokenizer, instruction=prompt)
        if self.max_length is not None:
            excess = self._count(rendered.text) - self.max_length
            keep = self._count(text, special=False)
            while excess > 0 and keep > 0:  # tokens at the text's edges can merge differently: re-measure
                keep = max(keep - excess, 0)
                text = truncate_text(self.tokenizer, text, keep)
                rendered = self.template.render(text, self.tokenizer, instruction=prompt)
                excess = self._count(rendered.text) - self.max_length
        spans = [rendered.input_span]
        if not self.template.generate:
            return rendered.text, spans
        full = rendered.text + self.rationale(rendered).text
        return full, [*spans, (len(rendered.text), len(full))]

    def _count(self, text: str, *, special: bool = True) -> int:
        add = special and not self.template.uses_chat
        return len(self.tokenizer(text, add_special_tokens=add)["input_ids"])

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        """``input_ids``, ``attention_mask`` and ``pool_mask`` (the positions pooled), padded."""
        rendered = [self.render(t, prompt=prompt) for t in texts]
        enc = self.tokenizer(
            [r[0] for r in rendered],
            padding=True,
            truncation=self.max_length is not None,
            max_length=self.max_length,
            add_special_tokens=not self.template.uses_chat,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        attention = enc["attention_mask"]
        pool_mask = attention.bool()
        if self.template.pooling == "mean_excl_prompt":
            pool_mask = pool_mask & span_mask(enc["offset_mapping"], [r[1] for r in rendered])
        return {"input_ids": enc["input_ids"], "attention_mask": attention, "pool_mask": pool_mask.long()}

    # ------------------------------------------------------------------ rationales

    def rationale_key(self, rendered: Rendered) -> str:
        """Cache key: sha256 of the prompt string, the sampling settings and the seed."""
        t = self.template
        payload = [rendered.text, t.max_new_tokens, t.temperature, t.top_p, self.seed]
        return hashlib.sha256(json.dumps(payload).encode("utf-8")).hexdigest()

    @torch.no_grad()
    def rationale(self, rendered: Rendered) -> Rationale:
        """The rationale generated after ``rendered`` (from the cache when already generated)."""
        key = self.rationale_key(rendered)
        if key in self.cache:
            return self.cache.get(key)
        t = self.template
        model = self.model
        assert isinstance(model, GenerationMixin), "the constructor checked model.can_generate()"
        inputs = self.tokenizer(rendered.text, add_special_tokens=not self.template.uses_chat, return_tensors="pt")
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        greedy = {"do_sample": False}
        sampling = {"do_sample": True, "temperature": t.temperature, "top_p": t.top_p} if t.temperature > 0 else greedy
        devices = [self.model.device] if self.model.device.type == "cuda" else []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=devices):
                digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
                torch.manual_seed(int.from_bytes(digest[:8], "big") >> 1)
                out = model.generate(
                    **inputs,
                    max_new_tokens=t.max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **sampling,
                )
        finally:
            self.model.train(was_training)
        new = out[0, inputs["input_ids"].shape[1] :]
        result = Rationale(decode_text(self.tokenizer, new, skip_special_tokens=True), int(new.numel()))
        self.cache.put(key, result)
        return result

    def metadata(self) -> dict[str, Any]:
        """Template, seed and, for generating templates, the number and mean length (tokens) of rationales."""
        lengths = [r.tokens for r in self.cache.entries.values()]
        return {
            "template": self.template.to_dict(),
            "seed": self.seed,
            "rationales": len(lengths),
            "mean_rationale_tokens": sum(lengths) / len(lengths) if lengths else 0.0,
        }

    # ------------------------------------------------------------------ forward / save

    def forward(self, features: Features) -> Tensor:
        device = self.model.device
        ids = features["input_ids"].to(device)
        attention = features["attention_mask"].to(device)
        positions = (attention.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self.model.base_model(
            input_ids=ids, attention_mask=attention, position_ids=positions
        ).last_hidden_state
        mode: PoolingMode = "last" if self.template.pooling == "last" else "mean"
        out = pool(hidden, features["pool_mask"].to(device), mode)
        return F.normalize(out, dim=-1) if self.normalize else out

    def st_modules(self) -> list[ModuleWriter]:
        config = {"max_seq_length": self.save_max_length, "do_lower_case": False}
        mode: PoolingMode = "last" if self.template.pooling == "last" else "mean"
        modules = [
            ModuleWriter("Transformer", lambda folder: write_transformer(folder, self.model, self.tokenizer, config)),
            ModuleWriter("Pooling", lambda folder: write_json(folder / "config.json", pooling_config(mode, self.dim))),
        ]
        return [*modules, normalize_writer()] if self.normalize else modules

    def extra_json(self) -> dict[str, Any]:
        return {DECODER_FILE: {"template": self.template.to_dict(), "seed": self.seed}}


def span_mask(offsets: Tensor, spans: Sequence[Sequence[tuple[int, int]]]) -> Tensor:
    """(n, L) bool: tokens whose character range overlaps one of their row's ``spans`` (empty ranges never)."""
    start, end = offsets[..., 0], offsets[..., 1]
    mask = torch.zeros(start.shape, dtype=torch.bool)
    for row, row_spans in enumerate(spans):
        for s, e in row_spans:
            mask[row] |= (start[row] < e) & (end[row] > s) & (end[row] > start[row])
    return mask
