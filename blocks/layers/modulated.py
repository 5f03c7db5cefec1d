"""Modulated convolution with weight demodulation (StyleGAN2)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import NORMS
from ..resample.conv_resample import conv2d_resample, conv2d_resample_size
from ..resample.fir import setup_filter
from ..shapes import ShapeError
from .equalized import EqualizedLinear

__all__ = ["ModulatedConv2d", "modulated_conv2d", "modulated_weight"]

IMPLS = ("ref", "grouped", "fast")
STYLEGAN2 = "Karras et al. 2020, Analyzing and Improving the Image Quality of StyleGAN (StyleGAN2)"


def modulated_weight(weight: Tensor, styles: Tensor, demodulate: bool = True, eps: float = 1e-8) -> Tensor:
    """Each sample's modulated (and demodulated) weight, StyleGAN2 eq. 1 and 3.

    ``w'_bjik = s_bi · w_jik``, then ``w''_bjik = w'_bjik / √(Σ_ik w'_bjik² + ε)``: with demodulation each
    output channel j of each sample b has unit L2 norm (up to ε).

    Shape:
        - weight: (O, C, kh, kw).
        - styles: (B, C).
        - output: (B, O, C, kh, kw).
    """
    B, C = styles.shape
    w = weight[None] * styles.reshape(B, 1, C, 1, 1)  # (B, O, C, kh, kw)
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=(2, 3, 4), keepdim=True) + eps)
    return w


def modulated_conv2d(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    demodulate: bool = True,
    up: int = 1,
    down: int = 1,
    padding: int | None = None,
    resample_filter: Tensor | None = None,
    eps: float = 1e-8,
    flip_weight: bool = True,
    impl: str = "auto",
) -> Tensor:
    """Convolve each sample with the weight scaled per input channel by its style, then demodulate.

    StyleGAN2 (Karras et al. 2020), sec. 2.2, eq. 1-3: ``w'_ijk = s_i · w_ijk`` (modulation) and
    ``w''_ijk = w'_ijk / √(Σ_ik w'_ijk² + ε)`` (demodulation: unit L2 norm per output channel j).
    Up/down-sampling is the authors' ``conv2d_resample`` with the FIR ``resample_filter``. Deviation: the
    authors pre-normalise weight and styles for float16 inputs to avoid overflow; this function does not
    (bfloat16 has float32's range), so float16 with large styles can overflow.

    Args:
        x: input activations.
        weight: the shared weight (out, in, kh, kw) -- any scale (demodulation removes it).
        styles: per-sample, per-input-channel scales s.
        demodulate: normalise each output channel's modulated weight (eq. 3).
        up: upsampling factor; down: downsampling factor (need ``resample_filter``).
        padding: conv padding; ``None`` = ``kw // 2``.
        resample_filter: 2-D FIR filter from ``setup_filter`` for up/down.
        eps: ε of eq. 3 (1e-8).
        flip_weight: ``True`` = correlation (as ``F.conv2d``); NVlabs' layers use ``up == 1``.
        impl: ``"ref"``: a loop over samples, each an ordinary conv with its own modulated (demodulated)
            weight; ``"grouped"``: NVlabs' fused form, all samples as one grouped conv with per-sample
            weights; ``"fast"``: scale the activations by s, run one shared conv, then multiply the output
            by the demodulation coefficients ``rsqrt(s² @ (Σ_k w²)ᵀ + ε)`` -- no per-sample weight tensor
            (NVlabs' non-fused form); ``"auto"``: the measured-fastest for the device.

    Returns:
        (B, out, H', W') in the dtype of ``x``.

    Shape:
        - x: (B, C, H, W) with C = weight.shape[1].
        - styles: (B, C).
        - output: (B, O, H', W') with O = weight.shape[0]; H' = H·up/down for odd k and the default padding.
    """
    if x.dim() != 4 or weight.dim() != 4 or styles.dim() != 2:
        raise ValueError(f"modulated_conv2d: expected x (B, C, H, W), weight (O, C, kh, kw), styles (B, C); "
                         f"got {tuple(x.shape)}, {tuple(weight.shape)}, {tuple(styles.shape)}")
    B, C = x.shape[:2]
    O, _, kh, kw = weight.shape
    if weight.shape[1] != C or tuple(styles.shape) != (B, C):
        raise ValueError(f"modulated_conv2d: x {tuple(x.shape)}, weight {tuple(weight.shape)} and styles "
                         f"{tuple(styles.shape)} disagree: expected weight (O, {C}, kh, kw), "
                         f"styles ({B}, {C})")
    padding = kw // 2 if padding is None else padding
    weight, styles = weight.to(x.dtype), styles.to(x.dtype)
    if impl == "auto":
        impl = ModulatedConv2d.default_impl.get(x.device.type, "fast")

    def conv(inp: Tensor, w: Tensor, groups: int = 1, mode: str = "fast") -> Tensor:
        return conv2d_resample(inp, w, resample_filter, up=up, down=down, padding=padding, groups=groups,
                               flip_weight=flip_weight, impl=mode)

    if impl == "ref":
        outs = []
        for b in range(B):
            w = modulated_weight(weight, styles[b : b + 1], demodulate, eps)[0]  # (O, C, kh, kw)
            outs.append(conv(x[b : b + 1], w, mode="ref"))
        return torch.cat(outs)
    if impl == "grouped":
        w = modulated_weight(weight, styles, demodulate, eps)  # (B, O, C, kh, kw)
        y = conv(x.reshape(1, B * C, *x.shape[2:]), w.reshape(B * O, C, kh, kw), groups=B)
        return y.reshape(B, O, *y.shape[2:])
    if impl == "fast":
        x = x.contiguous(memory_format=torch.channels_last) * styles.reshape(B, C, 1, 1)
        # The up path transposes the weight for conv_transpose2d: a channels_last copy there only costs a
        # gather (measured 67.5 -> 59.6 ms for a 512-channel up layer on this CPU).
        y = conv(x, weight if up > 1 else weight.contiguous(memory_format=torch.channels_last))
        if demodulate:
            dcoefs = torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).t() + eps)  # (B, O)
            y = y * dcoefs.reshape(B, O, 1, 1)
        return y
    raise ValueError(f"modulated_conv2d: impl must be one of {('auto', *IMPLS)}, got {impl!r}")


@NORMS.register("modulated_conv", paper=f"{STYLEGAN2}, sec. 2.2, eq. 1-3 (modulation, demodulation)",
                consumes=("w",))
class ModulatedConv2d(Block):
    """A style-modulated convolution with weight demodulation (the conv of StyleGAN2's synthesis layers).

    The style ``s = affine(w)`` (an :class:`EqualizedLinear` ``w_dim -> in_channels`` with bias 1 at init)
    scales the input channels of the weight; demodulation then gives every output channel of every sample
    unit expected variance, replacing AdaIN's instance normalisation. The weight is N(0, 1) with run-time
    gain ``1/√(in·k²)`` and there is no bias (the styled layer adds it after the noise). With
    ``demodulate=False`` this is StyleGAN2's toRGB conv (the gain then matters: NVlabs applies it to the
    styles, which is the same product).

    Args:
        in_channels: input channels C.
        out_channels: output channels.
        w_dim: dimension of the style vector w.
        kernel_size: square kernel size (3; toRGB uses 1).
        demodulate: apply eq. 3.
        up: upsampling factor (1 or 2): transposed conv then FIR blur, as NVlabs.
        down: downsampling factor (1 or 2): FIR blur then strided conv.
        resample_filter: 1-D taps of the FIR filter.
        eps: ε of the demodulation.
        impl: ``"ref"``, ``"grouped"``, ``"fast"`` or ``"auto"`` (see :func:`modulated_conv2d`).

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - w: (B, D) with D = w_dim.
        - output: (B, out_channels, H·up/down, W·up/down).
    """

    impls = IMPLS
    # Measured on the 2-core CPU (forward, float32, B=8, k=3; multiple of a plain conv of the same size):
    # (512->512, 16x16) fast 1.03x, ref 1.62x, grouped 2.85x; (256->256, 32x32) fast 0.88x, ref 1.15x,
    # grouped 1.43x; up=2 (256, 32x32) fast 1.18x, grouped 1.84x, ref 2.59x (of the bare transposed conv).
    # CUDA is unmeasured (the fallback is the last impl, "fast").
    default_impl: ClassVar[dict[str, str]] = {"cpu": "fast"}

    def __init__(self, in_channels: int, out_channels: int, w_dim: int = 512, kernel_size: int = 3,
                 demodulate: bool = True, up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] = (1, 3, 3, 1), eps: float = 1e-8, impl: str = "auto"):
        super().__init__()
        if up not in (1, 2) or down not in (1, 2) or (up > 1 and down > 1):
            raise self.fail(f"up and down should be 1 or 2 (not both 2), got up={up}, down={down}")
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.kernel_size, self.demodulate, self.eps = kernel_size, demodulate, eps
        self.up, self.down = up, down
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self._init_impl(impl)

    def styles(self, w: Tensor) -> Tensor:
        """The per-sample input-channel scales s = affine(w)."""
        return self.affine(w)

    def _run(self, x: Tensor, w: Tensor, impl: str) -> Tensor:
        return modulated_conv2d(x, self.weight * self.weight_gain, self.styles(w),
                                demodulate=self.demodulate, up=self.up, down=self.down,
                                resample_filter=self.resample_filter, eps=self.eps, flip_weight=self.up == 1,
                                impl=impl)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        dims = self.check(x, "B C H W", C=self.in_channels)
        self.check(w, "B D", "w", B=dims.get("B"), D=self.w_dim)
        if dims and min(self.out_shape(tuple(x.shape))[2:]) < 1:
            raise ShapeError(type(self).__name__, "x", f"(B, C={self.in_channels}, H, W)", tuple(x.shape),
                             f"too small for kernel {self.kernel_size} with down={self.down}")
        return self.dispatch(x.device, x.dtype, lambda impl: self._run(x, w, impl))

    def call_function(self, x: Tensor, w: Tensor) -> Tensor:
        return self._run(x, w, "ref")

    def out_shape(self, x: Shape, w: Shape | None = None) -> Shape:
        B, _, H, W = x
        k, f, p = self.kernel_size, self.resample_filter.shape[0], self.kernel_size // 2
        return (B, self.out_channels, conv2d_resample_size(H, k, f, self.up, self.down, (p, p)),
                conv2d_resample_size(W, k, f, self.up, self.down, (p, p)))

    @classmethod
    def example(cls, s: Sizes) -> Example:
        up, down = ((1, 1), (2, 1), (1, 2))[s.seed % 3]
        kwargs = {"in_channels": s.C, "out_channels": s.N, "w_dim": s.D, "up": up, "down": down}
        return Example(kwargs, (s.randn(s.B, s.C, s.H, s.W),), {"w": s.randn(s.B, s.D)})

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, w_dim={self.w_dim}, "
                f"kernel_size={self.kernel_size}, demodulate={self.demodulate}, up={self.up}, "
                f"down={self.down}")
