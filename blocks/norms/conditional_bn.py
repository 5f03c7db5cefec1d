"""Class-conditional batch normalisation (SN-GAN's per-class affine, BigGAN's linear-in-y affine)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import NORMS
from .spectral import spectral_norm

__all__ = ["ConditionalBatchNorm", "conditional_batch_norm"]


def _per_channel(t: Tensor, ndim: int) -> Tensor:
    """(B, C) -> (B, C, 1, ...) broadcastable against an ``ndim``-dim (B, C, ...) tensor."""
    return t.view(*t.shape, *([1] * (ndim - 2)))


def conditional_batch_norm(
    x: Tensor,
    gain: Tensor,
    bias: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch-normalise ``x`` without affine, then scale and shift each sample by its own gain and bias.

    ``out = gain_b · (x - μ) / sqrt(σ² + eps) + bias_b`` (de Vries et al. 2017; Miyato & Koyama 2018,
    sec. 3; BigGAN's ``ccbn``), μ and the biased σ² per channel over (B, H, W) in training -- which also
    moves the running averages by ``momentum``, with the unbiased variance, as ``F.batch_norm`` does --
    and the running averages in eval mode. This is the reference formulation.

    Args:
        x: features (B, C, ...).
        gain: per-sample, per-channel scale (B, C).
        bias: per-sample, per-channel shift (B, C).
        running_mean: running mean (C,), updated in place in training; None to keep none.
        running_var: running variance (C,), likewise.
        training: normalise with batch statistics (and update the running ones).
        momentum: running-average factor.
        eps: added to the variance.

    Shape:
        - x: (B, C, ...); gain, bias: (B, C)
        - output: same as x.
    """
    normed = F.batch_norm(x, running_mean, running_var, None, None, training, momentum, eps)
    return normed * _per_channel(gain, x.dim()) + _per_channel(bias, x.dim())


def _moments_var_mean(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance over (B, ...) with one ``torch.var_mean``."""
    var, mean = torch.var_mean(x, dim=[0, *range(2, x.dim())], correction=0)  # (C,) each
    return mean, var


def _moments_sums(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance over (B, ...) from per-(sample, channel) means of x and x² over
    the contiguous trailing dims, combined over the batch as ``E[x²] - E[x]²``.

    On CPU this avoids ``torch.var_mean``, which is pathologically slow there (measured (16, 384, 32, 32)
    float32, 2 threads, ms: var_mean over (0, 2, 3) 17.5, over a (B, C, H·W) view 17.9; a mean over
    (2, 3) 0.23). The price is conditioning: the variance carries a relative error of about
    1e-7 · (1 + μ²/σ²) in float32 (1e-3 at |μ| = 100σ, where the two-pass reference is exact to
    rounding); half-precision inputs are reduced in float32.
    """
    inner = tuple(range(2, x.dim()))
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    m, sq = (xf.mean(inner), xf.square().mean(inner)) if inner else (xf, xf.square())  # (B, C) each
    mean = m.mean(0)  # (C,)
    var = (sq.mean(0) - mean.square()).clamp_min(0)  # (C,)
    return mean.to(x.dtype), var.to(x.dtype)


def _conditional_batch_norm_fused(
    x: Tensor, gain: Tensor, bias: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
    training: bool, momentum: float, eps: float,
    moments: Callable[[Tensor], tuple[Tensor, Tensor]] = _moments_var_mean,
) -> Tensor:
    """:func:`conditional_batch_norm` with normalisation and affine folded into one multiply-add on x:
    ``x · s + t`` with ``s = gain / sqrt(σ² + eps)``, ``t = bias - μ·s`` (BigGAN-PyTorch's ``fused_bn``);
    ``moments`` computes the batch statistics."""
    if training or running_mean is None:
        mean, var = moments(x)  # (C,) each
        if training and running_mean is not None:
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                running_mean.lerp_(mean.detach().to(running_mean.dtype), momentum)
                unbiased = var.detach().to(running_var.dtype) * (n / max(n - 1, 1))
                running_var.lerp_(unbiased, momentum)
    else:
        mean, var = running_mean, running_var
    scale = gain * torch.rsqrt(var + eps)  # (B, C)
    shift = bias - mean * scale  # (B, C)
    return torch.addcmul(_per_channel(shift, x.dim()), x, _per_channel(scale, x.dim()))


def _inner_sums(g: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """Σ g and Σ g·x over the trailing dims, per (sample, channel): (B, C) each. The dot products run as
    one batched matmul when both are contiguous (no g·x temporary)."""
    B, C = x.shape[:2]
    if x.dim() == 2:
        return g, g * x
    inner = tuple(range(2, x.dim()))
    if g.is_contiguous() and x.is_contiguous():
        n = x.numel() // (B * C)
        gx = torch.bmm(g.reshape(B * C, 1, n), x.reshape(B * C, n, 1)).view(B, C)
    else:
        gx = (g * x).sum(inner)
    return g.sum(inner), gx


class _BatchStatsAffine(torch.autograd.Function):
    """``x · s + t`` with batch statistics, forward and backward each in a few passes over x.

    Forward: the moments of ``_moments_sums``, then one ``addcmul``. Backward (batch norm's, with the
    per-sample gain folded in; r = 1/√(σ² + eps)): from the per-(sample, channel) sums Σg and Σg·x alone,
    ``dbias = Σg``, ``dgain = r(Σg·x - μΣg)`` and ``dx = r·gain·g - r·k1 - r²·k2·(x - μ)`` with
    ``k1 = Σ_b gain·Σg / n`` and ``k2 = Σ_b gain·dgain / n``: two multiply-adds on full tensors, where
    autograd's graph of the forward takes about eight passes. Under ``create_graph`` the statistics are
    recomputed from x inside the backward, so second derivatives are exact.
    """

    @staticmethod
    def forward(ctx, x: Tensor, gain: Tensor, bias: Tensor, eps: float, running_mean: Tensor | None,
                running_var: Tensor | None, momentum: float) -> Tensor:
        mean, var = _moments_sums(x)  # (C,) each
        if running_mean is not None and running_var is not None:
            n = x.numel() // x.shape[1]
            running_mean.lerp_(mean.to(running_mean.dtype), momentum)
            running_var.lerp_(var.to(running_var.dtype) * (n / max(n - 1, 1)), momentum)
        rstd = torch.rsqrt(var + eps)
        ctx.save_for_backward(x, gain, mean, rstd)
        ctx.eps = eps
        scale = gain * rstd  # (B, C)
        return torch.addcmul(_per_channel(bias - mean * scale, x.dim()), x, _per_channel(scale, x.dim()))

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, ...]:
        x, gain, mean, rstd = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward: the statistics as functions of x
            mean, var = _moments_sums(x)
            rstd = torch.rsqrt(var + ctx.eps)
        n = x.numel() // x.shape[1]
        sum_g, sum_gx = _inner_sums(g, x)  # (B, C) each
        d_gain = rstd * (sum_gx - mean * sum_g)
        k1 = (gain * sum_g).sum(0) / n  # (C,)
        k2 = (gain * d_gain).sum(0) / n  # (C,)
        slope = -rstd.square() * k2  # (C,): the coefficient of x
        offset = -rstd * k1 - slope * mean  # (C,)
        dx = torch.addcmul(_per_channel(offset[None], x.dim()), g, _per_channel(rstd * gain, x.dim()))
        dx = torch.addcmul(dx, x, _per_channel(slope[None], x.dim()))
        return dx, d_gain, sum_g, None, None, None, None


def _conditional_batch_norm_fast(
    x: Tensor, gain: Tensor, bias: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
    training: bool, momentum: float, eps: float,
) -> Tensor:
    """:func:`conditional_batch_norm` as ``x · s + t`` with statistics from contiguous sums and a
    hand-written backward (``_BatchStatsAffine``); half precision and eval mode use autograd's."""
    if (training or running_mean is None) and x.dtype in (torch.float32, torch.float64):
        update = training and running_mean is not None
        return _BatchStatsAffine.apply(x, gain, bias, eps, running_mean if update else None,
                                       running_var if update else None, momentum)
    return _conditional_batch_norm_fused(x, gain, bias, running_mean, running_var, training, momentum, eps,
                                         moments=_moments_sums)


@NORMS.register("conditional_batch_norm", paper="Miyato & Koyama 2018, cGANs with Projection "
                "Discriminator, sec. 3 (categorical CBN); Brock et al. 2019, BigGAN, sec. 3 (linear CBN)",
                consumes=("y",), batch_coupled=True)
class ConditionalBatchNorm(Block):
    """Batch norm whose affine gain and bias depend on the conditioning y, per sample.

    Two variants, chosen by which argument is given (exactly one):

    - ``n_classes``: y is a class index; each class has its own gain and bias vector (SN-GAN's
      categorical conditional BN, Miyato & Koyama 2018), stored as the parameters ``class_gain`` and
      ``class_bias`` (n_classes, C), initialised to 1 and 0 (``class_init="identity"``, SN-GAN's chainer
      code), or as BigGAN-PyTorch's unshared ccbn starts (``class_init="xavier"``, SA-GAN): gain
      1 + U(-a, a) and bias U(-a, a) with a = √(6 / (n_classes + C)), its xavier-initialised
      ``nn.Embedding`` (n_classes, C) weights; the classes then differ from the first step. They are plain
      parameters, not ``nn.Embedding`` layers, so the weight initialisers of ``blocks.init`` leave them be.
    - ``y_dim``: y is a vector (BigGAN's shared class embedding concatenated with a z chunk);
      ``gain = 1 + gain(y)`` and ``bias = bias(y)`` with two bias-free linear layers ``gain`` and
      ``bias`` (y_dim -> C), optionally spectrally normalised (BigGAN's ``ccbn``; BigGAN's generator
      uses ``sn=True``). Gains are centred on 1 whatever the linear weights.

    The normalisation itself has no affine parameters; eps 1e-5 and momentum 0.1 as BigGAN and torch.

    Args:
        in_channels: channels C of x.
        y_dim: size D of the conditioning vector (linear variant).
        n_classes: number of classes (categorical variant).
        eps: added to the variance.
        momentum: running-average factor of the batch statistics.
        sn: spectral-normalise the two linear layers (y_dim variant only).
        sn_eps: epsilon of their power iteration.
        class_init: ``"identity"`` or ``"xavier"``, the per-class parameters' start (n_classes variant).
        impl: ``"ref"`` (batch norm, then multiply and add), ``"fused"`` (batch statistics, then a single
            ``x · s + t`` with the gain folded into s), ``"fast"`` (the same ``x · s + t`` with the
            statistics from per-sample contiguous means of x and x² and a hand-written backward, see
            ``_BatchStatsAffine``) or ``"auto"``.

    Shape:
        - x: (B, C, ...) -- (B, C) or (B, C, H, W).
        - y: (B,) class indices (n_classes) or (B, D) vectors (y_dim).
        - output: same as x.
    """

    impls = ("ref", "fused", "fast")
    # CPU, 2 threads, jemalloc (torch 2.14.1), BigGAN's (16, 384, 32, 32) in training, median ms
    # forward / forward+backward: ref 10.6 / 18.7, fused 20.0 / 34.3 (torch.var_mean is the slow part),
    # fast 4.87 / 13.8; the bandwidth floor is 1.24 / 3.11 (benchmarks/results/cpu.md). CUDA not
    # measured yet, so "ref" there.
    default_impl: ClassVar[dict[str, str]] = {"cpu": "fast", "cuda": "ref"}

    def __init__(
        self,
        in_channels: int,
        y_dim: int | None = None,
        n_classes: int | None = None,
        eps: float = 1e-5,
        momentum: float = 0.1,
        sn: bool = False,
        sn_eps: float = 1e-12,
        impl: str = "auto",
        class_init: str = "identity",
    ):
        super().__init__()
        if class_init not in ("identity", "xavier"):
            raise self.fail(f"class_init should be 'identity' or 'xavier', got {class_init!r}")
        if (y_dim is None) == (n_classes is None):
            raise self.fail(f"give exactly one of y_dim (a conditioning vector) and n_classes (a class "
                            f"index), got y_dim={y_dim}, n_classes={n_classes}")
        size = y_dim if y_dim is not None else n_classes
        if in_channels < 1 or size < 1:
            raise self.fail(f"in_channels and y_dim/n_classes must be >= 1, got {in_channels} and {size}")
        if sn and n_classes is not None:
            raise self.fail("sn applies to the y_dim variant's linear layers; the n_classes variant has none")
        self.in_channels, self.y_dim, self.n_classes = in_channels, y_dim, n_classes
        self.eps, self.momentum, self.sn = eps, momentum, sn
        if n_classes is not None:
            self.class_gain = nn.Parameter(torch.ones(n_classes, in_channels))
            self.class_bias = nn.Parameter(torch.zeros(n_classes, in_channels))
            if class_init == "xavier":
                with torch.no_grad():
                    nn.init.xavier_uniform_(self.class_bias)
                    self.class_gain.add_(nn.init.xavier_uniform_(torch.empty_like(self.class_gain)))
        else:
            self.gain = nn.Linear(y_dim, in_channels, bias=False)
            self.bias = nn.Linear(y_dim, in_channels, bias=False)
            if sn:
                spectral_norm(self.gain, eps=sn_eps)
                spectral_norm(self.bias, eps=sn_eps)
        self.register_buffer("running_mean", torch.zeros(in_channels))
        self.register_buffer("running_var", torch.ones(in_channels))
        self._init_impl(impl)

    def affine(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample gain and bias, each (B, C), for the conditioning y."""
        if self.n_classes is not None:
            return F.embedding(y, self.class_gain), F.embedding(y, self.class_bias)
        return 1 + self.gain(y), self.bias(y)

    def _check(self, x: Tensor, y: Tensor) -> None:
        dims = self.check(x, "B C ...", C=self.in_channels)
        if self.n_classes is not None:
            self.check_indices(y, self.n_classes, B=dims.get("B"))
        else:
            self.check(y, "B D", "y", B=dims.get("B"), D=self.y_dim)
            if not y.is_floating_point():
                raise self.fail(f"y should be a float vector (B, {self.y_dim}), got dtype {y.dtype}",
                                TypeError)
        if self.training and dims and x.numel() == dims["C"]:
            raise self.fail(f"needs more than one value per channel in training, got x of shape "
                            f"{tuple(x.shape)}")

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        self._check(x, y)
        gain, bias = self.affine(y)

        def run(impl: str) -> Tensor:
            args = (x, gain, bias, self.running_mean, self.running_var, self.training, self.momentum,
                    self.eps)
            if impl == "fused":
                return _conditional_batch_norm_fused(*args)
            if impl == "fast":
                return _conditional_batch_norm_fast(*args)
            return conditional_batch_norm(*args)

        return self.dispatch(x.device, x.dtype, run)

    def call_function(self, x: Tensor, y: Tensor) -> Tensor:
        self._check(x, y)
        gain, bias = self.affine(y)
        return conditional_batch_norm(x, gain, bias, self.running_mean, self.running_var, self.training,
                                      self.momentum, self.eps)

    def out_shape(self, x: Shape, y: Shape) -> Shape:
        return tuple(x)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_channels": s.C, "y_dim": s.D}, (s.randn(s.B, s.C, s.H, s.W),),
                       {"y": s.randn(s.B, s.D)})

    def extra_repr(self) -> str:
        cond = f"n_classes={self.n_classes}" if self.n_classes is not None else f"y_dim={self.y_dim}"
        return f"{self.in_channels}, {cond}, eps={self.eps}, momentum={self.momentum}, sn={self.sn}"
