"""FIR resampling (StyleGAN2's ``upfirdn2d``): upsample by zero insertion, pad, filter, downsample.

The functions follow the conventions of the authors' op (stylegan2-ada-pytorch, ``torch_utils/ops/
upfirdn2d.py``): padding is ``(x_before, x_after, y_before, y_after)`` with negative values cropping,
``flip_filter=False`` means true convolution, and ``upsample2d`` multiplies the gain by ``up²`` so a
constant image keeps its value. Each runs either the plain reference (``impl="ref"``: zero insertion, pad,
kornia's ``filter2d``, subsample) or a fast formulation (``impl="fast"``):

- up: one depthwise ``conv_transpose2d`` (polyphase: no multiplications by inserted zeros), in
  channels_last (an NCHW input is converted first: it pays for itself);
- filter only (blur): one depthwise conv that pads symmetrically inside the conv, then a crop of the
  surplus row/column (no separately padded copy), in the input's memory format;
- down: one strided depthwise conv (only the kept outputs are computed), in the input's memory format.

Measured on the 2-core CPU of the build machine (shared, so noisy), torch 2.14, float32 (8, 128, 64, 64),
[1, 3, 3, 1], median of 5 ``torch.utils.benchmark`` runs, forward, ms:

====================  ======  =================================================================
op                    ref     alternatives
====================  ======  =================================================================
up x2, NCHW in        303     conv_transpose NCHW 135; convert to CL + conv_transpose **65**
up x2, CL in          --      conv_transpose **46**; zero insertion + conv 292
blur, NCHW in         16      pad + conv 14.7; conv-pad + crop **9.8**; convert to CL first 24
blur, CL in           --      conv-pad + crop **4.3**; pad + conv 8.0
down x2, NCHW in      14.5    full rate + subsample 7.6; strided **3.7**; convert to CL first 15.5
down x2, CL in        --      strided **1.3**; full rate + subsample 2.9
====================  ======  =================================================================

(The NCHW -> channels_last copy alone costs 12 ms at this size.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import kornia.filters
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..registry import RESAMPLE
from ..shapes import ShapeError

__all__ = [
    "Blur", "BlurDown", "BlurUp", "downsample2d", "filter2d", "setup_filter", "upfirdn2d", "upsample2d",
]

IntPair = int | Sequence[int]
Padding = int | Sequence[int]
IMPLS = ("ref", "fast")
# Measured on CPU (module docstring). Other devices are unmeasured and also get "fast".
DEFAULT_IMPL = {"cpu": "fast"}
STYLEGAN2 = "Karras et al. 2020, Analyzing and Improving the Image Quality of StyleGAN (StyleGAN2)"


def setup_filter(
    f: Sequence[float] | Tensor | None = (1, 3, 3, 1),
    normalize: bool = True,
    flip: bool = False,
    gain: float = 1.0,
    device: torch.device | str | None = None,
) -> Tensor:
    """A 2-D FIR filter for :func:`upfirdn2d` from separable 1-D taps (or a 2-D array).

    1-D taps ``f`` give the outer product ``f fᵀ``; ``None`` gives the identity ``[[1]]``. StyleGAN2 uses
    the binomial ``[1, 3, 3, 1]`` (Karras et al. 2020, appendix B; Zhang 2019, "Making CNNs shift-invariant
    again").

    Args:
        f: 1-D taps, a 2-D filter, or ``None``.
        normalize: divide by the sum, so a constant (DC) signal keeps its magnitude.
        flip: flip the filter on both axes.
        gain: overall scale of the 2-D filter.
        device: where to put it.

    Returns:
        A float32 tensor of shape (fh, fw).
    """
    f = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32, device=device)
    if f.dim() == 0:
        f = f[None]
    if f.dim() == 1:
        f = torch.outer(f, f)
    if f.dim() != 2 or f.numel() == 0:
        raise ValueError(f"setup_filter: f should be 1-D taps or a 2-D filter, got shape {tuple(f.shape)}")
    if normalize:
        f = f / f.sum()
    if flip:
        f = f.flip((0, 1))
    return f * gain


def _pair(v: IntPair, name: str) -> tuple[int, int]:
    """``(x, y)`` factors from an int or a pair."""
    vx, vy = (v, v) if isinstance(v, int) else tuple(v)
    if not (isinstance(vx, int) and isinstance(vy, int) and vx >= 1 and vy >= 1):
        raise ValueError(f"upfirdn2d: {name} should be an int >= 1 or a pair of them, got {v!r}")
    return vx, vy


def _padding4(p: Padding) -> tuple[int, int, int, int]:
    """``(x0, x1, y0, y1)`` from an int, ``(x, y)`` or ``(x0, x1, y0, y1)``."""
    if isinstance(p, int):
        return p, p, p, p
    p = tuple(int(v) for v in p)
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) == 4:
        return p  # type: ignore[return-value]
    raise ValueError(f"upfirdn2d: padding should be an int, (x, y) or (x0, x1, y0, y1), got {p!r}")


def _filter_or_identity(f: Tensor | None, x: Tensor) -> Tensor:
    if f is None:
        return torch.ones(1, 1, dtype=torch.float32, device=x.device)
    if not isinstance(f, Tensor) or f.dim() != 2:
        raise ValueError(f"upfirdn2d: f should be a 2-D filter (fh, fw) from setup_filter, got "
                         f"{tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__}")
    return f


def upfirdn2d(
    x: Tensor,
    f: Tensor | None,
    up: IntPair = 1,
    down: IntPair = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: str = "auto",
) -> Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample each channel of a batch of images.

    Per channel, as the authors' op (and scipy's ``upfirdn``): insert ``up - 1`` zeros after each pixel;
    pad with zeros (negative padding crops); convolve with ``f`` keeping only outputs whose footprint
    lies inside the padded image; keep every ``down``-th pixel. Karras et al. 2020 (StyleGAN2), appendix B.

    Args:
        x: images.
        f: a 2-D filter from :func:`setup_filter`, or ``None`` (identity).
        up: upsampling factor, int or ``(x, y)``.
        down: downsampling factor, int or ``(x, y)``.
        padding: int, ``(x, y)`` or ``(x0, x1, y0, y1)``, on the upsampled image.
        flip_filter: ``False`` = convolution, ``True`` = correlation.
        gain: scale of the filter.
        impl: ``"ref"``, ``"fast"`` or ``"auto"`` (the measured-fastest for the device).

    Returns:
        (B, C, (H·up_y + y0 + y1 - fh) // down_y + 1, (W·up_x + x0 + x1 - fw) // down_x + 1).

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, H', W') as above.
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"upfirdn2d: x should have shape (B, C, H, W), got {got}")
    f = _filter_or_identity(f, x)
    upx, upy = _pair(up, "up")
    downx, downy = _pair(down, "down")
    pad = _padding4(padding)
    fh, fw = f.shape
    hp, wp = x.shape[2] * upy + pad[2] + pad[3], x.shape[3] * upx + pad[0] + pad[1]
    if hp < fh or wp < fw:
        raise ValueError(f"upfirdn2d: the upsampled, padded image {hp}x{wp} is smaller than the filter "
                         f"{fh}x{fw} (x has shape {tuple(x.shape)}, up={up}, padding={pad})")
    if impl == "auto":
        impl = DEFAULT_IMPL.get(x.device.type, "fast")
    if impl == "ref":
        return _upfirdn2d_ref(x, f, upx, upy, downx, downy, pad, flip_filter, gain)
    if impl == "fast":
        return _upfirdn2d_fast(x, f, upx, upy, downx, downy, pad, flip_filter, gain)
    raise ValueError(f"upfirdn2d: impl must be one of {('auto', *IMPLS)}, got {impl!r}")


def _upfirdn2d_ref(x: Tensor, f: Tensor, upx: int, upy: int, downx: int, downy: int,
                   pad: tuple[int, int, int, int], flip_filter: bool, gain: float) -> Tensor:
    """The obvious sequence of plain ops: the test oracle."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H, 1, W, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])  # zeros after each pixel
    x = x.reshape(B, C, H * upy, W * upx)
    x = F.pad(x, list(pad))  # negative entries crop
    kernel = (f * gain).to(x.dtype)[None]  # (1, fh, fw)
    x = kornia.filters.filter2d(x, kernel, border_type="constant", padding="valid",
                                behaviour="corr" if flip_filter else "conv")
    return x[:, :, ::downy, ::downx]


def _crop_or_pad(x: Tensor, left: int, right: int, dim: int) -> Tensor:
    """Crop (negative) or zero-pad (positive) ``x`` along ``dim`` (2 or 3) at both ends."""
    if left <= 0 and right <= 0:
        return x.narrow(dim, -left, x.shape[dim] + left + right)
    pads = [0, 0, 0, 0]
    pads[(3 - dim) * 2: (3 - dim) * 2 + 2] = [left, right]
    return F.pad(x, pads)


def _upfirdn2d_fast(x: Tensor, f: Tensor, upx: int, upy: int, downx: int, downy: int,
                    pad: tuple[int, int, int, int], flip_filter: bool, gain: float) -> Tensor:
    """Depthwise (transposed) convolutions; measured against the alternatives in the module docstring."""
    _, C, H, W = x.shape
    fh, fw = f.shape
    px0, px1, py0, py1 = pad
    out_h = (H * upy + py0 + py1 - fh) // downy + 1
    out_w = (W * upx + px0 + px1 - fw) // downx + 1
    weight = (f * gain).to(x.dtype)
    if upx > 1 or upy > 1:
        x = x.contiguous(memory_format=torch.channels_last)
        # conv_transpose2d is the full convolution (kernel as given = true convolution) of the
        # zero-inserted image, computed polyphase. Its output index n is the full-convolution index; the
        # requested output starts at n = f - 1 - pad_before. Symmetric crops go into the conv itself.
        kernel = (weight.flip((0, 1)) if flip_filter else weight).expand(C, 1, fh, fw)
        full_h, full_w = (H - 1) * upy + fh, (W - 1) * upx + fw
        rate_h, rate_w = (out_h - 1) * downy + 1, (out_w - 1) * downx + 1  # full-rate rows/cols needed
        top, bottom = py0 - (fh - 1), rate_h - full_h - py0 + (fh - 1)
        left, right = px0 - (fw - 1), rate_w - full_w - px0 + (fw - 1)
        cy, cx = max(0, min(-top, -bottom)), max(0, min(-left, -right))
        y = F.conv_transpose2d(x, kernel, stride=(upy, upx), padding=(cy, cx), groups=C)
        y = _crop_or_pad(y, top + cy, bottom + cy, 2)
        y = _crop_or_pad(y, left + cx, right + cx, 3)
        if downx > 1 or downy > 1:
            y = y[:, :, ::downy, ::downx]
        return y
    # conv2d correlates: flip for convolution. Pad symmetrically inside the conv by P >= both pads with
    # (P - pad_before) a multiple of the stride, then crop the surplus outputs.
    kernel = (weight if flip_filter else weight.flip((0, 1))).expand(C, 1, fh, fw)
    pyc = max(py0, py1, 0)
    pyc += (py0 - pyc) % downy
    pxc = max(px0, px1, 0)
    pxc += (px0 - pxc) % downx
    y = F.conv2d(x, kernel, stride=(downy, downx), padding=(pyc, pxc), groups=C)
    y = y.narrow(2, (pyc - py0) // downy, out_h)
    return y.narrow(3, (pxc - px0) // downx, out_w)


def filter2d(x: Tensor, f: Tensor | None, padding: Padding = 0, flip_filter: bool = False,
             gain: float = 1.0, impl: str = "auto") -> Tensor:
    """Filter with ``f``, padded so the output has the input's size (then ``padding`` on top of that).

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, H, W) for ``padding=0``.
    """
    x0, x1, y0, y1 = _padding4(padding)
    fh, fw = _filter_or_identity(f, x).shape
    p = (x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2)
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x: Tensor, f: Tensor | None, up: IntPair = 2, padding: Padding = 0, flip_filter: bool = False,
               gain: float = 1.0, impl: str = "auto") -> Tensor:
    """Upsample by ``up`` with the FIR filter ``f``; the gain is multiplied by ``up_x · up_y``.

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, H·up, W·up) for ``padding=0``.
    """
    upx, upy = _pair(up, "up")
    x0, x1, y0, y1 = _padding4(padding)
    fh, fw = _filter_or_identity(f, x).shape
    p = (x0 + (fw + upx - 1) // 2, x1 + (fw - upx) // 2, y0 + (fh + upy - 1) // 2, y1 + (fh - upy) // 2)
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy,
                     impl=impl)


def downsample2d(x: Tensor, f: Tensor | None, down: IntPair = 2, padding: Padding = 0,
                 flip_filter: bool = False, gain: float = 1.0, impl: str = "auto") -> Tensor:
    """Filter with ``f`` and downsample by ``down``.

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, ⌊H / down⌋, ⌊W / down⌋) for ``padding=0`` and an even-length filter.
    """
    downx, downy = _pair(down, "down")
    x0, x1, y0, y1 = _padding4(padding)
    fh, fw = _filter_or_identity(f, x).shape
    p = (x0 + (fw - downx + 1) // 2, x1 + (fw - downx) // 2, y0 + (fh - downy + 1) // 2,
         y1 + (fh - downy) // 2)
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


# ---- blocks -----------------------------------------------------------------------------------------


class _FIRBlock(Block):
    """A fixed FIR filter held as a buffer (``resample_filter``, as NVlabs names it), and its impl choice."""

    impls = IMPLS
    default_impl: ClassVar[dict[str, str]] = DEFAULT_IMPL

    def __init__(self, resample_filter: Sequence[float], impl: str):
        super().__init__()
        self.filter_taps = tuple(resample_filter)
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self._init_impl(impl)

    def _input(self, x: Tensor, min_size: int = 1) -> Tensor:
        dims = self.check(x, "B C H W")
        if dims and min(dims["H"], dims["W"]) < min_size:
            raise ShapeError(type(self).__name__, "x", f"(B, C, H>={min_size}, W>={min_size})",
                             tuple(x.shape), f"H and W should be at least {min_size}")
        return x

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"filter={list(self.filter_taps)}"


@RESAMPLE.register("blur_up", paper=f"{STYLEGAN2}, appendix B: [1,3,3,1] FIR upsampling (upsample2d)")
class BlurUp(_FIRBlock):
    """FIR upsampling by ``factor``: zero insertion, then the filter with gain ``factor²``.

    With the default [1, 3, 3, 1] and ``factor=2`` this is StyleGAN2's image upsampler in the skip
    generator (a constant image keeps its value).

    Args:
        factor: upsampling factor.
        resample_filter: 1-D taps of the separable filter (normalised to sum 1).
        impl: ``"ref"``, ``"fast"``, ``"interp"`` or ``"auto"``. ``"interp"``: for the [1, 3, 3, 1]
            filter, ``factor=2`` and a channels_last input, ``F.interpolate(mode="bilinear")`` with the
            border rows and columns scaled by 3/4 (see :func:`_bilinear_up2`); otherwise as ``"fast"``.

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, H·factor, W·factor).
    """

    impls = (*IMPLS, "interp")
    # CPU, 2 threads, (8, 128, 64, 64) float32, median ms forward / forward+backward (benchmarks/results):
    # channels_last input: fast 5.41 / 50.9, interp 3.21 / 47.3 (a copy of the output alone: 3.8 / -);
    # NCHW input (interp = fast there): fast 12.0 / 57.4, bilinear would be 14.0 / 71.5.
    default_impl: ClassVar[dict[str, str]] = {"cpu": "interp"}

    def __init__(self, factor: int = 2, resample_filter: Sequence[float] = (1, 3, 3, 1), impl: str = "auto"):
        super().__init__(resample_filter, impl)
        self.factor = factor
        taps = [float(t) for t in self.filter_taps]  # plain floats: the constructor also runs on meta
        self._bilinear = factor == 2 and len(taps) == 4 and sum(taps) != 0 and all(
            abs(t / sum(taps) - r) < 1e-9 for t, r in zip(taps, (1 / 8, 3 / 8, 3 / 8, 1 / 8)))

    def _run(self, x: Tensor, impl: str) -> Tensor:
        if impl == "interp":
            if self._bilinear and x.is_contiguous(memory_format=torch.channels_last):
                return _bilinear_up2(x)
            impl = "fast"
        return upsample2d(x, self.resample_filter, self.factor, impl=impl)

    def forward(self, x: Tensor) -> Tensor:
        x = self._input(x)
        return self.dispatch(x.device, x.dtype, lambda impl: self._run(x, impl))

    def call_function(self, x: Tensor) -> Tensor:
        return upsample2d(x, self.resample_filter, up=self.factor, impl="ref")

    def out_shape(self, x: Shape) -> Shape:
        B, C, H, W = x
        return (B, C, H * self.factor, W * self.factor)


def _bilinear_up2(x: Tensor) -> Tensor:
    """``upsample2d(x, setup_filter([1, 3, 3, 1]), 2)`` as bilinear interpolation.

    Zero insertion and the [1, 3, 3, 1] filter with gain 4 give, per axis, ``y[2i] = x[i-1]/4 + 3x[i]/4``
    and ``y[2i+1] = 3x[i]/4 + x[i+1]/4`` with zeros outside: bilinear x2 (``align_corners=False``) except
    at the border, where bilinear repeats the edge pixel instead of reading a zero -- so the first and last
    row and column differ exactly by a factor 3/4 (3/4 · 3/4 at the corners).

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, 2H, 2W), in the memory format of x.
    """
    y = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # (B, C, 2H, 2W)
    # In place on the fresh output: bilinear's backward does not need it.
    y[:, :, 0].mul_(0.75)
    y[:, :, -1].mul_(0.75)
    y[:, :, :, 0].mul_(0.75)
    y[:, :, :, -1].mul_(0.75)
    return y


@RESAMPLE.register("blur", paper=f"{STYLEGAN2}, appendix B; Zhang 2019, Making Convolutional Networks "
                   "Shift-Invariant Again")
class Blur(_FIRBlock):
    """FIR low-pass filtering without resampling (StyleGAN2's blur), same-size output.

    The [1, 3, 3, 1] filter is even-length: it pads 2 before and 1 after on each axis (NVlabs' filter2d).

    Args:
        resample_filter: 1-D taps of the separable filter (normalised to sum 1).
        impl: ``"ref"``, ``"fast"`` or ``"auto"``.

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, H, W).
    """

    def __init__(self, resample_filter: Sequence[float] = (1, 3, 3, 1), impl: str = "auto"):
        super().__init__(resample_filter, impl)

    def forward(self, x: Tensor) -> Tensor:
        x = self._input(x)
        return self.dispatch(x.device, x.dtype, lambda impl: filter2d(x, self.resample_filter, impl=impl))

    def call_function(self, x: Tensor) -> Tensor:
        return filter2d(x, self.resample_filter, impl="ref")

    def out_shape(self, x: Shape) -> Shape:
        return tuple(x)


@RESAMPLE.register("blur_down", paper=f"{STYLEGAN2}, appendix B: [1,3,3,1] FIR downsampling (downsample2d)")
class BlurDown(_FIRBlock):
    """FIR low-pass filter, then keep every ``factor``-th pixel (StyleGAN2's image downsampler).

    Args:
        factor: downsampling factor.
        resample_filter: 1-D taps of the separable filter (normalised to sum 1).
        impl: ``"ref"``, ``"fast"`` or ``"auto"``.

    Shape:
        - x: (B, C, H, W) with H, W >= factor.
        - output: (B, C, ⌈(H + p - k + 1) / factor⌉, ...), which is (B, C, ⌊H/2⌋, ⌊W/2⌋) for the
          default filter and factor (any H, W, odd included).
    """

    def __init__(self, factor: int = 2, resample_filter: Sequence[float] = (1, 3, 3, 1), impl: str = "auto"):
        super().__init__(resample_filter, impl)
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        x = self._input(x, min_size=self.factor)
        return self.dispatch(x.device, x.dtype, lambda impl: downsample2d(
            x, self.resample_filter, self.factor, impl=impl))

    def call_function(self, x: Tensor) -> Tensor:
        return downsample2d(x, self.resample_filter, down=self.factor, impl="ref")

    def out_shape(self, x: Shape) -> Shape:
        B, C, H, W = x
        fh, fw = self.resample_filter.shape
        d = self.factor
        pad_h = (fh - d + 1) // 2 + (fh - d) // 2
        pad_w = (fw - d + 1) // 2 + (fw - d) // 2
        return (B, C, (H + pad_h - fh) // d + 1, (W + pad_w - fw) // d + 1)
