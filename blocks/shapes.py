"""Shape checks with bound letter names.

One legend for the whole package: ``B`` batch, ``C`` channels, ``H`` height, ``W`` width, ``N`` number
of tokens (or layers), ``D`` feature dimension. A spec is a space-separated list of dimension names,
integers, ``_`` (any size) or ``...`` (any number of leading/trailing dims). Letters may be bound to
values, and a letter that occurs twice must take the same size both times:

    >>> import torch
    >>> dims = check_shape(torch.zeros(2, 3, 4, 4), "B C H W", C=3)
    >>> dims["B"], dims["H"]
    (2, 4)

A failure raises :class:`ShapeError`, which names the block and gives the expected and actual shapes.
Checks are skipped while ``torch.compile`` traces, and can be switched off with
:func:`set_shape_checks` (or the :func:`shape_checks` context manager).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

_ENABLED = True


class ShapeError(ValueError):
    """A tensor of the wrong shape reached a block. ``str(err)`` names block, expected and actual."""

    def __init__(self, block: str, name: str, expected: str, actual: tuple[int, ...], why: str):
        self.block, self.name, self.expected, self.actual, self.why = block, name, expected, actual, why
        super().__init__(f"{block}: {name} should have shape {expected} but has shape {tuple(actual)}: {why}")


def set_shape_checks(enabled: bool) -> None:
    """Switch every block's boundary shape checks on or off (on by default)."""
    global _ENABLED
    _ENABLED = bool(enabled)


@contextlib.contextmanager
def shape_checks(enabled: bool) -> Iterator[None]:
    """Temporarily switch shape checks on or off."""
    global _ENABLED
    prev, _ENABLED = _ENABLED, bool(enabled)
    try:
        yield
    finally:
        _ENABLED = prev


def _block_name(block: Any) -> str:
    if block is None:
        return "check_shape"
    if isinstance(block, str):
        return block
    return type(block).__name__


def _render(tokens: list[str], bound: dict[str, int]) -> str:
    out = []
    for t in tokens:
        out.append(f"{t}={bound[t]}" if t in bound and not t.isdigit() else t)
    return "(" + ", ".join(out) + ")"


def check_shape(
    x: Any, spec: str, *, block: Any = None, name: str = "x", **bound: int | None
) -> dict[str, int]:
    """Check ``x`` against ``spec`` and return the sizes bound to each letter.

    Args:
        x: the tensor to check.
        spec: dimension names, e.g. ``"B C H W"``; ``_`` matches any size; ``...`` any number of dims.
        block: the block (or its name) to name in the error.
        name: the argument's name, for the error.
        **bound: sizes the letters must take; ``None`` leaves a letter free.

    Raises:
        TypeError: ``x`` is not a tensor.
        ShapeError: rank or a bound size differs.
    """
    who = _block_name(block)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: {name} should be a torch.Tensor of shape ({spec}), got {type(x).__name__}")
    if not _ENABLED or torch.compiler.is_compiling():
        return {}
    tokens = spec.split()
    fixed = {k: int(v) for k, v in bound.items() if v is not None}
    shape = tuple(x.shape)
    if "..." in tokens:
        i = tokens.index("...")
        head, tail = tokens[:i], tokens[i + 1 :]
        if len(shape) < len(head) + len(tail):
            raise ShapeError(who, name, _render(tokens, fixed), shape,
                             f"expected at least {len(head) + len(tail)} dims, got {len(shape)}")
        pairs = list(zip(head, shape[: len(head)])) + list(zip(tail, shape[len(shape) - len(tail) :]))
    else:
        if len(shape) != len(tokens):
            raise ShapeError(who, name, _render(tokens, fixed), shape,
                             f"expected {len(tokens)} dims, got {len(shape)}")
        pairs = list(zip(tokens, shape))
    seen: dict[str, int] = dict(fixed)
    for tok, size in pairs:
        if tok == "_":
            continue
        if tok.lstrip("-").isdigit():
            if size != int(tok):
                raise ShapeError(who, name, _render(tokens, fixed), shape, f"a dim is {size}, expected {tok}")
            continue
        if tok in seen and seen[tok] != size:
            why = f"{tok} is {size}, expected {seen[tok]}"
            raise ShapeError(who, name, _render(tokens, fixed), shape, why)
        seen[tok] = size
    return seen
