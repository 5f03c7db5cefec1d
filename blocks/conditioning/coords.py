"""COCO-GAN's coordinate conditioning: patch coordinates into G, coordinate projection and regression in D.

COCO-GAN (Lin et al. 2019, "COCO-GAN: Generation by Parts via Conditional Coordinating", sec. 3 and
hubert0527/COCO-GAN) generates an image one micro patch at a time. Its coordinate system, as the reference
code has it (euclidean case):

- A coordinate is a vector (B, 2) in [-1, 1]: ``coords[:, 0]`` is the patch's position along the image
  height (rows; the code calls it x, its images are NHWC and ``x`` indexes dim 1), ``coords[:, 1]`` along
  the width. A grid of n patches along an axis has centres ``-1 + 2i / (n - 1)``, i = 0..n-1
  (``euclidean_coord_int_full_to_float_micro``); :func:`patch_grid_coords` builds the full-image grid.
- Patches are ordered column-major -- the row index runs fastest -- both in ``generate_full_image`` and
  in the micro-patches-of-a-macro-patch layout (``idx = yy · n_rows + xx``); :func:`assemble_patches`
  puts such a list back into an image (``concat_micro_patches``).
- G's input is ``cat([z, coords])`` (z first); that same vector is also the conditioning of every one of
  G's conditional batch norms (``coord_conditioning`` builds it).
- D sees a macro patch and its coordinate. Its output is ``linear(h) + <W_c · coords + b_c, h>``, a
  projection term with a spectrally normalised linear embedding of the coordinate
  (``coord_projection_head``), and an auxiliary head regresses the coordinate from D's pooled features
  (``coord_predictor``: SN-linear -> BN -> lReLU(0.2) -> SN-linear -> tanh), trained with an MSE
  "spatial consistency" loss. COCO-GAN does not feed D coordinate maps (no CoordConv channels).

The cylindrical coordinate system of the panorama experiments uses 3 numbers (height, cos θ, sin θ):
set ``coords_dim=3``; the blocks do not depend on the meaning of the numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..norms.spectral import spectral_norm
from ..registry import CONDITIONING
from .heads import projection_logits

__all__ = [
    "CoordConditioning", "CoordPredictor", "CoordProjectionHead", "assemble_patches", "coord_concat",
    "patch_grid_coords",
]

_PAPER = "Lin et al. 2019, COCO-GAN: Generation by Parts via Conditional Coordinating, sec. 3"


def patch_grid_coords(n_rows: int, n_cols: int, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> Tensor:
    """Coordinates of every patch of an n_rows x n_cols grid, in COCO-GAN's column-major patch order.

    Row i, column j has coordinate ``(-1 + 2i / (n_rows - 1), -1 + 2j / (n_cols - 1))`` and index
    ``j · n_rows + i`` (COCO-GAN's ``generate_full_image``). Non-square grids are fine.

    Shape:
        - output: (n_rows · n_cols, 2).
    """
    if n_rows < 2 or n_cols < 2:
        raise ValueError(f"patch_grid_coords: need at least 2 patches per axis (the positions are "
                         f"-1 + 2i / (n - 1)), got {n_rows} x {n_cols}")
    rows = torch.linspace(-1, 1, n_rows, dtype=dtype, device=device)
    cols = torch.linspace(-1, 1, n_cols, dtype=dtype, device=device)
    r, c = torch.meshgrid(rows, cols, indexing="ij")  # (n_rows, n_cols)
    return torch.stack([r.T.reshape(-1), c.T.reshape(-1)], dim=1)  # column-major: the row index runs fastest


def assemble_patches(patches: Tensor, n_rows: int, n_cols: int) -> Tensor:
    """Put patches listed in COCO-GAN's column-major order back into one image per sample.

    Shape:
        - patches: (B, n_rows · n_cols, C, h, w); patch ``j · n_rows + i`` goes to row i, column j.
        - output: (B, C, n_rows · h, n_cols · w).
    """
    b, p, c, h, w = patches.shape
    if p != n_rows * n_cols:
        raise ValueError(f"assemble_patches: expected {n_rows} x {n_cols} = {n_rows * n_cols} patches per "
                         f"sample, got {p}")
    grid = patches.view(b, n_cols, n_rows, c, h, w)  # (B, col, row, C, h, w)
    return grid.permute(0, 3, 2, 4, 1, 5).reshape(b, c, n_rows * h, n_cols * w)  # (B, C, row·h, col·w)


def coord_concat(z: Tensor, coords: Tensor) -> Tensor:
    """COCO-GAN's generator input ``cat([z, coords])``.

    Shape:
        - z: (B, D); coords: (B, Dc).
        - output: (B, D + Dc).
    """
    return torch.cat([z, coords.to(z.dtype)], dim=1)


@CONDITIONING.register("coord_conditioning", consumes=("coords",), paper=_PAPER + " (generator input)")
class CoordConditioning(Block):
    """COCO-GAN generator conditioning: the latent joined to the patch's coordinate, ``cat([z, coords])``.

    COCO-GAN's G (``GeneratorBuilder.forward``) feeds this vector to its first (SN) linear layer and uses
    it as the conditioning of every conditional batch norm. Coordinates are not range-checked: COCO-GAN's
    extrapolation experiments use positions beyond [-1, 1]. See the module docstring for the coordinate
    system. No parameters.

    Args:
        coords_dim: width of a coordinate (2 euclidean, 3 cylindrical).

    Shape:
        - z: (B, D); coords: (B, coords_dim).
        - output: (B, D + coords_dim).
    """

    def __init__(self, coords_dim: int = 2):
        super().__init__()
        self.coords_dim = coords_dim

    def forward(self, z: Tensor, coords: Tensor) -> Tensor:
        dims = self.check(z, "B D", "z")
        self.check(coords, "B D", "coords", B=dims.get("B"), D=self.coords_dim)
        if not coords.is_floating_point():
            raise self.fail(f"coords should be floating point, got {coords.dtype}", TypeError)
        return coord_concat(z, coords)

    def call_function(self, z: Tensor, coords: Tensor) -> Tensor:
        return coord_concat(z, coords)

    def out_shape(self, z: Shape, coords: Shape | None = None) -> Shape:
        return (z[0], z[1] + self.coords_dim)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"coords_dim": s.N}, (s.randn(s.B, s.D),), {"coords": s.rand(s.B, s.N) * 2 - 1})

    def extra_repr(self) -> str:
        return f"coords_dim={self.coords_dim}"


@CONDITIONING.register("coord_projection_head", consumes=("coords",),
                       paper=_PAPER + " (discriminator); Miyato & Koyama 2018, projection discriminator")
class CoordProjectionHead(Block):
    """COCO-GAN's discriminator output: ``linear(h) + <coord_embed(coords), h>``.

    As ``DiscriminatorBuilder.forward``: after global sum pooling, an SN-linear C -> 1 with bias gives the
    unconditional logit and an SN-linear coords_dim -> C with bias embeds the macro patch's coordinate for
    the projection term (a linear embedding of a continuous condition, Miyato & Koyama 2018 sec. 3).

    Args:
        in_features: C, the pooled feature width.
        coords_dim: width of a coordinate (2 euclidean, 3 cylindrical).
        sn: spectral normalisation on both linear maps (COCO-GAN: on).
        sn_eps: power-iteration epsilon.
        sn_iters: power iterations per training forward.

    Shape:
        - h: (B, C); coords: (B, coords_dim).
        - output: (B, 1).
    """

    def __init__(self, in_features: int, coords_dim: int = 2, sn: bool = True, sn_eps: float = 1e-12,
                 sn_iters: int = 1):
        super().__init__()
        self.in_features, self.coords_dim, self.sn = in_features, coords_dim, sn
        self.linear = nn.Linear(in_features, 1)
        self.coord_embed = nn.Linear(coords_dim, in_features)
        if sn:
            spectral_norm(self.linear, n_power_iterations=sn_iters, eps=sn_eps)
            spectral_norm(self.coord_embed, n_power_iterations=sn_iters, eps=sn_eps)

    def forward(self, h: Tensor, coords: Tensor) -> Tensor:
        dims = self.check(h, "B D", "h", D=self.in_features)
        self.check(coords, "B D", "coords", B=dims.get("B"), D=self.coords_dim)
        embedded = F.linear(coords.to(h.dtype), self.coord_embed.weight, self.coord_embed.bias)  # (B, C)
        return projection_logits(h, self.linear.weight, self.linear.bias, embedded)

    def out_shape(self, h: Shape, coords: Shape | None = None) -> Shape:
        return (h[0], 1)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        # Spectral norm off for the generic tests (each training call advances the power iteration).
        return Example({"in_features": s.D, "coords_dim": s.N, "sn": False}, (s.randn(s.B, s.D),),
                       {"coords": s.rand(s.B, s.N) * 2 - 1})

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, coords_dim={self.coords_dim}, sn={self.sn}"


@CONDITIONING.register("coord_predictor", batch_coupled=True,
                       paper=_PAPER + " (spatial consistency loss, auxiliary coordinate regression)")
class CoordPredictor(Block):
    """COCO-GAN's spatial prediction head: regress the macro patch's coordinate from D's pooled features.

    As ``SpatialPredictorBuilder.forward``: SN-linear C -> hidden (aux_dim 128, with bias), batch norm
    (affine, eps 1e-5, momentum 0.1 = the reference's decay 0.9), leaky ReLU 0.2, SN-linear hidden ->
    coords_dim (with bias), tanh. The objective is the MSE to the true coordinate (weight 100 in the
    reference configs). Batch-coupled through its batch norm.

    Args:
        in_features: C, the pooled feature width.
        coords_dim: width of a coordinate (2 euclidean, 3 cylindrical).
        hidden: hidden width (COCO-GAN ``aux_dim``: 128).
        negative_slope: leaky ReLU slope (0.2).
        sn: spectral normalisation on both linear layers (COCO-GAN: on).
        sn_eps: power-iteration epsilon.
        sn_iters: power iterations per training forward.

    Shape:
        - h: (B, C).
        - output: (B, coords_dim), in (-1, 1).
    """

    def __init__(self, in_features: int, coords_dim: int = 2, hidden: int = 128, negative_slope: float = 0.2,
                 sn: bool = True, sn_eps: float = 1e-12, sn_iters: int = 1):
        super().__init__()
        self.in_features, self.coords_dim, self.sn = in_features, coords_dim, sn
        self.negative_slope = negative_slope
        self.fc1 = nn.Linear(in_features, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, coords_dim)
        if sn:
            spectral_norm(self.fc1, n_power_iterations=sn_iters, eps=sn_eps)
            spectral_norm(self.fc2, n_power_iterations=sn_iters, eps=sn_eps)

    def forward(self, h: Tensor) -> Tensor:
        self.check(h, "B D", "h", D=self.in_features)
        return torch.tanh(self.fc2(F.leaky_relu(self.bn(self.fc1(h)), self.negative_slope)))

    def out_shape(self, h: Shape) -> Shape:
        return (h[0], self.coords_dim)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        # Spectral norm stays on: no generic test calls one instance twice (it is batch-coupled).
        return Example({"in_features": s.D, "coords_dim": s.N, "hidden": 8}, (s.randn(s.B, s.D),))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, coords_dim={self.coords_dim}, sn={self.sn}"
