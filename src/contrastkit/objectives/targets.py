"""Target structures: which candidate columns are positives, which are valid.

A :class:`Targets` describes, for an A x C similarity matrix ``S``, the
positive weights ``W`` (A x C, ``W >= 0``), the validity mask ``M`` (A x C,
bool) and an optional additive logit bias ``B`` (A x C), in the notation of
``objectives.md`` section 0.1. It can hold them densely or in compact forms
that never build the whole matrix: :meth:`Targets.block` materialises only the
rows and columns a tile needs.

The rules that combine the parts of a block, in order:

1. ``W`` is the sum of the dense ``pos``, the index lists
   ``pos_index``/``pos_weight`` and the id equality ``pos_row_ids ==
   pos_col_ids``.
2. ``M`` starts from the dense ``valid`` (all True when absent), then drops
   the columns listed in ``exclude_index``, the entries whose
   ``mask_row_ids == mask_col_ids`` unless they are positives (false-negative
   masking), and the self column ``c == r + self_offset``.
3. ``W`` is zeroed wherever ``M`` is False: an invalid entry is removed from
   row i entirely, numerator and denominator.

Example::

    >>> import torch
    >>> t = Targets.from_index(torch.tensor([1, 0]), num_cols=3)
    >>> t.dense()[0]
    tensor([[0., 1., 0.],
            [1., 0., 0.]])
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor


class Block(NamedTuple):
    """A materialised piece of a :class:`Targets`: ``W`` float, ``M`` bool, ``B`` float or None."""

    pos: Tensor
    valid: Tensor
    bias: Tensor | None


def _check_2d(name: str, value: Tensor | None, shape: tuple[int, int] | None) -> None:
    if value is None:
        return
    if value.dim() != 2:
        raise ValueError(f"Targets.{name}: expected a 2-D tensor, got shape {tuple(value.shape)}")
    if shape is not None and tuple(value.shape) != shape:
        raise ValueError(f"Targets.{name}: shape {tuple(value.shape)} does not match targets shape {shape}")


def _check_rows(name: str, value: Tensor | None, rows: int, dims: int) -> None:
    if value is None:
        return
    if value.dim() != dims or value.shape[0] != rows:
        want = "(A,)" if dims == 1 else "(A, k)"
        raise ValueError(f"Targets.{name}: expected shape {want} with A={rows}, got {tuple(value.shape)}")


Role = Literal["dense", "rows", "cols"]
# Built from existing, already validated targets (row slices, extra columns, moves, transposes): value checks that
# read tensor contents (a host sync per check on a GPU) are skipped there.
_DERIVING: ContextVar[bool] = ContextVar("targets_deriving", default=False)


@contextmanager
def _deriving() -> Iterator[None]:
    token = _DERIVING.set(True)
    try:
        yield
    finally:
        _DERIVING.reset(token)


def _part(role: Role, *, dims: int = 2, fill: Any = None) -> dict[str, Any]:
    """The metadata of a tensor field of :class:`Targets`: its role, ``dense`` (A, C), ``rows`` (A, ...) or
    ``cols`` (C,), its number of dimensions, and for a dense part its value on appended columns."""
    return {"role": role, "dims": dims, "fill": fill}


def _scatter(rows: int, cols: slice, index: Tensor, value: Tensor | None, dtype: torch.dtype) -> Tensor:
    """Dense (rows, cols) block with ``value`` summed at the listed columns (-1 = padding)."""
    width = cols.stop - cols.start
    out = torch.zeros(rows, width, dtype=dtype, device=index.device)
    inside = (index >= cols.start) & (index < cols.stop)
    if not bool(inside.any()):
        return out
    local = torch.where(inside, index - cols.start, torch.zeros_like(index))
    val = torch.ones_like(index, dtype=dtype) if value is None else value.to(dtype)
    out.scatter_add_(1, local, val * inside.to(dtype))
    return out


@dataclass(frozen=True, eq=False)
class Targets:
    """Positive weights, validity and logit bias for an A x C similarity matrix.

    Construct densely as ``Targets(pos=W, valid=M)`` or with the compact
    constructors :meth:`from_index`, :meth:`from_lists`, :meth:`from_ids`,
    :meth:`diagonal`. Shapes: dense fields (A, C); ``*_index`` and
    ``*_weight``/``bias_value`` (A, k) with ``-1`` as padding; row ids (A,),
    column ids (C,). ``num_cols`` is required when no dense field fixes C.
    """

    pos: Tensor | None = field(default=None, metadata=_part("dense", fill=0.0))
    valid: Tensor | None = field(default=None, metadata=_part("dense", fill=True))
    bias: Tensor | None = field(default=None, metadata=_part("dense", fill=0.0))
    pos_index: Tensor | None = field(default=None, metadata=_part("rows"))
    pos_weight: Tensor | None = field(default=None, metadata=_part("rows"))
    pos_row_ids: Tensor | None = field(default=None, metadata=_part("rows", dims=1))
    pos_col_ids: Tensor | None = field(default=None, metadata=_part("cols", dims=1))
    exclude_index: Tensor | None = field(default=None, metadata=_part("rows"))
    mask_row_ids: Tensor | None = field(default=None, metadata=_part("rows", dims=1))
    mask_col_ids: Tensor | None = field(default=None, metadata=_part("cols", dims=1))
    self_offset: int | None = None
    bias_index: Tensor | None = field(default=None, metadata=_part("rows"))
    bias_value: Tensor | None = field(default=None, metadata=_part("rows"))
    num_rows: int | None = None
    num_cols: int | None = None

    def __post_init__(self) -> None:
        shape = self._infer_shape()
        object.__setattr__(self, "num_rows", shape[0])
        object.__setattr__(self, "num_cols", shape[1])
        for name, role, dims in self.parts():
            if role == "dense":
                _check_2d(name, getattr(self, name), shape)
            else:
                _check_rows(name, getattr(self, name), shape[0] if role == "rows" else shape[1], dims)
        self._check_pairs()
        if not _DERIVING.get():
            self.validate()

    @classmethod
    def parts(cls) -> tuple[tuple[str, Role, int], ...]:
        """``(name, role, dims)`` of every tensor field: the one list that slicing, padding and moving follow
        (read from the dataclass fields once; every Targets built checks its shapes against it)."""
        return _PARTS

    def derive(self, **changes: Any) -> Targets:
        """``replace(self, **changes)`` for parts computed from these (already valid) targets: shapes are checked,
        values (which would cost a device-to-host sync per check) are not."""
        with _deriving():
            return replace(self, **changes)

    def _infer_shape(self) -> tuple[int, int]:
        for name in ("pos", "valid", "bias"):
            value = getattr(self, name)
            if value is not None and value.dim() == 2:
                return int(value.shape[0]), int(value.shape[1])
        rows = self.num_rows
        for name in ("pos_index", "pos_row_ids", "exclude_index", "mask_row_ids", "bias_index"):
            value = getattr(self, name)
            if rows is None and value is not None:
                rows = int(value.shape[0])
        cols = self.num_cols
        for name in ("pos_col_ids", "mask_col_ids"):
            value = getattr(self, name)
            if cols is None and value is not None:
                cols = int(value.shape[0])
        if rows is None or cols is None:
            raise ValueError("Targets: cannot infer the (A, C) shape; pass num_rows/num_cols or a dense field")
        return rows, cols

    def _check_pairs(self) -> None:
        pairs = (("pos_row_ids", "pos_col_ids"), ("mask_row_ids", "mask_col_ids"), ("bias_index", "bias_value"))
        for left, right in pairs:
            if (getattr(self, left) is None) != (getattr(self, right) is None):
                raise ValueError(f"Targets: {left} and {right} must be given together")
        if self.pos_weight is not None:
            if self.pos_index is None:
                raise ValueError("Targets: pos_weight needs pos_index")
            if self.pos_weight.shape != self.pos_index.shape:
                raise ValueError("Targets: pos_weight must have the shape of pos_index")
        bias_index, bias_value = self.bias_index, self.bias_value
        if bias_index is not None and bias_value is not None and bias_value.shape != bias_index.shape:
            raise ValueError("Targets: bias_value must have the shape of bias_index")

    def validate(self) -> None:
        """The value rules (non-negative weights, bool mask, ``W > 0`` only where valid, indices in ``[-1, C)``).

        Run when targets are built from outside (a constructor or ``Targets(...)``), not when they are derived.
        Raises ValueError naming the field.
        """
        if self.pos is not None and bool((self.pos < 0).any()):
            raise ValueError("Targets.pos: positive weights must be >= 0")
        if self.pos_weight is not None and bool((self.pos_weight < 0).any()):
            raise ValueError("Targets.pos_weight: positive weights must be >= 0")
        if self.valid is not None and self.valid.dtype != torch.bool:
            raise ValueError(f"Targets.valid: expected a bool tensor, got {self.valid.dtype}")
        if self.pos is not None and self.valid is not None and bool(((self.pos > 0) & ~self.valid).any()):
            raise ValueError("Targets: pos > 0 where valid is False (W[i,c] > 0 must imply M[i,c])")
        num_cols = self.shape[1]
        for name in ("pos_index", "exclude_index", "bias_index"):
            index = getattr(self, name)
            if index is not None and index.numel() and (int(index.max()) >= num_cols or int(index.min()) < -1):
                raise ValueError(f"Targets.{name}: column indices must lie in [-1, {num_cols})")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_index(cls, index: Tensor, num_cols: int, weight: Tensor | None = None) -> Targets:
        """One positive column per row: ``index`` (A,) long, ``-1`` for a row with no positive."""
        index = torch.as_tensor(index, dtype=torch.long)
        w = None if weight is None else torch.as_tensor(weight).reshape(-1, 1)
        return cls(pos_index=index.reshape(-1, 1), pos_weight=w, num_cols=num_cols)

    @classmethod
    def from_lists(cls, index: Tensor, num_cols: int, weight: Tensor | None = None) -> Targets:
        """Several positives per row: ``index`` (A, k) long padded with ``-1``, optional weights (A, k)."""
        return cls(pos_index=torch.as_tensor(index, dtype=torch.long), pos_weight=weight, num_cols=num_cols)

    @classmethod
    def from_ids(
        cls,
        row_ids: Tensor,
        col_ids: Tensor,
        *,
        exclude_self: bool = False,
    ) -> Targets:
        """Equal ids mean positive (e.g. SupCon labels); ``exclude_self`` drops column ``c == r``."""
        return cls(
            pos_row_ids=torch.as_tensor(row_ids),
            pos_col_ids=torch.as_tensor(col_ids),
            self_offset=0 if exclude_self else None,
        )

    @classmethod
    def diagonal(cls, n: int, num_cols: int | None = None, offset: int = 0) -> Targets:
        """Row i's positive is column ``i + offset`` (the usual paired-batch layout)."""
        return cls.from_index(torch.arange(n) + offset, num_cols=n if num_cols is None else num_cols)

    def with_id_mask(self, row_ids: Tensor, col_ids: Tensor) -> Targets:
        """Mask out (not count as negatives) candidates whose id equals the row's id, positives kept."""
        return replace(self, mask_row_ids=torch.as_tensor(row_ids), mask_col_ids=torch.as_tensor(col_ids))

    # ------------------------------------------------------------------ views
    @property
    def shape(self) -> tuple[int, int]:
        """(A, C)."""
        rows, cols = self.num_rows, self.num_cols
        assert rows is not None and cols is not None, "__post_init__ sets both"
        return int(rows), int(cols)

    def block(
        self,
        rows: slice | None = None,
        cols: slice | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Block:
        """Materialise ``W``, ``M`` and ``B`` for ``rows`` x ``cols`` (step-1 slices, default all)."""
        num_rows, num_cols = self.shape
        rows = slice(0, num_rows) if rows is None else slice(rows.start or 0, min(rows.stop, num_rows))
        cols = slice(0, num_cols) if cols is None else slice(cols.start or 0, min(cols.stop, num_cols))
        pos = self._pos_block(rows, cols, dtype)
        valid = self._valid_block(rows, cols, pos.device, positives=pos > 0)
        pos = pos * valid
        bias = self._bias_block(rows, cols, dtype)
        if device is not None:
            pos, valid = pos.to(device), valid.to(device)
            bias = None if bias is None else bias.to(device)
        return Block(pos, valid, bias)

    @property
    def has_validity(self) -> bool:
        """Whether anything can make an entry invalid (False: every entry of ``M`` is True)."""
        parts = (self.valid, self.exclude_index, self.mask_row_ids)
        return any(p is not None for p in parts) or self.self_offset is not None

    @property
    def single_index(self) -> bool:
        """Whether positives are exactly one index per row (``from_index``), with no dense or id positives."""
        return (
            self.pos is None
            and self.pos_row_ids is None
            and self.pos_index is not None
            and self.pos_index.shape[1] == 1
        )

    def index_block(self, rows: slice, cols: slice, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """For :attr:`single_index` targets: the local positive column (r, 1) and its weight (r, 1).

        Rows whose positive lies outside ``cols``, is padding or is invalid
        under ``valid`` (the block's ``M``) get weight 0 and column 0.
        """
        if not self.single_index or self.pos_index is None:
            raise ValueError("Targets.index_block needs single-index targets (Targets.from_index)")
        index = self.pos_index[rows]
        inside = (index >= cols.start) & (index < cols.stop)
        local = torch.where(inside, index - cols.start, torch.zeros_like(index))
        weight = inside.to(torch.float32) if self.pos_weight is None else self.pos_weight[rows] * inside
        if valid is not None:
            weight = weight * valid.gather(1, local)
        return local, weight

    def dense(self, dtype: torch.dtype = torch.float32) -> Block:
        """The whole ``(W, M, B)``; O(A x C) memory."""
        return self.block(dtype=dtype)

    def _pos_block(self, rows: slice, cols: slice, dtype: torch.dtype) -> Tensor:
        n, width = rows.stop - rows.start, cols.stop - cols.start
        pos = self.pos[rows, cols].to(dtype) if self.pos is not None else None
        if self.pos_index is not None:
            weight = None if self.pos_weight is None else self.pos_weight[rows]
            part = _scatter(n, cols, self.pos_index[rows], weight, dtype)
            pos = part if pos is None else pos + part.to(pos.device)
        if self.pos_row_ids is not None and self.pos_col_ids is not None:
            part = (self.pos_row_ids[rows, None] == self.pos_col_ids[None, cols]).to(dtype)
            pos = part if pos is None else pos + part.to(pos.device)
        return torch.zeros(n, width, dtype=dtype, device=self._device()) if pos is None else pos

    def valid_block(self, rows: slice, cols: slice, *, device: torch.device | str | None = None) -> Tensor | None:
        """``M`` for ``rows`` x ``cols``, or None when :attr:`has_validity` is False (all entries valid)."""
        if not self.has_validity:
            return None
        valid = self._valid_block(rows, cols, self._device(), positives=None)
        return valid if device is None else valid.to(device)

    def _valid_block(self, rows: slice, cols: slice, device: torch.device, positives: Tensor | None) -> Tensor:
        """``M`` for ``rows`` x ``cols``; ``positives`` is ``W > 0`` there when the caller has it (else computed)."""
        n, width = rows.stop - rows.start, cols.stop - cols.start
        if self.valid is not None:
            valid = self.valid[rows, cols].to(device).clone()
        else:
            valid = torch.ones(n, width, dtype=torch.bool, device=device)
        if self.exclude_index is not None:
            valid &= _scatter(n, cols, self.exclude_index[rows].to(device), None, torch.float32) == 0
        if self.mask_row_ids is not None and self.mask_col_ids is not None:
            if positives is None:
                positives = self._pos_block(rows, cols, torch.float32).to(device) > 0
            same = self.mask_row_ids[rows, None].to(device) == self.mask_col_ids[None, cols].to(device)
            valid &= ~(same & ~positives)
        if self.self_offset is not None:
            r = torch.arange(rows.start, rows.stop, device=device)[:, None] + self.self_offset
            c = torch.arange(cols.start, cols.stop, device=device)[None, :]
            valid &= r != c
        return valid

    def _bias_block(self, rows: slice, cols: slice, dtype: torch.dtype) -> Tensor | None:
        bias = self.bias[rows, cols].to(dtype) if self.bias is not None else None
        if self.bias_index is not None and self.bias_value is not None:
            part = _scatter(rows.stop - rows.start, cols, self.bias_index[rows], self.bias_value[rows], dtype)
            bias = part if bias is None else bias + part.to(bias.device)
        return bias

    def _device(self) -> torch.device:
        for name, _, _ in self.parts():
            value = getattr(self, name)
            if value is not None:
                return value.device
        return torch.device("cpu")

    # ------------------------------------------------------------------ algebra
    def row_slice(self, rows: slice) -> Targets:
        """The (rows, C) part, built without materialising the whole matrix.

        Every dense and per-row part is sliced, column parts are kept, and self
        exclusion ``c == r + offset`` is shifted to the new row numbering, so
        ``t.row_slice(rows).dense()`` equals the rows of ``t.dense()``. ``rows`` is a step-1 slice.
        """
        if rows.step not in (None, 1):
            raise ValueError("row_slice: rows must be a step-1 slice")
        num_rows = self.shape[0]
        start = 0 if rows.start is None else rows.start
        stop = num_rows if rows.stop is None else min(rows.stop, num_rows)
        if not 0 <= start <= stop:
            raise ValueError(f"row_slice: rows {rows} outside [0, {num_rows})")
        changes: dict[str, Any] = {
            name: getattr(self, name)[start:stop]
            for name, role, _ in self.parts()
            if role != "cols" and getattr(self, name) is not None
        }
        offset = None if self.self_offset is None else self.self_offset + start
        return self.derive(**changes, self_offset=offset, num_rows=stop - start, num_cols=self.shape[1])

    def append_columns(self, k: int) -> Targets:
        """These targets (A, C) with ``k`` extra columns C..C+k-1 that are valid, not positive and unbiased.

        Compact forms stay compact: index lists are unchanged, the new columns get
        ids matching no row (so neither id positives nor id masks touch them),
        and self exclusion ``c == r + offset`` becomes an explicit exclusion list
        so it can never fall on a new column. Dense parts are padded with their fill value.
        """
        if k < 0:
            raise ValueError(f"append_columns: k must be >= 0, got {k}")
        if k == 0:
            return self
        rows, cols = self.shape
        changes: dict[str, Any] = {"num_cols": cols + k}
        for name, role, _ in self.parts():
            value = getattr(self, name)
            if value is None or role == "rows":
                continue
            if role == "dense":
                pad = torch.full((rows, k), _FILL[name], dtype=value.dtype, device=value.device)
                changes[name] = torch.cat([value, pad], 1)
            else:  # column ids: k ids that no row holds
                changes[name] = torch.cat([value, _outside_ids(getattr(self, _ROW_IDS_OF[name]), value, k)])
        if self.self_offset is not None:
            changes["exclude_index"] = self._self_as_exclusion()
            changes["self_offset"] = None
        return self.derive(**changes)

    def _self_as_exclusion(self) -> Tensor:
        """The self exclusion ``c == r + offset`` (columns inside [0, C)) as an ``exclude_index`` (A, 1 + k)."""
        rows, cols = self.shape
        col = torch.arange(rows, device=self._device()) + int(self.self_offset or 0)
        col = torch.where((col >= 0) & (col < cols), col, torch.full_like(col, -1))[:, None]
        return col if self.exclude_index is None else torch.cat([self.exclude_index, col.to(self.exclude_index)], 1)

    def transpose(self) -> Targets:
        """Targets of ``S.T`` (C x A). Id forms stay compact; index forms are materialised."""
        if self.pos_index is None and self.exclude_index is None and self.bias_index is None:
            flip = lambda x: None if x is None else x.T  # noqa: E731
            return self.derive(
                pos=flip(self.pos),
                valid=flip(self.valid),
                bias=flip(self.bias),
                pos_row_ids=self.pos_col_ids,
                pos_col_ids=self.pos_row_ids,
                mask_row_ids=self.mask_col_ids,
                mask_col_ids=self.mask_row_ids,
                self_offset=None if self.self_offset is None else -self.self_offset,
                num_rows=self.num_cols,
                num_cols=self.num_rows,
            )
        pos, valid, bias = self.dense(dtype=torch.float64)
        with _deriving():
            return Targets(pos=pos.T, valid=valid.T, bias=None if bias is None else bias.T)

    def to(self, device: torch.device | str) -> Targets:
        """A copy with every tensor moved to ``device``."""
        moved = {name: getattr(self, name).to(device) for name, _, _ in self.parts() if getattr(self, name) is not None}
        return self.derive(**moved)


# a column-id part and the row-id part it is compared with
_ROW_IDS_OF = {"pos_col_ids": "pos_row_ids", "mask_col_ids": "mask_row_ids"}


# the value of each dense part on appended columns
_PARTS: tuple[tuple[str, Role, int], ...] = tuple(
    (f.name, f.metadata["role"], f.metadata["dims"]) for f in fields(Targets) if "role" in f.metadata
)
_FILL = {f.name: f.metadata["fill"] for f in fields(Targets) if f.metadata.get("role") == "dense"}


def _outside_ids(row_ids: Tensor, col_ids: Tensor, k: int) -> Tensor:
    """``k`` column ids equal to no row id (one less than every id in use; computed on the device, no sync)."""
    used = torch.cat([row_ids.reshape(-1), col_ids.reshape(-1).to(row_ids.device)])
    low = used.min() - 1 if used.numel() else torch.tensor(-1, device=used.device)
    return low.to(device=col_ids.device, dtype=col_ids.dtype).expand(k).clone()
