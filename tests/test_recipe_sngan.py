"""SN-GAN with a projection discriminator (recipes/sngan.yaml) against pfnet-research/sngan_projection.

Canonical counts are computed on meta tensors (``assemble.plan``) and compared with the reference's layer
definitions (gen_models/resnet_32.py, gen_models/resblocks.py, dis_models/snresnet_32.py,
dis_models/resblocks.py, source/links/*); the layout is checked on the tiny build; the slow test trains the
small variant on the digits and measures class agreement and the spectral norms of D's layers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

import assemble
from assemble import checkpoint as ckpt
from assemble.show import totals
from assemble.train.run import RunOptions, train

# configs/sn_cifar10_conditional.yml: ResNetGenerator(ch=256, dim_z=128, bottom_width=4, n_classes=10),
# SNResNetProjectionDiscriminator(ch=128, n_classes=10) on 32x32 RGB.
CANONICAL = ["img_channels=3", "g_ch=256", "d_ch=128", "z_dim=128"]


def reference_counts(g_ch: int = 256, d_ch: int = 128, dim_z: int = 128, n_classes: int = 10,
                     bottom_width: int = 4, img_channels: int = 3, n_blocks: int = 3) -> tuple[int, int]:
    """Trainable parameters of sngan_projection's 32x32 conditional ResNetGenerator and
    SNResNetProjectionDiscriminator, from their layer definitions (chainer links; the spectral norm's u
    and the batch norms' avg_mean / avg_var are persistents, not parameters)."""

    def conv(i, o, k=3, bias=True):  # L.Convolution2D / SNConvolution2D (nobias=False)
        return o * i * k * k + (o if bias else 0)

    def linear(i, o, bias=True):  # L.Linear / SNLinear
        return o * i + (o if bias else 0)

    def ccbn(c):  # CategoricalConditionalBatchNormalization: gammas, betas = EmbedID(n_cat, c)
        return 2 * n_classes * c

    # G: l1, block2..block4 = Block(ch, ch, upsample=True, n_classes) with c1, c2, c_sc (learnable_sc since
    # it upsamples), b1, b2; b5 = BatchNormalization(ch) (gamma, beta); c5 = Convolution2D(ch, 3, 3).
    g = linear(dim_z, bottom_width ** 2 * g_ch)
    g += n_blocks * (conv(g_ch, g_ch) + conv(g_ch, g_ch) + conv(g_ch, g_ch, 1) + ccbn(g_ch) + ccbn(g_ch))
    g += 2 * g_ch + conv(g_ch, img_channels)
    # D: block1 = OptimizedBlock(3, ch): c1, c2, c_sc; block2 = Block(ch, ch, downsample=True): c1, c2 (hidden
    # = in), c_sc; block3, block4 = Block(ch, ch): c1, c2 (no learnable shortcut); l5 = SNLinear(ch, 1,
    # nobias=True); l_y = SNEmbedID(n_classes, ch).
    d = conv(img_channels, d_ch) + conv(d_ch, d_ch) + conv(img_channels, d_ch, 1)
    d += conv(d_ch, d_ch) + conv(d_ch, d_ch) + conv(d_ch, d_ch, 1)
    d += 2 * (conv(d_ch, d_ch) + conv(d_ch, d_ch))
    d += linear(d_ch, 1, bias=False) + n_classes * d_ch
    return g, d


@pytest.fixture(scope="module")
def canonical():
    return assemble.plan("sngan", sets=CANONICAL)


@pytest.fixture(scope="module")
def tiny():
    recipe = assemble.load("sngan")
    gan = assemble.build(recipe, **recipe["tiny"])
    gan.G.eval()
    gan.D.eval()  # one power iteration from the stored u, not stored: repeated calls agree
    return gan


def test_reference_formula_by_hand():
    # l1 128·4096 + 4096; per G block 2·(256·256·9 + 256) + (256·256 + 256) + 2·2·10·256; b5 512; c5 256·3·9 + 3
    g = 528_384 + 3 * (2 * 590_080 + 65_792 + 10_240) + 512 + 6_915
    # block1 3,584 + 147,584 + 512; block2 2·147,584 + 16,512; block3, block4 2·147,584 each; l5 128; l_y 1,280
    d = 151_680 + 311_680 + 2 * 295_168 + 128 + 1_280
    assert reference_counts() == (g, d) == (4_304_387, 1_055_104)


def test_canonical_parameter_counts(canonical):
    _, _, plans = canonical
    assert totals(plans["generator"])["params"] == 4_304_387
    assert totals(plans["discriminator"])["params"] == 1_055_104


def test_small_variant_counts_follow_the_same_formula():
    recipe = assemble.load("sngan")
    v = recipe["vars"]
    _, _, plans = assemble.plan("sngan")
    expected = reference_counts(v["g_ch"], v["d_ch"], v["z_dim"], v["n_classes"], img_channels=v["img_channels"])
    assert (totals(plans["generator"])["params"], totals(plans["discriminator"])["params"]) == expected


def test_module_tree_follows_the_authors(canonical):
    _, specs, plans = canonical
    g, d = specs["generator"], specs["discriminator"]
    assert g.parts == ["l1", "reshape", "block2", "block3", "block4", "b5", "relu", "c5", "tanh"]
    assert d.parts == ["block1", "block2", "block3", "block4", "relu", "global_sum_pool", "head"]
    ga, da = plans["generator"].args, plans["discriminator"].args
    for name in ("block2", "block3", "block4"):  # Block(ch, ch, upsample=True, n_classes=10), no SN in G
        a = ga[name]
        assert (a["in_channels"], a["out_channels"], a["n_classes"]) == (256, 256, 10)
        assert a["sn"] is False and a["bn_eps"] == 2e-5 and a.get("upsample", True) is True
    assert ga["b5"]["eps"] == 2e-5 and ga["c5"]["out_channels"] == 3
    flags = [(da[f"block{k}"].get("preactivation", True), da[f"block{k}"]["wide"], da[f"block{k}"]["downsample"])
             for k in (1, 2, 3, 4)]
    # OptimizedBlock (no preactivation, hidden = out, pools), Block(downsample=True), Block, Block
    assert flags == [(False, True, True), (True, False, True), (True, False, False), (True, False, False)]
    assert da["block1"]["in_channels"] == 3 and all(da[f"block{k}"]["out_channels"] == 128 for k in (1, 2, 3, 4))
    assert da["head"]["bias"] is False and da["head"]["n_classes"] == 10
    assert specs["discriminator"].spectral_norm == {"order": "v_first", "eval_iterations": 1}


def test_every_d_weight_is_spectrally_normalised_and_no_g_weight(tiny):
    d_sn = [n for n, m in tiny.D.named_modules() if parametrize.is_parametrized(m, "weight")]
    # block1, block2: c1, c2, c_sc; block3, block4: c1, c2; l5 and l_y
    assert len(d_sn) == 12, d_sn
    assert not any(parametrize.is_parametrized(m) for m in tiny.G.modules())
    assert tiny.D.head.linear.bias is None


def test_discriminator_is_the_projection_of_summed_features(tiny):
    """D(x, y) = l5(h) + <l_y(y), h> with h = sum over H, W of relu(block4(...block1(x)))."""
    D = tiny.D
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 1, 32, 32, generator=gen)
    y = torch.tensor([0, 3, 3, 7, 9])
    with torch.no_grad():
        h = x
        for k in (1, 2, 3, 4):
            h = getattr(D, f"block{k}")(h)
        h = F.relu(h).sum(dim=(2, 3))
        expected = h @ D.head.linear.weight.t() + (D.head.embed.weight[y] * h).sum(1, keepdim=True)
        assert torch.allclose(D(x, y).reshape(5, 1), expected, atol=1e-5)
        # the class enters only through the projection: changing y changes D by <e_y' - e_y, h>
        y2 = (y + 1) % 10
        delta = ((D.head.embed.weight[y2] - D.head.embed.weight[y]) * h).sum(1)
        assert torch.allclose(D(x, y2).reshape(5) - D(x, y).reshape(5), delta, atol=1e-5)


def test_generator_is_class_conditional(tiny):
    G = tiny.G
    for name in ("block2", "block3", "block4"):  # categorical CBN: per-class gains (init 1) and biases (init 0)
        bn = getattr(G, name).bn1
        with torch.no_grad():
            bn.class_gain.add_(torch.randn_like(bn.class_gain) * 0.5)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = G(z, torch.tensor([0, 1, 2, 3]))
        b = G(z, torch.tensor([4, 5, 6, 7]))
    assert a.shape == (4, 1, 32, 32) and not torch.allclose(a, b)


def d_sigmas(run: Path) -> dict[str, float]:
    """The largest singular value of each spectrally normalised D weight as forward uses it (training mode:
    one power step from the stored u), from the run's last checkpoint."""
    tensors, state = ckpt.load_checkpoint(run)
    gan = assemble.build(state["recipe"])
    ckpt.load_module_tensors("D.", gan.D, tensors)
    gan.D.train()
    out = {}
    for name, m in gan.D.named_modules():
        if parametrize.is_parametrized(m, "weight"):
            with torch.no_grad():
                w = m.weight
            out[name] = float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), 2))
    return out


@pytest.mark.slow
def test_small_variant_trains_with_normalised_critic_layers(tmp_path):
    """Measured over seeds 0, 1, 2 (docs/recipes/resnet-sngan-wgan-gp.md), 400 steps: class agreement 0.155 ±
    0.012 (chance 0.10; the paper-level target of >= 0.9 is not reached at this length), confident fraction
    0.29 ± 0.03, 9.7 of 10 classes hit, and every spectrally normalised D weight's largest singular value in
    [1.000, 1.0065] at the end. Pinned with margins: agreement above chance, sigmas within 2% of 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = train(RunOptions(recipe="sngan", out=tmp_path, seed=0, progress=False))
    finally:
        torch.set_num_threads(before)
    m = summary["metrics"]
    assert m["class_agreement"] >= 0.12, m
    assert m["confident_fraction"] >= 0.2 and m["modes"] >= 8, m
    sigmas = d_sigmas(tmp_path)
    assert len(sigmas) == 12
    assert all(abs(s - 1) < 0.02 for s in sigmas.values()), sigmas
