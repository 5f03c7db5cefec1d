"""StyleGAN2's repeated units: the synthesis block, the discriminator block and the discriminator epilogue.

Each follows the class of the same name in NVlabs' stylegan2-ada-pytorch (``training/networks.py``) and
holds its sub-modules under the same names (``conv0``, ``conv1``, ``torgb``, ``skip``, ``fromrgb``, ...), so
a network chained from them as ``SynthesisNetwork``/``Discriminator`` do (``synthesis.b{res}``, ``b{res}``)
has the reference's module tree. Inside the layers the names are ganforge's: an NVlabs ``SynthesisLayer``
is a :class:`StyleConv` (``conv0.weight`` is ``conv0.conv.weight``, ``conv0.affine`` is ``conv0.conv.affine``,
``conv0.noise_strength``/``noise_const`` are ``conv0.noise.strength``/``noise_const``), a ``ToRGBLayer`` is a
:class:`StyleToRGB` (``torgb.conv.weight``, ``torgb.conv.affine``); ``Conv2dLayer`` and
``FullyConnectedLayer`` keep their names as :class:`EqualizedConv2d` and :class:`EqualizedLinear`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..layers.equalized import EqualizedConv2d, EqualizedLinear
from ..layers.styled import StyleConv, StyleToRGB
from ..registry import COMPOSITE
from ..resample.fir import DEFAULT_IMPL, downsample2d, setup_filter, upsample2d
from ..structure.minibatch import MinibatchStdDev

__all__ = ["StyleGAN2DBlock", "StyleGAN2DEpilogue", "StyleGAN2SynthesisBlock", "force_fp32"]

STYLEGAN2 = "Karras et al. 2020, Analyzing and Improving the Image Quality of StyleGAN (StyleGAN2)"
ARCHITECTURES = ("orig", "skip", "resnet")
SQRT_HALF = math.sqrt(0.5)  # the residual branches' gain: keeps the variance of the sum (sec. 4.1)
# StyleGAN2-ADA's mixed precision (``use_fp16``) computes in bfloat16 here, on every device: it has float32's
# exponent range, so NVlabs' float16 safeguards (pre-normalised modulation weights) are not needed.
HALF = torch.bfloat16


def _compute_dtype(use_fp16: bool, dtype: torch.dtype) -> torch.dtype:
    """The dtype a block computes in: ``HALF`` for a ``use_fp16`` block given float32, else the input's."""
    return HALF if use_fp16 and dtype == torch.float32 else dtype


def force_fp32(module: torch.nn.Module, enabled: bool = True) -> int:
    """Run every ``use_fp16`` StyleGAN2 block in ``module`` in float32 (``enabled``), or in bfloat16 again.

    NVlabs' ``force_fp32``: a network trained with ``num_fp16_res`` (StyleGAN2-ADA) then computes in full
    precision, its ``conv_clamp`` still applied, and gives the float32 function of its weights. Returns the
    number of blocks switched.
    """
    blocks = [m for m in module.modules() if isinstance(m, StyleGAN2SynthesisBlock | StyleGAN2DBlock)
              and (m.use_fp16 or getattr(m, "_fp16_forced_off", False))]
    for m in blocks:
        m.use_fp16, m._fp16_forced_off = not enabled, enabled
    return len(blocks)


def _check_architecture(block: Block, architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise block.fail(f"architecture should be one of {ARCHITECTURES}, got {architecture!r}")


def _first_shape(*shapes: Shape | None) -> Shape:
    return next(tuple(s) for s in shapes if s is not None)


@COMPOSITE.register("stylegan2_synthesis_block", paper=f"{STYLEGAN2}, sec. 4.1 and fig. 7 (skip and residual "
                    "generators); official SynthesisBlock", consumes=("w",))
class StyleGAN2SynthesisBlock(Block):
    """One resolution of StyleGAN2's generator: two styled convs (the first upsampling x2) and a toRGB.

    Follows NVlabs' ``SynthesisBlock`` (stylegan2-ada-pytorch ``training/networks.py``). The first block
    (``in_channels=0``) starts from the learned constant ``const`` (N(0, 1), repeated over the batch) and
    has only ``conv1``; later blocks run ``conv0`` (up=2) then ``conv1``. With ``architecture="resnet"``
    the output is ``skip(x)·√½ + conv1(conv0(x))·√½`` (the gains applied inside the layers, clamp
    included, as NVlabs' ``gain``). The image path (``"skip"``, and the last block of any architecture):
    the incoming ``img`` is FIR-upsampled x2 (``upsample2d`` with ``resample_filter``) and the toRGB
    output of this block's features is added to it.

    Styles: ``w`` holds ``style_layers = num_conv + num_torgb`` consecutive w's, used in the order
    conv0, conv1, torgb; a network advances its layer counter by ``style_advance = num_conv``, so this
    block's toRGB shares its w with the next block's conv0 (NVlabs' ``w_idx``). A single w (B, w_dim) is
    used for every layer.

    Mixed precision (StyleGAN2-ADA's ``use_fp16``, on the top ``num_fp16_res`` resolutions): a
    ``use_fp16`` block given float32 computes its features in bfloat16 and adds its toRGB output to the image
    in float32, as NVlabs keeps ``img`` in float32.

    Deviations from NVlabs: ``use_fp16`` computes in bfloat16, not float16 (see ``HALF``), and hands ``x``
    back in the dtype it came in (NVlabs passes float16 on; the next block's cast gives the same values);
    otherwise computation stays in the input's dtype (the caller's choice, e.g. autocast); no
    ``fp16_channels_last``; the modulated conv's formulation is chosen by ``impl`` (``"grouped"`` in the
    layers is NVlabs' ``fused_modconv``) instead of ``fused_modconv``; ``w`` may also be (B, w_dim); an
    ``x`` given to the first block is an error (NVlabs ignores it).

    Args:
        in_channels: channels of the incoming features; 0 = the first block (starts from ``const``).
        out_channels: channels of this block's features.
        w_dim: dimension of w (512).
        resolution: output resolution (square), e.g. 4 for the first block.
        img_channels: image channels (3).
        is_last: the network's last block (then it has a toRGB whatever the architecture).
        architecture: ``"orig"`` (toRGB in the last block only), ``"skip"`` (toRGB in every block, images
            summed, StyleGAN2's generator) or ``"resnet"`` (residual blocks, toRGB in the last block).
        resample_filter: 1-D FIR taps for upsampling (``[1, 3, 3, 1]``).
        conv_clamp: clamp the conv outputs to ±conv_clamp (StyleGAN2-ADA: 256 in float16 layers); None = off.
        use_noise: add per-pixel noise in the styled convs.
        use_fp16: compute in reduced precision (bfloat16) when given float32 (StyleGAN2-ADA's fp16 blocks).
        impl: ``"auto"``, ``"ref"`` or ``"fast"``, passed to every layer and used for the image upsampling.

    Shape:
        - x: (B, C, H/2, W/2) with C = in_channels, H = W = resolution; absent for the first block.
        - img: (B, img_channels, H/2, W/2), or absent (the first block, and every block but the last
          outside ``"skip"``).
        - w: (B, N, D) with N = style_layers, D = w_dim; or (B, D).
        - output: a pair ``(x, img)``: x (B, out_channels, H, W); img (B, img_channels, H, W), or None
          when the block has no toRGB and got no img.
    """

    impls: ClassVar[tuple[str, ...]] = ("ref", "fast")
    default_impl: ClassVar[dict[str, str]] = DEFAULT_IMPL  # follows the FIR resampling of the image

    def __init__(self, in_channels: int, out_channels: int, w_dim: int = 512, *, resolution: int,
                 img_channels: int = 3, is_last: bool = False, architecture: str = "skip",
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 use_noise: bool = True, use_fp16: bool = False, impl: str = "auto"):
        super().__init__()
        _check_architecture(self, architecture)
        if in_channels < 0 or out_channels < 1 or resolution < 1:
            raise self.fail(f"expected in_channels >= 0, out_channels >= 1 and resolution >= 1, got "
                            f"{in_channels}, {out_channels} and {resolution}")
        if in_channels and resolution % 2:
            raise self.fail(f"a block that upsamples x2 needs an even resolution, got {resolution}")
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.resolution, self.img_channels = resolution, img_channels
        self.is_last, self.architecture, self.use_fp16 = is_last, architecture, use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = self.num_torgb = 0
        self.const = self.conv0 = self.torgb = self.skip = None
        # Sub-modules in NVlabs' order: const, conv0, conv1, torgb, skip.
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = StyleConv(in_channels, out_channels, w_dim, up=2, resolution=resolution,
                                   use_noise=use_noise, conv_clamp=conv_clamp, resample_filter=resample_filter,
                                   impl=impl)
            self.num_conv += 1
        self.conv1 = StyleConv(out_channels, out_channels, w_dim, resolution=resolution, use_noise=use_noise,
                               conv_clamp=conv_clamp, impl=impl)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = StyleToRGB(out_channels, img_channels, w_dim, conv_clamp=conv_clamp, impl=impl)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = EqualizedConv2d(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                        resample_filter=resample_filter, impl=impl)
        self.style_layers = self.num_conv + self.num_torgb
        self.style_advance = self.num_conv
        self._init_impl(impl)

    def _check_inputs(self, x: Tensor | None, img: Tensor | None, w: Tensor) -> None:
        half = self.resolution // 2
        B = None
        if self.in_channels == 0:
            if x is not None:
                raise self.fail("the first block (in_channels=0) starts from its learned constant and takes "
                                f"no x, got x of shape {tuple(x.shape)}")
        elif x is None:
            raise self.fail(f"x of shape (B, {self.in_channels}, {half}, {half}) is required "
                            f"(only the first block, in_channels=0, runs without it)", TypeError)
        else:
            B = self.check(x, "B C H W", C=self.in_channels, H=half, W=half).get("B")
        if img is not None:
            B = self.check(img, "B C H W", "img", B=B, C=self.img_channels, H=half, W=half).get("B", B)
        if isinstance(w, Tensor) and w.dim() == 2:
            self.check(w, "B D", "w", B=B, D=self.w_dim)
        else:
            self.check(w, "B N D", "w", B=B, N=self.style_layers, D=self.w_dim)

    def forward(self, x: Tensor | None = None, img: Tensor | None = None, w: Tensor | None = None,
                noise_mode: str | None = None) -> tuple[Tensor, Tensor | None]:
        """``noise_mode`` (``"random"``, ``"const"``, ``"none"``, ``"input"``) overrides the styled convs'
        default."""
        self._check_inputs(x, img, w)
        ws = iter(w.unbind(dim=1) if w.dim() == 3 else [w] * self.style_layers)  # each (B, D)
        dtype = w.dtype if x is None else x.dtype
        compute = _compute_dtype(self.use_fp16, dtype)
        if self.const is not None:
            x = self.const.to(compute).unsqueeze(0).repeat(w.shape[0], 1, 1, 1)  # (B, C, H, W)
            x = self.conv1(x, next(ws), noise_mode=noise_mode)
        elif self.skip is not None:
            x = x.to(compute)
            y = self.skip(x, output_gain=SQRT_HALF)  # (B, C_out, H, W)
            x = self.conv0(x, next(ws), noise_mode=noise_mode)
            x = self.conv1(x, next(ws), noise_mode=noise_mode, output_gain=SQRT_HALF)
            x = y + x
        else:
            x = self.conv0(x.to(compute), next(ws), noise_mode=noise_mode)
            x = self.conv1(x, next(ws), noise_mode=noise_mode)
        if img is not None:
            img = self.dispatch(img.device, img.dtype,
                                lambda impl: upsample2d(img, self.resample_filter, impl=impl))  # (B, 3, H, W)
        if self.torgb is not None:
            y = self.torgb(x, next(ws)).to(dtype if img is None else img.dtype)
            img = y if img is None else img + y
        return x.to(dtype), img

    def out_shape(self, x: Shape | None = None, img: Shape | None = None,
                  w: Shape | None = None) -> list[Shape | None]:
        B = _first_shape(x, img, w)[0]
        res = self.resolution
        has_img = self.torgb is not None or img is not None
        return [(B, self.out_channels, res, res), (B, self.img_channels, res, res) if has_img else None]

    @classmethod
    def example(cls, s: Sizes) -> Example:
        variant = s.seed % 4  # later block: skip / resnet (not last) / orig (last); the first block
        h = s.H
        in_channels = 0 if variant == 3 else s.C
        kwargs = {"in_channels": in_channels, "out_channels": s.N, "w_dim": s.D, "resolution": 2 * h,
                  "img_channels": 2, "is_last": variant == 2,
                  "architecture": ("skip", "resnet", "orig", "skip")[variant], "conv_clamp": 4.0}
        n_styles = (3, 2, 3, 2)[variant]
        w = s.randn(s.B, n_styles, s.D) if s.seed % 3 else s.randn(s.B, s.D)
        if variant == 3:
            kwargs["resolution"] = h
            return Example(kwargs, (), {"w": w})
        x = s.randn(s.B, s.C, h, h)
        inputs = (x, s.randn(s.B, 2, h, h)) if variant == 0 else (x,)
        return Example(kwargs, inputs, {"w": w})

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, resolution={self.resolution}, "
                f"architecture={self.architecture}, is_last={self.is_last}, style_layers={self.style_layers}")


@COMPOSITE.register("stylegan2_d_block", paper=f"{STYLEGAN2}, sec. 4.1 and fig. 7 (residual and skip "
                    "discriminators); official DiscriminatorBlock")
class StyleGAN2DBlock(Block):
    """One resolution of StyleGAN2's discriminator: two equalized 3x3 convs, the second downsampling x2.

    Follows NVlabs' ``DiscriminatorBlock`` (stylegan2-ada-pytorch ``training/networks.py``). The first
    block (``in_channels=0``), and every block of the ``"skip"`` architecture, reads the image through a
    1x1 ``fromrgb`` (added to x when x is given); ``"skip"`` also passes the image on, FIR-downsampled x2.
    ``"resnet"`` (StyleGAN2's discriminator) returns ``skip(x)·√½ + conv1(conv0(x))·√½``, ``skip`` a 1x1
    conv without bias that downsamples (blur, then stride 2) and the gains applied inside the layers.

    Mixed precision: a ``use_fp16`` block given float32 computes in bfloat16 (StyleGAN2-ADA's fp16 blocks,
    see ``HALF``) and hands ``x`` (and the skip architecture's ``img``) back in the dtype they came in.

    Deviations from NVlabs: no ``first_layer_idx``/``freeze_layers`` (Freeze-D registers frozen weights as
    buffers there; here freeze parameters with ``requires_grad_(False)``, which keeps the state_dict the
    same); ``use_fp16`` means bfloat16, not float16; no ``fp16_channels_last``; otherwise computation stays
    in the input's dtype; an ``x`` given to the first block, or an ``img`` given to a block without
    ``fromrgb``, is an error (NVlabs ignores them).

    Args:
        in_channels: channels of the incoming features; 0 = the first block (reads the image). Otherwise
            it must equal ``tmp_channels``, as NVlabs asserts.
        tmp_channels: channels inside the block (of ``fromrgb``, ``conv0``).
        out_channels: channels of the output features.
        resolution: input resolution (square); the output has half of it.
        img_channels: image channels (3).
        architecture: ``"orig"``, ``"skip"`` or ``"resnet"`` (StyleGAN2's default).
        activation: activation of the convs (``"lrelu"``, gain √2).
        resample_filter: 1-D FIR taps for downsampling (``[1, 3, 3, 1]``).
        conv_clamp: clamp the conv outputs to ±conv_clamp; None = off.
        use_fp16: compute in reduced precision (bfloat16) when given float32 (StyleGAN2-ADA's fp16 blocks).
        impl: ``"auto"``, ``"ref"`` or ``"fast"``, passed to every layer and used for the image downsampling.

    Shape:
        - x: (B, C, H, W) with C = in_channels, H = W = resolution; absent for the first block.
        - img: (B, img_channels, H, W) for the first block and the ``"skip"`` architecture, else absent.
        - output: a pair ``(x, img)``: x (B, out_channels, H/2, W/2); img (B, img_channels, H/2, W/2) for
          ``"skip"``, else None.
    """

    impls: ClassVar[tuple[str, ...]] = ("ref", "fast")
    default_impl: ClassVar[dict[str, str]] = DEFAULT_IMPL  # follows the FIR resampling of the image

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int,
                 img_channels: int = 3, architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 use_fp16: bool = False, impl: str = "auto"):
        super().__init__()
        _check_architecture(self, architecture)
        if in_channels not in (0, tmp_channels):
            raise self.fail(f"in_channels should be 0 (first block) or tmp_channels={tmp_channels}, "
                            f"got {in_channels}")
        if resolution < 2:
            raise self.fail(f"resolution should be at least 2 (the block downsamples x2), got {resolution}")
        self.in_channels, self.tmp_channels, self.out_channels = in_channels, tmp_channels, out_channels
        self.resolution, self.img_channels, self.architecture = resolution, img_channels, architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.fromrgb = self.skip = None
        # Sub-modules in NVlabs' order: fromrgb, conv0, conv1, skip.
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = EqualizedConv2d(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                           conv_clamp=conv_clamp, impl=impl)
        self.conv0 = EqualizedConv2d(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                     conv_clamp=conv_clamp, impl=impl)
        self.conv1 = EqualizedConv2d(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                     resample_filter=resample_filter, conv_clamp=conv_clamp, impl=impl)
        if architecture == "resnet":
            self.skip = EqualizedConv2d(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                        resample_filter=resample_filter, impl=impl)
        self._init_impl(impl)

    def _check_inputs(self, x: Tensor | None, img: Tensor | None) -> None:
        res = self.resolution
        B = None
        if self.in_channels == 0:
            if x is not None:
                raise self.fail(f"the first block (in_channels=0) reads the image and takes no x, got x of "
                                f"shape {tuple(x.shape)}")
        elif x is None:
            raise self.fail(f"x of shape (B, {self.in_channels}, {res}, {res}) is required (only the first "
                            "block, in_channels=0, runs without it)", TypeError)
        else:
            B = self.check(x, "B C H W", C=self.in_channels, H=res, W=res).get("B")
        if self.fromrgb is None:
            if img is not None:
                raise self.fail("img is read only by the first block and by the skip architecture, got img of "
                                f"shape {tuple(img.shape)}", TypeError)
        elif img is None:
            raise self.fail(f"img of shape (B, {self.img_channels}, {res}, {res}) is required (first block "
                            "or skip architecture)", TypeError)
        else:
            self.check(img, "B C H W", "img", B=B, C=self.img_channels, H=res, W=res)

    def forward(self, x: Tensor | None = None, img: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        self._check_inputs(x, img)
        dtype = (img if x is None else x).dtype
        compute = _compute_dtype(self.use_fp16, dtype)
        x = None if x is None else x.to(compute)
        if self.fromrgb is not None:
            img_dtype, img = img.dtype, img.to(compute)
            y = self.fromrgb(img)  # (B, tmp, H, W)
            x = y if x is None else x + y
            if self.architecture == "skip":
                img = self.dispatch(img.device, img.dtype, lambda impl: downsample2d(
                    img, self.resample_filter, impl=impl)).to(img_dtype)  # (B, 3, H/2, W/2)
            else:
                img = None
        if self.skip is not None:
            y = self.skip(x, output_gain=SQRT_HALF)  # (B, out, H/2, W/2)
            x = self.conv0(x)
            x = self.conv1(x, output_gain=SQRT_HALF)
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x.to(dtype), img

    def out_shape(self, x: Shape | None = None, img: Shape | None = None) -> list[Shape | None]:
        B = _first_shape(x, img)[0]
        res = self.resolution
        x_out = self.conv1.out_shape((B, self.tmp_channels, res, res))
        # downsample2d pads f - 2 in all, so the image gets ⌊res / 2⌋ whatever the filter.
        return [x_out, (B, self.img_channels, res // 2, res // 2) if self.architecture == "skip" else None]

    @classmethod
    def example(cls, s: Sizes) -> Example:
        architecture = ("resnet", "skip", "orig")[s.seed % 3]
        res = max(2, s.even(s.H))
        kwargs = {"in_channels": s.C, "tmp_channels": s.C, "out_channels": s.N, "resolution": res,
                  "img_channels": 2, "architecture": architecture, "conv_clamp": 4.0}
        x = s.randn(s.B, s.C, res, res)
        inputs = (x, s.randn(s.B, 2, res, res)) if architecture == "skip" else (x,)
        return Example(kwargs, inputs)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, tmp_channels={self.tmp_channels}, "
                f"out_channels={self.out_channels}, resolution={self.resolution}, "
                f"architecture={self.architecture}")


@COMPOSITE.register("stylegan2_d_epilogue", paper=f"{STYLEGAN2}, sec. 4.1 (discriminator); minibatch stddev: "
                    "Karras et al. 2018 (ProGAN), sec. 3; projection: Miyato & Koyama 2018; official "
                    "DiscriminatorEpilogue", consumes=("cmap",), batch_coupled=True)
class StyleGAN2DEpilogue(Block):
    """The 4x4 end of StyleGAN2's discriminator: minibatch stddev, a 3x3 conv, two FC layers, the logit.

    Follows NVlabs' ``DiscriminatorEpilogue`` (stylegan2-ada-pytorch ``training/networks.py``): with the
    ``"skip"`` architecture the image is read through ``fromrgb`` and added to x; then ``mbstd`` appends
    the group standard deviation (``mbstd_num_channels`` maps; 0 disables it), ``conv`` (3x3, back to
    ``in_channels``), ``fc`` (flattened features -> in_channels, activation) and ``out`` (linear, to 1 or
    ``cmap_dim``). With ``cmap_dim > 0`` the logit is the projection ``Σ_j out_j · cmap_j / √cmap_dim``
    onto the mapped label ``cmap`` (the discriminator's own mapping network produces it).

    Deviations from NVlabs: the computation stays in the input's dtype (NVlabs casts to float32 here);
    ``cmap`` given to an unconditional epilogue (``cmap_dim=0``), or ``img`` outside ``"skip"``, is an error
    (NVlabs ignores them).

    Args:
        in_channels: channels of the incoming features C.
        cmap_dim: dimension of the mapped label; 0 = unconditional (then ``cmap`` is not consumed).
        resolution: resolution of the incoming features (4).
        img_channels: image channels (3).
        architecture: ``"orig"``, ``"skip"`` (then the image is read through ``fromrgb``) or ``"resnet"``.
        mbstd_group_size: minibatch stddev group size (4), clamped to the batch; None = the whole batch.
        mbstd_num_channels: minibatch stddev maps (1); 0 = no minibatch stddev.
        activation: activation of ``fromrgb``, ``conv`` and ``fc`` (``"lrelu"``, gain √2).
        conv_clamp: clamp the output of ``conv`` to ±conv_clamp; None = off.
        impl: ``"auto"``, ``"ref"`` or ``"fast"``, passed to every layer.

    Shape:
        - x: (B, C, H, W) with C = in_channels, H = W = resolution; B divisible by min(group size, B).
        - img: (B, img_channels, H, W) for the ``"skip"`` architecture, else absent.
        - cmap: (B, D) with D = cmap_dim, only when cmap_dim > 0.
        - output: (B, 1) logits.
    """

    def __init__(self, in_channels: int, cmap_dim: int = 0, resolution: int = 4, img_channels: int = 3,
                 architecture: str = "resnet", mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: float | None = None, impl: str = "auto"):
        super().__init__()
        _check_architecture(self, architecture)
        if in_channels < 1 or cmap_dim < 0 or resolution < 1 or mbstd_num_channels < 0:
            raise self.fail(f"expected in_channels >= 1, cmap_dim >= 0, resolution >= 1 and "
                            f"mbstd_num_channels >= 0, got {in_channels}, {cmap_dim}, {resolution} and "
                            f"{mbstd_num_channels}")
        self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
        self.img_channels, self.architecture = img_channels, architecture
        if cmap_dim == 0:
            self.consumes = ()
        self.fromrgb = None
        # Sub-modules in NVlabs' order: fromrgb, mbstd, conv, fc, out.
        if architecture == "skip":
            self.fromrgb = EqualizedConv2d(img_channels, in_channels, kernel_size=1, activation=activation,
                                           impl=impl)
        self.mbstd = (MinibatchStdDev(mbstd_group_size, mbstd_num_channels, impl=impl)
                      if mbstd_num_channels > 0 else None)
        self.conv = EqualizedConv2d(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                    activation=activation, conv_clamp=conv_clamp, impl=impl)
        self.fc = EqualizedLinear(in_channels * resolution**2, in_channels, activation=activation, impl=impl)
        self.out = EqualizedLinear(in_channels, 1 if cmap_dim == 0 else cmap_dim, impl=impl)

    def forward(self, x: Tensor, img: Tensor | None = None, cmap: Tensor | None = None) -> Tensor:
        res = self.resolution
        B = self.check(x, "B C H W", C=self.in_channels, H=res, W=res).get("B")
        if self.fromrgb is None:
            if img is not None:
                raise self.fail(f"img is read only by the skip architecture, got img of shape "
                                f"{tuple(img.shape)}", TypeError)
        elif img is None:
            raise self.fail(f"img of shape (B, {self.img_channels}, {res}, {res}) is required with the skip "
                            "architecture", TypeError)
        else:
            self.check(img, "B C H W", "img", B=B, C=self.img_channels, H=res, W=res)
            x = x + self.fromrgb(img)
        if self.cmap_dim > 0:
            if cmap is None:
                raise self.fail(f"cmap of shape (B, {self.cmap_dim}) is required with cmap_dim={self.cmap_dim}",
                                TypeError)
            self.check(cmap, "B D", "cmap", B=B, D=self.cmap_dim)
        elif cmap is not None:
            raise self.fail(f"cmap was given (shape {tuple(cmap.shape)}) but the epilogue has cmap_dim=0",
                            TypeError)
        if self.mbstd is not None:
            x = self.mbstd(x)  # (B, C + mbstd_num_channels, H, W)
        x = self.conv(x)  # (B, C, H, W)
        x = self.fc(x.flatten(1))  # (B, C)
        x = self.out(x)  # (B, 1) or (B, cmap_dim)
        if self.cmap_dim > 0:
            x = (x * cmap.to(x.dtype)).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))  # (B, 1)
        return x

    def out_shape(self, x: Shape, img: Shape | None = None, cmap: Shape | None = None) -> Shape:
        return (x[0], 1)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        architecture = ("resnet", "skip", "orig")[s.seed % 3]
        cmap_dim = s.D if s.seed % 2 else 0
        kwargs = {"in_channels": s.C, "cmap_dim": cmap_dim, "resolution": s.H, "img_channels": 2,
                  "architecture": architecture, "conv_clamp": 4.0}
        x = s.randn(s.B, s.C, s.H, s.H)
        inputs = (x, s.randn(s.B, 2, s.H, s.H)) if architecture == "skip" else (x,)
        return Example(kwargs, inputs, {"cmap": s.randn(s.B, cmap_dim)} if cmap_dim else {})

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, cmap_dim={self.cmap_dim}, resolution={self.resolution}, "
                f"architecture={self.architecture}")
