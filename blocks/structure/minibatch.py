"""Minibatch statistics for discriminators: minibatch standard deviation and minibatch discrimination."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import STRUCTURE

__all__ = [
    "MinibatchDiscrimination", "MinibatchStdDev", "minibatch_discrimination", "minibatch_stddev",
]


# improved-gan's MinibatchLayer initialises θ ~ N(0, 0.05²).
_INIT_STD = 0.05


def _group_size(batch: int, group_size: int | None) -> int:
    return batch if group_size is None else min(group_size, batch)


def minibatch_stddev(
    x: Tensor, group_size: int | None = 4, num_channels: int = 1, eps: float = 1e-8, impl: str = "ref"
) -> Tensor:
    """Append the average standard deviation of each sample's group as ``num_channels`` feature maps.

    Karras et al. 2018, "Progressive Growing of GANs", sec. 3; the formulation of NVlabs' StyleGAN2
    ``MinibatchStdLayer``: the batch is split into ``n = B / G`` groups of ``G = min(group_size, B)``
    samples, where sample ``i`` belongs to group ``i mod n`` (the reshape ``(G, n, ...)``); the channels into
    ``num_channels`` slices. Per group and slice: the standard deviation over the group's samples (biased,
    ``sqrt(var + eps)``) at every channel and pixel, averaged over the slice's channels and the pixels.

    Args:
        x: features (B, C, H, W); B must be divisible by ``min(group_size, B)``, C by ``num_channels``.
        group_size: samples per group, clamped to the batch (None: the whole batch).
        num_channels: appended feature maps, one per channel slice.
        eps: added to the variance under the square root (NVlabs: 1e-8).
        impl: ``"ref"`` (the NVlabs formulation) or ``"fast"`` (sums over a (G, -1) view; faster on CPU).

    Returns:
        (B, C + num_channels, H, W): x followed by the statistics, constant over each map.
    """
    B, C, H, W = x.shape
    G = _group_size(B, group_size)
    F = num_channels
    n = B // G
    if impl == "ref":
        y = x.reshape(G, n, F, C // F, H, W)  # (G, n, F, c, H, W)
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)  # (n, F, c, H, W): variance over the group
        y = (y + eps).sqrt().mean(dim=[2, 3, 4])  # (n, F)
        y = y.reshape(n, F, 1, 1).repeat(G, 1, H, W)  # (B, F, H, W): sample g*n + m gets group m
        return torch.cat([x, y], dim=1)
    if impl == "fast":
        # Plain sums over a (G, -1) view instead of the 6-D form's batch-dim means (torch.var is ~80x
        # slower still on this CPU build). The group mean stays in the graph (not detached), so double
        # backward (R1, gradient penalty) is exact.
        y = x.reshape(G, -1)  # (G, n*C*H*W)
        d = y - y.sum(dim=0) / G
        std = (d.square().sum(dim=0) / G + eps).sqrt()  # (n*C*H*W,)
        s = std.reshape(n, F, -1).mean(dim=2)  # (n, F)
        s = s.reshape(1, n, F, 1, 1).expand(G, n, F, H, W).reshape(B, F, H, W)
        return torch.cat([x, s], dim=1)
    raise ValueError(f"minibatch_stddev: impl must be 'ref' or 'fast', got {impl!r}")


@STRUCTURE.register(
    "minibatch_stddev",
    paper="Karras et al. 2018, Progressive Growing of GANs, sec. 3 (minibatch standard deviation); "
          "Karras et al. 2020, StyleGAN2 (NVlabs MinibatchStdLayer, num_channels)",
    batch_coupled=True,
)
class MinibatchStdDev(Block):
    """Minibatch standard deviation layer (ProGAN, StyleGAN, StyleGAN2 discriminator epilogue).

    Appends, to every sample, the average over channels and pixels of the per-feature standard deviation
    across its group of ``group_size`` samples; see :func:`minibatch_stddev` for the grouping (sample i is
    in group ``i mod (B / G)``, exactly as NVlabs' reshape). Defaults as ProGAN and StyleGAN2:
    group_size=4, num_channels=1, eps=1e-8 under the square root.

    Args:
        group_size: samples per group, clamped to the batch; None uses the whole batch.
        num_channels: number of statistics maps appended (channel slices).
        impl: ``"auto"``, ``"ref"`` or ``"fast"``.

    Raises:
        ValueError: the batch is not divisible by ``min(group_size, B)``, or C by ``num_channels``.

    Shape:
        - x: (B, C, H, W)
        - output: (B, C + num_channels, H, W)
    """

    impls: ClassVar[tuple[str, ...]] = ("ref", "fast")
    # CPU (2 cores, torch 2.14.1), median of 7, forward / forward+backward, ref -> fast:
    #   (32, 512, 4, 4) 283 -> 267 us / 1839 -> 1519 us; (64, 512, 4, 4) 536 -> 514 us / 4387 -> 3679 us;
    #   (16, 256, 8, 8) 285 -> 267 us / 1424 -> 939 us. CUDA: not measured, so NVlabs' own form.
    default_impl: ClassVar[dict[str, str]] = {"cpu": "fast", "cuda": "ref"}

    def __init__(self, group_size: int | None = 4, num_channels: int = 1, impl: str = "auto"):
        super().__init__()
        if group_size is not None and group_size < 1:
            raise ValueError(f"MinibatchStdDev: group_size must be >= 1 or None, got {group_size}")
        if num_channels < 1:
            raise ValueError(f"MinibatchStdDev: num_channels must be >= 1, got {num_channels}")
        self.group_size = group_size
        self.num_channels = num_channels
        self._init_impl(impl)

    def _check(self, x: Tensor) -> None:
        dims = self.check(x, "B C H W")
        if not dims:  # checks switched off
            return
        G = _group_size(dims["B"], self.group_size)
        if dims["B"] % G:
            raise self.fail(f"batch size {dims['B']} is not divisible by the group size {G} "
                            f"(group_size={self.group_size}, clamped to the batch); use a multiple of {G}")
        if dims["C"] % self.num_channels:
            raise self.fail(f"channels C={dims['C']} are not divisible by num_channels={self.num_channels}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.dispatch(x.device, x.dtype, lambda impl: minibatch_stddev(
            x, self.group_size, self.num_channels, impl=impl))

    def call_function(self, x: Tensor) -> Tensor:
        return minibatch_stddev(x, self.group_size, self.num_channels, impl="ref")

    def out_shape(self, x: Shape) -> Shape:
        B, C, H, W = x
        return (B, C + self.num_channels, H, W)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}, impl={self.impl}"


def minibatch_discrimination(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Append minibatch-discrimination features: ``o_b(x_i) = Σ_{j≠i} exp(-‖M_i,b - M_j,b‖₁) (+ bias_b)``.

    Salimans et al. 2016, "Improved Techniques for Training GANs", sec. 3.2, with ``M = x·T``. Following the
    authors' code (improved-gan ``MinibatchLayer``, which adds 1e6 to the diagonal before the exp), a sample
    is not compared with itself: j runs over the other samples only.

    Args:
        x: features (B, D).
        weight: the tensor T, (D, K, Dk): K kernels of dimension Dk.
        bias: per-kernel bias (K,), or None.

    Returns:
        (B, D + K): x followed by the K closeness features.
    """
    m = torch.einsum("bd,dkc->bkc", x, weight)  # (B, K, Dk)
    dist = (m[:, None] - m[None]).abs().sum(dim=3)  # (B, B, K): L1 distance of every pair, per kernel
    self_pair = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)[:, :, None]
    o = torch.exp(-dist).masked_fill(self_pair, 0.0).sum(dim=1)  # (B, K)
    if bias is not None:
        o = o + bias
    return torch.cat([x, o], dim=1)


@STRUCTURE.register(
    "minibatch_discrimination",
    paper="Salimans et al. 2016, Improved Techniques for Training GANs, sec. 3.2 (minibatch discrimination)",
    batch_coupled=True,
)
class MinibatchDiscrimination(Block):
    """Minibatch discrimination: features of how close each sample is to the others in the batch.

    Salimans et al. 2016, sec. 3.2. Defaults are those of the authors' code (improved-gan, ``nn.py``
    ``MinibatchLayer``, used with ``num_kernels=100`` and ``dim_per_kernel=5``): T is weight-normalised,
    ``T = θ · exp(log_scale) / ‖θ‖`` with the norm over the input dimension (θ ~ N(0, 0.05²), log_scale 0),
    a per-kernel bias initialised to -1 is added, and the sum over j excludes i. ``weight_norm=False,
    bias=False`` gives the paper's plain T (same N(0, 0.05²) init).

    Deviation: the authors' data-dependent initialisation pass (which rescales log_scale and sets the bias
    from a first batch) is not run; the parameters start at the static values above.

    Args:
        in_features: D, the size of each sample's feature vector.
        n_kernels: K, the number of kernels (output features added).
        kernel_dim: Dk, the dimension of each kernel's projection.
        weight_norm: weight-normalise T as the reference code does.
        bias: add the reference code's per-kernel bias.

    Shape:
        - x: (B, D) with D = in_features
        - output: (B, D + n_kernels)
    """

    def __init__(self, in_features: int, n_kernels: int = 100, kernel_dim: int = 5, weight_norm: bool = True,
                 bias: bool = True):
        super().__init__()
        self.in_features, self.n_kernels, self.kernel_dim = in_features, n_kernels, kernel_dim
        self.weight_norm = weight_norm
        self.weight = nn.Parameter(torch.randn(in_features, n_kernels, kernel_dim) * _INIT_STD)
        self.log_scale = nn.Parameter(torch.zeros(n_kernels, kernel_dim)) if weight_norm else None
        self.bias = nn.Parameter(torch.full((n_kernels,), -1.0)) if bias else None

    def effective_weight(self) -> Tensor:
        """T as used in the forward pass: (D, K, Dk)."""
        if self.log_scale is None:
            return self.weight
        norm = self.weight.square().sum(dim=0).sqrt()  # (K, Dk)
        return self.weight * (self.log_scale.exp() / norm)

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B D", D=self.in_features)
        return minibatch_discrimination(x, self.effective_weight(), self.bias)

    def call_function(self, x: Tensor) -> Tensor:
        return minibatch_discrimination(x, self.effective_weight(), self.bias)

    def out_shape(self, x: Shape) -> Shape:
        return (x[0], x[1] + self.n_kernels)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        # Few, wide kernels keep the pairwise distances moderate, so exp(-dist) is not all ~0.
        return Example({"in_features": s.D, "n_kernels": s.N, "kernel_dim": 2}, (s.randn(s.B, s.D),))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, n_kernels={self.n_kernels}, kernel_dim={self.kernel_dim}, "
                f"weight_norm={self.weight_norm}, bias={self.bias is not None}")

