"""SPADE / GauGAN recipe (NVlabs/SPADE, ADE20K configuration): reference parameter counts derived from the
reference layer definitions, the generator and the multiscale discriminator against a plain re-statement of
the reference forward passes (wiring, order, strides, shortcuts, downsampling), label-map routing, and the
named feature registers the feature-matching loss reads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import assemble
from assemble.show import totals
from blocks import SPADE, Conv2dLayer, InstanceNorm

# ---- canonical counts from the reference code -------------------------------------------------------
# NVlabs/SPADE, ade20k defaults: label_nc 150 + contain_dontcare_label -> semantic_nc S = 151 (no_instance),
# ngf = ndf = 64, output_nc 3, crop 256, num_upsampling_layers 'normal', norm_G spectralspadesyncbatch3x3,
# norm_D spectralinstance, netD multiscale with num_D 2 and n_layers_D 4.
S, NGF, NDF, NHIDDEN, KS = 151, 64, 64, 128, 3


def ref_spade(norm_nc: int, label_nc: int = S) -> int:
    """normalization.py SPADE: mlp_shared conv(label_nc -> nhidden, ks) + mlp_gamma, mlp_beta conv(nhidden ->
    norm_nc, ks), all with bias; param_free_norm SynchronizedBatchNorm2d(affine=False) has none."""
    return (label_nc * NHIDDEN * KS * KS + NHIDDEN) + 2 * (NHIDDEN * norm_nc * KS * KS + norm_nc)


def ref_resblock(fin: int, fout: int) -> int:
    """architecture.py SPADEResnetBlock: conv_0 (fin -> fmiddle, 3x3), conv_1 (fmiddle -> fout, 3x3), both with
    bias (spectral_norm keeps the count: weight_orig replaces weight), norm_0 SPADE(fin), norm_1
    SPADE(fmiddle); if fin != fout also conv_s (fin -> fout, 1x1, bias=False) and norm_s SPADE(fin)."""
    fmiddle = min(fin, fout)
    n = fin * fmiddle * 9 + fmiddle + fmiddle * fout * 9 + fout + ref_spade(fin) + ref_spade(fmiddle)
    if fin != fout:
        n += fin * fout + ref_spade(fin)
    return n


def ref_generator() -> int:
    """generator.py SPADEGenerator (use_vae False): fc = Conv2d(semantic_nc, 16·nf, 3), head_0, G_middle_0,
    G_middle_1 (16·nf -> 16·nf), up_0..up_3 (16 -> 8 -> 4 -> 2 -> 1 ·nf), conv_img = Conv2d(nf, 3, 3)."""
    fc = S * 16 * NGF * 9 + 16 * NGF
    blocks_ = 3 * ref_resblock(16 * NGF, 16 * NGF) + sum(
        ref_resblock(a * NGF, b * NGF) for a, b in ((16, 8), (8, 4), (4, 2), (2, 1)))
    conv_img = NGF * 3 * 9 + 3
    return fc + blocks_ + conv_img


def ref_discriminator(num_d: int = 2, n_layers_d: int = 4) -> int:
    """discriminator.py NLayerDiscriminator (kw 4): model0 Conv2d(label_nc + output_nc + 1, ndf) with bias;
    model1..model{n-1} norm_layer(Conv2d(nf_prev, min(2·nf, 512))): spectral norm and InstanceNorm2d(affine=
    False), the conv's bias deleted by get_nonspade_norm_layer; last Conv2d(nf, 1) with bias. x num_D."""
    input_nc = 150 + 3 + 1
    n, nf = input_nc * NDF * 16 + NDF, NDF
    for _ in range(1, n_layers_d):
        nf_prev, nf = nf, min(nf * 2, 512)
        n += nf_prev * nf * 16
    n += nf * 16 + 1
    return num_d * n


G_REF, D_REF = 96_492_483, 5_836_930


def test_reference_formulas_give_the_pinned_totals():
    assert ref_generator() == G_REF
    assert ref_discriminator() == D_REF == 2 * 2_918_465


@pytest.fixture(scope="module")
def canonical():
    _, _, plans = assemble.plan("spade")
    return plans


def test_canonical_parameter_counts_and_output_shapes(canonical):
    assert totals(canonical["generator"])["params"] == G_REF
    assert totals(canonical["discriminator"])["params"] == D_REF
    assert canonical["generator"].output_shapes == {"_": (3, 256, 256)}
    # 256 -> 129 -> 65 -> 33 -> 34 (stride 1) -> 35; the second scale sees 128 -> 65 -> 33 -> 17 -> 18 -> 19
    assert canonical["discriminator"].output_shapes == {"d0_out": (1, 35, 35), "d1_out": (1, 19, 19)}


def test_canonical_block_layout(canonical):
    """NVlabs' tree: fc, head_0, G_middle_0, G_middle_1, up_0 .. up_3 (SPADEResnetBlock fin -> fout), conv_img;
    D: discriminator_0 and discriminator_1 (NLayerDiscriminator on the input and on the pooled input)."""
    rows = {r.path: r for r in canonical["generator"].rows}
    blocks = ["head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3"]
    fins = [1024, 1024, 1024, 1024, 512, 256, 128]
    fouts = [1024, 1024, 1024, 512, 256, 128, 64]
    assert all(rows[f"G.{b}"].block == "spade_resblock" and rows[f"G.{b}"].consumes == ["seg"] for b in blocks)
    args = canonical["generator"].args
    assert [(args[b]["in_channels"], args[b]["out_channels"]) for b in blocks] == list(zip(fins, fouts))
    assert all(args[b]["seg_channels"] == 151 and args[b]["hidden_channels"] == 128 for b in blocks)
    # no upsampling before G_middle_1 ('normal'): the sizes go 8, 16, 16, 32, 64, 128, 256
    assert [rows[f"G.{b}"].shape.split(", ")[-1] for b in blocks] == ["8)", "16)", "16)", "32)", "64)", "128)",
                                                                      "256)"]
    assert (args["fc"]["out_channels"], args["conv_img"]["out_channels"]) == (1024, 3)
    d = {r.path: r for r in canonical["discriminator"].rows}
    assert [p for p in d if "discriminator_" in p] == ["D.discriminator_0", "D.discriminator_1"]
    assert all(d[p].params == 2_918_465 and d[p].writes[-1].endswith("_out") for p in d if "discriminator_" in p)
    assert canonical["discriminator"].args["discriminator_0"]["in_channels"] == 154  # cat(label map, image)


# ---- behaviour at the tiny size -----------------------------------------------------------------------


def one_hot(labels: torch.Tensor, n: int) -> torch.Tensor:
    return F.one_hot(labels, n).permute(0, 3, 1, 2).float()


def tiny_seg(gan, batch: int = 2, seed: int = 0) -> torch.Tensor:
    n, h, w = gan.G.input_specs["seg"].shape
    gen = torch.Generator().manual_seed(seed)
    return one_hot(torch.randint(0, n, (batch, h, w), generator=gen), n)


@pytest.fixture(scope="module")
def tiny():
    """The tiny build in eval mode (deterministic: no power iterations, batch norm on running statistics),
    its SPADE batch norms' running statistics set to those of one training batch, so that activations stay
    in range and the output is not saturated at +-1."""
    recipe = assemble.load("spade")
    gan = assemble.build(recipe, **recipe["tiny"])
    norms = [m for m in gan.G.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 18
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    with torch.no_grad():
        gan.G(tiny_seg(gan, batch=8, seed=9))
    gan.G.eval()
    gan.D.eval()
    return gan


def reference_generator(G, seg: torch.Tensor, ngf: int, sh: int, sw: int) -> torch.Tensor:
    """SPADEGenerator.forward / SPADEResnetBlock.forward restated over the built modules (taken in
    construction order: within a block, norm_0, norm_1[, norm_s] and conv_0, conv_1[, conv_s])."""
    spades = iter([m for m in G.modules() if isinstance(m, SPADE)])
    convs = iter([m for m in G.modules() if isinstance(m, Conv2dLayer)])
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731

    def resblock(x, fin, fout):
        norm_0, conv_0, norm_1, conv_1 = next(spades), next(convs), next(spades), next(convs)
        assert (conv_0.out_channels, conv_1.out_channels) == (min(fin, fout), fout)
        assert conv_0.sn and conv_1.sn
        if fin != fout:
            norm_s, conv_s = next(spades), next(convs)
            assert conv_s.kernel_size == 1 and conv_s.conv.bias is None and conv_s.sn
            x_s = conv_s(norm_s(x, seg=seg))
        else:
            x_s = x
        dx = conv_0(lrelu(norm_0(x, seg=seg)))
        dx = conv_1(lrelu(norm_1(dx, seg=seg)))
        return x_s + dx

    up = lambda t: F.interpolate(t, scale_factor=2)  # noqa: E731  nn.Upsample(scale_factor=2), nearest
    fc = next(convs)
    assert not fc.sn and fc.kernel_size == 3
    x = fc(F.interpolate(seg, size=(sh, sw)))
    nf = ngf
    x = resblock(x, 16 * nf, 16 * nf)                  # head_0
    x = resblock(up(x), 16 * nf, 16 * nf)              # G_middle_0
    x = resblock(x, 16 * nf, 16 * nf)                  # G_middle_1 ('normal': no upsampling before it)
    for fin, fout in ((16, 8), (8, 4), (4, 2), (2, 1)):  # up_0..up_3
        x = resblock(up(x), fin * nf, fout * nf)
    conv_img = next(convs)
    assert not conv_img.sn and conv_img.out_channels == 3
    assert next(spades, None) is None and next(convs, None) is None
    return torch.tanh(conv_img(lrelu(x)))


def test_generator_matches_the_reference_forward(tiny):
    recipe = tiny.recipe["vars"]
    seg = tiny_seg(tiny)
    sw = recipe["crop_size"] // 2**5
    with torch.no_grad():
        got = tiny.G(seg)
        want = reference_generator(tiny.G, seg, recipe["ngf"], sw, sw)
    assert got.shape == (2, 3, recipe["crop_size"], recipe["crop_size"])
    torch.testing.assert_close(got, want)


def test_a_label_map_change_reaches_the_output(tiny):
    seg = tiny_seg(tiny, batch=1)
    crop = seg.shape[-1]
    step = crop // (crop // 2**5)  # the first nearest resize (to sh x sw) keeps every step-th pixel from 0
    # relabelling the left half changes the image
    edited = seg.clone()
    edited[..., : crop // 2] = seg.roll(1, dims=1)[..., : crop // 2]
    with torch.no_grad():
        a, b = tiny.G(seg), tiny.G(edited)
        assert torch.equal(tiny.G(seg), a)  # deterministic in eval mode
    assert (b - a).abs().mean() > 0.1 * a.abs().mean()
    # a pixel the first resize skips still reaches the image, through the SPADE layers at full resolution
    x = seg.clone().requires_grad_(True)
    tiny.G(x).square().sum().backward()
    assert 5 % step and 7 % step
    assert x.grad[0, :, 5, 7].abs().sum() > 0
    assert x.grad[0, :, 0, 0].abs().sum() > 0


def reference_discriminator(D, img: torch.Tensor, seg: torch.Tensor) -> list[list[torch.Tensor]]:
    """MultiscaleDiscriminator.forward with NLayerDiscriminator (n_layers_D 4, spectralinstance) restated
    over the built convs, five per scale in order; returns [[f0, f1, f2, f3, out] per scale]."""
    convs = [m for m in D.modules() if isinstance(m, Conv2dLayer)]
    assert len(convs) == 10
    x = torch.cat([seg, img], dim=1)  # pix2pix_model.discriminate: cat([input_semantics, image])
    result = []
    for d in range(2):
        c = convs[5 * d: 5 * d + 5]
        assert [m.stride for m in c] == [2, 2, 2, 1, 1] and all(m.padding == 2 and m.kernel_size == 4 for m in c)
        assert [m.sn for m in c] == [False, True, True, True, False]
        assert [m.conv.bias is not None for m in c] == [True, False, False, False, True]
        feats = [F.leaky_relu(c[0](x), 0.2)]
        for k in (1, 2, 3):
            feats.append(F.leaky_relu(F.instance_norm(c[k](feats[-1]), eps=1e-5), 0.2))
        feats.append(c[4](feats[-1]))
        result.append(feats)
        x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=[1, 1], count_include_pad=False)
    return result


def test_discriminator_returns_both_scales_and_exposes_every_layer(tiny):
    seg = tiny_seg(tiny, seed=1)
    img = torch.randn(2, 3, *seg.shape[2:], generator=torch.Generator().manual_seed(2))
    assert list(tiny.D.input_specs) == ["img", "seg"]
    assert sum(isinstance(m, InstanceNorm) for m in tiny.D.modules()) == 6
    with torch.no_grad():
        outs = tiny.D(img, seg)
        regs = tiny.D.run(img, seg)
        want = reference_discriminator(tiny.D, img, seg)
    assert isinstance(outs, tuple) and len(outs) == 2
    ndf = tiny.recipe["vars"]["ndf"]
    for d in range(2):
        torch.testing.assert_close(outs[d], want[d][4])
        torch.testing.assert_close(regs[f"d{d}_out"], want[d][4])
        for j in range(4):
            feat = regs[f"d{d}_f{j}"]
            assert feat.shape[1] == min(ndf * 2**j, 512)
            torch.testing.assert_close(feat, want[d][j])
    assert outs[1].shape[-1] < outs[0].shape[-1]  # the second scale sees the avg-pooled input


def test_objective_reads_the_named_feature_registers():
    recipe = assemble.load("spade")
    obj = recipe["objective"]
    assert obj["loss"] == "hinge" and obj["logits"] == ["d0_out", "d1_out"]
    refs = [r.split(".", 1)[1] for t in obj["terms"] for side in t["feature_matching"]["inputs"].values()
            for r in side]
    assert sorted(set(refs)) == [f"d{d}_f{j}" for d in range(2) for j in range(4)]
    # lambda_feat 10 over num_D 2 scales, as pix2pix_model.compute_generator_loss
    assert [t["feature_matching"]["weight"] for t in obj["terms"]] == [5.0, 5.0]
