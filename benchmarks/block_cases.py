"""The hot blocks, each at the shape its paper's configuration gives it.

Batch sizes are per device, as the papers' multi-GPU runs see them (StyleGAN2: 32 over 8 GPUs at high
resolution, more at low; BigGAN: 256 over 8 TPU cores; ProGAN: 16 at 32x32); ``--batch-mult`` scales them.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import nn

import blocks
from blocks.resample.conv_resample import conv2d_resample
from blocks.resample.fir import setup_filter

from .cases import Built, Case, Context, Variant, block_build, leaf

__all__ = ["BLOCK_CASES"]

SG2 = "StyleGAN2 config F (Karras et al. 2020)"
BIGGAN = "BigGAN 128 (Brock et al. 2019, ch=96)"


def _modulated(C: int, H: int, demodulate: bool = True, up: int = 1, down: int = 1, B: int = 8):
    def build(ctx: Context) -> Built:
        b = ctx.batch(B)
        x, w = ctx.randn(b, C, H, H), ctx.randn(b, 512)
        # The same conv with no modulation: the baseline the modulation's cost is measured against.
        weight = leaf(ctx.randn(C, C, 3, 3) / (3 * C**0.5))
        xb = leaf(x)
        f = setup_filter((1, 3, 3, 1), device=ctx.device).to(ctx.dtype)
        pad = 1

        def conv() -> torch.Tensor:
            return conv2d_resample(xb, weight, f, up=up, down=down, padding=pad, flip_weight=up == 1)

        return block_build(ctx, lambda: blocks.NORMS.create(
            "modulated_conv", in_channels=C, out_channels=C, w_dim=512, demodulate=demodulate, up=up, down=down),
            (x,), {"w": w}, baselines=[("conv", conv, [xb, weight])],
            config={"x": [b, C, H, H], "w": [b, 512], "kernel": 3, "demodulate": demodulate, "up": up,
                    "down": down})
    return build


def _fir(key: str, channels_last: bool = False, B: int = 8, C: int = 128, H: int = 64):
    """An FIR op on NCHW input, or on channels_last input: the layout it receives inside the networks,
    where the fast conv paths (modulated conv, conv2d_resample) run and return channels_last."""
    def build(ctx: Context) -> Built:
        b = ctx.batch(B)
        x = ctx.randn(b, C, H, H)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return block_build(ctx, lambda: blocks.RESAMPLE.create(key), (x,),
                           config={"x": [b, C, H, H], "filter": [1, 3, 3, 1],
                                   "layout": "channels_last" if channels_last else "NCHW"})
    return build


def _up_conv(ctx: Context) -> Built:
    b = ctx.batch(8)
    return block_build(ctx, lambda: blocks.RESAMPLE.create("up_conv", in_channels=256, out_channels=256),
                       (ctx.randn(b, 256, 32, 32),), config={"x": [b, 256, 32, 32], "kernel": 3})


def _bias_act(ctx: Context) -> Built:
    b = ctx.batch(16)
    return block_build(ctx, lambda: blocks.ACTIVATIONS.create("bias_act", in_channels=256, act="lrelu"),
                       (ctx.randn(b, 256, 32, 32),), config={"x": [b, 256, 32, 32], "act": "lrelu"})


def _attention(C: int, H: int, B: int = 4):
    def build(ctx: Context) -> Built:
        b = ctx.batch(B)
        return block_build(ctx, lambda: blocks.ATTENTION.create("self_attention", in_channels=C),
                           (ctx.randn(b, C, H, H),), config={"x": [b, C, H, H], "pool": True, "sn": True})
    return build


def _pixel_norm(ctx: Context) -> Built:
    b = ctx.batch(16)
    return block_build(ctx, lambda: blocks.NORMS.create("pixel_norm"), (ctx.randn(b, 512, 32, 32),),
                       config={"x": [b, 512, 32, 32]})


def _adain(ctx: Context) -> Built:
    b = ctx.batch(8)
    return block_build(ctx, lambda: blocks.NORMS.create("adain", in_channels=512, w_dim=512),
                       (ctx.randn(b, 512, 32, 32),), {"w": ctx.randn(b, 512)},
                       config={"x": [b, 512, 32, 32], "w": [b, 512]})


def _cbn(ctx: Context) -> Built:
    b = ctx.batch(16)
    # BigGAN's G block at 32x32 (4·ch channels); y = [shared class embedding (128), z chunk (20)].
    return block_build(ctx, lambda: blocks.NORMS.create("conditional_batch_norm", in_channels=384, y_dim=148,
                                                        sn=True),
                       (ctx.randn(b, 384, 32, 32),), {"y": ctx.randn(b, 148)},
                       config={"x": [b, 384, 32, 32], "y": [b, 148], "sn": True})


def _spade(ctx: Context) -> Built:
    b = ctx.batch(2)
    labels = torch.randint(0, 151, (b, 32, 32), device=ctx.device)
    seg = F.one_hot(labels, 151).permute(0, 3, 1, 2).to(ctx.dtype)  # (B, 151, 32, 32)
    return block_build(ctx, lambda: blocks.NORMS.create("spade", in_channels=512, seg_channels=151),
                       (ctx.randn(b, 512, 32, 32),), {"seg": seg},
                       config={"x": [b, 512, 32, 32], "seg": [b, 151, 32, 32], "hidden": 128})


def _mbstd(ctx: Context) -> Built:
    b = ctx.batch(32)
    return block_build(ctx, lambda: blocks.STRUCTURE.create("minibatch_stddev"), (ctx.randn(b, 512, 4, 4),),
                       config={"x": [b, 512, 4, 4], "group_size": 4})


def _spectral_norm(ctx: Context) -> Built:
    """A BigGAN D conv with and without spectral norm (training mode: one power iteration per call)."""
    b = ctx.batch(8)
    torch.manual_seed(ctx.seed)
    plain = nn.Conv2d(256, 256, 3, padding=1).to(device=ctx.device, dtype=ctx.dtype)
    param = blocks.spectral_norm(copy.deepcopy(plain))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.spectral_norm: superseded, measured for comparison
        hook = torch.nn.utils.spectral_norm(copy.deepcopy(plain))
    x = leaf(ctx.randn(b, 256, 32, 32))

    def variant(name: str, m: nn.Module, role: str, default: bool = False) -> Variant:
        return Variant(name, lambda: m(x), [x, *(p for p in m.parameters() if p.requires_grad)], role, default)

    variants = [variant("conv", plain, "ref"), variant("parametrization", param, "impl", True),
                variant("hook", hook, "impl")]
    return Built(variants, [x], list(param.parameters()), {"x": [b, 256, 32, 32], "kernel": 3})


def _equalized_linear(ctx: Context) -> Built:
    b = ctx.batch(32)
    return block_build(ctx, lambda: blocks.LAYERS.create("equalized_linear", in_features=512, out_features=512,
                                                         activation="lrelu", lr_mul=0.01),
                       (ctx.randn(b, 512),), config={"x": [b, 512], "activation": "lrelu"})


def _equalized_conv(down: int):
    def build(ctx: Context) -> Built:
        b = ctx.batch(8)
        return block_build(ctx, lambda: blocks.LAYERS.create("equalized_conv", in_channels=512, out_channels=512,
                                                             activation="lrelu", down=down),
                           (ctx.randn(b, 512, 32, 32),),
                           config={"x": [b, 512, 32, 32], "kernel": 3, "down": down, "activation": "lrelu"})
    return build


def _mapping(ctx: Context) -> Built:
    b = ctx.batch(32)
    return block_build(ctx, lambda: blocks.MAPPING.create("mapping_network", z_dim=512, w_dim=512, num_ws=14),
                       (ctx.randn(b, 512),), config={"z": [b, 512], "layers": 8, "num_ws": 14})


def _case(key: str, label: str, paper: str, build, devices: tuple[str, ...] = ("cpu", "cuda")) -> Case:
    return Case(f"{key}/{label}", "block", key, paper, build, devices)


BLOCK_CASES: list[Case] = [
    _case("modulated_conv", "demod 512ch 16x16", f"{SG2}, 16x16 synthesis layer", _modulated(512, 16)),
    _case("modulated_conv", "demod 512ch 32x32", f"{SG2}, 32x32 synthesis layer", _modulated(512, 32)),
    _case("modulated_conv", "no demod 512ch 32x32", f"{SG2}, 32x32 layer without demodulation",
          _modulated(512, 32, demodulate=False)),
    _case("modulated_conv", "up 512ch 16->32", f"{SG2}, first layer of the 32x32 block",
          _modulated(512, 16, up=2)),
    _case("modulated_conv", "down 512ch 32->16", f"{SG2} shape, modulated conv with down=2",
          _modulated(512, 32, down=2)),
    _case("blur_up", "128ch 64->128", f"{SG2}, FIR upsampling x2", _fir("blur_up")),
    _case("blur_up", "128ch 64->128 channels_last", f"{SG2}, FIR upsampling x2", _fir("blur_up", True)),
    _case("blur", "128ch 64x64", f"{SG2}, [1,3,3,1] blur", _fir("blur")),
    _case("blur", "128ch 64x64 channels_last", f"{SG2}, [1,3,3,1] blur", _fir("blur", True)),
    _case("blur_down", "128ch 64->32", f"{SG2}, FIR downsampling x2", _fir("blur_down")),
    _case("blur_down", "128ch 64->32 channels_last", f"{SG2}, FIR downsampling x2", _fir("blur_down", True)),
    _case("up_conv", "256ch 32->64", f"{SG2}, fused upsample x2 + 3x3 conv", _up_conv),
    _case("bias_act", "lrelu 256ch 32x32", f"{SG2}, fused bias + lrelu", _bias_act),
    _case("self_attention", "192ch 64x64", f"{BIGGAN}, G attention at 64x64", _attention(192, 64)),
    _case("pixel_norm", "512ch 32x32", "ProGAN (Karras et al. 2018), 32x32 G layer, batch 16", _pixel_norm),
    _case("adain", "512ch 32x32", "StyleGAN (Karras et al. 2019), 32x32 layer", _adain),
    _case("conditional_batch_norm", "384ch 32x32", f"{BIGGAN}, G block at 32x32", _cbn),
    _case("spade", "512ch 32x32", "SPADE (Park et al. 2019), ADE20K (151 labels), 512ch at 32x32", _spade),
    _case("minibatch_stddev", "512ch 4x4", f"{SG2} / ProGAN D epilogue, batch 32", _mbstd),
    _case("spectral_norm", "conv 256ch 32x32", f"{BIGGAN}-style D conv; overhead of the normalisation",
          _spectral_norm),
    _case("equalized_linear", "512 lrelu", f"{SG2} mapping layer, batch 32", _equalized_linear),
    _case("equalized_conv", "512ch 32x32", f"{SG2} D conv at 32x32", _equalized_conv(1)),
    _case("equalized_conv", "down 512ch 32->16", f"{SG2} D conv down at 32x32", _equalized_conv(2)),
    _case("mapping_network", "8x512", f"{SG2} mapping network, batch 32, 14 ws", _mapping),
    # Peak memory against the number of positions (CUDA reports it): memory-linear formulations stay flat.
    _case("self_attention", "192ch 32x32 (memory)", f"{BIGGAN}, attention memory sweep", _attention(192, 32),
          ("cuda",)),
    _case("self_attention", "192ch 128x128 (memory)", f"{BIGGAN}, attention memory sweep",
          _attention(192, 128), ("cuda",)),
]
