"""SPADE: spatially-adaptive normalisation conditioned on a semantic label map (Park et al. 2019)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import NORMS

__all__ = ["SPADE", "spade"]


def _resize_nearest(seg: Tensor, size: tuple[int, int]) -> Tensor:
    return seg if tuple(seg.shape[2:]) == size else F.interpolate(seg, size=size, mode="nearest")


def spade(
    normalized: Tensor,
    seg: Tensor,
    shared_weight: Tensor,
    shared_bias: Tensor | None,
    gamma_weight: Tensor,
    gamma_bias: Tensor | None,
    beta_weight: Tensor,
    beta_bias: Tensor | None,
) -> Tensor:
    """Modulate already-normalised features with a scale and shift predicted from a label map.

    Park et al. 2019, "Semantic Image Synthesis with Spatially-Adaptive Normalization", eq. 1 and
    fig. 2, as NVlabs' ``SPADE.forward``: the map is resized (nearest) to the features' size, a shared
    conv + ReLU embeds it, two convs predict γ and β, and ``out = normalized · (1 + γ) + β``. Kernels are
    square and padded by k // 2 with zeros. This is the reference formulation (two separate convs).

    Args:
        normalized: parameter-free-normalised features (B, C, H, W).
        seg: label map (B, S, H', W'), usually one-hot.
        shared_weight, shared_bias: the shared conv (hidden, S, k, k), (hidden,).
        gamma_weight, gamma_bias: the γ conv (C, hidden, k, k), (C,).
        beta_weight, beta_bias: the β conv (C, hidden, k, k), (C,).

    Shape:
        - normalized: (B, C, H, W); seg: (B, S, H', W')
        - output: (B, C, H, W)
    """
    seg = _resize_nearest(seg, tuple(normalized.shape[2:]))  # (B, S, H, W)
    actv = F.relu(F.conv2d(seg, shared_weight, shared_bias, padding=shared_weight.shape[-1] // 2))
    gamma = F.conv2d(actv, gamma_weight, gamma_bias, padding=gamma_weight.shape[-1] // 2)  # (B, C, H, W)
    beta = F.conv2d(actv, beta_weight, beta_bias, padding=beta_weight.shape[-1] // 2)  # (B, C, H, W)
    return normalized * (1 + gamma) + beta


@NORMS.register("spade", paper="Park et al. 2019, Semantic Image Synthesis with Spatially-Adaptive "
                "Normalization (SPADE), sec. 3 eq. 1, fig. 2; NVlabs/SPADE normalization.py",
                consumes=("seg",), batch_coupled=True)
class SPADE(Block):
    """Spatially-adaptive normalisation: a parameter-free norm, then a per-pixel γ and β from the label map.

    Layout and defaults are NVlabs' ``SPADE`` ("spadebatch3x3"/"spadesyncbatch3x3"): ``mlp_shared``
    = conv(seg_channels -> 128, 3x3) + ReLU, ``mlp_gamma`` and ``mlp_beta`` = conv(128 -> C, 3x3), all
    with biases, so the parameter count is 9·128·S + 128 + 2·(9·128·C + C). The parameter-free norm is
    ``nn.BatchNorm2d(C, affine=False)`` ("batch", the default; the original's SyncBatchNorm computes the
    same statistics over all devices) or ``nn.InstanceNorm2d(C, affine=False)`` ("instance", which makes
    the block independent across the batch although the registry lists it as batch-coupled).

    Args:
        in_channels: channels C of x.
        seg_channels: channels S of the label map.
        hidden_channels: width of the shared embedding (NVlabs hard-codes 128).
        kernel_size: square kernel of the three convs (NVlabs: 3, from "3x3" in the config).
        norm: the parameter-free norm, ``"batch"`` or ``"instance"``.
        impl: ``"ref"`` (separate γ and β convs), ``"fast"`` (γ and β from one conv with the two weights
            concatenated) or ``"auto"``.

    Shape:
        - x: (B, C, H, W)
        - seg: (B, S, H', W') -- resized to (H, W) with nearest neighbour.
        - output: (B, C, H, W)
    """

    impls = ("ref", "fast")
    # CPU, 2 threads (torch 2.14.1): "fast" measured no faster forward (0.9-1.2x) and slower forward +
    # backward (0.66-0.91x: the weight concatenation and its backward cost more than one conv launch
    # saves); CUDA not measured yet, so "ref" there too.
    default_impl: ClassVar[dict[str, str]] = {"cpu": "ref", "cuda": "ref"}
    norms = ("batch", "instance")

    def __init__(
        self,
        in_channels: int,
        seg_channels: int,
        hidden_channels: int = 128,
        kernel_size: int = 3,
        norm: str = "batch",
        impl: str = "auto",
    ):
        super().__init__()
        if min(in_channels, seg_channels, hidden_channels) < 1:
            raise self.fail(f"in_channels, seg_channels and hidden_channels must be >= 1, got "
                            f"{in_channels}, {seg_channels}, {hidden_channels}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise self.fail(f"kernel_size must be odd (k // 2 padding keeps the size), got {kernel_size}")
        if norm not in self.norms:
            raise self.fail(f"norm must be one of {self.norms}, got {norm!r}")
        self.in_channels, self.seg_channels, self.hidden_channels = in_channels, seg_channels, hidden_channels
        self.kernel_size, self.norm = kernel_size, norm
        if norm == "batch":
            self.param_free_norm: nn.Module = nn.BatchNorm2d(in_channels, affine=False)
        else:
            self.param_free_norm = nn.InstanceNorm2d(in_channels, affine=False)
        pad = kernel_size // 2
        self.mlp_shared = nn.Sequential(nn.Conv2d(seg_channels, hidden_channels, kernel_size, padding=pad),
                                        nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden_channels, in_channels, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden_channels, in_channels, kernel_size, padding=pad)
        self._init_impl(impl)

    def _check(self, x: Tensor, seg: Tensor) -> None:
        dims = self.check(x, "B C H W", C=self.in_channels)
        self.check(seg, "B C H W", "seg", B=dims.get("B"), C=self.seg_channels)
        if not seg.is_floating_point():
            raise self.fail(f"seg should be a float (e.g. one-hot) map, got dtype {seg.dtype}", TypeError)
        if not dims:
            return
        if self.norm == "batch" and self.training and x.numel() == dims["C"]:
            raise self.fail(f"batch norm needs more than one value per channel in training, got x of shape "
                            f"{tuple(x.shape)}")
        if self.norm == "instance" and dims["H"] * dims["W"] == 1:
            raise self.fail(f"instance norm needs more than one spatial position, got x of shape "
                            f"{tuple(x.shape)}")

    def _weights(self) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None, Tensor, Tensor | None]:
        shared = self.mlp_shared[0]
        return (shared.weight, shared.bias, self.mlp_gamma.weight, self.mlp_gamma.bias,
                self.mlp_beta.weight, self.mlp_beta.bias)

    def _fast(self, normalized: Tensor, seg: Tensor) -> Tensor:
        seg = _resize_nearest(seg, tuple(normalized.shape[2:]))  # (B, S, H, W)
        actv = self.mlp_shared(seg)  # (B, hidden, H, W)
        weight = torch.cat([self.mlp_gamma.weight, self.mlp_beta.weight])  # (2C, hidden, k, k)
        bias = torch.cat([self.mlp_gamma.bias, self.mlp_beta.bias])  # (2C,)
        gamma, beta = F.conv2d(actv, weight, bias, padding=self.kernel_size // 2).chunk(2, dim=1)
        return torch.addcmul(normalized + beta, normalized, gamma)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        self._check(x, seg)
        normalized = self.param_free_norm(x)  # (B, C, H, W)

        def run(impl: str) -> Tensor:
            if impl == "fast":
                return self._fast(normalized, seg)
            return spade(normalized, seg, *self._weights())

        return self.dispatch(x.device, x.dtype, run)

    def call_function(self, x: Tensor, seg: Tensor) -> Tensor:
        self._check(x, seg)
        return spade(self.param_free_norm(x), seg, *self._weights())

    def out_shape(self, x: Shape, seg: Shape) -> Shape:
        return tuple(x)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        seg = F.one_hot(s.randint(s.D, s.B, s.H, s.W), s.D).permute(0, 3, 1, 2).to(s.dtype)  # (B, D, H, W)
        return Example({"in_channels": s.C, "seg_channels": s.D, "hidden_channels": 8},
                       (s.randn(s.B, s.C, s.H, s.W),), {"seg": seg})

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, seg_channels={self.seg_channels}, hidden={self.hidden_channels}, "
                f"kernel_size={self.kernel_size}, norm={self.norm!r}")
