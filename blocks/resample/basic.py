"""Parameter-free resampling: nearest and bilinear up, average-pool down, pixel (un)shuffle."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..registry import RESAMPLE
from ..shapes import ShapeError

__all__ = ["AvgPoolDown", "BilinearUp", "NearestUp", "PixelShuffleUp", "PixelUnshuffleDown"]


class _Resample(Block):
    """A fixed integer ``factor`` and the boundary check shared by the parameter-free resamplers."""

    def __init__(self, factor: int):
        super().__init__()
        if not isinstance(factor, int) or factor < 1:
            raise self.fail(f"factor should be an int >= 1, got {factor!r}")
        self.factor = factor

    def _input(self, x: Tensor, min_size: int = 1, channels_multiple: int = 1) -> Tensor:
        dims = self.check(x, "B C H W")
        if dims and min(dims["H"], dims["W"]) < min_size:
            raise ShapeError(type(self).__name__, "x", f"(B, C, H>={min_size}, W>={min_size})",
                             tuple(x.shape), f"H and W should be at least {min_size}")
        if dims and dims["C"] % channels_multiple:
            raise self.fail(f"x should have a multiple of {channels_multiple} channels, got shape "
                            f"{tuple(x.shape)}")
        return x

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


@RESAMPLE.register("nearest_up", paper="Karras et al. 2018, Progressive Growing of GANs (ProGAN), sec. 2 and "
                   "table 2 (upscale2d: nearest-neighbour 2x)")
class NearestUp(_Resample):
    """Nearest-neighbour upsampling: each pixel repeated ``factor`` x ``factor`` times.

    Args:
        factor: upsampling factor (ProGAN: 2).

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, H·factor, W·factor).
    """

    def __init__(self, factor: int = 2):
        super().__init__(factor)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self._input(x), scale_factor=self.factor, mode="nearest")

    def out_shape(self, x: Shape) -> Shape:
        B, C, H, W = x
        return (B, C, H * self.factor, W * self.factor)


@RESAMPLE.register("bilinear_up", paper="Odena et al. 2016, Deconvolution and Checkerboard Artifacts "
                   "(Distill): resize (bilinear) then convolve")
class BilinearUp(_Resample):
    """Bilinear upsampling with ``align_corners=False`` (half-pixel centres, as image resizers do).

    Args:
        factor: upsampling factor.

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, H·factor, W·factor).
    """

    def __init__(self, factor: int = 2):
        super().__init__(factor)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self._input(x), scale_factor=self.factor, mode="bilinear", align_corners=False)

    def out_shape(self, x: Shape) -> Shape:
        B, C, H, W = x
        return (B, C, H * self.factor, W * self.factor)


@RESAMPLE.register("pixel_shuffle_up", paper="Shi et al. 2016, Real-Time Single Image and Video Super-"
                   "Resolution Using an Efficient Sub-Pixel CNN, sec. 2.2 (periodic shuffling)")
class PixelShuffleUp(_Resample):
    """Sub-pixel upsampling: ``factor²`` channel groups rearranged into a ``factor`` x larger image.

    A plain rearrangement (no parameters): ``out[b, c, h·r + i, w·r + j] = x[b, c·r² + i·r + j, h, w]``.

    Args:
        factor: upsampling factor r; the channels must be divisible by r².

    Shape:
        - x: (B, C, H, W) with C divisible by factor².
        - output: (B, C / factor², H·factor, W·factor).
    """

    def __init__(self, factor: int = 2):
        super().__init__(factor)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(self._input(x, channels_multiple=self.factor**2), self.factor)

    def out_shape(self, x: Shape) -> Shape:
        B, C, H, W = x
        return (B, C // self.factor**2, H * self.factor, W * self.factor)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, 4 * s.C, s.H, s.W),))


@RESAMPLE.register("avg_pool_down", paper="Karras et al. 2018, Progressive Growing of GANs (ProGAN), table 2 "
                   "(downscale2d: 2x2 average pooling)")
class AvgPoolDown(_Resample):
    """Average pooling over non-overlapping ``factor`` x ``factor`` windows (an odd last row/column is
    dropped, as ``avg_pool2d`` with VALID padding in ProGAN).

    Args:
        factor: downsampling factor (ProGAN: 2).

    Shape:
        - x: (B, C, H, W) with H, W >= factor.
        - output: (B, C, ⌊H/factor⌋, ⌊W/factor⌋).
    """

    def __init__(self, factor: int = 2):
        super().__init__(factor)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self._input(x, min_size=self.factor), self.factor)

    def out_shape(self, x: Shape) -> Shape:
        B, C, H, W = x
        return (B, C, H // self.factor, W // self.factor)


@RESAMPLE.register("pixel_unshuffle_down", paper="Shi et al. 2016, Efficient Sub-Pixel CNN, sec. 2.2 "
                   "(the inverse periodic shuffle, space-to-depth)")
class PixelUnshuffleDown(_Resample):
    """Space-to-depth: each ``factor`` x ``factor`` patch moved into ``factor²`` channels (the exact
    inverse of ``pixel_shuffle_up``).

    Args:
        factor: downsampling factor r; H and W must be divisible by r.

    Shape:
        - x: (B, C, H, W) with H, W divisible by factor.
        - output: (B, C·factor², H/factor, W/factor).
    """

    def __init__(self, factor: int = 2):
        super().__init__(factor)

    def forward(self, x: Tensor) -> Tensor:
        dims = self.check(x, "B C H W")
        if dims and (dims["H"] % self.factor or dims["W"] % self.factor):
            raise self.fail(f"x should have H and W divisible by {self.factor}, got shape {tuple(x.shape)}")
        return F.pixel_unshuffle(x, self.factor)

    def out_shape(self, x: Shape) -> Shape:
        B, C, H, W = x
        return (B, C * self.factor**2, H // self.factor, W // self.factor)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.even(s.H), s.even(s.W)),))
