"""SAGAN / BigGAN self-attention over the spatial positions of a feature map."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..norms.spectral import spectral_norm
from ..registry import ATTENTION
from ..shapes import ShapeError, check_shape
from .kernels import ATTENTION_IMPLS, attend

__all__ = ["SelfAttention", "self_attention"]


def self_attention(
    x: Tensor,
    theta_w: Tensor,
    phi_w: Tensor,
    g_w: Tensor,
    o_w: Tensor,
    gamma: Tensor,
    pool: bool = True,
    impl: str = "ref",
    chunk_size: int = 1024,
) -> Tensor:
    """SAGAN self-attention: ``x + gamma · o(softmax(θ(x)ᵀ φ(x)) g(x))``.

    Zhang et al. 2019, "Self-Attention GANs", sec. 3, eq. 1-3 (s_ij = f(x_i)ᵀ g(x_j), a softmax over the
    attended positions i, output o_j = v(Σ_i β_j,i h(x_i)), y = γ o + x), in the layout of BigGAN-PyTorch's
    ``layers.Attention``: theta projects the query positions, phi the key positions (SAGAN's g and f),
    g the values (SAGAN's h), o maps the attended values back to C channels (SAGAN's v). The scores are
    not scaled by 1/sqrt(d), as in both reference implementations.

    Args:
        x: the feature map.
        theta_w: query 1x1 conv weight, (Cq, C, 1, 1) (Cq = C // 8 in SAGAN/BigGAN).
        phi_w: key 1x1 conv weight, (Cq, C, 1, 1).
        g_w: value 1x1 conv weight, (Cv, C, 1, 1) (Cv = C // 2).
        o_w: output 1x1 conv weight, (C, Cv, 1, 1).
        gamma: the learned scalar gain (0-dim).
        pool: 2x2 max-pool keys and values (BigGAN and SAGAN's official code): M = H·W / 4 keys.
        impl: attention formulation, one of ``"ref"``, ``"chunked"``, ``"bmm"``, ``"sdpa"``.
        chunk_size: queries per chunk for ``impl="chunked"``.

    Shape:
        - x: (B, C, H, W); H and W even when ``pool``.
        - output: (B, C, H, W).
    """
    check_shape(x, "B C H W", block="self_attention")
    b, _, h, w = x.shape
    if pool and (h % 2 or w % 2):
        raise ShapeError("self_attention", "x", "(B, C, H, W) with H, W even", tuple(x.shape),
                         "pool=True max-pools keys and values 2x2")
    cq, cv = theta_w.shape[0], g_w.shape[0]
    q = F.conv2d(x, theta_w).view(b, 1, cq, h * w).transpose(-1, -2)  # (B, 1, N, Cq)
    k = F.conv2d(x, phi_w)
    v = F.conv2d(x, g_w)
    if pool:
        k, v = F.max_pool2d(k, 2), F.max_pool2d(v, 2)  # (B, Cq, H/2, W/2), (B, Cv, H/2, W/2)
    k = k.reshape(b, 1, cq, -1).transpose(-1, -2)  # (B, 1, M, Cq)
    v = v.reshape(b, 1, cv, -1).transpose(-1, -2)  # (B, 1, M, Cv)
    attended = attend(q, k, v, scale=1.0, impl=impl, chunk_size=chunk_size)  # (B, 1, N, Cv)
    attended = attended.transpose(-1, -2).reshape(b, cv, h, w)
    return x + gamma * F.conv2d(attended, o_w)


@ATTENTION.register(
    "self_attention",
    paper="Zhang et al. 2019, Self-Attention GANs (SAGAN), sec. 3 eq. 1-3; Brock et al. 2019, BigGAN, "
          "sec. 3 / BigGAN-PyTorch layers.Attention",
)
class SelfAttention(Block):
    """SAGAN/BigGAN self-attention block with a learned residual gain ``gamma`` that starts at 0.

    Four bias-free 1x1 convolutions: theta (queries) and phi (keys) C -> C/8, g (values) C -> C/2 and o
    C/2 -> C, each spectrally normalised by default (SAGAN applies spectral norm in G and D; BigGAN's
    ``Attention`` uses its ``SNConv2d``). ``out = x + gamma · o(attention)``; with ``gamma = 0`` (its initial
    value) the block is the identity. Parameter count: C²/8 + C²/8 + C²/2 + C²/2 + 1 (C divisible by 8; as in
    the references, C // 8 and C // 2 round down otherwise); spectral norm adds only buffers.

    Keys and values are 2x2 max-pooled by default, as in BigGAN-PyTorch and SAGAN's official TensorFlow
    code (``sn_non_local_block_sim``); the SAGAN paper's equations have no pooling (``pool=False``).

    Args:
        in_channels: C, at least 8.
        pool: 2x2 max-pool keys and values (needs even H, W).
        sn: spectral normalisation on the four convolutions.
        sn_eps: epsilon of the power iteration (torch: 1e-12; BigGAN's launch scripts pass 1e-6 / 1e-8).
        sn_iters: power iterations per training forward.
        gamma_init: initial gain (paper: 0, the block starts as the identity).
        chunk_size: queries per chunk for the ``"chunked"`` formulation.
        impl: ``"auto"`` or one of ``impls``: ``"ref"`` (softmax written out, the oracle), ``"chunked"``
            (memory-linear in H·W), ``"bmm"`` (bmm + softmax, BigGAN's form), ``"sdpa"``
            (``F.scaled_dot_product_attention``). ``"auto"`` uses ``default_impl`` for the device.

    Shape:
        - x: (B, C, H, W); H, W even when ``pool``.
        - output: (B, C, H, W).

    Example:
        >>> block = SelfAttention(64, sn=False)
        >>> block(torch.randn(2, 64, 8, 6)).shape
        torch.Size([2, 64, 8, 6])
    """

    impls = ATTENTION_IMPLS
    # CPU, 2 threads (shared, loaded machine), B=4, C=256, pool=True, median ms fwd / fwd+bwd
    # (ref, chunked, bmm, sdpa): 32x32: 147/594, 143/421, 95/268, 103/368; 64x64: 556/2154, 452/1423,
    # 380/1098, 430/1101. bmm was fastest in every forward (a second run agreed); at 64x64 fwd+bwd bmm and
    # sdpa are within noise (a second run: 1385 vs 1051). Without pooling at 64x64, chunked won the forward
    # (710 vs 990 ms). CUDA: SDPA's fused kernels (not measured here: no GPU was available).
    default_impl: ClassVar[dict[str, str]] = {"cpu": "bmm", "cuda": "sdpa"}

    def __init__(
        self,
        in_channels: int,
        pool: bool = True,
        sn: bool = True,
        sn_eps: float = 1e-12,
        sn_iters: int = 1,
        gamma_init: float = 0.0,
        chunk_size: int = 1024,
        impl: str = "auto",
    ):
        super().__init__()
        if in_channels < 8:
            raise ValueError(f"SelfAttention: in_channels must be >= 8 (queries use C // 8), "
                             f"got {in_channels}")
        if chunk_size < 1:
            raise ValueError(f"SelfAttention: chunk_size must be >= 1, got {chunk_size}")
        self.in_channels, self.pool, self.sn, self.chunk_size = in_channels, pool, sn, chunk_size
        c = in_channels
        self.theta = nn.Conv2d(c, c // 8, 1, bias=False)
        self.phi = nn.Conv2d(c, c // 8, 1, bias=False)
        self.g = nn.Conv2d(c, c // 2, 1, bias=False)
        self.o = nn.Conv2d(c // 2, c, 1, bias=False)
        if sn:
            for conv in (self.theta, self.phi, self.g, self.o):
                spectral_norm(conv, n_power_iterations=sn_iters, eps=sn_eps)
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))
        self._init_impl(impl)

    def _weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # Under spectral norm each access runs the power iteration (in training), so read each weight once.
        return self.theta.weight, self.phi.weight, self.g.weight, self.o.weight

    def _check(self, x: Tensor) -> None:
        dims = self.check(x, "B C H W", C=self.in_channels)
        if self.pool and dims and (dims["H"] % 2 or dims["W"] % 2):
            raise ShapeError(type(self).__name__, "x", f"(B, C={self.in_channels}, H, W) with H, W even",
                             tuple(x.shape), "pool=True max-pools keys and values 2x2; use even sizes "
                             "or pool=False")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        weights = self._weights()
        return self.dispatch(x.device, x.dtype, lambda impl: self_attention(
            x, *weights, self.gamma, pool=self.pool, impl=impl, chunk_size=self.chunk_size))

    def call_function(self, x: Tensor) -> Tensor:
        self._check(x)
        return self_attention(x, *self._weights(), self.gamma, pool=self.pool, impl="ref")

    def attention(self, x: Tensor) -> Tensor:
        """The attention weights β (softmax over the attended positions) for every query position of x.

        Shape:
            - x: (B, C, H, W).
            - output: (B, H·W, M): row n (query position n = i·W + j) sums to 1 over the M = H·W / 4 pooled key
              positions (H·W without ``pool``), laid out as (H/2, W/2).
        """
        self._check(x)
        theta_w, phi_w, _, _ = self._weights()
        q = F.conv2d(x, theta_w).flatten(2).transpose(1, 2)  # (B, N, Cq)
        k = F.conv2d(x, phi_w)
        if self.pool:
            k = F.max_pool2d(k, 2)
        return torch.softmax(q @ k.flatten(2), dim=-1)  # (B, N, M)

    def out_shape(self, x: Shape) -> Shape:
        return tuple(x)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        # gamma != 0 so the generic ref == fast and gradient tests see the attention term. Spectral norm is
        # off here: in training mode every call advances its power iteration, so the generic tests' repeated
        # calls would compare different weights; tests/lib/test_attention.py covers sn=True (in eval mode).
        pool = s.seed % 2 == 0
        h, w = (s.even(s.H), s.even(s.W)) if pool else (s.H, s.W)
        return Example({"in_channels": 8 * s.C, "pool": pool, "sn": False, "gamma_init": 0.5},
                       (s.randn(s.B, 8 * s.C, h, w),))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, pool={self.pool}, sn={self.sn}, impl={self.impl}"
