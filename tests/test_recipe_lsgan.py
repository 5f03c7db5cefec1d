"""LSGAN (recipes/lsgan.yaml) against xudonmao/LSGAN.

Canonical counts come from the layer definitions of the authors' vgg.py (``generator``, ``discriminator``;
ops.py's conv2d / deconv2d / linear all carry a bias, tf.contrib batch_norm with scale=True a beta and a
gamma per channel) at train_lsun.py's flags (z_dim 1024, output_size 112, c_dim 3), the LSUN networks of
the paper's fig. 3. The small default must be dcgan_digits in everything but the loss, so the measured
comparison isolates the loss function.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import assemble
from assemble.show import totals
from assemble.train import config as config_mod

CANONICAL = ["layout=lsun", "nz=1024", "nc=3", "resolution=112", "ngf=64", "ndf=64"]


def reference_counts(z_dim: int = 1024, output_size: int = 112, c_dim: int = 3) -> tuple[int, int]:
    """Trainable parameters of vgg.py's generator and discriminator (gf_dim / df_dim 64; G's widths are the
    literals 256, 128, 64 there)."""
    s16 = output_size // 16

    def linear(i, o):  # ops.linear: Matrix (i, o) + bias (o)
        return i * o + o

    def conv(i, o, k):  # ops.conv2d / ops.deconv2d: w (k, k, i, o) + biases (o)
        return k * k * i * o + o

    def bn(c):  # ops.batch_norm: beta and gamma
        return 2 * c

    g = linear(z_dim, 256 * s16 * s16) + bn(256)  # g_h0_lin, g_bn0
    for i, o in ((256, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 64)):  # g_h1_1 .. g_h4_1
        g += conv(i, o, 3) + bn(o)
    g += conv(64, c_dim, 3)  # g_h5, then tanh
    d = conv(c_dim, 64, 5)  # d_h0_conv (no batch norm)
    for i, o in ((64, 128), (128, 256), (256, 512)):  # d_h1_conv .. d_h3_conv with d_bn1 .. d_bn3
        d += conv(i, o, 5) + bn(o)
    d += linear(s16 * s16 * 512, 1)  # d_h4_logits (the sigmoid output is unused by loss_l2)
    return g, d


def counts(name: str, sets: list[str]) -> tuple[int, int]:
    _, _, plans = assemble.plan(name, sets=sets)
    return totals(plans["generator"])["params"], totals(plans["discriminator"])["params"]


def test_canonical_parameter_counts():
    assert reference_counts() == (15_591_427, 4_333_441)
    assert counts("lsgan", CANONICAL) == reference_counts()


def test_other_sizes_follow_the_reference():
    assert counts("lsgan", ["layout=lsun", "nz=100", "nc=3", "resolution=64", "ngf=64", "ndf=64"]) \
        == reference_counts(z_dim=100, output_size=64)


def test_canonical_module_tree_follows_the_tf_scopes():
    gan = assemble.build("lsgan", sets=CANONICAL, device="meta")
    g = [n for n, _ in gan.G.named_children()]
    assert [n for n in g if not n.endswith(("relu", "tanh", "reshape"))] == [
        "g_h0_lin", "g_bn0", "g_h1_1", "g_bn1_1", "g_h1_2", "g_bn1_2", "g_h2_1", "g_bn2_1", "g_h2_2", "g_bn2_2",
        "g_h3_1", "g_bn3_1", "g_h4_1", "g_bn4_1", "g_h5"]
    d = [n for n, _ in gan.D.named_children()]
    assert [n for n in d if not n.endswith(("lrelu", "flatten"))] == [
        "d_h0_conv", "d_h1_conv", "d_bn1", "d_h2_conv", "d_bn2", "d_h3_conv", "d_bn3", "d_h4_logits"]


def test_canonical_shapes():
    gan = assemble.build("lsgan", sets=CANONICAL)
    gan.G.eval()
    img = gan.G(torch.randn(2, 1024))
    assert img.shape == (2, 3, 112, 112)
    assert gan.D(img).shape == (2, 1)


def test_small_default_is_dcgan_digits_but_the_loss():
    """Apples to apples: the same state_dict (names and shapes), optimiser, regularizers, EMA, steps, data."""
    a, b = assemble.build("lsgan"), assemble.build("dcgan_digits")
    for net in ("G", "D"):
        sa, sb = getattr(a, net).state_dict(), getattr(b, net).state_dict()
        assert {k: v.shape for k, v in sa.items()} == {k: v.shape for k, v in sb.items()}
    ca = config_mod.parse(assemble.load("lsgan"))
    cb = config_mod.parse(assemble.load("dcgan_digits"))
    assert (ca.loss, ca.loss_args) == ("least_squares", {"a": 0, "b": 1, "c": 1})
    assert cb.loss == "non_saturating"
    same = {f.name for f in dataclasses.fields(ca)} - {"loss", "loss_args"}
    assert {k: getattr(ca, k) for k in same} == {k: getattr(cb, k) for k in same}


def test_least_squares_targets():
    """0-1 coding: D pulls reals to 1 and fakes to 0, G pulls fakes to 1 (vgg.py loss_l2)."""
    cfg = config_mod.parse(assemble.load("lsgan"))
    import blocks

    loss = blocks.LOSSES.entry(cfg.loss).obj(**cfg.loss_args)
    ones, zeros = torch.ones(4, 1), torch.zeros(4, 1)
    assert float(loss.d_loss(ones, zeros)) == 0.0
    assert float(loss.g_loss(ones)) == 0.0
    assert float(loss.d_loss(zeros, ones)) == pytest.approx(1.0)  # ½·1 + ½·1


@pytest.mark.slow
def test_lsgan_learns_digits(tmp_path):
    """Measured (docs/recipes/wgan-lsgan.md, 1500 steps, seeds 0-2): confident fraction 0.511 ± 0.018
    (seed 0: 0.530); dcgan_digits with the same steps and seeds: 0.531 ± 0.056."""
    from assemble.train.run import RunOptions, train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = train(RunOptions(recipe="lsgan", out=tmp_path, seed=0, steps=1500, progress=False))
    finally:
        torch.set_num_threads(before)
    assert summary["metrics"]["confident_fraction"] >= 0.4, summary["metrics"]


@pytest.mark.slow
def test_lsgan_without_r1_keeps_learning(tmp_path):
    """Measured without R1 (1500 steps, seeds 0-2): lsgan 0.425 ± 0.030 (seed 0: 0.456), dcgan_digits
    0.165 ± 0.054 -- the least-squares loss alone keeps D from overpowering G on 1,797 images."""
    from assemble.train.run import RunOptions, train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = train(RunOptions(recipe="lsgan", out=tmp_path, seed=0, steps=1500, progress=False,
                                   sets=["objective.regularizers=[]"]))
    finally:
        torch.set_num_threads(before)
    assert summary["metrics"]["confident_fraction"] >= 0.3, summary["metrics"]
