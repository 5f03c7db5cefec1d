"""Equalized learning rate (ProGAN): linear and conv layers whose He scale is applied at run time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..activations.fused import bias_act, resolve_act
from ..core import Block, Example, Shape, Sizes
from ..registry import LAYERS
from ..resample.conv_resample import conv2d_resample, conv2d_resample_size
from ..resample.fir import setup_filter
from ..shapes import ShapeError

__all__ = ["EqualizedConv2d", "EqualizedLinear", "equalized_weight_gain"]

_PAPER = ("Karras et al. 2018, Progressive Growing of GANs (ProGAN), sec. 4.1 (equalized learning rate); "
          "lr_mul: Karras et al. 2019 (StyleGAN), appendix C")


def equalized_weight_gain(fan_in: int, gain: float = 1.0, lr_mul: float = 1.0) -> float:
    """The run-time weight scale ``gain · lr_mul / √fan_in`` (ProGAN sec. 4.1, StyleGAN appendix C).

    The weight is stored as N(0, 1/lr_mul²), so the effective weight is N(0, gain² / fan_in) (He init)
    while its update size, relative to its value, is the same for every layer -- and ``lr_mul`` times
    smaller for the mapping network's layers.
    """
    return gain * lr_mul / math.sqrt(fan_in)


class _Equalized(Block):
    """Weight, bias and activation settings shared by the equalized linear and conv layers."""

    impls = ("ref", "fast")
    default_impl: ClassVar[dict[str, str]] = {"cpu": "fast"}  # follows bias_act and conv2d_resample

    def _setup(self, weight_shape: tuple[int, ...], fan_in: int, bias: bool, bias_init: float, lr_mul: float,
               gain: float, activation: str, act_gain: float | None, impl: str) -> None:
        _, self.alpha, self.act_gain = resolve_act(activation, None, act_gain, type(self).__name__)
        if fan_in < 1 or min(weight_shape) < 1:
            raise self.fail(f"sizes must be positive, got weight shape {tuple(weight_shape)}")
        if lr_mul <= 0:
            raise self.fail(f"lr_mul must be positive, got {lr_mul}")
        self.activation, self.lr_mul, self.gain = activation, lr_mul, gain
        self.weight = nn.Parameter(torch.randn(weight_shape) / lr_mul)
        # Stored divided by lr_mul so the effective initial bias is bias_init (as StyleGAN3's FC layer).
        self.bias = nn.Parameter(torch.full(weight_shape[:1], bias_init / lr_mul)) if bias else None
        self.weight_gain = equalized_weight_gain(fan_in, gain, lr_mul)
        self._init_impl(impl)

    def effective_weight(self) -> Tensor:
        """The weight as applied: the stored N(0, 1/lr_mul²) parameter times ``weight_gain``."""
        return self.weight * self.weight_gain

    def effective_bias(self) -> Tensor | None:
        """The bias as applied: the stored parameter times ``lr_mul``."""
        if self.bias is None:
            return None
        return self.bias * self.lr_mul if self.lr_mul != 1 else self.bias


@LAYERS.register("equalized_linear", paper=_PAPER)
class EqualizedLinear(_Equalized):
    """A fully connected layer with equalized learning rate (NVlabs' ``FullyConnectedLayer``).

    ``y = act(x Wᵀ · gain · lr_mul / √in_features + b · lr_mul) · act_gain``, weights stored N(0, 1/lr_mul²),
    the bias stored as ``bias_init / lr_mul`` so the effective initial bias is ``bias_init`` (as StyleGAN3;
    stylegan2-ada-pytorch stores ``bias_init`` itself, which differs only when both ``bias_init != 0``
    and ``lr_mul != 1``, a combination no StyleGAN2 layer uses). StyleGAN2's affine style layers are
    ``EqualizedLinear(w_dim, C, bias_init=1)``; its mapping layers use ``lr_mul=0.01, activation="lrelu"``.

    Args:
        in_features: input features D.
        out_features: output features.
        bias: learn an additive bias.
        bias_init: the effective initial bias.
        lr_mul: learning-rate multiplier (StyleGAN mapping: 0.01).
        gain: weight gain in the He scale (ProGAN folds √2 in here; StyleGAN2 keeps 1 and puts the
            activation's gain after it).
        activation: a :func:`bias_act` activation name.
        act_gain: the gain after the activation; ``None`` = the activation's default (√2 for lrelu).
        impl: ``"ref"`` (plain ops), ``"fast"`` (``addmm`` for linear + bias, else fused ``bias_act``), or
            ``"auto"``.

    Shape:
        - x: (B, ..., D) with D = in_features.
        - output: (B, ..., out_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, gain: float = 1.0, activation: str = "linear",
                 act_gain: float | None = None, impl: str = "auto"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._setup((out_features, in_features), in_features, bias, bias_init, lr_mul, gain, activation,
                    act_gain, impl)

    def _run(self, x: Tensor, impl: str) -> Tensor:
        w = self.effective_weight().to(x.dtype)
        b = self.effective_bias()
        if impl == "fast" and self.activation == "linear" and self.act_gain == 1 and b is not None:
            return F.linear(x, w, b.to(x.dtype))
        return bias_act(F.linear(x, w), b, dim=-1, act=self.activation, alpha=self.alpha, gain=self.act_gain,
                        impl=impl)

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B ... D", D=self.in_features)
        return self.dispatch(x.device, x.dtype, lambda impl: self._run(x, impl))

    def call_function(self, x: Tensor) -> Tensor:
        return self._run(x, "ref")

    def out_shape(self, x: Shape) -> Shape:
        return (*x[:-1], self.out_features)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_features": s.D, "out_features": s.C, "bias_init": 0.5, "lr_mul": 0.1,
                        "activation": "lrelu"}, (s.randn(s.B, s.D),))

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, "
                f"lr_mul={self.lr_mul}, gain={self.gain:.4g}, activation={self.activation}, "
                f"act_gain={self.act_gain:.4g}")


@LAYERS.register("equalized_conv", paper=_PAPER + "; up/down: Karras et al. 2020 (StyleGAN2), appendix B")
class EqualizedConv2d(_Equalized):
    """A conv layer with equalized learning rate and optional FIR up/downsampling (NVlabs' ``Conv2dLayer``).

    ``y = clamp(act(conv(x, W · gain · lr_mul / √(C·k²)) + b · lr_mul) · act_gain, ±conv_clamp)``, with
    padding ``k // 2``. Resampling follows the authors' ``conv2d_resample``: ``down=2`` blurs with
    [1, 3, 3, 1] then convolves with stride 2 (a 1x1 conv downsamples first); ``up=2`` runs a transposed
    conv at low resolution and then the blur (gain 4). As in the reference, the kernel is applied as a
    true convolution (flipped) when ``up > 1`` and as a correlation otherwise.

    Args:
        in_channels: input channels C.
        out_channels: output channels.
        kernel_size: square kernel size k.
        bias: learn an additive bias.
        bias_init: the effective initial bias.
        lr_mul: learning-rate multiplier.
        gain: weight gain in the He scale (ProGAN: √2 with an ungained leaky ReLU; StyleGAN2: 1).
        activation: a :func:`bias_act` activation name.
        act_gain: the gain after the activation; ``None`` = its default (√2 for lrelu).
        conv_clamp: clamp the output to ±conv_clamp (StyleGAN2-ADA: 256 in mixed precision); ``None`` = off.
        up: upsampling factor (1 or 2).
        down: downsampling factor (1 or 2).
        resample_filter: 1-D taps of the FIR filter used when resampling.
        impl: ``"ref"`` (full-rate reference resampling and plain ops), ``"fast"`` or ``"auto"``.

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - output: (B, out_channels, H·up/down, W·up/down) (⌊·⌋ for odd sizes when down = 2).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True,
                 bias_init: float = 0.0, lr_mul: float = 1.0, gain: float = 1.0, activation: str = "linear",
                 act_gain: float | None = None, conv_clamp: float | None = None, up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] = (1, 3, 3, 1), impl: str = "auto"):
        super().__init__()
        if up not in (1, 2) or down not in (1, 2) or (up > 1 and down > 1):
            raise self.fail(f"up and down should be 1 or 2 (not both 2), got up={up}, down={down}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.up, self.down, self.conv_clamp = up, down, conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self._setup((out_channels, in_channels, kernel_size, kernel_size), in_channels * kernel_size**2, bias,
                    bias_init, lr_mul, gain, activation, act_gain, impl)

    def _run(self, x: Tensor, output_gain: float, impl: str) -> Tensor:
        x = conv2d_resample(x, self.effective_weight().to(x.dtype), self.resample_filter, up=self.up,
                            down=self.down, padding=self.padding, flip_weight=self.up == 1, impl=impl)
        clamp = self.conv_clamp * output_gain if self.conv_clamp is not None else None
        return bias_act(x, self.effective_bias(), act=self.activation, alpha=self.alpha,
                        gain=self.act_gain * output_gain, clamp=clamp, impl=impl)

    def forward(self, x: Tensor, output_gain: float = 1.0) -> Tensor:
        """``output_gain`` scales the activation gain and the clamp (NVlabs' ``gain``, e.g. √0.5 in
        residual blocks)."""
        dims = self.check(x, "B C H W", C=self.in_channels)
        if dims and min(self.out_shape(tuple(x.shape))[2:]) < 1:
            raise ShapeError(type(self).__name__, "x", f"(B, C={self.in_channels}, H, W)", tuple(x.shape),
                             f"too small for kernel {self.kernel_size} with down={self.down}")
        return self.dispatch(x.device, x.dtype, lambda impl: self._run(x, output_gain, impl))

    def call_function(self, x: Tensor) -> Tensor:
        return self._run(x, 1.0, "ref")

    def out_shape(self, x: Shape) -> Shape:
        B, _, H, W = x
        k, f, p = self.kernel_size, self.resample_filter.shape[0], self.padding
        return (B, self.out_channels, conv2d_resample_size(H, k, f, self.up, self.down, (p, p)),
                conv2d_resample_size(W, k, f, self.up, self.down, (p, p)))

    @classmethod
    def example(cls, s: Sizes) -> Example:
        up, down = ((1, 1), (2, 1), (1, 2))[s.seed % 3]
        kwargs = {"in_channels": s.C, "out_channels": s.D, "activation": "lrelu", "bias_init": 0.2,
                  "conv_clamp": 2.0, "up": up, "down": down}
        return Example(kwargs, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, up={self.up}, "
                f"down={self.down}, bias={self.bias is not None}, lr_mul={self.lr_mul}, "
                f"gain={self.gain:.4g}, activation={self.activation}, act_gain={self.act_gain:.4g}, "
                f"conv_clamp={self.conv_clamp}")
