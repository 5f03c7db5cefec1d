"""Convolution with FIR up/downsampling (StyleGAN2's ``conv2d_resample``), and the ``up_conv`` block."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import RESAMPLE
from .fir import DEFAULT_IMPL, IMPLS, STYLEGAN2, Padding, _padding4, setup_filter, upfirdn2d

__all__ = ["UpConv", "conv2d_resample", "conv2d_resample_size"]


def _conv(x: Tensor, w: Tensor, stride: int = 1, padding: tuple[int, int] = (0, 0), groups: int = 1,
          transpose: bool = False, flip_weight: bool = True) -> Tensor:
    """conv2d (correlation) or conv_transpose2d; ``flip_weight=False`` flips the kernel (true convolution)."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip((2, 3))
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample_size(size: int, kernel_size: int, filter_size: int, up: int = 1, down: int = 1,
                         padding: tuple[int, int] = (0, 0)) -> int:
    """The output length along one axis of :func:`conv2d_resample` (``padding`` = (before, after)).

    Follows the reference path: upsample and pad (filter only when ``up > 1``), valid conv, then filter
    and keep every ``down``-th sample.
    """
    p0, p1 = padding
    if up > 1:
        p0, p1 = p0 + (filter_size + up - 1) // 2, p1 + (filter_size - up) // 2
    if down > 1:
        p0, p1 = p0 + (filter_size - down + 1) // 2, p1 + (filter_size - down) // 2
    n = size * up + p0 + p1 - (filter_size - 1 if up > 1 else 0)
    n = n - kernel_size + 1
    if down > 1:
        n = (n - filter_size) // down + 1
    return n


def conv2d_resample(
    x: Tensor,
    w: Tensor,
    f: Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
    impl: str = "auto",
) -> Tensor:
    """2-D convolution with optional FIR upsampling before it and FIR downsampling after it.

    The result equals ``upfirdn2d(x, f, up, gain=up²)`` (zero insertion + filter), then the conv with ``w``
    over an image padded once by ``padding`` (relative to the upsampled image), then
    ``upfirdn2d(·, f, down)``, as the authors' ``conv2d_resample`` (stylegan2-ada-pytorch); with
    ``up = down = 1`` the filter is not applied. Karras et al. 2020 (StyleGAN2), appendix B.

    Args:
        x: images.
        w: the conv weight, (out, in / groups, kh, kw).
        f: the FIR filter from ``setup_filter`` (needed when resampling).
        up: upsampling factor (int).
        down: downsampling factor (int).
        padding: padding of the (upsampled) image: int, ``(x, y)`` or ``(x0, x1, y0, y1)``.
        groups: conv groups.
        flip_weight: ``True`` = correlation with ``w`` (as ``F.conv2d``); ``False`` = true convolution.
            NVlabs' layers pass ``flip_weight = (up == 1)``.
        flip_filter: ``False`` = convolution with ``f``, ``True`` = correlation.
        impl: ``"ref"`` (upsample at full rate, conv, filter and subsample: the oracle), ``"fast"``
            (the authors' fast paths: up = transposed conv at low resolution then the blur; down = blur
            then strided conv; 1x1 down = downsample then conv; 1x1 up = conv then upsample) or
            ``"auto"``. Measured on the shared 2-core CPU, forward, (8, 128, 32, 32) float32,
            128 -> 128 channels, median ms ref / fast: 3x3 down 41.6 / 18.4; 3x3 up 185 / 39.9;
            1x1 down 10.0 / 1.4 (``equalized_conv`` with lrelu, bias_act included).

    Shape:
        - x: (B, C, H, W) with C = w.shape[1] · groups.
        - output: (B, out, H', W').
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"conv2d_resample: x should have shape (B, C, H, W), got {got}")
    if w.dim() != 4 or x.shape[1] != w.shape[1] * groups:
        want = x.shape[1] // max(groups, 1)
        raise ValueError(f"conv2d_resample: w should have shape (out, {want}, kh, kw) for x with "
                         f"{x.shape[1]} channels and groups={groups}, got {tuple(w.shape)}")
    if not (isinstance(up, int) and isinstance(down, int) and up >= 1 and down >= 1):
        raise ValueError(f"conv2d_resample: up and down should be ints >= 1, got up={up!r}, down={down!r}")
    if (up > 1 or down > 1) and f is None:
        raise ValueError("conv2d_resample: resampling needs a filter f (from setup_filter)")
    out_channels, in_per_group, kh, kw = w.shape
    fh, fw = f.shape if f is not None else (1, 1)
    px0, px1, py0, py1 = _padding4(padding)
    # Padding relative to the upsampled image, grown so up/down keep the image centred (NVlabs).
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = (px0, px1, py0, py1)
    if impl == "auto":
        impl = DEFAULT_IMPL.get(x.device.type, "fast")
    if impl == "ref":
        x = upfirdn2d(x, f if up > 1 else None, up=up, padding=pad, gain=up**2, flip_filter=flip_filter,
                      impl="ref")
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl="ref")
        return x
    if impl != "fast":
        raise ValueError(f"conv2d_resample: impl must be one of {('auto', *IMPLS)}, got {impl!r}")

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, impl="fast")
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pad, gain=up**2, flip_filter=flip_filter, impl="fast")
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, impl="fast")
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        # The transposed conv takes (in, out / groups, kh, kw): swap the roles per group.
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            wt = wt.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = x.contiguous(memory_format=torch.channels_last)
        # conv_transpose2d already convolves (not correlates): flip for the other convention.
        x = _conv(x, wt, stride=up, padding=(pyt, pxt), groups=groups, transpose=True,
                  flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), gain=up**2,
                      flip_filter=flip_filter, impl="fast")
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl="fast")
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=(py0, px0), groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=pad, impl="fast")
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


@RESAMPLE.register("up_conv", paper=f"{STYLEGAN2}, appendix B: fused upsample x2 + conv (conv2d_resample)")
class UpConv(Block):
    """Upsample x2 and convolve, fused: a transposed conv at low resolution, then the [1, 3, 3, 1] blur.

    Equals FIR upsampling (zero insertion + filter, gain 4) of the image padded once by ``kernel_size // 2``
    -- so the blurred image extends that far past the border, as the authors pad only once, before both
    operations -- followed by a valid ``kernel_size`` conv: ``conv2d(upsample2d(x, f, padding=k // 2), w)``.
    The reference path computes it that way. The weight is used as in ``F.conv2d`` (correlation).
    Weights are plain (not equalized) and initialised as ``nn.Conv2d``'s; the equalized-learning-rate
    version StyleGAN2 uses is ``equalized_conv`` with ``up=2``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: conv kernel size (StyleGAN2: 3).
        bias: learn a bias.
        resample_filter: 1-D taps of the FIR filter.
        impl: ``"ref"``, ``"fast"`` or ``"auto"``.

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - output: (B, out_channels, 2H, 2W).
    """

    impls = IMPLS
    default_impl: ClassVar[dict[str, str]] = DEFAULT_IMPL

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True,
                 resample_filter: Sequence[float] = (1, 3, 3, 1), impl: str = "auto"):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.reset_parameters()
        self._init_impl(impl)

    def reset_parameters(self) -> None:
        """nn.Conv2d's default initialisation (Kaiming-uniform with a = √5, uniform bias)."""
        if self.weight.is_meta:
            return
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels * self.kernel_size**2)
            nn.init.uniform_(self.bias, -bound, bound)

    def _run(self, x: Tensor, impl: str) -> Tensor:
        x = conv2d_resample(x, self.weight.to(x.dtype), self.resample_filter, up=2,
                            padding=self.kernel_size // 2, impl=impl)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        return x

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B C H W", C=self.in_channels)
        return self.dispatch(x.device, x.dtype, lambda impl: self._run(x, impl))

    def call_function(self, x: Tensor) -> Tensor:
        return self._run(x, "ref")

    def out_shape(self, x: Shape) -> Shape:
        B, _, H, W = x
        k, f, p = self.kernel_size, self.resample_filter.shape[0], self.kernel_size // 2
        return (B, self.out_channels, conv2d_resample_size(H, k, f, 2, 1, (p, p)),
                conv2d_resample_size(W, k, f, 2, 1, (p, p)))

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_channels": s.C, "out_channels": s.D}, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"bias={self.bias is not None}")
