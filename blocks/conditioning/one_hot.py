"""Class indices as one-hot vectors, for networks that read the class through a layer of their own."""

from __future__ import annotations

import torch
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..registry import CONDITIONING

__all__ = ["OneHot", "one_hot"]


def one_hot(c: Tensor, n_classes: int, dtype: torch.dtype | None = None) -> Tensor:
    """Class indices (B,) -> one-hot rows (B, n_classes) of ``dtype`` (default: torch's default float).

    Written as a comparison with ``arange`` (not ``F.one_hot``), so it runs on meta tensors and exports to
    ONNX as Equal + Cast.
    """
    classes = torch.arange(n_classes, device=c.device)
    return (c.long()[:, None] == classes).to(dtype or torch.get_default_dtype())


@CONDITIONING.register(
    "one_hot",
    paper="Mirza & Osindero 2014, Conditional GANs, sec. 4.1 (y as one-hot vectors, mapped by its own hidden "
          "layer in G and D); Odena et al. 2017, AC-GAN (the class one-hot joined to z)",
)
class OneHot(Block):
    """Class indices as one-hot vectors: ``c`` (B,) -> (B, n_classes), 1 at each sample's class.

    The conditional GAN (Mirza & Osindero 2014, sec. 4.1) feeds y, a one-hot label, to a layer of its own
    in G (1000 ReLU units) and D (a 50-unit maxout layer); read the class input with ``from: c`` and route
    the result with ``into``. No parameters; indices are checked (dtype, shape, range).

    Args:
        n_classes: number of classes K.

    Shape:
        - c: (B,) -- class indices, int64 or int32, in [0, K).
        - output: (B, K), float (torch's default dtype).
    """

    def __init__(self, n_classes: int):
        super().__init__()
        if n_classes < 1:
            raise self.fail(f"n_classes must be >= 1, got {n_classes}")
        self.n_classes = n_classes

    def forward(self, c: Tensor) -> Tensor:
        self.check_indices(c, self.n_classes, "c")
        return one_hot(c, self.n_classes)

    def call_function(self, c: Tensor) -> Tensor:
        return one_hot(c, self.n_classes)

    def out_shape(self, c: Shape) -> Shape:
        return (c[0], self.n_classes)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"n_classes": s.N + 1}, (s.randint(s.N + 1, s.B),))

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}"
