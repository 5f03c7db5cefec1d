"""BigGAN's and BigGAN-deep's residual blocks (ajbrock/BigGAN-PyTorch ``layers.py``, ``BigGANdeep.py``).

Four composites, each the reference's block with its sub-module names: the BigGAN generator and
discriminator blocks (``layers.GBlock``, ``layers.DBlock``), which are also SN-GAN's and WGAN-GP's ResNet
blocks, and BigGAN-deep's bottleneck blocks (``BigGANdeep.GBlock``, ``BigGANdeep.DBlock``).

Every conv is a :class:`~blocks.layers.basic.Conv2dLayer` (BigGAN's ``which_conv``: 3x3 with padding 1,
1x1 with padding 0, spectrally normalised with ``sn=True``), every conditional batch norm a
:class:`~blocks.norms.conditional_bn.ConditionalBatchNorm` (BigGAN's ``ccbn``). Upsampling is
``F.interpolate(scale_factor=2)`` (nearest), downsampling ``F.avg_pool2d(2)``, as in BigGAN.py.

What they share, and how they differ from the reference:

- state-dict keys carry one more level than BigGAN-PyTorch's, since each conv is held inside its block:
  ``conv1.conv.bias`` for ``conv1.bias``; spectral norm is torch's parametrization
  (``conv1.conv.parametrizations.weight.original`` and the power-iteration vectors ``_u``, ``_v``) where
  the reference keeps ``weight``, ``u0`` and ``sv0``: the same parameters, other names. torch runs 15
  warm-up power iterations when the norm is attached and none in eval mode (the reference starts from a
  random u and, in eval mode, still takes one iteration without storing it).
- batch-norm running statistics are ``running_mean``/``running_var`` (the reference's ``stored_mean``/
  ``stored_var``); cross-replica batch norm (``cross_replica``, ``mybn``) is not modelled.
- resampling is functional: the reference's discriminator holds its ``nn.AvgPool2d(2)`` as a
  parameter-free child ``downsample``, which these blocks do not (nothing in the state dict changes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..layers.basic import Conv2dLayer
from ..norms.batch import BatchNorm
from ..norms.conditional_bn import ConditionalBatchNorm
from ..registry import COMPOSITE

__all__ = ["BigGANDBlock", "BigGANDeepDBlock", "BigGANDeepGBlock", "BigGANGBlock"]

_BIGGAN = "Brock, Donahue & Simonyan 2019, Large Scale GAN Training (BigGAN)"


def _up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")  # (B, C, 2H, 2W)


def _down(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 2)  # (B, C, H // 2, W // 2)


def _conv(in_channels: int, out_channels: int, kernel_size: int, sn: bool, sn_eps: float) -> Conv2dLayer:
    """BigGAN's ``which_conv``: k x k, padding k // 2 (3x3 pad 1, 1x1 pad 0), bias, optional SN."""
    return Conv2dLayer(in_channels, out_channels, kernel_size, sn=sn, sn_eps=sn_eps)


def _positive(block: Block, **values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise block.fail(f"{name} must be >= 1, got {v}")


class _CondBlock(Block):
    """The boundary checks of a generator block whose batch norms all read the same y."""

    in_channels: int
    y_dim: int | None = None
    n_classes: int | None = None

    def _check_inputs(self, x: Tensor, y: Tensor | None) -> None:
        dims = self.check(x, "B C H W", C=self.in_channels)
        if not self.consumes:
            if y is not None:
                raise self.fail("is unconditional (neither y_dim nor n_classes given) but got y", TypeError)
            return
        if y is None:
            raise self.fail("needs the conditioning y (its batch norms are conditional)", TypeError)
        if self.n_classes is not None:
            self.check_indices(y, self.n_classes, B=dims.get("B"))
            return
        self.check(y, "B D", "y", B=dims.get("B"), D=self.y_dim)
        if not y.is_floating_point():
            raise self.fail(f"y should be a float vector (B, {self.y_dim}), got dtype {y.dtype}", TypeError)


@COMPOSITE.register("biggan_g_block", paper=f"{_BIGGAN}, sec. 3 and appendix B, fig. 15(b) (ResBlock up); "
                    "Miyato & Koyama 2018, cGANs with Projection Discriminator, sec. 3 (categorical CBN)",
                    consumes=("y",), batch_coupled=True)
class BigGANGBlock(_CondBlock):
    """BigGAN's generator residual block, BigGAN-PyTorch ``layers.GBlock`` as BigGAN.py builds it.

    ``h = conv2(relu(bn2(conv1(up(relu(bn1(x, y)))), y)))``, ``out = h + conv_sc(up(x))``: batch norm,
    ReLU, nearest 2x upsampling, 3x3 conv, batch norm, ReLU, 3x3 conv; the shortcut upsamples, then
    (``learnable_sc``: when the channels change or the block upsamples) applies a 1x1 conv. Both batch
    norms read the same y.

    The batch norms are chosen by the conditioning:

    - ``y_dim``: BigGAN's ``ccbn``, gains ``1 + gain(y)`` and biases ``bias(y)`` from bias-free linear
      maps of y (spectrally normalised with ``sn``), y being the shared class embedding joined with a
      chunk of z (BigGAN.py: ``y_dim = shared_dim + z_chunk_size``);
    - ``n_classes``: SN-GAN's categorical conditional batch norm, a learned gain and bias per class
      (``gen_models/resblocks.py`` ``Block`` with ``n_classes > 0``, Miyato & Koyama 2018); y holds class
      indices. Same function family as BigGAN-PyTorch's unshared ``ccbn`` (gain ``1 + embed(y)``), stored
      as the gain itself (initialised to 1);
    - neither: plain batch norm with a learned per-channel affine (BigGAN-PyTorch's ``layers.bn``), and
      the block consumes nothing: SN-GAN's unconditional ResNet generator block and WGAN-GP's
      (``ResidualBlock(resample='up')``, whose depth-to-space ``UpsampleConv`` equals nearest 2x, then
      the conv).

    For SN-GAN use ``sn=False`` (its generator has no spectral norm) and ``bn_eps=2e-5`` (chainer's
    batch-norm default).

    Args:
        in_channels: input channels C.
        out_channels: output channels (also the hidden channels, as in BigGAN and SN-GAN).
        y_dim: size D of the conditioning vector (BigGAN's ccbn).
        n_classes: number of classes (SN-GAN's categorical conditional batch norm).
        upsample: upsample 2x (nearest) inside the body and the shortcut; every BigGAN G block does.
        sn: spectral-normalise the convs and ccbn's linear maps (BigGAN's ``G_param='SN'``).
        sn_eps: epsilon of the power iteration (BigGAN-PyTorch's default 1e-12; its launch scripts pass
            ``--SN_eps 1e-6``).
        bn_eps: batch-norm epsilon (BigGAN's ``BN_eps``, 1e-5).
        impl: formulation of the conditional batch norms (see ``ConditionalBatchNorm``).
        class_init: the per-class gains' and biases' start with ``n_classes`` (``ConditionalBatchNorm``):
            ``"identity"`` (SN-GAN) or ``"xavier"`` (BigGAN-PyTorch's unshared ccbn, SA-GAN).

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - y: (B, D) with D = y_dim, or (B,) class indices below n_classes; absent when unconditional.
        - output: (B, out_channels, 2H, 2W), or (B, out_channels, H, W) without upsampling.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        y_dim: int | None = None,
        n_classes: int | None = None,
        upsample: bool = True,
        sn: bool = True,
        sn_eps: float = 1e-12,
        bn_eps: float = 1e-5,
        impl: str = "auto",
        class_init: str = "identity",
    ):
        super().__init__()
        _positive(self, in_channels=in_channels, out_channels=out_channels)
        self.class_init = class_init
        if y_dim is not None and n_classes is not None:
            raise self.fail(f"give at most one of y_dim (BigGAN's ccbn) and n_classes (SN-GAN's categorical "
                            f"CBN), got y_dim={y_dim}, n_classes={n_classes}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.y_dim, self.n_classes = y_dim, n_classes
        self.upsample, self.sn = upsample, sn
        if y_dim is None and n_classes is None:
            self.consumes = ()
        self.conv1 = _conv(in_channels, out_channels, 3, sn, sn_eps)
        self.conv2 = _conv(out_channels, out_channels, 3, sn, sn_eps)
        self.learnable_sc = in_channels != out_channels or upsample
        if self.learnable_sc:
            self.conv_sc = _conv(in_channels, out_channels, 1, sn, sn_eps)
        self.bn1 = self._bn(in_channels, sn, sn_eps, bn_eps, impl)
        self.bn2 = self._bn(out_channels, sn, sn_eps, bn_eps, impl)

    def _bn(self, channels: int, sn: bool, sn_eps: float, eps: float, impl: str) -> Block:
        if self.y_dim is not None:
            return ConditionalBatchNorm(channels, y_dim=self.y_dim, eps=eps, sn=sn, sn_eps=sn_eps, impl=impl)
        if self.n_classes is not None:
            return ConditionalBatchNorm(channels, n_classes=self.n_classes, eps=eps, impl=impl,
                                        class_init=self.class_init)
        return BatchNorm(channels, eps=eps)

    def _norm(self, bn: Block, h: Tensor, y: Tensor | None) -> Tensor:
        return bn(h) if y is None else bn(h, y)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        self._check_inputs(x, y)
        h = F.relu(self._norm(self.bn1, x, y))
        if self.upsample:
            h, x = _up(h), _up(x)  # (B, C, 2H, 2W) each
        h = self.conv1(h)
        h = self.conv2(F.relu(self._norm(self.bn2, h, y)))
        if self.learnable_sc:
            x = self.conv_sc(x)
        return h + x

    def out_shape(self, x: Shape, y: Shape | None = None) -> Shape:
        B, _, H, W = x
        f = 2 if self.upsample else 1
        return (B, self.out_channels, H * f, W * f)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        x = s.randn(s.B, s.C, s.H, s.W)
        kwargs = {"in_channels": s.C, "out_channels": s.N, "upsample": s.seed % 2 == 0}
        variant = s.seed // 2 % 3  # the three batch norms: ccbn, categorical, plain
        if variant == 0:
            return Example({**kwargs, "y_dim": s.D}, (x,), {"y": s.randn(s.B, s.D)})
        if variant == 1:
            return Example({**kwargs, "n_classes": s.D}, (x,), {"y": s.randint(s.D, s.B)})
        return Example(kwargs, (x,))

    def extra_repr(self) -> str:
        cond = (f"y_dim={self.y_dim}" if self.y_dim is not None else
                f"n_classes={self.n_classes}" if self.n_classes is not None else "unconditional")
        return f"{self.in_channels}, {self.out_channels}, {cond}, upsample={self.upsample}, sn={self.sn}"


@COMPOSITE.register("biggan_d_block", paper=f"{_BIGGAN}, sec. 3 and appendix B, fig. 15(c) (ResBlock down); "
                    "Miyato et al. 2018, Spectral Normalization for GANs (ResNet discriminator blocks)")
class BigGANDBlock(Block):
    """BigGAN's discriminator residual block, BigGAN-PyTorch ``layers.DBlock`` as BigGAN.py builds it.

    ``h = pool(conv2(relu(conv1(relu(x)))))`` (the first ReLU only with ``preactivation``; the pool only
    with ``downsample``), plus the shortcut: with ``learnable_sc`` (the channels change or the block
    downsamples) a 1x1 conv ``conv_sc``, applied before the pooling in a preactivated block and after it
    in the other (the two orders give the same values, since a 1x1 conv and average pooling commute;
    the reference's order is kept, which is also what the block costs). The preactivation ReLU is out of
    place, so the shortcut reads x itself.

    BigGAN.py's discriminator uses ``wide=True`` (conv1 maps to out_channels) and ``preactivation=(index >
    0)``: its first block reads the image. This is also SN-GAN's discriminator block
    (``dis_models/resblocks.py``): ``Block`` is ``preactivation=True, wide=False`` (hidden = in), and
    ``OptimizedBlock`` (the first block) is ``preactivation=False, wide=True, downsample=True``.

    Args:
        in_channels: input channels C.
        out_channels: output channels.
        preactivation: apply ReLU to x before conv1 (every block but the first).
        downsample: 2x2 average pooling after the body and on the shortcut.
        wide: hidden channels = out_channels (BigGAN, SA-GAN), else in_channels (SN-GAN's ``Block``).
        sn: spectral-normalise the convs (BigGAN's ``D_param='SN'``).
        sn_eps: epsilon of the power iteration (BigGAN-PyTorch's default 1e-12; launch scripts 1e-6).

    Shape:
        - x: (B, C, H, W) with C = in_channels; H, W >= 2 with downsampling.
        - output: (B, out_channels, H // 2, W // 2), or (B, out_channels, H, W) without downsampling.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        preactivation: bool = True,
        downsample: bool = True,
        wide: bool = True,
        sn: bool = True,
        sn_eps: float = 1e-12,
    ):
        super().__init__()
        _positive(self, in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.hidden_channels = out_channels if wide else in_channels
        self.preactivation, self.downsample, self.wide, self.sn = preactivation, downsample, wide, sn
        self.conv1 = _conv(in_channels, self.hidden_channels, 3, sn, sn_eps)
        self.conv2 = _conv(self.hidden_channels, out_channels, 3, sn, sn_eps)
        self.learnable_sc = in_channels != out_channels or downsample
        if self.learnable_sc:
            self.conv_sc = _conv(in_channels, out_channels, 1, sn, sn_eps)

    def shortcut(self, x: Tensor) -> Tensor:
        """The skip branch, in the reference's order: conv then pool if preactivated, else pool then conv."""
        if self.preactivation:
            if self.learnable_sc:
                x = self.conv_sc(x)
            return _down(x) if self.downsample else x
        if self.downsample:
            x = _down(x)
        return self.conv_sc(x) if self.learnable_sc else x

    def forward(self, x: Tensor) -> Tensor:
        dims = self.check(x, "B C H W", C=self.in_channels)
        if dims and self.downsample and min(dims["H"], dims["W"]) < 2:
            raise self.fail(f"x should be at least 2x2 to downsample, got shape {tuple(x.shape)}")
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = _down(h)
        return h + self.shortcut(x)

    def out_shape(self, x: Shape) -> Shape:
        B, _, H, W = x
        f = 2 if self.downsample else 1
        return (B, self.out_channels, H // f, W // f)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        kwargs = {"in_channels": s.C, "out_channels": s.N, "preactivation": s.seed % 2 == 0,
                  "downsample": s.seed // 2 % 2 == 0, "wide": s.seed // 4 % 2 == 0}
        return Example(kwargs, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, hidden={self.hidden_channels}, "
                f"preactivation={self.preactivation}, downsample={self.downsample}, sn={self.sn}")


@COMPOSITE.register("biggan_deep_g_block", paper=f"{_BIGGAN}, appendix B, fig. 16(b) (BigGAN-deep ResBlock)",
                    consumes=("y",), batch_coupled=True)
class BigGANDeepGBlock(_CondBlock):
    """BigGAN-deep's bottleneck generator block, BigGAN-PyTorch ``BigGANdeep.GBlock``.

    ``h = conv1(relu(bn1(x, y)))`` (1x1 to ``in_channels // channel_ratio``), ``h = up(relu(bn2(h, y)))``,
    ``h = conv2(h)``, ``h = conv3(relu(bn3(h, y)))`` (3x3 each), ``h = conv4(relu(bn4(h, y)))`` (1x1 to
    out_channels); the skip keeps the first ``out_channels`` channels of x (no parameters) and upsamples:
    ``out = h + up(x[:, :out_channels])``. All four batch norms are BigGAN's ``ccbn`` and read the same y
    (BigGAN-deep's whole ``[z, shared(c)]`` vector). In BigGANdeep.py the first block of each resolution
    keeps the channels and does not upsample, the second changes them and upsamples.

    Args:
        in_channels: input channels C (at least channel_ratio).
        out_channels: output channels, at most in_channels (the skip can only drop channels).
        y_dim: size D of the conditioning vector (BigGAN-deep: dim_z + shared_dim = 256).
        upsample: upsample 2x (nearest) after bn2 and on the skip.
        channel_ratio: hidden channels = in_channels // channel_ratio.
        sn: spectral-normalise the convs and ccbn's linear maps.
        sn_eps: epsilon of the power iteration (BigGAN-PyTorch's default 1e-12; launch script 1e-6).
        bn_eps: batch-norm epsilon (BigGAN's ``BN_eps``, 1e-5).
        impl: formulation of the conditional batch norms (see ``ConditionalBatchNorm``).

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - y: (B, D) with D = y_dim.
        - output: (B, out_channels, 2H, 2W), or (B, out_channels, H, W) without upsampling.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        y_dim: int,
        upsample: bool = True,
        channel_ratio: int = 4,
        sn: bool = True,
        sn_eps: float = 1e-12,
        bn_eps: float = 1e-5,
        impl: str = "auto",
    ):
        super().__init__()
        _positive(self, in_channels=in_channels, out_channels=out_channels, y_dim=y_dim,
                  channel_ratio=channel_ratio)
        if in_channels // channel_ratio < 1:
            raise self.fail(f"in_channels={in_channels} // channel_ratio={channel_ratio} leaves no hidden "
                            f"channels; use in_channels >= {channel_ratio}")
        if out_channels > in_channels:
            raise self.fail(f"out_channels={out_channels} exceeds in_channels={in_channels}: the skip keeps "
                            "the first out_channels channels of x, so it can only drop channels")
        self.in_channels, self.out_channels, self.y_dim = in_channels, out_channels, y_dim
        self.hidden_channels = in_channels // channel_ratio
        self.upsample, self.channel_ratio, self.sn = upsample, channel_ratio, sn
        hid = self.hidden_channels
        self.conv1 = _conv(in_channels, hid, 1, sn, sn_eps)
        self.conv2 = _conv(hid, hid, 3, sn, sn_eps)
        self.conv3 = _conv(hid, hid, 3, sn, sn_eps)
        self.conv4 = _conv(hid, out_channels, 1, sn, sn_eps)
        bn = dict(y_dim=y_dim, eps=bn_eps, sn=sn, sn_eps=sn_eps, impl=impl)
        self.bn1 = ConditionalBatchNorm(in_channels, **bn)
        self.bn2 = ConditionalBatchNorm(hid, **bn)
        self.bn3 = ConditionalBatchNorm(hid, **bn)
        self.bn4 = ConditionalBatchNorm(hid, **bn)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        self._check_inputs(x, y)
        h = self.conv1(F.relu(self.bn1(x, y)))  # (B, hidden, H, W)
        h = F.relu(self.bn2(h, y))
        if self.upsample:
            h = _up(h)  # (B, hidden, 2H, 2W)
        h = self.conv2(h)
        h = self.conv3(F.relu(self.bn3(h, y)))
        h = self.conv4(F.relu(self.bn4(h, y)))  # (B, out, 2H, 2W)
        if self.in_channels != self.out_channels:
            x = x[:, : self.out_channels]
        if self.upsample:
            x = _up(x)
        return h + x

    def out_shape(self, x: Shape, y: Shape | None = None) -> Shape:
        B, _, H, W = x
        f = 2 if self.upsample else 1
        return (B, self.out_channels, H * f, W * f)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        in_channels = 4 * s.C  # hidden = C at the default channel_ratio 4
        out_channels = in_channels if s.seed % 2 else 2 * s.C
        kwargs = {"in_channels": in_channels, "out_channels": out_channels, "y_dim": s.D,
                  "upsample": s.seed // 2 % 2 == 0}
        return Example(kwargs, (s.randn(s.B, in_channels, s.H, s.W),), {"y": s.randn(s.B, s.D)})

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, y_dim={self.y_dim}, hidden={self.hidden_channels}, "
                f"upsample={self.upsample}, sn={self.sn}")


@COMPOSITE.register("biggan_deep_d_block", paper=f"{_BIGGAN}, appendix B, fig. 16(c) (BigGAN-deep ResBlock "
                    "down)")
class BigGANDeepDBlock(Block):
    """BigGAN-deep's bottleneck discriminator block, BigGAN-PyTorch ``BigGANdeep.DBlock``.

    ``h = conv1(relu(x))`` (1x1 to ``out_channels // channel_ratio``), ``h = conv2(relu(h))``,
    ``h = conv3(relu(h))`` (3x3 each), ``h = conv4(pool(relu(h)))`` (1x1 to out_channels). The skip pools
    x and, where the channels grow, appends a 1x1 conv of it to the missing ``out - in`` channels:
    ``out = h + cat([pool(x), conv_sc(pool(x))])``. Always preactivated (the reference's ``preactivation``
    and ``wide`` arguments are unused); BigGANdeep.py's discriminator downsamples in the first block of
    each resolution.

    Args:
        in_channels: input channels C.
        out_channels: output channels, at least in_channels (at least channel_ratio).
        downsample: 2x2 average pooling before conv4 and on the skip.
        channel_ratio: hidden channels = out_channels // channel_ratio.
        sn: spectral-normalise the convs.
        sn_eps: epsilon of the power iteration (BigGAN-PyTorch's default 1e-12; launch script 1e-6).

    Shape:
        - x: (B, C, H, W) with C = in_channels; H, W >= 2 with downsampling.
        - output: (B, out_channels, H // 2, W // 2), or (B, out_channels, H, W) without downsampling.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        downsample: bool = True,
        channel_ratio: int = 4,
        sn: bool = True,
        sn_eps: float = 1e-12,
    ):
        super().__init__()
        _positive(self, in_channels=in_channels, out_channels=out_channels, channel_ratio=channel_ratio)
        if out_channels // channel_ratio < 1:
            raise self.fail(f"out_channels={out_channels} // channel_ratio={channel_ratio} leaves no hidden "
                            f"channels; use out_channels >= {channel_ratio}")
        if out_channels < in_channels:
            raise self.fail(f"out_channels={out_channels} is below in_channels={in_channels}: the skip keeps "
                            "all of x and can only add channels")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.hidden_channels = out_channels // channel_ratio
        self.downsample, self.channel_ratio, self.sn = downsample, channel_ratio, sn
        hid = self.hidden_channels
        self.conv1 = _conv(in_channels, hid, 1, sn, sn_eps)
        self.conv2 = _conv(hid, hid, 3, sn, sn_eps)
        self.conv3 = _conv(hid, hid, 3, sn, sn_eps)
        self.conv4 = _conv(hid, out_channels, 1, sn, sn_eps)
        self.learnable_sc = in_channels != out_channels
        if self.learnable_sc:
            self.conv_sc = _conv(in_channels, out_channels - in_channels, 1, sn, sn_eps)

    def shortcut(self, x: Tensor) -> Tensor:
        """The skip branch: pool, then ``cat([x, conv_sc(x)])`` where the channels grow."""
        if self.downsample:
            x = _down(x)
        if self.learnable_sc:
            x = torch.cat([x, self.conv_sc(x)], 1)  # (B, out, H', W')
        return x

    def forward(self, x: Tensor) -> Tensor:
        dims = self.check(x, "B C H W", C=self.in_channels)
        if dims and self.downsample and min(dims["H"], dims["W"]) < 2:
            raise self.fail(f"x should be at least 2x2 to downsample, got shape {tuple(x.shape)}")
        h = self.conv1(F.relu(x))  # (B, hidden, H, W)
        h = self.conv2(F.relu(h))
        h = F.relu(self.conv3(F.relu(h)))
        if self.downsample:
            h = _down(h)
        return self.conv4(h) + self.shortcut(x)

    def out_shape(self, x: Shape) -> Shape:
        B, _, H, W = x
        f = 2 if self.downsample else 1
        return (B, self.out_channels, H // f, W // f)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        in_channels = 4 * s.C
        out_channels = in_channels if s.seed % 2 else in_channels + 4 * s.N
        kwargs = {"in_channels": in_channels, "out_channels": out_channels, "downsample": s.seed // 2 % 2 == 0}
        return Example(kwargs, (s.randn(s.B, in_channels, s.H, s.W),))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, hidden={self.hidden_channels}, "
                f"downsample={self.downsample}, sn={self.sn}")
