"""WGAN-GP's CIFAR-10 ResNet (recipes/wgan_gp.yaml) against igul222/improved_wgan_training gan_cifar_resnet.py.

Canonical counts are computed on meta tensors (``assemble.plan``) and compared with the script's layer
definitions (Generator, Discriminator, ResidualBlock, OptimizedResBlockDisc1, Normalize; tflib/ops); the
layout is checked on the tiny build; the slow test trains the small variant on the digits.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

import assemble
from assemble.show import totals
from assemble.train.run import RunOptions, train
from blocks.norms.batch import BatchNorm
from blocks.norms.batch import _AffineNorm as AffineNorm

CANONICAL = ["img_channels=3", "dim_g=128", "dim_d=128", "z_dim=128"]


def reference_counts(dim_g: int = 128, dim_d: int = 128, z: int = 128, img_channels: int = 3,
                     conditional: bool = False, acgan: bool = False, n_labels: int = 10) -> tuple[int, int]:
    """Trainable parameters of gan_cifar_resnet.py's Generator and Discriminator (the script prints them
    as "Total param count"), from its layer definitions: tflib's Conv2D and Linear have biases; the fused
    Batchnorm holds offset and scale (moving statistics are not trainable); cond_batchnorm holds
    offset and scale per label (n_labels, C); NORMALIZATION_G True, NORMALIZATION_D False."""

    def conv(i, o, k=3):  # lib.ops.conv2d.Conv2D (also inside UpsampleConv, ConvMeanPool, MeanPoolConv)
        return o * i * k * k + o

    def linear(i, o):  # lib.ops.linear.Linear
        return o * i + o

    def norm_g(c):  # Normalize('Generator.k.N1/N2'): cond_batchnorm with labels, else batchnorm
        return 2 * n_labels * c if conditional else 2 * c

    # Generator.Input; Generator.1..3 = ResidualBlock(DIM_G, DIM_G, 3, resample='up'): Shortcut (1x1, since
    # it resamples), N1, Conv1, N2, Conv2; Generator.OutputN (labels=None: plain batchnorm); Generator.Output.
    g = linear(z, 4 * 4 * dim_g)
    g += 3 * (conv(dim_g, dim_g, 1) + conv(dim_g, dim_g) + conv(dim_g, dim_g) + 2 * norm_g(dim_g))
    g += 2 * dim_g + conv(dim_g, img_channels)
    # Discriminator.1 = OptimizedResBlockDisc1: Shortcut (MeanPoolConv 1x1), Conv1, Conv2 (ConvMeanPool);
    # .2 = ResidualBlock(resample='down'): Shortcut (ConvMeanPool 1x1), Conv1 (in -> in), Conv2; .3, .4 =
    # ResidualBlock(resample=None): identity shortcut, Conv1, Conv2; Output; ACGANOutput if CONDITIONAL and ACGAN.
    d = conv(img_channels, dim_d, 1) + conv(img_channels, dim_d) + conv(dim_d, dim_d)
    d += conv(dim_d, dim_d, 1) + 2 * conv(dim_d, dim_d)
    d += 2 * 2 * conv(dim_d, dim_d)
    d += linear(dim_d, 1) + (linear(dim_d, n_labels) if conditional and acgan else 0)
    return g, d


@pytest.fixture(scope="module")
def canonical():
    return assemble.plan("wgan_gp", sets=CANONICAL)


@pytest.fixture(scope="module")
def tiny():
    recipe = assemble.load("wgan_gp")
    gan = assemble.build(recipe, **recipe["tiny"])
    gan.G.eval()
    gan.D.eval()
    return gan


def test_reference_formula_by_hand():
    # G: Input 128·2048 + 2048; per block 1x1 16,512 + 2·147,584 + BN 2·2·128; OutputN 256; Output 128·27 + 3
    g = 264_192 + 3 * (16_512 + 2 * 147_584 + 512) + 256 + 3_459
    # D: block 1: 512 + 3,584 + 147,584; block 2: 16,512 + 2·147,584; blocks 3, 4: 2·147,584 each; Output 129
    d = 151_680 + 311_680 + 2 * 295_168 + 129
    assert reference_counts() == (g, d) == (1_204_483, 1_053_825)
    # the script's defaults (CONDITIONAL = ACGAN = True): conditional batch norm in G, ACGANOutput in D
    assert reference_counts(conditional=True, acgan=True) == (1_218_307, 1_055_115)


def test_canonical_parameter_counts(canonical):
    _, _, plans = canonical
    assert totals(plans["generator"])["params"] == 1_204_483
    assert totals(plans["discriminator"])["params"] == 1_053_825


def test_small_variant_counts_follow_the_same_formula():
    v = assemble.load("wgan_gp")["vars"]
    _, _, plans = assemble.plan("wgan_gp")
    expected = reference_counts(v["dim_g"], v["dim_d"], v["z_dim"], v["img_channels"])
    assert (totals(plans["generator"])["params"], totals(plans["discriminator"])["params"]) == expected


def test_module_tree_follows_the_script(canonical):
    _, specs, plans = canonical
    g, d = specs["generator"], specs["discriminator"]
    assert g.parts == ["Input", "reshape", "block1", "block2", "block3", "OutputN", "relu", "Output", "tanh"]
    assert d.parts == ["block1", "block2", "block3", "block4", "relu", "global_avg_pool", "Output"]
    ga, da = plans["generator"].args, plans["discriminator"].args
    for name in ("block1", "block2", "block3"):  # ResidualBlock(DIM_G, DIM_G, 3, resample="up"): plain BN, no SN
        a = ga[name]
        assert (a["in_channels"], a["out_channels"]) == (128, 128)
        assert a.get("n_classes") is None and a.get("y_dim") is None
        assert a["sn"] is False and a["bn_eps"] == 1e-5 and a.get("upsample", True) is True
    flags = [(da[k].get("preactivation", True), da[k]["wide"], da[k]["downsample"], da[k]["sn"])
             for k in ("block1", "block2", "block3", "block4")]
    # OptimizedResBlockDisc1; ResidualBlock 'down' (Conv1 in -> in); ResidualBlock None twice; no normalisation
    assert flags == [(False, True, True, False), (True, False, True, False), (True, False, False, False),
                     (True, False, False, False)]
    assert da["Output"]["out_features"] == 1


def test_critic_has_no_normalisation_and_generator_batch_norm(tiny):
    """NORMALIZATION_D False; NORMALIZATION_G True: N1, N2 in each block and OutputN."""
    norms = (AffineNorm, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    assert not [m for m in tiny.D.modules() if isinstance(m, norms)]
    assert not any(parametrize.is_parametrized(m) for m in tiny.D.modules())
    g_bns = [n for n, m in tiny.G.named_modules() if isinstance(m, BatchNorm)]
    assert g_bns == ["block1.bn1", "block1.bn2", "block2.bn1", "block2.bn2", "block3.bn1", "block3.bn2",
                     "OutputN"], g_bns


def test_critic_is_a_mean_pooled_linear_readout(tiny):
    """D(x) = Output(mean over H, W of relu(block4(...block1(x)))), one unbounded score per sample."""
    D = tiny.D
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        h = x
        for k in ("block1", "block2", "block3", "block4"):
            h = getattr(D, k)(h)
        expected = F.linear(F.relu(h).mean(dim=(2, 3)), D.Output.linear.weight, D.Output.linear.bias)
        assert torch.allclose(D(x).reshape(3, 1), expected, atol=1e-5)


@pytest.mark.slow
def test_small_variant_covers_the_digit_classes(tmp_path):
    """Measured over seeds 0, 1, 2 (docs/recipes/resnet-sngan-wgan-gp.md), 250 steps: confident fraction
    0.24 ± 0.02 (0.228, 0.232, 0.264), all 10 classes hit by confident samples in every seed. Pinned with
    margins: >= 9 classes, confident fraction >= 0.15."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = train(RunOptions(recipe="wgan_gp", out=tmp_path, seed=0, progress=False))
    finally:
        torch.set_num_threads(before)
    m = summary["metrics"]
    assert m["modes"] >= 9, m
    assert m["confident_fraction"] >= 0.15, m
