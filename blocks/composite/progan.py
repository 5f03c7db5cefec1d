"""ProGAN's progressive units: the generator block, the discriminator block and the discriminator's 4x4 epilogue.

Each block knows its own ``stage`` (stage s works at 4·2^s pixels) and the network's current stage, which the
network passes to every sub-module that defines ``set_stage`` whenever it changes. A block runs only at
stages >= its own (the network skips the others) and plays one of three roles there: the top block (its
toRGB/fromRGB is the new path, faded in against the old one by its ``FadeIn`` child, whose α the network sets
with ``set_alpha``), the block just below the top (its toRGB/fromRGB is the old path being faded out), or a
block further down (plain features). The branches are on Python ints, so ``torch.export`` traces one stage.
"""

from __future__ import annotations

import math
import operator

from torch import Tensor

from ..activations.fused import BiasAct
from ..core import Block, Example, Shape, Sizes
from ..layers.equalized import EqualizedConv2d, EqualizedLinear
from ..norms.pixel import PixelNorm
from ..registry import COMPOSITE
from ..resample.basic import AvgPoolDown, NearestUp
from ..structure.fade import FadeIn
from ..structure.minibatch import MinibatchStdDev
from ..structure.rgb import FromRGB, ToRGB

__all__ = ["ProGANDBlock", "ProGANDEpilogue", "ProGANGBlock"]

_PAPER = ("Karras et al. 2018, Progressive Growing of GANs (ProGAN), sec. 2-4.2, fig. 2 and table 2 "
          "(tkarras/progressive_growing_of_gans networks.py")
_SQRT2 = math.sqrt(2)


def _conv3x3(in_channels: int, out_channels: int) -> EqualizedConv2d:
    """networks.py's ``act(apply_bias(conv2d(x, fmaps, kernel=3, use_wscale=True)))``: He gain √2 folded
    into the run-time weight scale, then leaky ReLU 0.2 with no gain after it."""
    return EqualizedConv2d(in_channels, out_channels, 3, gain=_SQRT2, activation="lrelu", act_gain=1.0)


class _Progressive(Block):
    """The stage protocol of the ProGAN blocks: ``stage`` (its own), ``current_stage`` (the network's)."""

    stage: int
    current_stage: int

    def _init_common(self, channels: dict[str, int], resolution: int, min_resolution: int, stage: int) -> None:
        for arg, value in channels.items():
            if value < 1:
                raise self.fail(f"{arg} must be positive, got {value}")
        if resolution < min_resolution or resolution & (resolution - 1):
            raise self.fail(f"resolution must be a power of two >= {min_resolution}, got {resolution}")
        if stage < 0:
            raise self.fail(f"stage must be >= 0, got {stage}")
        self.resolution, self.stage = resolution, stage
        self.current_stage = stage  # used alone, a block is the top one

    def set_stage(self, stage: int) -> None:
        """Record the network's current stage (any stage >= 0; the block runs only at stages >= its own)."""
        stage = operator.index(stage)
        if stage < 0:
            raise self.fail(f"the current stage must be >= 0, got {stage}")
        self.current_stage = stage

    def _role(self) -> int:
        """Stages the network is above this block: 0 = the top block, 1 = fading out, more = below."""
        if self.current_stage < self.stage:
            raise self.fail(f"called at stage {self.current_stage}, below its own stage {self.stage}; a "
                            f"progressive network runs a block only from its stage on (skip it below)")
        return self.current_stage - self.stage

    def _require(self, t: Tensor | None, arg: str, why: str) -> Tensor:
        if t is None:
            raise self.fail(f"{arg} is required at stage {self.current_stage} (its own stage is {self.stage}): "
                            f"{why}", TypeError)
        return t

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, stage={self.stage}, current_stage={self.current_stage}"


@COMPOSITE.register("progan_g_block", paper=_PAPER + ", G_paper block() and torgb())")
class ProGANGBlock(_Progressive):
    """One resolution of ProGAN's generator, with its toRGB and the fade-in from the previous resolution.

    Follows ``G_paper`` in tkarras/progressive_growing_of_gans ``networks.py`` (structure 'linear'):
    ``block(x, res)``, ``torgb(x, res)`` and the ``Grow_lod`` lerp. Every conv is equalized (He gain √2 in
    the run-time weight scale), with a bias and leaky ReLU 0.2 without a gain, then pixel norm (``norm``, one
    parameter-free module used after every layer).

    - resolution 4 (``block(x, 2)``, scope ``4x4``): pixel norm of the latent (``normalize_latents``),
      ``dense`` (latent -> 16·out_channels, gain √2/4, no bias; scope ``Dense``), reshape to
      (out_channels, 4, 4), ``dense_bias`` (the ``Dense/bias`` of the reference, applied per channel after
      the reshape, then leaky ReLU), pixel norm, ``conv`` (3x3; scope ``Conv``), pixel norm.
    - resolution >= 8: nearest 2x (``upscale``), ``conv0`` (3x3), pixel norm, ``conv1`` (3x3), pixel norm.

    Then, with S the network's current stage (``set_stage``; default: this block's own stage):

    - S == stage (the top block): ``rgb = torgb(h)``, or, given the previous block's rgb,
      ``rgb = fade(upscale(rgb), torgb(h))`` (α = 0: the old path, 1: the new one, exactly);
    - S == stage + 1: ``rgb = torgb(h)``, the old path that the next block fades out (an rgb passed in is
      ignored: the block below returns None at this stage);
    - S > stage + 1: ``rgb = None`` (toRGB is not run).

    Deviations from the reference, none changing the function or the parameter count: the reference's
    default ``fused_scale=True`` computes nearest 2x + Conv0 as one transposed conv (scope ``Conv0_up``,
    the same function up to a spatial flip of the stored kernel); here they are the separate layers of the
    paper's table 2 (``fused_scale=False``, scope ``Conv0``). The reference always upscales its image to the
    full resolution; here a block outputs the image of the current stage's size. Its toRGB is named
    ``torgb``, not ``ToRGB_lod{n}`` (the lod depends on the final resolution, which a block does not know).
    The reference's lerp weight is ``lod_in - lod`` = 1 - α.

    Args:
        in_channels: channels of x; for the 4x4 block (resolution 4) the latent size.
        out_channels: feature maps of this resolution (networks.py ``nf(res - 1)``).
        resolution: this block's output size: 4 for the dense input block, else 8, 16, ...
        stage: the stage at which this block is the top one (stage s works at 4·2^s pixels).
        num_channels: image channels of toRGB.
        eps: pixel norm epsilon (``pixelnorm_epsilon``).
        normalize_latents: pixel-normalise the latent first (4x4 block only).

    Raises:
        ValueError: called at a stage below its own; a 4x4 block given a previous rgb.

    Shape:
        - x: (B, D) with D = in_channels at resolution 4, else (B, C, H, W) with C = in_channels.
        - rgb: (B, num_channels, H, W), the previous stage's image (optional; resolution >= 8 only).
        - output: features (B, out_channels, 4, 4) at resolution 4, else (B, out_channels, 2H, 2W); and
          the image (B, num_channels, ...) of the same size, or None at stages > stage + 1.
    """

    def __init__(self, in_channels: int, out_channels: int, resolution: int, stage: int, num_channels: int = 3,
                 eps: float = 1e-8, normalize_latents: bool = True):
        super().__init__()
        sizes = {"in_channels": in_channels, "out_channels": out_channels, "num_channels": num_channels}
        self._init_common(sizes, resolution, 4, stage)
        self.in_channels, self.out_channels, self.num_channels = in_channels, out_channels, num_channels
        self.normalize_latents = normalize_latents
        self.norm = PixelNorm(eps)
        if resolution == 4:
            self.dense = EqualizedLinear(in_channels, 16 * out_channels, bias=False, gain=_SQRT2 / 4)
            self.dense_bias = BiasAct(out_channels, act="lrelu", gain=1.0)
            self.conv = _conv3x3(out_channels, out_channels)
        else:
            self.upscale = NearestUp(2)
            self.conv0 = _conv3x3(in_channels, out_channels)
            self.conv1 = _conv3x3(out_channels, out_channels)
        self.torgb = ToRGB(out_channels, num_channels)
        # The 4x4 block starts the image: there is nothing to fade in from.
        self.fade = FadeIn() if resolution > 4 else None

    def _features(self, x: Tensor) -> Tensor:
        if self.resolution == 4:
            h = self.norm(x) if self.normalize_latents else x
            h = self.dense(h).reshape(x.shape[0], self.out_channels, 4, 4)  # (B, C·16) -> (B, C, 4, 4)
            h = self.norm(self.dense_bias(h))
            return self.norm(self.conv(h))
        h = self.upscale(x)  # (B, C, 2H, 2W)
        h = self.norm(self.conv0(h))
        return self.norm(self.conv1(h))

    def forward(self, x: Tensor, rgb: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        role = self._role()
        if self.resolution == 4:
            self.check(x, "B D", D=self.in_channels)
            if rgb is not None:
                raise self.fail("the 4x4 block starts the image and takes no previous rgb")
        else:
            dims = self.check(x, "B C H W", C=self.in_channels)
            if rgb is not None and role == 0:
                self.check(rgb, "B C H W", "rgb", B=dims.get("B"), C=self.num_channels, H=dims.get("H"),
                           W=dims.get("W"))
        h = self._features(x)
        if role > 1:
            return h, None
        new = self.torgb(h)
        if role == 1 or rgb is None:
            return h, new
        return h, self.fade(self.upscale(rgb), new)

    def out_shape(self, x: Shape, rgb: Shape | None = None) -> list[Shape | None]:
        role = self._role()
        if self.resolution == 4:
            B, H, W = x[0], 4, 4
        else:
            B, _, H, W = x
            H, W = 2 * H, 2 * W
        return [(B, self.out_channels, H, W), (B, self.num_channels, H, W) if role <= 1 else None]

    @classmethod
    def example(cls, s: Sizes) -> Example:
        if s.seed % 2:
            kwargs = {"in_channels": s.D, "out_channels": s.C, "resolution": 4, "stage": 0, "num_channels": s.N}
            return Example(kwargs, (s.randn(s.B, s.D),))
        kwargs = {"in_channels": s.C, "out_channels": s.D, "resolution": 8, "stage": 1, "num_channels": s.N}
        return Example(kwargs, (s.randn(s.B, s.C, s.H, s.W), s.randn(s.B, s.N, s.H, s.W)))


@COMPOSITE.register("progan_d_block", paper=_PAPER + ", D_paper block() and fromrgb())", consumes=("img",))
class ProGANDBlock(_Progressive):
    """One resolution (8..1024) of ProGAN's discriminator, with its fromRGB and the fade-in of the block above.

    Follows ``D_paper`` in tkarras/progressive_growing_of_gans ``networks.py`` (structure 'linear'):
    ``fromrgb(img, res)``, ``block(x, res)`` for res >= 3 and the ``Grow_lod`` lerp. With S the network's
    current stage (``set_stage``; default: this block's own stage):

    - S == stage (the top block): ``h = fromrgb(img)``; x is not used (it is not even checked, so a network
      may pass its image there);
    - S == stage + 1: ``h = fade(fromrgb(downscale(img)), x)``: the block above (x) fades in against this
      block's fromRGB of the 2x2-average-pooled image (α = 0: the old path, 1: x, exactly);
    - S > stage + 1: ``h = x`` (fromRGB is not run);

    then ``conv0`` (3x3, in -> in), ``conv1`` (3x3, in -> out), each equalized with He gain √2, bias and leaky
    ReLU 0.2 (no gain), and 2x2 average pooling (``downscale``).

    The image is the network's input at the current stage (4·2^S pixels), consumed by every block (routed
    by name, as SPADE's ``seg``); only the top block and the one below it read it.

    Deviations from the reference, none changing the function or the parameter count: the reference's
    default ``fused_scale=True`` computes Conv1 + 2x2 average pooling as one stride-2 conv with the kernel
    averaged into a 4x4 one (scope ``Conv1_down``, the same function); here they are separate layers
    (``fused_scale=False``, scope ``Conv1``). The reference lerps after the block above
    (``Grow_lod``, weight ``lod_in - lod`` = 1 - α); here the blend is the first step of the block below,
    whose fromRGB it uses: the same computation. The fromRGB is named ``fromrgb``, not ``FromRGB_lod{n}``.
    D reads the image of the current stage's size, not one of the full resolution.

    Args:
        in_channels: feature maps of this resolution (networks.py ``nf(res - 1)``); give it explicitly,
            since the top block reads no x to infer it from.
        out_channels: feature maps of the next lower resolution (``nf(res - 2)``).
        resolution: this block's input size: 8, 16, ..., 1024.
        stage: the stage at which this block is the top one (stage s works at 4·2^s pixels).
        num_channels: image channels of fromRGB.

    Raises:
        ValueError: called at a stage below its own.
        TypeError: img missing at stage or stage + 1, or x missing above the stage.

    Shape:
        - x: (B, C, H, W) with C = in_channels, the output of the block above (unused at the top).
        - img: (B, num_channels, H, W) at S == stage, (B, num_channels, 2H, 2W) at S == stage + 1; unused
          further up.
        - output: (B, out_channels, H/2, W/2).
    """

    def __init__(self, in_channels: int, out_channels: int, resolution: int, stage: int, num_channels: int = 3):
        super().__init__()
        sizes = {"in_channels": in_channels, "out_channels": out_channels, "num_channels": num_channels}
        self._init_common(sizes, resolution, 8, stage)
        self.in_channels, self.out_channels, self.num_channels = in_channels, out_channels, num_channels
        self.fromrgb = FromRGB(num_channels, in_channels)
        self.conv0 = _conv3x3(in_channels, in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels)
        self.downscale = AvgPoolDown(2)
        self.fade = FadeIn()

    def forward(self, x: Tensor | None = None, img: Tensor | None = None) -> Tensor:
        role = self._role()
        if role == 0:
            img = self._require(img, "img", "the top block reads the image")
            self.check(img, "B C H W", "img", C=self.num_channels)
            h = self.fromrgb(img)
        else:
            x = self._require(x, "x", "a block below the top reads the output of the block above")
            dims = self.check(x, "B C H W", C=self.in_channels)
            if role == 1:
                img = self._require(img, "img", "the block below the top fades in its fromRGB of the image")
                self.check(img, "B C H W", "img", B=dims.get("B"), C=self.num_channels,
                           H=2 * dims["H"] if dims else None, W=2 * dims["W"] if dims else None)
                h = self.fade(self.fromrgb(self.downscale(img)), x)
            else:
                h = x
        h = self.conv1(self.conv0(h))
        return self.downscale(h)  # (B, out_channels, H/2, W/2)

    def out_shape(self, x: Shape | None = None, img: Shape | None = None) -> Shape:
        role = self._role()
        src = img if role == 0 else x
        if src is None:
            raise self.fail(f"{'img' if role == 0 else 'x'} is required at stage {self.current_stage}", TypeError)
        B, _, H, W = src
        return (B, self.out_channels, H // 2, W // 2)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        kwargs = {"in_channels": s.C, "out_channels": s.D, "resolution": 8, "stage": 1, "num_channels": s.N}
        return Example(kwargs, (), {"img": s.randn(s.B, s.N, s.even(s.H), s.even(s.W))})


@COMPOSITE.register("progan_d_epilogue", paper=_PAPER + ", D_paper block(x, 2) and fromrgb())",
                    consumes=("img",), batch_coupled=True)
class ProGANDEpilogue(_Progressive):
    """The 4x4 end of ProGAN's discriminator: fromRGB and fade-in, minibatch stddev, conv, two dense layers.

    Follows ``D_paper`` in tkarras/progressive_growing_of_gans ``networks.py``: ``block(x, 2)`` (scope
    ``4x4``) with the fromRGB of resolution 4 and the ``Grow_lod`` lerp of the 8x8 block above. With S the
    network's current stage (``set_stage``; default: ``stage``): at S == stage ``h = fromrgb(img)`` (x not
    used); at S == stage + 1 ``h = fade(fromrgb(downscale(img)), x)``; above, ``h = x``. Then ``mbstd``
    (minibatch standard deviation, groups of ``min(mbstd_group_size, B)``, one appended map), ``conv``
    (3x3, in + 1 -> in, He gain √2, bias, leaky ReLU 0.2 without gain; scope ``Conv``), flatten, ``dense0``
    (in·16 -> hidden_features, gain √2, bias, leaky ReLU; ``Dense0``), ``dense1`` (-> out_features, gain 1,
    bias, linear; ``Dense1``).

    Deviations from the reference: the fade is the first step here (the reference lerps after the 8x8
    block: the same computation); the fromRGB is named ``fromrgb``, not ``FromRGB_lod{n}``; the reference
    computes the minibatch statistics in float32 whatever the activations' dtype, here in the input's dtype.
    ``mbstd_group_size <= 1`` leaves the layer out, as the reference (then ``mbstd`` is None and conv takes
    in_channels). The reference's outputs ``scores_out``/``labels_out`` are columns ``[:1]``/``[1:]`` of
    this output (out_features = 1 + label_size).

    Args:
        in_channels: feature maps at 4x4 (networks.py ``nf(1)``).
        hidden_features: width of ``dense0`` (``nf(0)``).
        out_features: logits (1, plus label_size for AC-GAN-style labels).
        mbstd_group_size: minibatch stddev group size (networks.py default 4); <= 1 disables it.
        num_channels: image channels of fromRGB.
        stage: the stage at which this block is the top one (0 in ProGAN: 4x4 images).

    Raises:
        ValueError: called at a stage below its own; a batch not divisible by the stddev group.
        TypeError: img missing at stage or stage + 1, or x missing above the stage.

    Shape:
        - x: (B, C, 4, 4) with C = in_channels (unused at S == stage).
        - img: (B, num_channels, 4, 4) at S == stage, (B, num_channels, 8, 8) at S == stage + 1; unused above.
        - output: (B, out_features).
    """

    def __init__(self, in_channels: int, hidden_features: int, out_features: int = 1, mbstd_group_size: int = 4,
                 num_channels: int = 3, stage: int = 0):
        super().__init__()
        sizes = {"in_channels": in_channels, "hidden_features": hidden_features, "out_features": out_features,
                 "num_channels": num_channels}
        self._init_common(sizes, 4, 4, stage)
        self.in_channels, self.hidden_features, self.out_features = in_channels, hidden_features, out_features
        self.num_channels, self.mbstd_group_size = num_channels, mbstd_group_size
        self.fromrgb = FromRGB(num_channels, in_channels)
        self.fade = FadeIn()
        self.downscale = AvgPoolDown(2)  # the 8x8 image, while the 8x8 block fades in
        self.mbstd = MinibatchStdDev(mbstd_group_size, num_channels=1) if mbstd_group_size > 1 else None
        self.conv = _conv3x3(in_channels + (self.mbstd is not None), in_channels)
        self.dense0 = EqualizedLinear(in_channels * 16, hidden_features, gain=_SQRT2, activation="lrelu",
                                      act_gain=1.0)
        self.dense1 = EqualizedLinear(hidden_features, out_features, gain=1.0)

    def forward(self, x: Tensor | None = None, img: Tensor | None = None) -> Tensor:
        role = self._role()
        if role == 0:
            img = self._require(img, "img", "the top block reads the image")
            self.check(img, "B C 4 4", "img", C=self.num_channels)
            h = self.fromrgb(img)
        else:
            x = self._require(x, "x", "a block below the top reads the output of the block above")
            dims = self.check(x, "B C 4 4", C=self.in_channels)
            if role == 1:
                img = self._require(img, "img", "the block below the top fades in its fromRGB of the image")
                self.check(img, "B C 8 8", "img", B=dims.get("B"), C=self.num_channels)
                h = self.fade(self.fromrgb(self.downscale(img)), x)
            else:
                h = x
        if self.mbstd is not None:
            h = self.mbstd(h)  # (B, C + 1, 4, 4)
        h = self.conv(h).flatten(1)  # (B, C·16), NCHW order as the reference's dense reshape
        return self.dense1(self.dense0(h))

    def out_shape(self, x: Shape | None = None, img: Shape | None = None) -> Shape:
        role = self._role()
        src = img if role == 0 else x
        if src is None:
            raise self.fail(f"{'img' if role == 0 else 'x'} is required at stage {self.current_stage}", TypeError)
        return (src[0], self.out_features)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        kwargs = {"in_channels": s.C, "hidden_features": s.D, "num_channels": s.N}
        return Example(kwargs, (), {"img": s.randn(s.B, s.N, 4, 4)})

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mbstd_group_size={self.mbstd_group_size}"
