"""ProGAN's toRGB and fromRGB: equalized 1x1 convolutions between features and images."""

from __future__ import annotations

import math

from ..core import Example, Sizes
from ..layers.equalized import EqualizedConv2d
from ..registry import STRUCTURE

__all__ = ["FromRGB", "ToRGB"]

_PAPER = "Karras et al. 2018, Progressive Growing of GANs (ProGAN), sec. 2, fig. 2 and table 2"


@STRUCTURE.register("to_rgb", paper=_PAPER + " (toRGB: 1x1 conv, linear)")
class ToRGB(EqualizedConv2d):
    """Features to an image: an equalized 1x1 conv with bias, weight gain 1, no activation.

    As ``torgb`` in the authors' networks.py: ``apply_bias(conv2d(x, fmaps=num_channels, kernel=1, gain=1,
    use_wscale=True))``. Parameters: ``weight`` (out, in, 1, 1) ~ N(0, 1) scaled at run time by
    ``1/√in``, and ``bias`` (out,) = 0.

    Args:
        in_channels: feature channels C.
        out_channels: image channels (3).
        impl: ``"ref"``, ``"fast"`` or ``"auto"``.

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - output: (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int = 3, impl: str = "auto"):
        super().__init__(in_channels, out_channels, kernel_size=1, gain=1.0, activation="linear", impl=impl)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_channels": s.C}, (s.randn(s.B, s.C, s.H, s.W),))


@STRUCTURE.register("from_rgb", paper=_PAPER + " (fromRGB: 1x1 conv + leaky ReLU 0.2)")
class FromRGB(EqualizedConv2d):
    """An image to features: an equalized 1x1 conv (He gain √2) with bias, then leaky ReLU 0.2.

    As ``fromrgb`` in the authors' networks.py: ``act(apply_bias(conv2d(x, fmaps, kernel=1,
    use_wscale=True)))`` with the default gain √2 folded into the weight scale ``√2/√in`` and no gain after
    the activation. Parameters: ``weight`` (out, in, 1, 1) ~ N(0, 1) and ``bias`` (out,) = 0.

    Args:
        in_channels: image channels (3).
        out_channels: feature channels.
        impl: ``"ref"``, ``"fast"`` or ``"auto"``.

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - output: (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, impl: str = "auto"):
        super().__init__(in_channels, out_channels, kernel_size=1, gain=math.sqrt(2), activation="lrelu",
                         act_gain=1.0, impl=impl)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_channels": s.C, "out_channels": s.D}, (s.randn(s.B, s.C, s.H, s.W),))
