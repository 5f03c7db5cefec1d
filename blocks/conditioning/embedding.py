"""BigGAN's shared class embedding, and the class-index check the conditioning blocks share."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import CONDITIONING

__all__ = ["ClassEmbedding"]


@CONDITIONING.register("class_embedding", paper="Brock et al. 2019, BigGAN, sec. 3 (shared embedding)")
class ClassEmbedding(Block):
    """A shared class embedding: class indices -> learned vectors (BigGAN's ``G.shared``).

    BigGAN embeds the class once with a plain ``nn.Embedding(n_classes, shared_dim)`` (no spectral norm:
    the reference notes that SN on G's embedding "randomly cripples G") and feeds the vector to every
    conditional batch norm, concatenated with a z chunk when latents are hierarchical (see ``skip_z``).
    The weight keeps torch's N(0, 1) initialisation; BigGAN re-initialises it orthogonally in
    ``init_weights`` (the recipe's initialiser does that).

    Args:
        n_classes: number of classes (ImageNet: 1000).
        embedding_dim: width of the embedding (BigGAN-128: shared_dim 128).

    Shape:
        - y: (B,) integer class indices.
        - output: (B, embedding_dim).
    """

    def __init__(self, n_classes: int = 1000, embedding_dim: int = 128):
        super().__init__()
        self.n_classes, self.embedding_dim = n_classes, embedding_dim
        self.embed = nn.Embedding(n_classes, embedding_dim)

    def forward(self, y: Tensor) -> Tensor:
        self.check_indices(y, self.n_classes)
        return F.embedding(y, self.embed.weight)

    def out_shape(self, y: Shape) -> Shape:
        return (y[0], self.embedding_dim)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"n_classes": s.N + 1, "embedding_dim": s.D}, (s.randint(s.N + 1, s.B),))

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}, embedding_dim={self.embedding_dim}"
