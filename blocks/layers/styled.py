"""StyleGAN2's synthesis layer (modulated conv + noise + bias + lrelu) and its toRGB layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..activations.fused import bias_act, resolve_act
from ..conditioning.noise import NoiseInjection, noise_injection
from ..core import Block, Example, Shape, Sizes
from ..registry import LAYERS
from .modulated import IMPLS, STYLEGAN2, ModulatedConv2d, modulated_conv2d

__all__ = ["StyleConv", "StyleToRGB"]


class _Styled(Block):
    """The impl plumbing shared by the styled layers: the modulated conv gets the impl, bias_act follows."""

    impls = IMPLS
    default_impl: ClassVar[dict[str, str]] = ModulatedConv2d.default_impl

    conv: ModulatedConv2d

    def _modconv_function(self, x: Tensor, w: Tensor) -> Tensor:
        c = self.conv
        return modulated_conv2d(x, c.weight * c.weight_gain, c.styles(w), demodulate=c.demodulate,
                                up=c.up, down=c.down, resample_filter=c.resample_filter, eps=c.eps,
                                flip_weight=c.up == 1, impl="ref")

    def _check_inputs(self, x: Tensor, w: Tensor) -> None:
        dims = self.check(x, "B C H W", C=self.conv.in_channels)
        self.check(w, "B D", "w", B=dims.get("B"), D=self.conv.w_dim)

    def out_shape(self, x: Shape, w: Shape | None = None) -> Shape:
        return self.conv.out_shape(x)


@LAYERS.register("style_conv", paper=f"{STYLEGAN2}, sec. 2.2 and fig. 2c (official SynthesisLayer)",
                 consumes=("w",))
class StyleConv(_Styled):
    """StyleGAN2's synthesis layer: modulated, demodulated conv; noise; bias; leaky ReLU · √2; clamp.

    As NVlabs' ``SynthesisLayer``: the affine style (bias 1 at init) modulates a k x k conv (optionally
    upsampling x2 by transposed conv + [1, 3, 3, 1] blur), per-pixel noise scaled by a single learned
    strength (0 at init) is added, then the bias (0 at init) and ``lrelu`` with gain √2, clamped to
    ±``conv_clamp`` when set. Parameters: ``conv.affine.{weight,bias}``, ``conv.weight``,
    ``noise.strength``, ``bias`` -- the same count as the reference layer.

    Args:
        in_channels: input channels C.
        out_channels: output channels.
        w_dim: dimension of w (StyleGAN2: 512).
        kernel_size: conv kernel size (3).
        up: 1, or 2 to upsample (the first layer of each block).
        resolution: output (H, W) or int, for the const noise buffer; ``None`` = no const noise.
        use_noise: add noise at all.
        activation: a :func:`bias_act` activation (``"lrelu"``, gain √2).
        conv_clamp: clamp after the activation gain (StyleGAN2-ADA: 256 in fp16 layers); ``None`` = off.
        resample_filter: FIR taps for ``up=2``.
        noise_mode: default ``"random"``, ``"const"``, ``"none"`` or ``"input"`` (see NoiseInjection);
            ``forward`` can override it.
        impl: formulation of the modulated conv, ``"ref"``, ``"grouped"``, ``"fast"`` or ``"auto"``.

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - w: (B, D) with D = w_dim.
        - output: (B, out_channels, H·up, W·up).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int = 512, kernel_size: int = 3,
                 up: int = 1, resolution: int | tuple[int, int] | None = None, use_noise: bool = True,
                 activation: str = "lrelu", conv_clamp: float | None = None,
                 resample_filter: Sequence[float] = (1, 3, 3, 1), noise_mode: str = "random",
                 impl: str = "auto"):
        super().__init__()
        if up not in (1, 2):
            raise self.fail(f"up should be 1 or 2, got {up}")
        _, self.alpha, self.act_gain = resolve_act(activation, None, None, type(self).__name__)
        self.activation, self.conv_clamp = activation, conv_clamp
        self.conv = ModulatedConv2d(in_channels, out_channels, w_dim, kernel_size, demodulate=True, up=up,
                                    resample_filter=resample_filter, impl=impl)
        self.noise = NoiseInjection(None, resolution, noise_mode) if use_noise else None
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self._init_impl(impl)

    def _epilogue(self, x: Tensor, noise: Tensor | None, output_gain: float, impl: str) -> Tensor:
        if self.noise is not None:
            x = noise_injection(x, self.noise.strength, noise)
        clamp = self.conv_clamp * output_gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, alpha=self.alpha, gain=self.act_gain * output_gain,
                        clamp=clamp, impl="ref" if impl == "ref" else "fast")

    def forward(self, x: Tensor, w: Tensor, noise_mode: str | None = None,
                output_gain: float = 1.0) -> Tensor:
        """``output_gain`` scales the activation gain and the clamp (NVlabs' ``gain``, √0.5 in resnets)."""
        self._check_inputs(x, w)

        def run(impl: str) -> Tensor:
            y = self.conv(x, w)
            noise = self.noise.make_noise(y, noise_mode) if self.noise is not None else None
            return self._epilogue(y, noise, output_gain, impl)

        return self.dispatch(x.device, x.dtype, run)

    def call_function(self, x: Tensor, w: Tensor) -> Tensor:
        y = self._modconv_function(x, w)
        noise = self.noise.make_noise(y) if self.noise is not None else None
        return self._epilogue(y, noise, 1.0, "ref")

    @classmethod
    def example(cls, s: Sizes) -> Example:
        up = 1 + s.seed % 2
        kwargs = {"in_channels": s.C, "out_channels": s.N, "w_dim": s.D, "up": up,
                  "resolution": (s.H * up, s.W * up), "conv_clamp": 8.0}
        return Example(kwargs, (s.randn(s.B, s.C, s.H, s.W),), {"w": s.randn(s.B, s.D)})

    def extra_repr(self) -> str:
        return f"activation={self.activation}, act_gain={self.act_gain:.4g}, conv_clamp={self.conv_clamp}"


@LAYERS.register("style_to_rgb", paper=f"{STYLEGAN2}, fig. 7 (skip generator tRGB; official ToRGBLayer)",
                 consumes=("w",))
class StyleToRGB(_Styled):
    """StyleGAN2's toRGB: a modulated 1x1 conv without demodulation, a bias, linear output.

    As NVlabs' ``ToRGBLayer``: styles from an affine layer (bias 1 at init) times ``1/√(in·k²)``, no
    demodulation, bias (0 at init), no activation; clamped to ±``conv_clamp`` when set.

    Args:
        in_channels: input channels C.
        out_channels: image channels (3).
        w_dim: dimension of w (StyleGAN2: 512).
        kernel_size: 1 in StyleGAN2.
        conv_clamp: output clamp; ``None`` = off.
        impl: formulation of the modulated conv, ``"ref"``, ``"grouped"``, ``"fast"`` or ``"auto"``.

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - w: (B, D) with D = w_dim.
        - output: (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int = 3, w_dim: int = 512, kernel_size: int = 1,
                 conv_clamp: float | None = None, impl: str = "auto"):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.conv = ModulatedConv2d(in_channels, out_channels, w_dim, kernel_size, demodulate=False,
                                    impl=impl)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self._init_impl(impl)

    def _epilogue(self, x: Tensor, impl: str) -> Tensor:
        return bias_act(x, self.bias, clamp=self.conv_clamp, impl="ref" if impl == "ref" else "fast")

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        self._check_inputs(x, w)
        return self.dispatch(x.device, x.dtype, lambda impl: self._epilogue(self.conv(x, w), impl))

    def call_function(self, x: Tensor, w: Tensor) -> Tensor:
        return self._epilogue(self._modconv_function(x, w), "ref")

    @classmethod
    def example(cls, s: Sizes) -> Example:
        kwargs = {"in_channels": s.C, "w_dim": s.D}
        return Example(kwargs, (s.randn(s.B, s.C, s.H, s.W),), {"w": s.randn(s.B, s.D)})

    def extra_repr(self) -> str:
        return f"conv_clamp={self.conv_clamp}"
