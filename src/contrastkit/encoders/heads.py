"""Projection heads on top of any encoder: one MLP (:class:`ProjectionHead`) or several (:class:`MultiHead`).

An :class:`MLP` is a stack of ``Linear -> activation`` layers; the last layer
has no activation. ``dims=(512, 128)`` on a 384-d encoder is
``Linear(384, 512) -> act -> Linear(512, 128)``.

``ProjectionHead(base, dims)`` is itself an encoder: ``base(features)`` (as
``base`` is configured, normalised or not), then the MLP, then l2
normalisation when ``normalize``. It saves as the base's modules followed by
one sentence-transformers ``Dense`` module per layer (and ``Normalize``), so
``SentenceTransformer(path)`` reproduces it.

``MultiHead(base, num_heads, dims)`` holds C independent MLPs on a shared
backbone (AMCL, ``objectives.md`` section 6). Its ``forward`` returns the C
head outputs side by side, (n, C * d'), each head's block l2-normalised when
``normalize``; :meth:`MultiHead.per_head` reshapes that to the (C, n, d')
layout AMCL takes. Keeping one (n, dim) tensor lets GradCache, the gather
across devices and the memory queue treat it like any encoder. Heads are
training devices: :meth:`MultiHead.save` writes the backbone (or the
backbone and one chosen head).

Example::

    head = ProjectionHead(base, dims=(256, 128))      # base: any Encoder
    amcl_heads = MultiHead(base, num_heads=3, dims=(128,))
    views = torch.stack([amcl_heads.per_head(amcl_heads(f1)), amcl_heads.per_head(amcl_heads(f2))], dim=1)
    # views: (C, 2, n, d') for contrastkit.objectives.get("amcl")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from contrastkit.encoders.base import Encoder, Features
from contrastkit.encoders.io import (
    ModelFolderError,
    ModuleWriter,
    SavableEncoder,
    check_safetensors,
    normalize_writer,
    read_json,
    write_json,
    write_st_folder,
)

Activation = Literal["identity", "relu", "gelu", "tanh"]
ACTIVATIONS: dict[Activation, type[nn.Module]] = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}
"""Activation name -> module class; saved by its import path (``torch.nn.modules.activation.ReLU``)."""


def activation_path(name: Activation) -> str:
    cls = ACTIVATIONS[name]
    return f"{cls.__module__}.{cls.__qualname__}"


ACTIVATION_BY_PATH: dict[str, Activation] = {activation_path(name): name for name in ACTIVATIONS}


class DenseLayer(nn.Module):
    """``activation(linear(x))``: the layout of a sentence-transformers ``Dense`` module."""

    def __init__(self, in_features: int, out_features: int, *, activation: Activation, bias: bool = True) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation = ACTIVATIONS[activation]()
        self.activation_name: Activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.linear(x))

    @classmethod
    def from_folder(cls, folder: Path) -> DenseLayer:
        """A sentence-transformers ``Dense`` module folder (``config.json`` + ``model.safetensors``)."""
        cfg = read_json(folder / "config.json")
        if not isinstance(cfg, dict) or not all(isinstance(cfg.get(k), int) for k in ("in_features", "out_features")):
            raise ModelFolderError(f"{folder / 'config.json'}: expected integer 'in_features' and 'out_features'")
        path = cfg.get("activation_function", activation_path("tanh"))
        if path not in ACTIVATION_BY_PATH:
            raise ModelFolderError(
                f"{folder / 'config.json'}: activation {path!r} is not supported "
                f"(one of {', '.join(ACTIVATION_BY_PATH)})"
            )
        if cfg.get("use_residual") or cfg.get("module_input_name", "sentence_embedding") != "sentence_embedding":
            raise ModelFolderError(f"{folder / 'config.json'}: residual or non-default Dense modules are not supported")
        check_safetensors(folder)
        layer = cls(
            cfg["in_features"], cfg["out_features"], activation=ACTIVATION_BY_PATH[path], bias=cfg.get("bias", True)
        )
        state = load_file(str(folder / "model.safetensors"))
        try:
            layer.linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
        except RuntimeError as err:
            raise ModelFolderError(f"{folder / 'model.safetensors'}: weights do not fit the config ({err})") from None
        return layer

    def writer(self) -> ModuleWriter:
        """A ``Dense`` module saving this layer (config + ``model.safetensors``)."""
        config = {
            "in_features": self.linear.in_features,
            "out_features": self.linear.out_features,
            "bias": self.linear.bias is not None,
            "activation_function": activation_path(self.activation_name),
        }

        def write(folder: Path) -> None:
            write_json(folder / "config.json", config)
            state = {f"linear.{k}": v.detach().cpu().contiguous() for k, v in self.linear.state_dict().items()}
            save_file(state, str(folder / "model.safetensors"))

        return ModuleWriter("Dense", write)


def dense_layers(stack: nn.Module) -> list[DenseLayer]:
    """The :class:`DenseLayer` children of a head (an :class:`MLP` or a ``Sequential`` of them), in order."""
    layers: list[DenseLayer] = []
    for layer in stack.children():
        if not isinstance(layer, DenseLayer):
            raise TypeError(f"a head holds DenseLayer modules only, found {type(layer).__name__}")
        layers.append(layer)
    return layers


class MLP(nn.Sequential):
    """``Linear -> activation`` layers of widths ``dims`` from ``in_dim``; the last layer is linear only."""

    def __init__(self, in_dim: int, dims: Sequence[int], *, activation: Activation = "relu", bias: bool = True) -> None:
        if not dims or any(d < 1 for d in dims):
            raise ValueError(f"MLP: dims must be a non-empty list of positive widths, got {list(dims)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        widths = [in_dim, *dims]
        layers = [
            DenseLayer(widths[i], widths[i + 1], activation="identity" if i == len(dims) - 1 else activation, bias=bias)
            for i in range(len(dims))
        ]
        super().__init__(*layers)

    @property
    def out_dim(self) -> int:
        return dense_layers(self)[-1].linear.out_features


class ProjectionHead(SavableEncoder):
    """``normalize(mlp(base(x)))``: an encoder with a projection head; see the module docstring.

    Args:
        base: any encoder (its prompts are shared; saving needs a savable one).
        dims: widths of the MLP layers (the last is the output size).
        activation: between layers (``identity``, ``relu``, ``gelu``, ``tanh``).
        normalize: l2-normalise the head's output.
        layers: ready-made :class:`DenseLayer` stack (for example loaded from
            a folder) instead of a new MLP from ``dims``.
    """

    def __init__(
        self,
        base: Encoder,
        dims: Sequence[int] = (),
        *,
        activation: Activation = "relu",
        normalize: bool = True,
        bias: bool = True,
        layers: Sequence[DenseLayer] | None = None,
    ) -> None:
        super().__init__(normalize=normalize, prompts=base.prompts)
        self.base = base
        self.head = (
            nn.Sequential(*layers) if layers is not None else MLP(base.dim, dims, activation=activation, bias=bias)
        )
        in_features = dense_layers(self.head)[0].linear.in_features
        if in_features != base.dim:
            raise ValueError(f"the head takes {in_features}-d inputs but the base gives {base.dim}")
        self.prompts = base.prompts  # one dict, shared with the base
        if isinstance(base, SavableEncoder):
            self.default_prompt_name = base.default_prompt_name
        self.train(base.training)

    @property
    def dim(self) -> int:
        return dense_layers(self.head)[-1].linear.out_features

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        return self.base.tokenize(texts, prompt=prompt)

    def forward(self, features: Features) -> Tensor:
        out = self.head(self.base(features))
        return F.normalize(out, dim=-1) if self.normalize else out

    def st_modules(self) -> list[ModuleWriter]:
        if not isinstance(self.base, SavableEncoder):
            raise TypeError(f"cannot save a head on {type(self.base).__name__}: its base is not savable")
        modules = [*self.base.st_modules(), *(layer.writer() for layer in dense_layers(self.head))]
        return [*modules, normalize_writer()] if self.normalize else modules

    def extra_json(self) -> dict[str, Any]:
        return self.base.extra_json() if isinstance(self.base, SavableEncoder) else {}


class MultiHead(Encoder):
    """C projection heads on one backbone, outputs side by side; see the module docstring.

    Args:
        base: the shared backbone encoder.
        num_heads: C (AMCL's code default is 3).
        dims: widths of each head's MLP (d' = ``dims[-1]``).
        activation: between MLP layers.
        normalize: l2-normalise each head's output separately.
    """

    def __init__(
        self,
        base: Encoder,
        num_heads: int,
        dims: Sequence[int],
        *,
        activation: Activation = "relu",
        normalize: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__(normalize=normalize, prompts=base.prompts)
        if num_heads < 1:
            raise ValueError(f"MultiHead: num_heads must be >= 1, got {num_heads}")
        self.base = base
        self.heads = nn.ModuleList(MLP(base.dim, dims, activation=activation, bias=bias) for _ in range(num_heads))
        self.prompts = base.prompts
        self.train(base.training)

    @property
    def num_heads(self) -> int:
        return len(self.heads)

    @property
    def head_dim(self) -> int:
        return dense_layers(self.heads[0])[-1].linear.out_features

    @property
    def dim(self) -> int:
        return self.num_heads * self.head_dim

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        return self.base.tokenize(texts, prompt=prompt)

    def forward(self, features: Features) -> Tensor:
        """(n, C * d'): head c's output in columns ``c*d' : (c+1)*d'``."""
        shared = self.base(features)
        outs = [head(shared) for head in self.heads]
        if self.normalize:
            outs = [F.normalize(o, dim=-1) for o in outs]
        return torch.cat(outs, dim=-1)

    def per_head(self, embeddings: Tensor) -> Tensor:
        """(n, C * d') -> (C, n, d'), the per-head layout of AMCL."""
        n = embeddings.shape[0]
        return embeddings.reshape(n, self.num_heads, self.head_dim).transpose(0, 1)

    def save(self, path: str | Path, *, head: int | None = None) -> None:
        """Save the backbone, or with ``head=c`` the backbone followed by head c (and Normalize)."""
        if not isinstance(self.base, SavableEncoder):
            raise TypeError(f"cannot save {type(self.base).__name__}: it is not savable")
        if head is None:
            self.base.save(path)
            return
        if not 0 <= head < self.num_heads:
            raise IndexError(f"head {head} out of range for {self.num_heads} heads")
        modules = [*self.base.st_modules(), *(layer.writer() for layer in dense_layers(self.heads[head]))]
        if self.normalize:
            modules.append(normalize_writer())
        write_st_folder(
            path,
            modules,
            prompts=self.prompts,
            default_prompt_name=self.base.default_prompt_name,
            extra_json=self.base.extra_json(),
        )
