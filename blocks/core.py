"""The block contract: a thin ``nn.Module`` base class, fast-path dispatch and test examples.

Every network block subclasses :class:`Block`. It is still a plain ``nn.Module``: nothing here depends on
recipes, trainers or the registry being used. What the base adds:

- ``check(x, "B C H W", C=...)``: a boundary shape check that names this block in its error;
- ``out_shape(*input_shapes, **cond_shapes)``: the block's shape law (the tests compare it with the
  real output; the assembler uses it or runs the block on ``meta`` tensors);
- ``example(sizes)``: a tiny, valid construction and inputs for the registry-wide property tests;
- ``call_function(*inputs, **cond)``: for blocks with maths of their own, the same computation through the
  public function of the function/module pair, with the module's state passed explicitly;
- fast-path dispatch: a block with several formulations lists them in ``impls`` (``"ref"`` first, the
  plain-PyTorch reference and test oracle). ``impl="auto"`` picks the measured-fastest path for the
  device once per (block, device, dtype), caches the choice -- a failure included, falling back to
  ``"ref"`` with one warning -- and exposes it as ``block.impl``.

Conditioning a block consumes (its class attribute ``consumes``, written by the registry decorator) is
passed to ``forward`` as keyword arguments of the same names, e.g. ``forward(x, w)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .shapes import ShapeError, check_shape

Shape = tuple[int, ...]

# (block class name, device type, dtype) -> chosen impl; "ref" once a fast path has failed there.
_IMPL_CACHE: dict[tuple[str, str, torch.dtype], str] = {}


def clear_impl_cache() -> None:
    """Forget every cached fast-path choice (and failure)."""
    _IMPL_CACHE.clear()


def set_impl(module: nn.Module, impl: str) -> int:
    """Put every block inside ``module`` that has several formulations on ``impl``.

    ``"ref"`` selects each block's plain-PyTorch reference path (the test oracle), ``"auto"`` the
    measured-fastest path per device; a specific name applies only to blocks that offer it. Returns the
    number of blocks switched. Used to time whole networks on their reference vs fast paths.
    """
    n = 0
    for m in module.modules():
        if isinstance(m, Block) and len(m.impls) > 1 and (impl == "auto" or impl in m.impls):
            m._init_impl(impl)
            n += 1
    return n


class Block(nn.Module):
    """Base class of every network block in ganforge."""

    # Written by the registry decorator; defaults for unregistered subclasses.
    registry_key: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    consumes: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    batch_coupled: ClassVar[bool] = False

    # Formulations, reference first; the default per device type was chosen by benchmark.
    impls: ClassVar[tuple[str, ...]] = ()
    default_impl: ClassVar[dict[str, str]] = {}

    # Per-layer styles (StyleGAN's w, shape (B, num_ws, D)). A block that takes one layer of a consumed
    # per-layer register leaves ``style_layers`` at None and receives (B, D). A composite that takes several
    # consecutive layers sets it (on the instance: it may follow the constructor's arguments) and receives a
    # (B, style_layers, D) slice; ``style_advance`` is how far the network's layer counter moves on after it
    # (None: as many as it takes). NVlabs' SynthesisBlock takes num_conv + num_torgb layers and advances
    # num_conv, so its toRGB shares its w with the next block's first conv.
    style_layers: int | None = None
    style_advance: int | None = None

    # Progressive blocks (ProGAN) define ``set_stage(stage)``: the network calls it with its current stage
    # whenever the stage changes, so a block knows whether it is the top stage, the one fading out, or below.

    # ---- boundary checks -------------------------------------------------------------------------
    def check(self, x: Any, spec: str, name: str = "x", **bound: int | None) -> dict[str, int]:
        """``check_shape`` naming this block in the error."""
        return check_shape(x, spec, block=self, name=name, **bound)

    def check_indices(self, y: Any, n_classes: int, name: str = "y", B: int | None = None) -> int:
        """Check that ``y`` is a (B,) int64/int32 tensor of class indices in [0, n_classes); return B.

        Values are read only on real devices outside ``torch.compile`` (a meta tensor has none; on CUDA the
        read waits for the device).
        """
        dims = self.check(y, "B", name, B=B)
        if y.dtype not in (torch.int64, torch.int32):
            raise self.fail(f"{name} should hold class indices (an int64 or int32 tensor of shape (B,)), "
                            f"got dtype {y.dtype}", TypeError)
        if not y.is_meta and y.numel() and not torch.compiler.is_compiling():
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= n_classes:
                raise self.fail(f"{name} should hold class indices in [0, {n_classes}), got values in [{lo}, {hi}]")
        return dims.get("B", y.shape[0])

    def fail(self, message: str, exc: type[Exception] = ValueError) -> Exception:
        """An exception whose message starts with this block's name."""
        return exc(f"{type(self).__name__}: {message}")

    # ---- shape law, examples, function pair -------------------------------------------------------
    def out_shape(self, *shapes: Shape, **cond_shapes: Shape) -> Shape:
        """Output shape for the given input shapes (the main output for blocks that emit)."""
        raise NotImplementedError(f"{type(self).__name__} does not declare its shape law")

    @classmethod
    def example(cls, s: Sizes) -> Example:
        """A tiny valid construction with inputs, built from the drawn sizes ``s``."""
        raise NotImplementedError(f"{cls.__name__} has no example")

    def call_function(self, *inputs: Tensor, **cond: Tensor) -> Any:
        """The forward computation through the block's public function (blocks with maths of their own)."""
        return NotImplemented

    # ---- fast paths -------------------------------------------------------------------------------
    def _init_impl(self, impl: str) -> None:
        options = ("auto", *self.impls)
        if impl not in options:
            raise ValueError(f"{type(self).__name__}: impl must be one of {options}, got {impl!r}")
        self._impl_requested = impl
        self._impl_resolved: str | None = None if impl == "auto" else impl

    @property
    def impl(self) -> str:
        """The formulation in use: the requested one, or what ``"auto"`` resolved to on the last call."""
        if self._impl_resolved is not None:
            return self._impl_resolved
        return "auto (resolved on first call)"

    def preferred_impl(self, device_type: str) -> str:
        """The measured-fastest formulation on this device type (see benchmarks/results)."""
        return self.default_impl.get(device_type, self.impls[-1])

    def dispatch(self, device: torch.device, dtype: torch.dtype, run: Callable[[str], Any]) -> Any:
        """Run ``run(impl)`` with the requested formulation, or the cached ``"auto"`` choice.

        The first ``"auto"`` call on a (block, device type, dtype) tries the preferred formulation; if it
        raises anything but a ``ShapeError``, "ref" is used and cached from then on, with one warning.
        """
        if self._impl_requested != "auto":
            return run(self._impl_requested)
        key = (type(self).__name__, device.type, dtype)
        choice = _IMPL_CACHE.get(key)
        if choice is not None:
            self._impl_resolved = choice
            return run(choice)
        choice = self.preferred_impl(device.type)
        try:
            out = run(choice)
        except ShapeError:
            raise
        except (RuntimeError, NotImplementedError) as err:
            if choice == "ref":
                raise
            warnings.warn(
                f"{type(self).__name__}: fast path {choice!r} failed on {device.type}/{dtype} ({err}); "
                "using 'ref' from now on", RuntimeWarning, stacklevel=3)
            choice = "ref"
            out = run(choice)
        _IMPL_CACHE[key] = choice
        self._impl_resolved = choice
        return out


# ---- examples for the registry-wide property tests -------------------------------------------------


@dataclass
class Sizes:
    """Sizes drawn by the property tests; blocks adapt them (round up, clamp) to what they accept."""

    B: int = 2
    C: int = 4
    H: int = 6
    W: int = 5
    D: int = 6
    N: int = 3
    seed: int = 0
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        self.gen = torch.Generator().manual_seed(self.seed)

    def randn(self, *shape: int) -> Tensor:
        return torch.randn(*shape, generator=self.gen).to(self.dtype)

    def rand(self, *shape: int) -> Tensor:
        return torch.rand(*shape, generator=self.gen).to(self.dtype)

    def randint(self, high: int, *shape: int) -> Tensor:
        return torch.randint(0, high, shape, generator=self.gen)

    def even(self, n: int) -> int:
        """``n`` rounded up to an even number (for x2 resampling)."""
        return n + n % 2


@dataclass
class Example:
    """A block construction with inputs.

    Attributes:
        kwargs: constructor arguments.
        inputs: positional tensors (the main input first); dim 0 of each is the batch.
        cond: conditioning tensors, passed as keywords (names from ``consumes``); dim 0 is the batch.
    """

    kwargs: dict[str, Any]
    inputs: tuple[Tensor, ...]
    cond: dict[str, Tensor] = field(default_factory=dict)

    def all_tensors(self) -> Sequence[Tensor]:
        return (*self.inputs, *self.cond.values())
