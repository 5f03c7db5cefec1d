"""Combinators for recipes' steps over registers: sum, concatenation, reshapes, global pooling, scale, dropout.

Each is a small block with a shape law and errors that name it, so a recipe step such as
``add: {from: [img, rgb], into: img}`` is checked like any other block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..registry import STRUCTURE
from ..shapes import ShapeError

__all__ = ["Add", "Concat", "Dropout", "Flatten", "GlobalAvgPool", "GlobalSumPool", "KeepChannels", "Reshape",
           "Scale"]


def _two_or_more(block: Block, xs: Sequence[Tensor]) -> None:
    if len(xs) < 2:
        raise block.fail(f"needs 2 or more inputs, got {len(xs)}")
    for i, x in enumerate(xs):
        block.check(x, "B _ ...", f"input {i}")


@STRUCTURE.register(
    "add",
    paper="He et al. 2016, Deep Residual Learning, sec. 3.2; Karras et al. 2020, StyleGAN2, fig. 7 "
          "(skip generator: sum of the upsampled toRGB outputs)",
)
class Add(Block):
    """Elementwise sum of two or more tensors of the same shape.

    Shape:
        - xs: 2 or more tensors (B, ...), all of the same shape (at least 2 dims)
        - output: that shape
    """

    def __init__(self) -> None:  # no arguments (nn.Module's own signature takes *args, **kwargs)
        super().__init__()

    def forward(self, *xs: Tensor) -> Tensor:
        _two_or_more(self, xs)
        for i, x in enumerate(xs[1:], 1):
            if x.shape != xs[0].shape:
                raise ShapeError(type(self).__name__, f"input {i}", str(tuple(xs[0].shape)), tuple(x.shape),
                                 "every input must have the shape of input 0")
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out

    def out_shape(self, *xs: Shape) -> Shape:
        return tuple(xs[0])

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W), s.randn(s.B, s.C, s.H, s.W)))


@STRUCTURE.register(
    "concat",
    paper="Mirza & Osindero 2014, Conditional GANs, sec. 4.1 (z and y concatenated); Isola et al. 2017, "
          "pix2pix, sec. 3.1.1 (U-Net skips concatenate channels)",
)
class Concat(Block):
    """Concatenation along the channel (feature) dimension, dim 1.

    Shape:
        - xs: 2 or more tensors (B, C_i, ...) of equal rank, equal in every dim but dim 1
        - output: (B, sum of C_i, ...)
    """

    def __init__(self) -> None:  # no arguments (nn.Module's own signature takes *args, **kwargs)
        super().__init__()

    def forward(self, *xs: Tensor) -> Tensor:
        _two_or_more(self, xs)
        first = tuple(xs[0].shape)
        for i, x in enumerate(xs[1:], 1):
            shape = tuple(x.shape)
            if len(shape) != len(first) or shape[:1] + shape[2:] != first[:1] + first[2:]:
                expected = "(" + ", ".join(["C_i" if d == 1 else str(n) for d, n in enumerate(first)]) + ")"
                raise ShapeError(type(self).__name__, f"input {i}", expected, shape,
                                 "inputs must match input 0 in every dim but the channels (dim 1)")
        return torch.cat(xs, dim=1)

    def out_shape(self, *xs: Shape) -> Shape:
        return (xs[0][0], sum(x[1] for x in xs), *xs[0][2:])

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W), s.randn(s.B, s.N, s.H, s.W)))


@STRUCTURE.register(
    "keep_channels",
    paper="Brock et al. 2019, BigGAN, appendix B (BigGAN-deep: where G reduces the channels, the skip keeps the "
          "first group of channels and drops the rest); BigGAN-PyTorch BigGANdeep.py",
)
class KeepChannels(Block):
    """Keep the first ``channels`` channels and drop the rest: ``x[:, :channels]``.

    BigGAN-deep's generator blocks shrink their identity skip this way (``x[:, :out_channels]``, no
    parameters), and its output layer keeps the first 3 of the last convolution's channels as RGB.

    Args:
        channels: number of leading channels kept (at most the input's).

    Shape:
        - x: (B, C, ...) with C >= channels
        - output: (B, channels, ...)
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels < 1:
            raise self.fail(f"channels must be >= 1, got {channels}")
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        dims = self.check(x, "B C ...")
        if dims and dims["C"] < self.channels:
            raise ShapeError(type(self).__name__, "x", f"(B, C >= {self.channels}, ...)", tuple(x.shape),
                             f"cannot keep {self.channels} channels of {dims['C']}")
        return x[:, :self.channels]

    def out_shape(self, x: Shape) -> Shape:
        return (x[0], self.channels, *x[2:])

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"channels": s.C}, (s.randn(s.B, s.C + s.N, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


@STRUCTURE.register(
    "reshape",
    paper="Radford et al. 2016, DCGAN, sec. 3 (the projected z is reshaped into a 4-D tensor); Brock et al. "
          "2019, BigGAN, appendix B (linear -> (16·ch, 4, 4))",
)
class Reshape(Block):
    """Reshape every sample to ``shape``: (B, ...) -> (B, *shape), e.g. a linear layer's output to (C, 4, 4).

    Args:
        shape: the per-sample shape; its product must equal the number of elements of each sample.

    Shape:
        - x: (B, ...) -- at least 2 dims, prod(...) = prod(shape)
        - output: (B, *shape)
    """

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = tuple(int(n) for n in shape)
        if not self.shape or any(n < 1 for n in self.shape):
            raise ValueError(f"Reshape: shape must be a non-empty list of positive sizes, got {list(shape)}")

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B _ ...")
        per_sample = math.prod(x.shape[1:])
        if per_sample != math.prod(self.shape):
            expected = f"(B, ...) with {math.prod(self.shape)} elements per sample"
            raise ShapeError(type(self).__name__, "x", expected, tuple(x.shape),
                             f"cannot reshape {per_sample} elements to {self.shape}")
        return x.reshape(x.shape[0], *self.shape)

    def out_shape(self, x: Shape) -> Shape:
        return (x[0], *self.shape)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"shape": (s.C, s.H, s.W)}, (s.randn(s.B, s.C * s.H * s.W),))

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


@STRUCTURE.register(
    "flatten",
    paper="Radford et al. 2016, DCGAN, sec. 3 (the last conv layer is flattened and fed to a sigmoid output)",
)
class Flatten(Block):
    """Flatten every sample: (B, ...) -> (B, prod(...)).

    Shape:
        - x: (B, ...) -- at least 2 dims
        - output: (B, D) with D the number of elements per sample
    """

    def __init__(self) -> None:  # no arguments (nn.Module's own signature takes *args, **kwargs)
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B _ ...")
        return x.flatten(1)

    def out_shape(self, x: Shape) -> Shape:
        return (x[0], math.prod(x[1:]))

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W),))


@STRUCTURE.register(
    "global_sum_pool",
    paper="Miyato et al. 2018, SN-GAN, appendix B (ResNet discriminator: global sum pooling); Brock et al. "
          "2019, BigGAN, appendix B",
)
class GlobalSumPool(Block):
    """Sum over the spatial dims (the SN-GAN / BigGAN discriminator head, after the activation).

    Shape:
        - x: (B, C, H, W)
        - output: (B, C)
    """

    def __init__(self) -> None:  # no arguments (nn.Module's own signature takes *args, **kwargs)
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B C H W")
        return x.sum(dim=(2, 3))

    def out_shape(self, x: Shape) -> Shape:
        return (x[0], x[1])

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W),))


@STRUCTURE.register("global_avg_pool",
                    paper="Lin et al. 2014, Network In Network, sec. 3.2 (global average pooling)")
class GlobalAvgPool(Block):
    """Mean over the spatial dims.

    Shape:
        - x: (B, C, H, W)
        - output: (B, C)
    """

    def __init__(self) -> None:  # no arguments (nn.Module's own signature takes *args, **kwargs)
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B C H W")
        return x.mean(dim=(2, 3))

    def out_shape(self, x: Shape) -> Shape:
        return (x[0], x[1])

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W),))


@STRUCTURE.register(
    "scale",
    paper="Karras et al. 2020, StyleGAN2, sec. 4.1 (residual sum times 1/√2 keeps the variance)",
)
class Scale(Block):
    """Multiply by a constant.

    Args:
        scale: the factor.

    Shape:
        - x: (B, ...) -- at least 2 dims
        - output: same as x
    """

    def __init__(self, scale: float):
        super().__init__()
        self.scale = float(scale)

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B _ ...")
        return x * self.scale

    def out_shape(self, x: Shape) -> Shape:
        return tuple(x)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"scale": 0.5 ** 0.5}, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}"


@STRUCTURE.register(
    "dropout",
    paper="Srivastava et al. 2014, Dropout; Isola et al. 2017, pix2pix, sec. 3.1 and appendix 6.1.1 "
          "(p=0.5 in the first 3 U-Net decoder layers, the generator's only noise, kept at test time)",
)
class Dropout(Block):
    """Elementwise dropout: each element is zeroed with probability p, the rest scaled by 1 / (1 - p).

    Every element has its own Bernoulli draw, so each sample gets an independent mask. Active in training
    mode; ``at_test_time=True`` keeps it active in eval mode too, as pix2pix does (its generator's only
    source of noise).

    Args:
        p: drop probability (pix2pix: 0.5).
        at_test_time: apply dropout in eval mode as well.

    Shape:
        - x: (B, ...) -- at least 2 dims
        - output: same as x
    """

    def __init__(self, p: float = 0.5, at_test_time: bool = False):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        self.at_test_time = at_test_time

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B _ ...")
        return F.dropout(x, self.p, training=self.training or self.at_test_time)

    def out_shape(self, x: Shape) -> Shape:
        return tuple(x)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"p={self.p}, at_test_time={self.at_test_time}"
