"""Benchmark cases: what to run, its formulations (variants) and the tensors its work is counted from.

A :class:`Case` is declared without allocating anything; ``case.build(ctx)`` makes the modules and inputs
on the context's device and dtype and returns a :class:`Built`: one :class:`Variant` per formulation
(each block impl, a plain baseline such as the same-shape conv, an optional ``torch.compile`` row), the
variant whose time is compared with the floor (the device's default impl) and the reference it is
compared with for the speedup.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

import blocks
from blocks.core import Block

__all__ = ["Built", "Case", "Context", "Variant", "block_build", "leaf", "multi_impl"]


@dataclass
class Context:
    """Where and how cases are built: device, dtype, batch multiplier, torch.compile rows, seed."""

    device: torch.device
    dtype: torch.dtype = torch.float32
    batch_mult: int = 1
    compile: bool = False
    seed: int = 0

    def batch(self, b: int) -> int:
        return b * self.batch_mult

    def randn(self, *shape: int) -> Tensor:
        return torch.randn(*shape, device=self.device, dtype=self.dtype)


@dataclass
class Variant:
    """One formulation of a case.

    Attributes:
        name: the impl name (``ref``, ``fast``, ``bmm``, ...) or a baseline's name.
        forward: computes the output from the case's inputs (no arguments).
        wrt: what the forward + backward pass differentiates (float inputs and parameters).
        role: ``"ref"`` (the reference, the speedup's numerator), ``"impl"``, ``"baseline"`` (not the
            block itself, e.g. a plain conv of the same shape) or ``"compile"``.
        default: the formulation the block uses on this device (``impl="auto"``).
    """

    name: str
    forward: Callable[[], Any]
    wrt: list[Tensor]
    role: str = "impl"
    default: bool = False


@dataclass
class Built:
    """A built case: its variants, and the inputs and state its compulsory bytes are counted from."""

    variants: list[Variant]
    inputs: list[Tensor]
    state: list[Tensor]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def default(self) -> Variant:
        return next((v for v in self.variants if v.default), self.variants[-1])

    @property
    def ref(self) -> Variant | None:
        return next((v for v in self.variants if v.role == "ref"), None)


@dataclass(frozen=True)
class Case:
    """A benchmark: a block at a paper's shape, or a whole recipe's network.

    Attributes:
        name: unique, ``key/description`` (``modulated_conv/demod 512ch 16x16``).
        kind: ``"block"`` or ``"recipe"``.
        key: the registry key or recipe name (``--block`` / ``--recipe`` select on it).
        paper: the configuration the shape comes from.
        build: makes the variants on a :class:`Context`.
        devices: device types the case runs on.
    """

    name: str
    kind: str
    key: str
    paper: str
    build: Callable[[Context], Built]
    devices: tuple[str, ...] = ("cpu", "cuda")


def leaf(t: Tensor) -> Tensor:
    """A fresh leaf that requires grad when floating (inputs of the forward + backward pass)."""
    t = t.detach().clone()
    return t.requires_grad_(t.is_floating_point())


def _params(m: nn.Module) -> list[Tensor]:
    return [p for p in m.parameters() if p.requires_grad]


def _state(m: nn.Module) -> list[Tensor]:
    return [*m.parameters(), *(b for b in m.buffers() if b.is_floating_point())]


def multi_impl(m: nn.Module) -> bool:
    """Whether ``m`` or a block inside it offers several formulations."""
    return any(isinstance(b, Block) and len(b.impls) > 1 for b in m.modules())


def _impls(m: nn.Module) -> tuple[Sequence[str], str]:
    """The formulations to time for ``m`` and the name of the device default (resolved later)."""
    if isinstance(m, Block) and len(m.impls) > 1:
        return m.impls, "auto"
    if multi_impl(m):  # a composite (mapping network, whole networks): every sub-block ref vs default
        return ("ref", "auto"), "auto"
    return ("default",), "default"


def block_build(
    ctx: Context,
    make: Callable[[], nn.Module],
    inputs: Sequence[Tensor],
    cond: dict[str, Tensor] | None = None,
    baselines: Sequence[tuple[str, Callable[[], Any], list[Tensor]]] = (),
    ref_name: str = "ref",
    config: dict[str, Any] | None = None,
    train: bool = True,
) -> Built:
    """Variants of one module: one per impl (each on a copy of the same weights), plus baselines.

    Args:
        ctx: device and dtype.
        make: constructs the module (on the CPU, in float32; moved here).
        inputs: positional inputs (made leaves here, so they require grad when floating).
        cond: keyword conditioning (likewise).
        baselines: ``(name, forward, wrt)`` rows that are not the block itself.
        ref_name: the variant the speedup is measured against (``"ref"``, or a baseline's name).
        config: shapes and settings recorded with the results.
        train: put the module in training mode (batch statistics, power iterations).
    """
    torch.manual_seed(ctx.seed)
    base = make().to(device=ctx.device, dtype=ctx.dtype).train(train)
    xs = [leaf(t) for t in inputs]
    kw = {k: leaf(v) for k, v in (cond or {}).items()}
    grad_inputs = [t for t in (*xs, *kw.values()) if t.requires_grad]
    impls, default = _impls(base)
    preferred = base.preferred_impl(ctx.device.type) if isinstance(base, Block) and base.impls else None
    variants = []
    for impl in impls:
        m = copy.deepcopy(base)
        if impl != "default":
            blocks.set_impl(m, impl)
        is_default = impl == default if preferred is None else impl == preferred
        role = "ref" if impl == ref_name else "impl"
        variants.append(Variant(impl, _call(m, xs, kw), grad_inputs + _params(m), role, is_default))
    if default == "auto" and preferred is None:  # composite: name the default path "fast"
        variants[-1].name = "fast"
    for name, fn, wrt in baselines:
        variants.append(Variant(name, fn, wrt, "ref" if name == ref_name else "baseline"))
    if ctx.compile:
        m = copy.deepcopy(base)
        variants.append(Variant("compile", _call(torch.compile(m), xs, kw), grad_inputs + _params(m),
                                "compile"))
    return Built(variants, [*xs, *kw.values()], _state(base), config or {})


def _call(m: nn.Module, xs: list[Tensor], kw: dict[str, Tensor]) -> Callable[[], Any]:
    return lambda: m(*xs, **kw)
