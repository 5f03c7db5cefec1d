"""The work a benchmark case must do: FLOPs and the bytes that must move, and the floor they imply.

FLOPs are counted with ``torch.utils.flop_counter``'s formulas on the case's fastest-known formulation
(its default impl): the matmul, convolution and attention FLOPs (2 per multiply-add), forward or forward +
backward. Elementwise work is not counted; it never sets the floor, the bytes do.

Bytes are the compulsory traffic: every input, parameter and buffer read once and the output written
once in the forward pass, ``I + P + O``; the backward pass reads the output gradient and the inputs and
parameters once more and writes the gradients of those that require them, ``O + I + P + I_g + P_g``.
Intermediates are not counted: a formulation that spills them to memory pays for that in the ratio.

The floor is ``max(bytes / bandwidth, FLOPs / compute rate)`` with the rates of :mod:`benchmarks.probe`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

__all__ = ["Work", "compulsory_bytes", "count_flops", "floor", "tensor_bytes", "tensors_in"]


@dataclass
class Work:
    """FLOPs and compulsory bytes of one pass (forward, or forward + backward)."""

    flops: int
    bytes: int


def tensors_in(obj: Any) -> list[Tensor]:
    """Every tensor in a (nested) tuple, list or dict, or the tensor itself."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in tensors_in(v)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in tensors_in(v)]
    return []


def tensor_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes held by distinct tensors (a tensor listed twice counts once)."""
    seen: set[int] = set()
    total = 0
    for t in tensors:
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total


def compulsory_bytes(inputs: Iterable[Tensor], state: Iterable[Tensor], outputs: Iterable[Tensor]
                     ) -> tuple[int, int]:
    """(forward, forward + backward) compulsory bytes; see the module docstring.

    Args:
        inputs: the tensors passed in (conditioning included).
        state: parameters and buffers the computation reads.
        outputs: what it returns.
    """
    inputs, state, outputs = list(inputs), list(state), list(outputs)
    i, p, o = tensor_bytes(inputs), tensor_bytes(state), tensor_bytes(outputs)
    i_g = tensor_bytes(t for t in inputs if t.requires_grad)
    p_g = tensor_bytes(t for t in state if t.requires_grad)
    forward = i + p + o
    return forward, forward + (o + i + p + i_g + p_g)


class _FlopCount(TorchDispatchMode):
    """Sums ``torch.utils.flop_counter``'s formulas over the ops dispatched (no module tracking: its hooks
    cannot follow ``autograd.grad`` or modules that return tensors under ``no_grad``)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn``: torch's FLOP formulas (matmul, conv, attention; forward and backward)."""
    with _FlopCount() as counter:
        fn()
    return counter.total


def floor(work: Work, bandwidth: float, compute: float) -> tuple[float, str]:
    """The lower bound in seconds and what sets it (``"memory"`` or ``"compute"``)."""
    t_mem = work.bytes / bandwidth
    t_compute = work.flops / compute
    return (t_compute, "compute") if t_compute > t_mem else (t_mem, "memory")

