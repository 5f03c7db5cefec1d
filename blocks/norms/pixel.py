"""Pixel-wise feature normalisation (ProGAN)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..registry import NORMS


def pixel_norm(x: Tensor, eps: float = 1e-8, dim: int = 1) -> Tensor:
    """Divide each feature vector by its root mean square: ``x / sqrt(mean(x², dim) + eps)``.

    Karras et al. 2018, "Progressive Growing of GANs", section 4.2 (eq. for b_{x,y}).
    """
    return x * torch.rsqrt(x.square().mean(dim=dim, keepdim=True) + eps)


@NORMS.register("pixel_norm", paper="Karras et al. 2018, Progressive Growing of GANs (ProGAN), sec. 4.2")
class PixelNorm(Block):
    """Pixel-wise feature vector normalisation: unit mean square across channels at every position.

    Used after every conv in ProGAN's generator, and on z in StyleGAN's mapping network.

    Args:
        eps: added under the square root (ProGAN: 1e-8).

    Shape:
        - x: (B, C, ...) -- any rank >= 2; normalised over C.
        - output: same as x.
    """

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B C ...")
        return pixel_norm(x, self.eps)

    def call_function(self, x: Tensor) -> Tensor:
        return pixel_norm(x, eps=self.eps, dim=1)

    def out_shape(self, x: Shape) -> Shape:
        return tuple(x)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
