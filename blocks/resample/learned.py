"""Learned resampling: DCGAN's fractionally-strided (transposed) conv up and strided conv down."""

from __future__ import annotations

from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import RESAMPLE
from ..shapes import ShapeError

__all__ = ["ConvTransposeUp", "StridedConvDown"]


@RESAMPLE.register("conv_transpose_up", paper="Radford et al. 2016, Unsupervised Representation Learning "
                   "with DCGANs, sec. 3 and fig. 1 (fractionally-strided convolutions, 4x4, stride 2)")
class ConvTransposeUp(Block):
    """A learned x2 upsampler: ``nn.ConvTranspose2d`` with kernel 4, stride 2, padding 1 (DCGAN).

    The layer is held as ``self.conv`` so ``spectral_norm(block.conv)`` normalises along the right
    dimension; its initialisation is PyTorch's (recipes apply DCGAN's N(0, 0.02) through an initialiser).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: 4 in DCGAN.
        stride: 2 (the upsampling factor).
        padding: 1, so the output is exactly ``stride`` times larger with k = 4.
        bias: learn a bias (DCGAN drops it before batch norm).

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - output: (B, out_channels, (H - 1)·stride - 2·padding + kernel_size, same for W) = (B, out, 2H, 2W)
          with the defaults.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 4, stride: int = 2,
                 padding: int = 1, bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B C H W", C=self.in_channels)
        return self.conv(x)

    def out_shape(self, x: Shape) -> Shape:
        B, _, H, W = x
        k, s, p = self.conv.kernel_size[0], self.conv.stride[0], self.conv.padding[0]
        return (B, self.out_channels, (H - 1) * s - 2 * p + k, (W - 1) * s - 2 * p + k)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_channels": s.C, "out_channels": s.D}, (s.randn(s.B, s.C, s.H, s.W),))


@RESAMPLE.register("strided_conv_down", paper="Radford et al. 2016, Unsupervised Representation Learning "
                   "with DCGANs, sec. 3 (strided convolutions replace pooling; 4x4, stride 2)")
class StridedConvDown(Block):
    """A learned x2 downsampler: ``nn.Conv2d`` with kernel 4, stride 2, padding 1 (DCGAN discriminator).

    Held as ``self.conv`` (for ``spectral_norm(block.conv)``); PyTorch's initialisation.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: 4 in DCGAN.
        stride: 2 (the downsampling factor).
        padding: 1.
        bias: learn a bias.

    Shape:
        - x: (B, C, H, W) with C = in_channels and H, W >= kernel_size - 2·padding.
        - output: (B, out_channels, ⌊(H + 2·padding - kernel_size) / stride⌋ + 1, same for W) =
          (B, out, ⌊H/2⌋, ⌊W/2⌋) with the defaults.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 4, stride: int = 2,
                 padding: int = 1, bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        dims = self.check(x, "B C H W", C=self.in_channels)
        k, p = self.conv.kernel_size[0], self.conv.padding[0]
        if dims and min(dims["H"], dims["W"]) + 2 * p < k:
            m = k - 2 * p
            raise ShapeError(type(self).__name__, "x", f"(B, C={self.in_channels}, H>={m}, W>={m})",
                             tuple(x.shape), f"H and W should be at least {m} for kernel {k}, padding {p}")
        return self.conv(x)

    def out_shape(self, x: Shape) -> Shape:
        B, _, H, W = x
        k, s, p = self.conv.kernel_size[0], self.conv.stride[0], self.conv.padding[0]
        return (B, self.out_channels, (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_channels": s.C, "out_channels": s.D}, (s.randn(s.B, s.C, s.H, s.W),))
