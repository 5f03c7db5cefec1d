"""Conditioning by concatenation: to a latent vector, or tiled over a feature map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..registry import CONDITIONING

__all__ = ["ConcatTiled", "ConcatVector", "concat_tiled", "concat_vector"]


def _as_vector(c: Tensor, n_classes: int, dtype: torch.dtype) -> Tensor:
    """Class indices (B,) -> one-hot (B, n_classes); a vector (B, D) passes through. Cast to ``dtype``."""
    if n_classes:
        return F.one_hot(c.long(), n_classes).to(dtype)
    return c.to(dtype)


def concat_vector(x: Tensor, c: Tensor, n_classes: int = 0) -> Tensor:
    """``[x, c]`` along the features; with ``n_classes`` > 0, ``c`` holds class indices made one-hot.

    Mirza & Osindero 2014, "Conditional Generative Adversarial Nets", sec. 4.1 (y one-hot, joined to z).

    Shape:
        - x: (B, D); c: (B, Dc) or (B,) class indices.
        - output: (B, D + Dc) (Dc = n_classes for indices).
    """
    return torch.cat([x, _as_vector(c, n_classes, x.dtype)], dim=1)


def concat_tiled(x: Tensor, c: Tensor, n_classes: int = 0) -> Tensor:
    """``[x, c]`` along the channels, ``c`` replicated over every spatial position.

    Reed et al. 2016, "Generative Adversarial Text to Image Synthesis" (GAN-INT-CLS), sec. 4.1: the
    (compressed) text embedding is replicated spatially and concatenated depth-wise with D's 4x4 features.

    Shape:
        - x: (B, C, H, W); c: (B, Dc) or (B,) class indices.
        - output: (B, C + Dc, H, W).
    """
    v = _as_vector(c, n_classes, x.dtype)
    tiled = v[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])  # (B, Dc, H, W), no copy
    return torch.cat([x, tiled], dim=1)


class _ConcatBase(Block):
    """Shared checks of the two concatenation blocks."""

    def __init__(self, c_dim: int = 0, n_classes: int = 0):
        super().__init__()
        if (c_dim > 0) == (n_classes > 0) or c_dim < 0 or n_classes < 0:
            raise ValueError(f"{type(self).__name__}: give exactly one of c_dim (a conditioning vector) or "
                             f"n_classes (class indices, one-hot encoded); got c_dim={c_dim}, "
                             f"n_classes={n_classes}")
        self.c_dim, self.n_classes = c_dim, n_classes

    @property
    def width(self) -> int:
        """Features the conditioning adds."""
        return self.n_classes or self.c_dim

    def _check_c(self, c: Tensor, batch: int | None) -> None:
        if self.n_classes:
            b = self.check_indices(c, self.n_classes, "c")
            if batch is not None and b != batch:
                raise self.fail(f"c has batch {b}, expected {batch} (the batch of x)")
        else:
            self.check(c, "B D", "c", B=batch, D=self.c_dim)

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}" if self.n_classes else f"c_dim={self.c_dim}"


@CONDITIONING.register(
    "concat_vector", consumes=("c",),
    paper="Mirza & Osindero 2014, Conditional GANs, sec. 4.1; Reed et al. 2016, GAN-INT-CLS, sec. 4.1",
)
class ConcatVector(_ConcatBase):
    """Concatenate a conditioning vector (or one-hot class) to a latent or feature vector.

    The conditional GAN's input layer (Mirza & Osindero 2014): G reads ``[z, y]``, D reads ``[x, y]`` with y
    one-hot. GAN-INT-CLS joins the compressed text embedding to z the same way (compress it with a linear
    layer first). Order: x first, then c. No parameters.

    Args:
        c_dim: width of a conditioning vector c (B, c_dim); or
        n_classes: number of classes when c holds class indices (B,) (one-hot encoded here).

    Shape:
        - x: (B, D); c: (B, c_dim) or (B,) class indices.
        - output: (B, D + c_dim) or (B, D + n_classes).
    """

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        dims = self.check(x, "B D")
        self._check_c(c, dims.get("B"))
        return concat_vector(x, c, self.n_classes)

    def call_function(self, x: Tensor, c: Tensor) -> Tensor:
        return concat_vector(x, c, n_classes=self.n_classes)

    def out_shape(self, x: Shape, c: Shape | None = None) -> Shape:
        return (x[0], x[1] + self.width)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        if s.seed % 2:  # class indices, one-hot encoded
            return Example({"n_classes": s.N + 1}, (s.randn(s.B, s.D),), {"c": s.randint(s.N + 1, s.B)})
        return Example({"c_dim": s.C}, (s.randn(s.B, s.D),), {"c": s.randn(s.B, s.C)})


@CONDITIONING.register(
    "concat_tiled", consumes=("c",),
    paper="Reed et al. 2016, Generative Adversarial Text to Image Synthesis (GAN-INT-CLS), sec. 4.1; "
          "Mirza & Osindero 2014, Conditional GANs",
)
class ConcatTiled(_ConcatBase):
    """Replicate a conditioning vector (or one-hot class) over H x W and concatenate it to the channels.

    GAN-INT-CLS's discriminator: the text embedding, compressed to 128 by a linear layer, is replicated
    spatially and depth-concatenated with the 4x4 image features (StackGAN's D_GET_LOGITS does the same);
    class-conditional DCGAN-style discriminators join one-hot label maps the same way. Order: x's channels
    first. Any H, W (non-square too). No parameters.

    Args:
        c_dim: width of a conditioning vector c (B, c_dim); or
        n_classes: number of classes when c holds class indices (B,) (one-hot encoded here).

    Shape:
        - x: (B, C, H, W); c: (B, c_dim) or (B,) class indices.
        - output: (B, C + c_dim, H, W) or (B, C + n_classes, H, W).
    """

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        dims = self.check(x, "B C H W")
        self._check_c(c, dims.get("B"))
        return concat_tiled(x, c, self.n_classes)

    def call_function(self, x: Tensor, c: Tensor) -> Tensor:
        return concat_tiled(x, c, n_classes=self.n_classes)

    def out_shape(self, x: Shape, c: Shape | None = None) -> Shape:
        return (x[0], x[1] + self.width, x[2], x[3])

    @classmethod
    def example(cls, s: Sizes) -> Example:
        x = s.randn(s.B, s.C, s.H, s.W)
        if s.seed % 2:
            return Example({"n_classes": s.N + 1}, (x,), {"c": s.randint(s.N + 1, s.B)})
        return Example({"c_dim": s.D}, (x,), {"c": s.randn(s.B, s.D)})
