"""BigGAN's hierarchical latents (skip-z) and BigGAN-deep's concatenated z + class embedding."""

from __future__ import annotations

import torch
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..registry import CONDITIONING

__all__ = ["SkipZ", "skip_z"]


def skip_z(z: Tensor, y: Tensor | None, chunks: int = 6, split: bool = True,
           n_blocks: int | None = None) -> tuple[Tensor, Tensor]:
    """Route a latent to a generator's first layer and to each of its conditional blocks.

    ``split=True`` (BigGAN, Brock et al. 2019, sec. 3 "hierarchical latent spaces" / BigGAN-PyTorch
    ``Generator.forward`` with ``hier``): z is cut into ``chunks`` equal pieces; the first feeds the first
    linear layer, piece i + 1 is joined to the shared class embedding as ``cat([y, z_{i+1}])`` (y first, as
    the reference does) for block i.

    ``split=False`` (BigGAN-deep, BigGANdeep.py ``Generator.forward``): no split; every one of ``n_blocks``
    blocks (and, in BigGAN-deep, the first linear layer too) gets ``cat([z, y])`` (z first, as the reference).

    Args:
        z: the latent.
        y: the shared class embedding, or None (then the chunks or z alone are passed on).
        chunks: pieces of z when ``split`` (BigGAN-128: 6 = 5 blocks + the linear layer).
        split: BigGAN's split (True) or BigGAN-deep's whole-z conditioning (False).
        n_blocks: number of blocks for ``split=False``; with ``split`` it is ``chunks - 1``.

    Shape:
        - z: (B, D); y: (B, Dy).
        - output: ``split``: (z0 (B, D/chunks), ys (B, chunks - 1, Dy + D/chunks));
          otherwise (z (B, D), ys (B, n_blocks, D + Dy)).
    """
    b = z.shape[0]
    if split:
        pieces = z.view(b, chunks, -1)  # (B, chunks, D/chunks): chunk i is z[:, i·k:(i+1)·k]
        z0, rest = pieces[:, 0], pieces[:, 1:]
        if y is None:
            return z0, rest
        return z0, torch.cat([y[:, None, :].expand(-1, chunks - 1, -1), rest], dim=2)
    if n_blocks is None:
        raise ValueError("skip_z: split=False needs n_blocks")
    joined = z if y is None else torch.cat([z, y], dim=1)  # (B, D + Dy)
    return z, joined[:, None, :].expand(-1, n_blocks, -1)


@CONDITIONING.register(
    "skip_z", consumes=("y",),
    paper="Brock et al. 2019, Large Scale GAN Training (BigGAN), sec. 3 and appendix B (hierarchical latent "
          "spaces, shared embedding; BigGAN-deep)",
)
class SkipZ(Block):
    """Hierarchical latents: split z into chunks, one for the first layer and one per block, each joined to y.

    Returns a tuple ``(z0, ys)``:

    - BigGAN (``split=True``, defaults z_dim 120, 6 chunks of 20 for BigGAN-128): ``z0 = z[:, :20]`` feeds
      the first linear layer; ``ys[:, i] = cat([y, z[:, 20(i+1):20(i+2)]])`` conditions block i's batch
      norms (y first, as BigGAN-PyTorch's ``torch.cat([y, item], 1)``). ``ys`` is (B, chunks - 1, y_dim +
      z_dim / chunks): one row per block, so per-layer indexing is ``ys[:, i]``.
    - BigGAN-deep (``split=False``): ``z0 = z`` unchanged and ``ys[:, i] = cat([z, y])`` for each of
      ``n_blocks`` blocks (z first, as BigGANdeep.py's ``torch.cat([z, y], 1)``; BigGAN-deep's first linear
      layer reads that same vector, ``ys[:, 0]``). ``ys`` is (B, n_blocks, z_dim + y_dim).

    With ``y_dim = 0`` the block consumes nothing and the rows hold the z chunks (or z) alone. The rows of
    ``ys`` are expanded views, not copies, in the BigGAN-deep case. Unlike BigGAN-PyTorch, which silently
    truncates z_dim to a multiple of the number of chunks, an uneven split is an error. No parameters.

    Args:
        z_dim: width of z (BigGAN-128: 120; BigGAN-deep: 128).
        y_dim: width of the shared class embedding y (BigGAN: 128), 0 for none.
        chunks: number of pieces of z when ``split`` (BigGAN-128: 6; 128x128 has 5 blocks + the linear).
        split: True for BigGAN's hierarchical z, False for BigGAN-deep.
        n_blocks: blocks conditioned; defaults to ``chunks - 1`` (and must equal it when ``split``).

    Shape:
        - z: (B, z_dim); y: (B, y_dim).
        - output: ``split``: ((B, z_dim / chunks), (B, chunks - 1, y_dim + z_dim / chunks));
          otherwise ((B, z_dim), (B, n_blocks, z_dim + y_dim)).
    """

    def __init__(self, z_dim: int = 120, y_dim: int = 128, chunks: int = 6, split: bool = True,
                 n_blocks: int | None = None):
        super().__init__()
        if split:
            if chunks < 2 or z_dim % chunks:
                raise ValueError(f"SkipZ: z_dim must split into chunks >= 2 equal pieces; z_dim={z_dim} is "
                                 f"not divisible by chunks={chunks} (BigGAN-128: z_dim 120, 6 chunks of 20)")
            if n_blocks is not None and n_blocks != chunks - 1:
                raise ValueError(f"SkipZ: with split=True there are chunks - 1 = {chunks - 1} blocks, "
                                 f"got n_blocks={n_blocks}")
        n_blocks = chunks - 1 if n_blocks is None else n_blocks
        if n_blocks < 1:
            raise ValueError(f"SkipZ: n_blocks must be >= 1, got {n_blocks}")
        self.z_dim, self.y_dim, self.chunks, self.split, self.n_blocks = z_dim, y_dim, chunks, split, n_blocks
        if y_dim == 0:
            self.consumes = ()

    def forward(self, z: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        dims = self.check(z, "B D", "z", D=self.z_dim)
        if self.y_dim:
            if y is None:
                raise self.fail(f"y (B, {self.y_dim}) is required (y_dim={self.y_dim})", TypeError)
            self.check(y, "B D", "y", B=dims.get("B"), D=self.y_dim)
        elif y is not None:
            raise self.fail("y was given but y_dim=0; set y_dim to its width", TypeError)
        return skip_z(z, y, self.chunks, self.split, self.n_blocks)

    def call_function(self, z: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return skip_z(z, y, chunks=self.chunks, split=self.split, n_blocks=self.n_blocks)

    def out_shape(self, z: Shape, y: Shape | None = None) -> tuple[Shape, Shape]:
        b = z[0]
        if self.split:
            k = self.z_dim // self.chunks
            return (b, k), (b, self.chunks - 1, self.y_dim + k)
        return (b, self.z_dim), (b, self.n_blocks, self.z_dim + self.y_dim)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        chunks = s.N + 1
        kwargs = {"z_dim": chunks * s.D, "y_dim": s.C, "chunks": chunks}
        if s.seed % 2:  # BigGAN-deep
            kwargs.update(split=False, n_blocks=s.N)
        return Example(kwargs, (s.randn(s.B, chunks * s.D),), {"y": s.randn(s.B, s.C)})

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, y_dim={self.y_dim}, chunks={self.chunks}, split={self.split}, "
                f"n_blocks={self.n_blocks}")
