"""Parameter-free resampling: nearest and bilinear up, nearest resize, average-pool down, pixel (un)shuffle."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..registry import RESAMPLE
from ..shapes import ShapeError

__all__ = ["AvgPoolDown", "BilinearUp", "NearestResize", "NearestUp", "PixelShuffleUp", "PixelUnshuffleDown"]


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
                   "(downscale2d: 2x2 average pooling); Wang et al. 2018, pix2pixHD, and Park et al. 2019, SPADE "
                   "(multiscale discriminator: 3x3 windows, stride 2, padding 1, padding left out of the mean)")
class AvgPoolDown(_Resample):
    """Average pooling with stride ``factor``. By default the windows are ``factor`` x ``factor`` and do not
    overlap (an odd last row/column is dropped, as ``avg_pool2d`` with VALID padding in ProGAN).

    ``kernel_size``, ``padding`` and ``count_include_pad`` make it any ``avg_pool2d``: pix2pixHD's and
    SPADE's multiscale discriminators downsample their input with 3x3 windows, stride 2, padding 1 and
    ``count_include_pad=False``, so a border output is the mean of the in-image pixels of its window only.

    Args:
        factor: downsampling factor, the stride (ProGAN: 2).
        kernel_size: window size; ``None`` means ``factor``.
        padding: zero padding on each side, at most ``kernel_size // 2`` (torch's limit).
        count_include_pad: count the padded zeros in a window's mean (torch's default); pix2pixHD and SPADE
            set False.

    Shape:
        - x: (B, C, H, W) with H + 2·padding and W + 2·padding >= kernel_size.
        - output: (B, C, ⌊(H + 2·padding - kernel_size) / factor⌋ + 1, likewise for W): ⌊H/factor⌋ by default.
    """

    def __init__(self, factor: int = 2, kernel_size: int | None = None, padding: int = 0,
                 count_include_pad: bool = True):
        super().__init__(factor)
        self.kernel_size = factor if kernel_size is None else kernel_size
        if self.kernel_size < 1:
            raise self.fail(f"kernel_size should be >= 1, got {kernel_size}")
        if not 0 <= padding <= self.kernel_size // 2:
            raise self.fail(f"padding should be in 0..kernel_size // 2 = {self.kernel_size // 2}, got {padding}")
        self.padding, self.count_include_pad = padding, count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        x = self._input(x, min_size=max(1, self.kernel_size - 2 * self.padding))
        return F.avg_pool2d(x, self.kernel_size, self.factor, self.padding,
                            count_include_pad=self.count_include_pad)

    def out_shape(self, x: Shape) -> Shape:
        B, C, H, W = x
        k, s, p = self.kernel_size, self.factor, self.padding
        return (B, C, (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1)

    def extra_repr(self) -> str:
        if (self.kernel_size, self.padding, self.count_include_pad) == (self.factor, 0, True):
            return super().extra_repr()
        return (f"factor={self.factor}, kernel_size={self.kernel_size}, padding={self.padding}, "
                f"count_include_pad={self.count_include_pad}")


@RESAMPLE.register("nearest_resize", paper="Park et al. 2019, SPADE (NVlabs SPADEGenerator.forward: the label "
                   "map resized to the first layer's size with F.interpolate, mode nearest)")
class NearestResize(Block):
    """Nearest-neighbour resize to a fixed spatial size, down or up (torch's ``"nearest"``): output pixel
    (i, j) copies input pixel (⌊i·H/H_out⌋, ⌊j·W/W_out⌋). SPADE's generator starts from its label map
    resized this way to (sh, sw) = (crop_size / 2^5, ...) when it has no VAE.

    Args:
        size: output (H_out, W_out), or one int for a square.

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, H_out, W_out).
    """

    def __init__(self, size: int | tuple[int, int]):
        super().__init__()
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if len(hw) != 2 or not all(isinstance(n, int) and n >= 1 for n in hw):
            raise self.fail(f"size should be an int >= 1 or a pair of them, got {size!r}")
        self.size: tuple[int, int] = hw  # type: ignore[assignment]

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B C H W")
        return F.interpolate(x, size=self.size, mode="nearest")  # (B, C, H_out, W_out)

    def out_shape(self, x: Shape) -> Shape:
        return (x[0], x[1], *self.size)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"size": (s.D, s.N)}, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"size={self.size}"


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
