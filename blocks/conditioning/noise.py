"""Per-pixel noise injection with a learned strength (StyleGAN, StyleGAN2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import CONDITIONING

__all__ = ["NOISE_MODES", "NoiseInjection", "noise_injection"]

NOISE_MODES = ("random", "const", "none", "input")


def _size2(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def noise_injection(x: Tensor, strength: Tensor, noise: Tensor | None) -> Tensor:
    """``x + noise · strength``: one noise image per sample, broadcast over channels.

    Karras et al. 2019 (StyleGAN), sec. 3.2: "single-channel images consisting of uncorrelated Gaussian
    noise ... broadcasted to all feature maps using learned per-feature scaling factors" (StyleGAN2 uses a
    single scalar strength per layer).

    Args:
        x: activations.
        strength: a scalar () or per-channel (C,) scale.
        noise: (B, 1, H, W) or (1, 1, H, W) noise, or ``None`` (returns ``x``).

    Shape:
        - x: (B, C, H, W).
        - output: same as x.
    """
    if noise is None:
        return x
    scale = strength.to(x.dtype).reshape(1, -1, 1, 1) if strength.dim() else strength.to(x.dtype)
    return x + noise.to(x.dtype) * scale


@CONDITIONING.register("noise_injection", paper="Karras et al. 2019, A Style-Based Generator Architecture "
                       "for GANs (StyleGAN), sec. 3.2; one scalar strength: StyleGAN2 (Karras et al. 2020), "
                       "fig. 2")
class NoiseInjection(Block):
    """Adds Gaussian noise (one image per sample, shared by the channels) scaled by a learned strength.

    The strength starts at 0, so at init the block is the identity. ``channels=C`` gives StyleGAN's
    per-channel strengths (C,); ``channels=None`` StyleGAN2's single scalar. Modes: ``"random"`` draws new
    noise each call (from torch's global generator); ``"const"`` uses the fixed buffer ``noise_const`` of
    the given ``resolution`` (for reproducible images); ``"none"`` adds nothing; ``"input"`` uses the tensor
    last given to :meth:`use_noise` (an exported generator takes the noise as an input this way).

    Args:
        channels: per-channel strengths for C channels (StyleGAN), or ``None`` for one scalar (StyleGAN2).
        resolution: (H, W) or an int of the const noise buffer; ``None`` = no buffer (const mode refused).
        noise_mode: the default mode; ``forward(x, noise_mode=...)`` overrides it per call.

    Shape:
        - x: (B, C, H, W) (C = channels when given; H, W = resolution in const mode).
        - output: same as x.
    """

    def __init__(self, channels: int | None = None, resolution: int | tuple[int, int] | None = None,
                 noise_mode: str = "random"):
        super().__init__()
        self._check_mode(noise_mode)
        self.channels, self.noise_mode = channels, noise_mode
        self.strength = nn.Parameter(torch.zeros(channels if channels is not None else ()))
        self.resolution = _size2(resolution) if resolution is not None else None
        if self.resolution is not None:
            self.register_buffer("noise_const", torch.randn(self.resolution))
        else:
            self.noise_const = None
        self.noise_input: Tensor | None = None

    def use_noise(self, noise: Tensor | None) -> None:
        """The noise ``"input"`` mode adds: (B, 1, H, W) or (1, 1, H, W), or None for none."""
        self.noise_input = noise

    def _check_mode(self, mode: str) -> None:
        if mode not in NOISE_MODES:
            raise self.fail(f"noise_mode should be one of {NOISE_MODES}, got {mode!r}")

    def make_noise(self, x: Tensor, noise_mode: str | None = None) -> Tensor | None:
        """The noise for ``x``: (B, 1, H, W) random, (1, 1, H, W) const, or ``None``."""
        mode = self.noise_mode if noise_mode is None else noise_mode
        self._check_mode(mode)
        if mode == "none":
            return None
        B, _, H, W = x.shape
        if mode == "random":
            return torch.randn(B, 1, H, W, device=x.device, dtype=x.dtype)
        if mode == "input":
            if self.noise_input is not None:
                self.check(self.noise_input, "B 1 H W", "noise", H=H, W=W)
            return self.noise_input
        if self.noise_const is None:
            raise self.fail("noise_mode='const' needs the block built with a resolution")
        if self.resolution != (H, W):
            raise self.fail(f"const noise has resolution {self.resolution} but x has shape {tuple(x.shape)}")
        return self.noise_const[None, None]

    def forward(self, x: Tensor, noise_mode: str | None = None) -> Tensor:
        self.check(x, "B C H W", C=self.channels)
        return noise_injection(x, self.strength, self.make_noise(x, noise_mode))

    def call_function(self, x: Tensor) -> Tensor:
        return noise_injection(x, self.strength, self.make_noise(x))

    def out_shape(self, x: Shape) -> Shape:
        return tuple(x)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"channels": s.C}, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, resolution={self.resolution}, noise_mode={self.noise_mode}"
