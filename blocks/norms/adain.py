"""Adaptive instance normalisation with StyleGAN's learned style affine (the "A" boxes of its figure 1)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import NORMS

__all__ = ["AdaIN", "adain"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def adain(x: Tensor, scale: Tensor, bias: Tensor, eps: float = 1e-8) -> Tensor:
    """Instance-normalise ``x``, then scale and shift each sample's channels: the reference formulation.

    ``AdaIN(x_i, y) = y_s,i · (x_i - μ(x_i)) / sqrt(σ²(x_i) + eps) + y_b,i`` (Huang & Belongie 2017, eq. 8;
    Karras et al. 2019, StyleGAN, eq. 1), μ and the biased σ² over the spatial positions of one channel of
    one sample. Half-precision inputs are normalised in float32, as StyleGAN's ``instance_norm`` does.

    Args:
        x: feature maps (B, C, H, W).
        scale: y_s, one factor per sample and channel (B, C).
        bias: y_b, one shift per sample and channel (B, C).
        eps: added to the variance (StyleGAN: 1e-8).

    Shape:
        - x: (B, C, H, W); scale, bias: (B, C)
        - output: (B, C, H, W)
    """
    xf = x.float() if x.dtype in _LOW_PRECISION else x
    mean = xf.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    centred = xf - mean
    normed = centred * torch.rsqrt(centred.square().mean(dim=(2, 3), keepdim=True) + eps)
    return (normed * scale[:, :, None, None] + bias[:, :, None, None]).to(x.dtype)


def _adain_instance_norm(x: Tensor, scale: Tensor, bias: Tensor, eps: float) -> Tensor:
    """:func:`adain` as one ``F.instance_norm`` call: the per-(sample, channel) affine is the per-channel
    affine of a batch of one with B·C channels, so normalising and modulating fuse into one kernel."""
    b, c, h, w = x.shape
    out = F.instance_norm(x.reshape(1, b * c, h, w), weight=scale.reshape(b * c), bias=bias.reshape(b * c),
                          eps=eps)  # (1, B*C, H, W)
    return out.view(b, c, h, w)


@NORMS.register("adain", paper="Karras et al. 2019, StyleGAN, sec. 2 eq. 1 (AdaIN of Huang & Belongie "
                "2017, eq. 8) with the style_mod affine of NVlabs/stylegan networks_stylegan.py",
                consumes=("w",))
class AdaIN(Block):
    """StyleGAN's AdaIN: instance norm, then a per-channel scale and shift computed from the style w.

    The learned affine "A" maps w to 2·C styles with an equalized-learning-rate linear layer (gain 1):
    the weight is stored ~ N(0, 1) and multiplied by 1/√w_dim at run time, the bias starts at 0. The
    first C styles are the scale, the last C the shift, and -- exactly as ``style_mod`` in NVlabs'
    networks_stylegan.py -- the layer computes ``x̂ · (style_s + 1) + style_b``: the +1 makes the scale
    start around 1 rather than 0 (StyleGAN2 writes the same thing as a scale bias initialised to 1).
    The instance norm uses StyleGAN's eps 1e-8.

    ``equalized = True`` tells the initialisers in ``blocks.init`` to leave the N(0, 1) weight alone.

    Args:
        in_channels: channels C of x.
        w_dim: size D of the style vector w.
        eps: added to the instance variance (StyleGAN: 1e-8).
        impl: ``"ref"`` (hand-written mean and variance), ``"fast"`` (one ``F.instance_norm`` call over a
            (1, B·C, H, W) view, the affine fused in) or ``"auto"``.

    Shape:
        - x: (B, C, H, W)
        - w: (B, D) -- D = w_dim.
        - output: (B, C, H, W)
    """

    impls = ("ref", "fast")
    # CPU, 2 threads (torch 2.14.1), 8x256x32x32: "fast" 3-4x faster forward, ~2x forward + backward
    # (at 8x8 maps the forward alone is slower). CUDA not measured yet: one library kernel replacing
    # about six elementwise/reduction passes is expected to win there as well.
    default_impl: ClassVar[dict[str, str]] = {"cpu": "fast", "cuda": "fast"}
    equalized = True

    def __init__(self, in_channels: int, w_dim: int, eps: float = 1e-8, impl: str = "auto"):
        super().__init__()
        if in_channels < 1 or w_dim < 1:
            raise self.fail(f"in_channels and w_dim must be >= 1, got {in_channels} and {w_dim}")
        self.in_channels, self.w_dim, self.eps = in_channels, w_dim, eps
        self.weight = nn.Parameter(torch.randn(2 * in_channels, w_dim))  # (2C, D), scaled at run time
        self.bias = nn.Parameter(torch.zeros(2 * in_channels))
        self.weight_gain = 1.0 / math.sqrt(w_dim)  # He constant with gain 1
        self._init_impl(impl)

    def styles(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """The scale (with StyleGAN's +1 applied) and shift, each (B, C), for styles w (B, D)."""
        style = F.linear(w, self.weight * self.weight_gain, self.bias)  # (B, 2C)
        scale, shift = style.unflatten(1, (2, self.in_channels)).unbind(1)  # (B, C) each
        return scale + 1, shift

    def _check(self, x: Tensor, w: Tensor) -> None:
        dims = self.check(x, "B C H W", C=self.in_channels)
        self.check(w, "B D", "w", B=dims.get("B"), D=self.w_dim)
        if dims and dims["H"] * dims["W"] == 1:
            raise self.fail(f"instance norm needs more than one spatial position, got x of shape "
                            f"{tuple(x.shape)}")

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        self._check(x, w)
        scale, shift = self.styles(w)

        def run(impl: str) -> Tensor:
            if impl == "fast":
                return _adain_instance_norm(x, scale, shift, self.eps)
            return adain(x, scale, shift, self.eps)

        return self.dispatch(x.device, x.dtype, run)

    def call_function(self, x: Tensor, w: Tensor) -> Tensor:
        self._check(x, w)
        scale, shift = self.styles(w)
        return adain(x, scale, shift, self.eps)

    def out_shape(self, x: Shape, w: Shape) -> Shape:
        return tuple(x)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_channels": s.C, "w_dim": s.D}, (s.randn(s.B, s.C, s.H, s.W),),
                       {"w": s.randn(s.B, s.D)})

    def extra_repr(self) -> str:
        return f"{self.in_channels}, w_dim={self.w_dim}, eps={self.eps}"
