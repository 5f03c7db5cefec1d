"""The learned constant input of the StyleGAN synthesis network."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import CONDITIONING

__all__ = ["ConstantInput"]

_INITS = ("normal", "ones")


@CONDITIONING.register("constant_input", paper="Karras et al. 2019, A Style-Based Generator Architecture for "
                       "GANs (StyleGAN), sec. 2 (learned 4x4x512 constant); StyleGAN2 keeps it")
class ConstantInput(Block):
    """A learned (C, H, W) tensor that starts the synthesis network, repeated for each sample.

    The batch size comes from the input (any tensor with a batch dimension, typically the style w or the
    latent z); its values are not used. The output is an expanded view (no copy): do not modify it in
    place.

    Args:
        channels: C (StyleGAN: 512).
        size: H = W as an int, or (H, W) (StyleGAN: 4).
        init: ``"normal"`` N(0, 1) as StyleGAN2 (stylegan2-ada-pytorch ``SynthesisBlock.const``), or
            ``"ones"`` as StyleGAN (``initializers.ones()`` in networks_stylegan.py).

    Shape:
        - x: (B, ...) -- any tensor of rank >= 2 whose dim 0 is the batch.
        - output: (B, channels, H, W).
    """

    def __init__(self, channels: int, size: int | tuple[int, int] = 4, init: str = "normal"):
        super().__init__()
        if init not in _INITS:
            raise self.fail(f"init should be one of {_INITS}, got {init!r}")
        h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.channels, self.size, self.init = channels, (h, w), init
        make = torch.randn if init == "normal" else torch.ones
        self.const = nn.Parameter(make(channels, h, w))

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B _ ...")
        const = self.const.to(x.dtype) if x.is_floating_point() else self.const
        return const.unsqueeze(0).expand(x.shape[0], -1, -1, -1)  # (B, C, H, W)

    def out_shape(self, x: Shape) -> Shape:
        return (x[0], self.channels, *self.size)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"channels": s.C, "size": (s.H, s.W)}, (s.randn(s.B, s.D),))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}, init={self.init}"
