"""The feature normalisations: batch, instance, layer and group norm, with torch's defaults.

Each holds its affine parameters as ``weight`` (ones) and ``bias`` (zeros) and its running statistics as
buffers, with the names torch uses, so torch checkpoints load and the initialisers find them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import NORMS

__all__ = ["BatchNorm", "GroupNorm", "InstanceNorm", "LayerNorm"]


class _AffineNorm(Block):
    """Shared state of the four norms: channels, eps, optional per-channel affine, optional running stats."""

    def __init__(self, in_channels: int, eps: float, affine: bool, track_running_stats: bool = False):
        super().__init__()
        if in_channels < 1:
            raise self.fail(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels, self.eps, self.affine = in_channels, eps, affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(in_channels))
            self.bias = nn.Parameter(torch.zeros(in_channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(in_channels))
            self.register_buffer("running_var", torch.ones(in_channels))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _step_factor(self, momentum: float | None) -> float:
        """The running-average factor of this step, counting the step (torch's convention for None)."""
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if momentum is None:
                # Cumulative moving average; meta tensors have no value to read.
                n = 1 if self.num_batches_tracked.is_meta else int(self.num_batches_tracked)
                return 1.0 / n
        return 0.0 if momentum is None else momentum

    def out_shape(self, x: Shape) -> Shape:
        return tuple(x)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_channels": s.C}, (s.randn(s.B, s.C, s.H, s.W),))


@NORMS.register("batch_norm", paper="Ioffe & Szegedy 2015, Batch Normalization, Algorithm 1 and 2",
                batch_coupled=True)
class BatchNorm(_AffineNorm):
    """Batch normalisation: each channel normalised by its mean and variance over (B, H, W).

    In training, the batch statistics normalise and update the running averages (unbiased variance,
    ``running = (1 - momentum)·running + momentum·batch``); in eval mode the running averages normalise.
    Works on (B, C), (B, C, L) and (B, C, H, W) like ``F.batch_norm`` (BatchNorm1d/2d in one block).

    Args:
        in_channels: channels C.
        eps: added to the variance (torch: 1e-5; DCGAN's TensorFlow code used 1e-5 as well).
        momentum: running-average factor (torch: 0.1); ``None`` for a cumulative average.
        affine: learn a per-channel scale (ones) and shift (zeros).
        track_running_stats: keep running averages for eval mode; if False, batch statistics are used in
            eval mode too.

    Shape:
        - x: (B, C, ...) -- (B, C) or (B, C, H, W), any number of trailing dims.
        - output: same as x.
    """

    def __init__(self, in_channels: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__(in_channels, eps, affine, track_running_stats)
        self.momentum = momentum

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B C ...", C=self.in_channels)
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats and x.numel() == x.shape[1] and not x.is_meta:
            raise self.fail(f"needs more than one value per channel in training, got x of shape "
                            f"{tuple(x.shape)}")
        factor = self._step_factor(self.momentum)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


@NORMS.register("instance_norm", paper="Ulyanov et al. 2016, Instance Normalization, eq. 2")
class InstanceNorm(_AffineNorm):
    """Instance normalisation: each channel of each sample normalised over its spatial positions.

    The defaults are torch's and those of pix2pix/CycleGAN and SPADE's generators: no affine parameters,
    no running statistics (batch statistics in eval mode too), eps 1e-5.

    Args:
        in_channels: channels C.
        eps: added to the variance.
        momentum: running-average factor, used only with ``track_running_stats``.
        affine: learn a per-channel scale (ones) and shift (zeros).
        track_running_stats: keep running averages of the instance statistics and use them in eval mode.

    Shape:
        - x: (B, C, H, W) -- or any rank >= 3, (B, C, L) included; normalised over the dims after C.
        - output: same as x.
    """

    def __init__(self, in_channels: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False):
        super().__init__(in_channels, eps, affine, track_running_stats)
        self.momentum = momentum

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B C _ ...", C=self.in_channels)
        use_input_stats = self.training or not self.track_running_stats
        if use_input_stats and x[0, 0].numel() == 1 and not x.is_meta:
            raise self.fail(f"needs more than one spatial position per channel, got x of shape "
                            f"{tuple(x.shape)}")
        factor = self._step_factor(self.momentum)
        return F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                               use_input_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, eps={self.eps}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


@NORMS.register("layer_norm", paper="Ba et al. 2016, Layer Normalization, eq. 4; as in Gulrajani et al. "
                "2017 (WGAN-GP) critics: statistics over (C, H, W), per-channel affine")
class LayerNorm(_AffineNorm):
    """Layer normalisation of feature maps: each sample normalised over all of (C, H, W) at once.

    The statistics cover every channel and position of one sample; the learned scale and shift are per
    channel (C each), as in WGAN-GP's critic (``Layernorm(name, [1, 2, 3], x)`` in its tflib, scale 1,
    offset 0, eps 1e-5). That keeps the block resolution-independent -- ``nn.LayerNorm([C, H, W])`` would
    tie its 2·C·H·W parameters to one image size -- and it is exactly ``GroupNorm`` with one group, which
    is how it runs. On a (B, C) input it equals ``nn.LayerNorm(C)``.

    Args:
        in_channels: channels C.
        eps: added to the variance.
        affine: learn a per-channel scale (ones) and shift (zeros).

    Shape:
        - x: (B, C, ...) -- (B, C) or (B, C, H, W), any number of trailing dims.
        - output: same as x.
    """

    def __init__(self, in_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__(in_channels, eps, affine)

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B C ...", C=self.in_channels)
        return F.group_norm(x, 1, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, eps={self.eps}, affine={self.affine}"


@NORMS.register("group_norm", paper="Wu & He 2018, Group Normalization, eq. 1 and sec. 3.1")
class GroupNorm(_AffineNorm):
    """Group normalisation: the channels of each sample split into groups, each normalised on its own.

    ``num_groups`` defaults to the paper's 32. It is clamped to ``in_channels`` when there are fewer
    channels (C groups of one channel: instance norm with affine); otherwise it must divide
    ``in_channels``, and the error names the divisors to choose from.

    Args:
        in_channels: channels C.
        num_groups: number of groups G (paper: 32), clamped to C.
        eps: added to the variance.
        affine: learn a per-channel scale (ones) and shift (zeros).

    Shape:
        - x: (B, C, ...) -- (B, C) or (B, C, H, W), any number of trailing dims.
        - output: same as x.
    """

    def __init__(self, in_channels: int, num_groups: int = 32, eps: float = 1e-5, affine: bool = True):
        super().__init__(in_channels, eps, affine)
        if num_groups < 1:
            raise self.fail(f"num_groups must be >= 1, got {num_groups}")
        groups = min(num_groups, in_channels)
        if in_channels % groups:
            divisors = [d for d in range(1, in_channels + 1) if in_channels % d == 0 and d <= num_groups]
            raise self.fail(f"num_groups={num_groups} does not divide in_channels={in_channels}; choose "
                            f"a divisor of {in_channels} such as {divisors[-3:]}")
        self.num_groups = groups

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B C ...", C=self.in_channels)
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, num_groups={self.num_groups}, eps={self.eps}, affine={self.affine}"
