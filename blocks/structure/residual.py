"""Residual connection around any body: ``(body(x) + shortcut(x)) · scale``."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..core import Block, Example, Shape, Sizes
from ..norms.pixel import PixelNorm
from ..registry import STRUCTURE
from ..shapes import ShapeError

__all__ = ["Residual"]


def _consumed(child: nn.Module) -> tuple[str, ...]:
    return tuple(getattr(child, "consumes", ()))


@STRUCTURE.register(
    "residual",
    paper="He et al. 2016, Deep Residual Learning, sec. 3.2; scale 1/√2 as in Karras et al. 2020, StyleGAN2, "
          "sec. 4.1 (residual discriminator)",
)
class Residual(Block):
    """Residual block: ``out = (body(x) + shortcut(x)) · scale``.

    The residual blocks of SN-GAN, BigGAN and the StyleGAN2 discriminator are this wrapper around a body
    (the conv stack) and a shortcut (identity, or a 1x1 conv with resampling); StyleGAN2's residual
    discriminator uses ``scale = √0.5`` to keep the variance of the sum. Conditioning passed to
    ``forward`` as keywords is routed to each child whose ``consumes`` attribute names it; the block's
    ``consumes`` is the union of its children's.

    Args:
        body: the residual branch.
        shortcut: the skip branch (None: identity).
        scale: multiplies the sum.

    Raises:
        ShapeError: body and shortcut outputs differ in shape (both named), or a child rejects the input.
        TypeError: conditioning that no child consumes, or a child that returns more than a tensor.

    Shape:
        - x: (B, ...) -- whatever body and shortcut take (at least 2 dims)
        - output: body(x)'s shape, which must equal shortcut(x)'s
    """

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None, scale: float = 1.0):
        super().__init__()
        self.body = body
        self.shortcut = nn.Identity() if shortcut is None else shortcut
        self.scale = scale
        self.consumes = tuple(dict.fromkeys(chain(_consumed(self.body), _consumed(self.shortcut))))

    def _run(self, which: str, x: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        child = getattr(self, which)
        kwargs = {k: cond[k] for k in _consumed(child) if k in cond}
        name = f"{type(self).__name__}: {which} ({type(child).__name__})"
        try:
            out = child(x, **kwargs)
        except ShapeError as err:
            where = f"{type(self).__name__}: {which} {err.block}"
            raise ShapeError(where, err.name, err.expected, err.actual, err.why) from err
        except (TypeError, ValueError) as err:
            raise (TypeError if isinstance(err, TypeError) else ValueError)(f"{name}: {err}") from err
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as err:  # a plain torch module rejecting the input, e.g. nn.Conv2d
            raise ValueError(f"{name} failed on input of shape {tuple(x.shape)}: {err}") from err
        if not isinstance(out, Tensor):
            raise TypeError(f"{name} returned {type(out).__name__}; a residual branch must return one tensor")
        return out

    def forward(self, x: Tensor, **cond: Tensor) -> Tensor:
        self.check(x, "B _ ...")
        unknown = sorted(set(cond) - set(self.consumes))
        if unknown:
            raise TypeError(f"{type(self).__name__}: got conditioning {unknown} that neither body nor "
                            f"shortcut consumes (consumes {self.consumes})")
        h = self._run("body", x, cond)
        s = self._run("shortcut", x, cond)
        if h.shape != s.shape:
            raise ShapeError(type(self).__name__, "body output", f"shortcut output shape {tuple(s.shape)}",
                             tuple(h.shape), "body and shortcut must give the same shape")
        out = h + s
        return out if self.scale == 1.0 else out * self.scale

    def _child_shape(self, which: str, x: Shape, cond: Mapping[str, Shape]) -> Shape:
        child = getattr(self, which)
        if isinstance(child, nn.Identity):
            return tuple(x)
        kwargs = {k: cond[k] for k in _consumed(child) if k in cond}
        if isinstance(child, Block):
            try:
                return tuple(child.out_shape(x, **kwargs))
            except NotImplementedError:
                pass
        # No declared shape law: run the child on meta tensors (no memory, no copy of the weights).
        state = {k: torch.empty_like(v, device="meta")
                 for k, v in chain(child.named_parameters(), child.named_buffers())}
        dtype = next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)
        meta_x = torch.empty(x, device="meta", dtype=dtype)
        meta_cond = {k: torch.empty(v, device="meta", dtype=dtype) for k, v in kwargs.items()}
        return tuple(functional_call(child, state, (meta_x,), meta_cond).shape)

    def out_shape(self, x: Shape, **cond: Shape) -> Shape:
        h = self._child_shape("body", x, cond)
        s = self._child_shape("shortcut", x, cond)
        if h != s:
            raise ShapeError(type(self).__name__, "body output", f"shortcut output shape {s}", h,
                             "body and shortcut must give the same shape")
        return h

    @classmethod
    def example(cls, s: Sizes) -> Example:
        body = nn.Sequential(nn.Conv2d(s.C, s.C, 3, padding=1), nn.LeakyReLU(0.2), PixelNorm())
        shortcut = nn.Conv2d(s.C, s.C, 1, bias=False)
        with torch.no_grad():  # weights from the drawn sizes' generator, so examples are reproducible
            for p in chain(body.parameters(), shortcut.parameters()):
                p.copy_(s.randn(*p.shape) * 0.3)
        kwargs = {"body": body, "shortcut": shortcut, "scale": 0.5 ** 0.5}
        return Example(kwargs, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}"
