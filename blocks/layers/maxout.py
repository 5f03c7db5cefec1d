"""The maxout layer: a linear map to ``units x pieces`` features and the maximum over each unit's pieces."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import LAYERS

__all__ = ["Maxout", "maxout"]


def maxout(x: Tensor, weight: Tensor, bias: Tensor | None, pieces: int) -> Tensor:
    """``max_k (x Wᵀ + b)[..., j·pieces + k]`` for each unit j: a linear map, then the maximum of each unit's
    ``pieces`` consecutive outputs (pylearn2's layout: piece k of unit j is column j·pieces + k).

    Shape:
        - x: (B, ..., D); weight: (units·pieces, D); bias: (units·pieces,) or None.
        - output: (B, ..., units).
    """
    h = F.linear(x, weight, bias)
    return h.unflatten(-1, (h.shape[-1] // pieces, pieces)).amax(dim=-1)


@LAYERS.register("maxout", paper="Goodfellow et al. 2013, Maxout Networks, sec. 2 (eq. 1); used in the "
                                 "discriminators of Goodfellow et al. 2014 and Mirza & Osindero 2014, sec. 4.1")
class Maxout(Block):
    """A maxout layer: ``h_j(x) = max_k z_jk`` with ``z = x Wᵀ + b`` of ``units x pieces`` features.

    Each of the ``out_features`` units is the maximum of ``pieces`` affine pieces, a learned convex
    piecewise-linear activation (Goodfellow et al. 2013, eq. 1). The conditional GAN's discriminator
    (Mirza & Osindero 2014, sec. 4.1) maps x to 240 units x 5 pieces, y to 50 units x 5 pieces and the
    joined features to 240 units x 4 pieces. The pieces of unit j are the consecutive columns
    ``j·pieces .. j·pieces + pieces - 1`` of the linear layer, as pylearn2's ``Maxout`` lays them out, so its
    (units·pieces, in_features) weight loads as this block's ``linear.weight``.

    Args:
        in_features: input features D.
        out_features: number of maxout units.
        pieces: affine pieces per unit (k in the paper, >= 1; 1 is a plain linear layer).
        bias: learn an additive bias per piece.

    Shape:
        - x: (B, ..., D) -- any number of middle dims.
        - output: (B, ..., out_features)
    """

    def __init__(self, in_features: int, out_features: int, pieces: int = 2, bias: bool = True):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features), ("pieces", pieces)):
            if v < 1:
                raise self.fail(f"{name} must be >= 1, got {v}")
        self.in_features, self.out_features, self.pieces = in_features, out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B ... D", D=self.in_features)
        return maxout(x, self.linear.weight, self.linear.bias, self.pieces)

    def call_function(self, x: Tensor) -> Tensor:
        return maxout(x, self.linear.weight, self.linear.bias, self.pieces)

    def out_shape(self, x: Shape) -> Shape:
        return (*x[:-1], self.out_features)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_features": s.D, "out_features": s.C, "pieces": s.N + 1}, (s.randn(s.B, s.D),))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}"
