"""The dataset contract: :class:`FieldSpec` describes one field, :class:`GanDataset` holds the samples.

A dataset is finite, in memory and deterministic given its seed. ``ds[i]`` returns one sample as a
``dict[str, Tensor]`` with no batch dimension; ``ds.batch(indices)`` returns many at once (one gather per
field, much faster than collating single samples). Storage is compact and decoded on access:

- ``image``: stored uint8 ``(N, C, H, W)`` (decoded to float in [-1, 1] as ``x / 127.5 - 1``) or float
  ``(N, C, H, W)`` already in [-1, 1];
- ``class``: int64 ``(N,)``;
- ``label_map``: integer class indices ``(N, H, W)``, decoded to a float one-hot ``(n_classes, H, W)``;
- ``vector`` / ``text_embedding``: float ``(N, D)``; ``tokens``: float ``(N, T, D)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

# The data-bound kinds of assemble/inputs.py, so a field can bind to a network input of the same kind.
FIELD_KINDS = ("image", "class", "label_map", "vector", "text_embedding", "tokens")
_RANK = {"image": 3, "class": 0, "label_map": 3, "vector": 1, "text_embedding": 1, "tokens": 2}


@dataclass(frozen=True)
class FieldSpec:
    """What one field of a sample holds.

    Attributes:
        kind: one of ``image`` (float (C, H, W) in [-1, 1]), ``class`` (int64 scalar), ``label_map``
            (float one-hot (n_classes, H, W)), ``vector`` (float (D,)), ``text_embedding`` (float (D,)),
            ``tokens`` (float (T, D)).
        shape: the sample's shape without the batch dimension (``()`` for a class).
        n_classes: number of classes for ``class`` and ``label_map`` fields, else 0.
    """

    kind: str
    shape: tuple[int, ...]
    n_classes: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"unknown field kind '{self.kind}'; expected one of {', '.join(FIELD_KINDS)}")
        shape = tuple(self.shape)
        object.__setattr__(self, "shape", shape)
        if len(shape) != _RANK[self.kind] or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"a {self.kind} field needs {_RANK[self.kind]} positive sizes, found {shape}")
        if self.kind in ("class", "label_map") and self.n_classes < 1:
            raise ValueError(f"a {self.kind} field needs n_classes >= 1, found {self.n_classes}")
        if self.kind == "label_map" and shape[0] != self.n_classes:
            raise ValueError(f"a label_map's first size is its n_classes: shape {shape} vs n_classes {self.n_classes}")

    def describe(self) -> str:
        """The field in the input-declaration spelling, e.g. ``image(3, 16, 16)`` or ``class(10)``."""
        if self.kind == "class":
            return f"class({self.n_classes})"
        return f"{self.kind}({', '.join(str(s) for s in self.shape)})"


@dataclass(frozen=True)
class IndexedImages:
    """Images assembled on access from a table: sample i stacks ``table[index[i, k]]`` along channels.

    Stacked digits keep 1797 digit images plus an (N, 3) index instead of N full RGB images.

    Attributes:
        table: float images ``(M, 1, H, W)`` in [-1, 1].
        index: int64 ``(N, K)`` rows of table indices; sample i has K channels.
    """

    table: Tensor
    index: Tensor

    def __len__(self) -> int:
        return self.index.shape[0]

    def __getitem__(self, i: Any) -> Tensor:
        rows = self.table[self.index[i]]                       # (..., K, 1, H, W)
        return rows.flatten(-4, -3)                            # (..., K, H, W)


Column = Tensor | IndexedImages


class GanDataset(Dataset):
    """An in-memory, finite dataset whose samples are ``dict[str, Tensor]``.

    Args:
        name: short name (built-in name or folder name).
        fields: the fields each sample holds, by name.
        data: stored columns by field name, each with the samples along the first dimension (see the
            module docstring for the storage of each kind).
        info: JSON-able facts (source, size, n_classes, mode centres, ...).

    Raises:
        ValueError: when a column is missing, has the wrong length, shape, dtype or values.
    """

    def __init__(self, name: str, fields: dict[str, FieldSpec], data: dict[str, Column],
                 info: dict[str, Any] | None = None) -> None:
        if set(fields) != set(data):
            raise ValueError(f"dataset '{name}': fields {sorted(fields)} and stored columns {sorted(data)} differ")
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"dataset '{name}': columns have different lengths {lengths}")
        if not lengths or next(iter(lengths.values())) == 0:
            raise ValueError(f"dataset '{name}' has no samples")
        self.name = name
        self.fields = dict(fields)
        self.info = dict(info or {})
        self._data = dict(data)
        self._len = next(iter(lengths.values()))
        for key, spec in self.fields.items():
            _check_column(name, key, spec, self._data[key])

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if isinstance(i, torch.Tensor) and i.ndim == 0:
            i = int(i)
        if not isinstance(i, int):
            raise TypeError(f"index one sample with an int, found {type(i).__name__}; use .batch() for many")
        if not -self._len <= i < self._len:
            raise IndexError(f"index {i} out of range for dataset '{self.name}' of {self._len} samples")
        # through a batch of one: advanced indexing copies, so changing a sample in place never edits the data
        return {k: v[0] for k, v in self.batch([i]).items()}

    def batch(self, indices: Tensor | Sequence[int]) -> dict[str, Tensor]:
        """Many samples at once, batched along a new first dimension.

        Args:
            indices: int64 tensor or sequence of sample indices.

        Returns:
            ``{field: Tensor (B, *field.shape)}``.
        """
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if idx.numel() and (int(idx.min()) < -self._len or int(idx.max()) >= self._len):
            raise IndexError(f"indices out of range for dataset '{self.name}' of {self._len} samples")
        return {k: _decode(spec, self._data[k][idx]) for k, spec in self.fields.items()}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}: {v.describe()}" for k, v in self.fields.items())
        return f"GanDataset('{self.name}', {self._len} samples, {{{fields}}})"


def _decode(spec: FieldSpec, stored: Tensor) -> Tensor:
    """Stored rows -> the field's sample dtype and layout (works with or without a batch dimension)."""
    if spec.kind == "image":
        return stored.float() / 127.5 - 1.0 if stored.dtype == torch.uint8 else stored
    if spec.kind == "label_map":
        # scatter into float directly: F.one_hot would build an int64 (..., H, W, n) tensor 2x the size first
        idx = stored.long().unsqueeze(-3)                                      # (..., 1, H, W)
        out = torch.zeros((*idx.shape[:-3], spec.n_classes, *idx.shape[-2:]), dtype=torch.float32)
        return out.scatter_(-3, idx, 1.0)                                      # (..., n, H, W)
    return stored


def _check_column(name: str, key: str, spec: FieldSpec, column: Column) -> None:
    where = f"dataset '{name}', field '{key}' ({spec.describe()})"
    if isinstance(column, IndexedImages):
        if spec.kind != "image" or tuple(column[0].shape) != spec.shape:
            raise ValueError(f"{where}: indexed images give samples of shape {tuple(column[0].shape)}")
        return
    row_shape = tuple(column.shape[1:])
    if spec.kind == "label_map":
        expected, ok_dtype = spec.shape[1:], not column.dtype.is_floating_point and column.dtype != torch.bool
    elif spec.kind == "image":
        expected, ok_dtype = spec.shape, column.dtype in (torch.uint8, torch.float32)
    elif spec.kind == "class":
        expected, ok_dtype = (), column.dtype == torch.int64
    else:
        expected, ok_dtype = spec.shape, column.dtype == torch.float32
    if row_shape != expected or not ok_dtype:
        raise ValueError(f"{where}: stored as {column.dtype} {tuple(column.shape)}, "
                         f"expected rows of shape {expected} with a fitting dtype")
    if spec.kind in ("class", "label_map") and (int(column.min()) < 0 or int(column.max()) >= spec.n_classes):
        raise ValueError(f"{where}: values span {int(column.min())}..{int(column.max())}, "
                         f"expected 0..{spec.n_classes - 1}")
    if spec.kind == "image" and column.dtype == torch.float32 and (column.min() < -1 or column.max() > 1):
        raise ValueError(f"{where}: float images must lie in [-1, 1], found "
                         f"{float(column.min()):.3g}..{float(column.max()):.3g}")


def parse_size(size: Any, what: str) -> tuple[int, int]:
    """``16`` -> ``(16, 16)``; ``(H, W)`` or ``[H, W]`` -> ``(H, W)``.

    Args:
        size: an int or a pair of ints, all positive.
        what: the dataset, for the error message.

    Raises:
        ValueError: for anything else.
    """
    pair = (size, size) if isinstance(size, int) else size
    if (isinstance(pair, (tuple, list)) and len(pair) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in pair)):
        return int(pair[0]), int(pair[1])
    raise ValueError(f"{what}: size must be a positive int or a pair [H, W] of positive ints, found {size!r}; "
                     f"e.g. set data.size: 64 or data.size: [48, 64]")
