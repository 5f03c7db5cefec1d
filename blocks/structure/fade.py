"""ProGAN's fade-in: blend the output of a new, higher-resolution stage into the old one."""

from __future__ import annotations

import torch
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..registry import STRUCTURE
from ..shapes import ShapeError

__all__ = ["FadeIn", "fade_in"]


def fade_in(old: Tensor, new: Tensor, alpha: Tensor | float) -> Tensor:
    """``old + (new - old) · alpha``: alpha = 0 gives ``old``, alpha = 1 gives ``new``, both exactly.

    Karras et al. 2018, "Progressive Growing of GANs", sec. 3 and fig. 2 (b): while a new stage fades in,
    its output is interpolated linearly with the (resampled) output of the previous stage. ``torch.lerp``
    computes ``new - (new - old) · (1 - alpha)`` for alpha >= 0.5, so a faded-in stage (alpha = 1) gives the
    new path bit for bit (``old + (new - old) · 1`` is off by rounding).
    """
    if not isinstance(alpha, Tensor):
        alpha = torch.tensor(float(alpha), dtype=old.dtype, device=old.device)
    return torch.lerp(old, new, alpha)


@STRUCTURE.register("fade_in",
                    paper="Karras et al. 2018, Progressive Growing of GANs, sec. 3, fig. 2 (fade-in)")
class FadeIn(Block):
    """Linear blend of the old path and the new path of a growing network.

    ProGAN fades each new resolution in over training: ``out = old + (new - old) · α`` with α rising from 0
    to 1. α is a buffer (saved with the model, not learned), set by the trainer with :meth:`set_alpha`;
    it starts at 1 (the new path only), so a network that is not growing sees the new path.

    Shape:
        - old: (B, ...) -- at least 2 dims, e.g. (B, C, H, W) images or features
        - new: same shape as old
        - output: same shape as old
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.ones(()))

    def set_alpha(self, alpha: float) -> None:
        """Set the blend factor α in [0, 1] (0: old path, 1: new path)."""
        value = float(alpha)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"FadeIn: alpha must be in [0, 1], got {value}")
        self.alpha.fill_(value)

    def _check(self, old: Tensor, new: Tensor) -> None:
        self.check(old, "B _ ...", "old")
        self.check(new, "B _ ...", "new")
        if old.shape != new.shape:
            raise ShapeError(type(self).__name__, "new", str(tuple(old.shape)), tuple(new.shape),
                             "old and new must have the same shape (resample the old path first)")

    def forward(self, old: Tensor, new: Tensor) -> Tensor:
        self._check(old, new)
        return fade_in(old, new, self.alpha.to(old.dtype))

    def call_function(self, old: Tensor, new: Tensor) -> Tensor:
        return fade_in(old, new, self.alpha.to(old.dtype))

    def out_shape(self, old: Shape, new: Shape) -> Shape:
        return tuple(old)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W), s.randn(s.B, s.C, s.H, s.W)))

    def extra_repr(self) -> str:
        return "alpha=meta" if self.alpha.is_meta else f"alpha={float(self.alpha):.4g}"
