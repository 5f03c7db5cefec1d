"""BigGAN-deep (recipes/biggan_deep.yaml) against ajbrock/BigGAN-PyTorch's BigGANdeep.py at ImageNet 128x128.

Canonical counts are computed on meta tensors (``assemble.plan``); behaviour is checked on the tiny build.
"""

from __future__ import annotations

import pytest
import torch

import assemble
from assemble.show import totals
from blocks import ConditionalBatchNorm, Conv2dLayer, LinearLayer

# BigGANdeep.py G_arch / D_arch at 128x128: channel multipliers (of ch) per resolution.
G_IN, G_OUT, G_RES = [16, 16, 8, 4, 2], [16, 8, 4, 2, 1], [8, 16, 32, 64, 128]
D_IN, D_OUT, D_RES = [1, 2, 4, 8, 16], [2, 4, 8, 16, 16], [64, 32, 16, 8, 4]


def reference_counts(ch: int = 128, depth: int = 2, dim_z: int = 128, shared_dim: int = 128,
                     n_classes: int = 1000, attention: int = 64, channel_ratio: int = 4,
                     bottom_width: int = 4, rgb_channels: int = 3) -> tuple[int, int]:
    """Trainable parameters of BigGANdeep.py's Generator and Discriminator, from their layer definitions
    (G_shared, hier, G_param = D_param = 'SN'; spectral norm adds buffers only)."""

    def sn_conv2d(i, o, k=3):  # layers.SNConv2d, bias=True
        return o * i * k * k + o

    def sn_linear(i, o, bias=True):  # layers.SNLinear
        return o * i + (o if bias else 0)

    def attention_(c):  # layers.Attention: theta, phi, g, o without bias; gamma
        return 2 * c * (c // 8) + c * (c // 2) + (c // 2) * c + 1

    def ccbn(c):  # layers.ccbn with input_size = shared_dim + dim_z: gain, bias = SNLinear(.., bias=False)
        return 2 * sn_linear(shared_dim + dim_z, c, bias=False)

    def g_block(i, o):  # GBlock: hidden = in // channel_ratio; conv1 1x1, conv2, conv3 3x3, conv4 1x1; bn1..bn4
        h = i // channel_ratio
        return (sn_conv2d(i, h, 1) + sn_conv2d(h, h) + sn_conv2d(h, h) + sn_conv2d(h, o, 1)
                + ccbn(i) + 3 * ccbn(h))

    def d_block(i, o):  # DBlock: hidden = out // channel_ratio; conv_sc 1x1 to out - in where in != out
        h = o // channel_ratio
        sc = sn_conv2d(i, o - i, 1) if i != o else 0
        return sn_conv2d(i, h, 1) + sn_conv2d(h, h) + sn_conv2d(h, h) + sn_conv2d(h, o, 1) + sc

    g = n_classes * shared_dim  # G.shared
    g += sn_linear(dim_z + shared_dim, G_IN[0] * ch * bottom_width ** 2)  # G.linear
    for i, o, r in zip(G_IN, G_OUT, G_RES):
        i, o = i * ch, o * ch
        g += sum(g_block(i, i if g_index < depth - 1 else o) for g_index in range(depth))
        if r == attention:
            g += attention_(o)
    g += 2 * G_OUT[-1] * ch + sn_conv2d(G_OUT[-1] * ch, rgb_channels)  # output_layer: bn, SNConv2d(ch, 3)

    d = sn_conv2d(3, D_IN[0] * ch)  # input_conv
    for i, o, r in zip(D_IN, D_OUT, D_RES):
        i, o = i * ch, o * ch
        d += sum(d_block(i if d_index == 0 else o, o) for d_index in range(depth))
        if r == attention:
            d += attention_(o)
    d += sn_linear(D_OUT[-1] * ch, 1) + n_classes * D_OUT[-1] * ch  # D.linear, D.embed
    return g, d


@pytest.fixture(scope="module")
def canonical():
    return assemble.plan("biggan_deep")


@pytest.fixture(scope="module")
def tiny():
    recipe = assemble.load("biggan_deep")
    gan = assemble.build(recipe, **recipe["tiny"])
    gan.G.eval()
    gan.D.eval()
    return gan, recipe["tiny"]


def test_reference_formula_and_compare_gan():
    # google/compare_gan compare_gan/architectures/resnet_biggan_deep_test.py asserts G 50244484 and
    # D 34590210, as BigGANdeep.py at commit 9845943 (its output conv maps to 3 channels)
    assert reference_counts() == (50_244_484, 34_590_210)
    assert reference_counts(rgb_channels=128)[0] == 50_388_609  # the TF Hub port's 128-channel conv_to_rgb


def test_canonical_parameter_counts(canonical):
    _, _, plans = canonical
    assert totals(plans["generator"])["params"] == 50_244_484
    assert totals(plans["discriminator"])["params"] == 34_590_210
    _, _, port = assemble.plan("biggan_deep", out_conv_channels=128)  # h[:, :3] of a 128-channel conv
    assert totals(port["generator"])["params"] == 50_388_609


def test_module_tree_follows_biggandeep(canonical):
    """BigGANdeep.py's tree: G.shared, G.linear, G.blocks[k][0..1] (GBlocks) and [2] (attention at 64x64),
    G.output_layer (bn, relu, conv to 128); D.input_conv, D.blocks[k][0..1] (DBlocks) and [2], the head."""
    _, specs, plans = canonical
    g, d = specs["generator"], specs["discriminator"]
    assert g.parts == ["shared", "concat", "linear", "reshape", "blocks", "output_layer", "tanh"]
    g_blocks = [[(c.name, c.key) for c in k.children] for k in g.nodes[4].children]
    two = [("0", "biggan_deep_g_block"), ("1", "biggan_deep_g_block")]
    assert g_blocks == [two] * 3 + [[*two, ("2", "self_attention")]] + [two]
    g_args = plans["generator"].args
    for k in range(5):
        first, second = g_args[f"blocks.{k}.0"], g_args[f"blocks.{k}.1"]
        # the first block of a resolution keeps the channels at the lower resolution; the second changes and
        # upsamples (BigGANdeep.Generator: out = in if g_index == 0, upsample if g_index == G_depth - 1)
        assert (first["in_channels"], first["out_channels"], first["upsample"]) == (128 * G_IN[k], 128 * G_IN[k], False)
        assert (second["in_channels"], second["out_channels"], second["upsample"]) == (
            128 * G_IN[k], 128 * G_OUT[k], True)
        assert first["y_dim"] == second["y_dim"] == 256  # ccbn input_size = shared_dim + dim_z
    assert g_args["output_layer.2"]["out_channels"] == 3  # which_conv(out_channels[-1], 3) at commit 9845943

    assert d.parts == ["input_conv", "blocks", "relu", "global_sum_pool", "head"]
    d_blocks = [[c.key for c in k.children] for k in d.nodes[1].children]
    assert d_blocks == [["biggan_deep_d_block"] * 2 + ["self_attention"]] + [["biggan_deep_d_block"] * 2] * 4
    d_args = plans["discriminator"].args
    for k in range(5):
        first, second = d_args[f"blocks.{k}.0"], d_args[f"blocks.{k}.1"]
        assert (first["in_channels"], first["out_channels"], first["downsample"]) == (
            128 * D_IN[k], 128 * D_OUT[k], True)
        assert (second["in_channels"], second["out_channels"], second["downsample"]) == (
            128 * D_OUT[k], 128 * D_OUT[k], False)

    for net in ("generator", "discriminator"):
        for path, args in plans[net].args.items():
            if "sn_eps" in args:
                assert args["sn_eps"] == 1e-6, path


def test_every_batch_norm_and_the_linear_read_y_then_z(tiny):
    gan, v = tiny
    G = gan.G
    seen, linear_in = [], []
    bns = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm)]
    linear = next(m for m in G.modules() if isinstance(m, LinearLayer))
    hooks = [m.register_forward_pre_hook(lambda m, a, kw: seen.append(kw.get("y", a[-1])), with_kwargs=True)
             for m in bns]
    hooks.append(linear.register_forward_pre_hook(lambda m, a: linear_in.append(a[0])))
    convs = [m for m in G.modules() if isinstance(m, Conv2dLayer)]
    rgb = []
    hooks.append(convs[-1].register_forward_hook(lambda m, a, out: rgb.append(out)))
    try:
        z = torch.randn(2, v["z_dim"])
        c = torch.tensor([3, 8])
        with torch.no_grad():
            img = G(z, c)
    finally:
        for h in hooks:
            h.remove()
    want = torch.cat([G.shared.embed.weight[c], z], dim=1)  # hier: cat([y, z]), the class embedding first
    assert len(seen) == 4 * 2 * 5
    for y in [linear_in[0], *seen]:
        torch.testing.assert_close(y, want, rtol=0, atol=0)
    assert rgb[0].shape[1] == 3 and img.shape[1] == 3
    torch.testing.assert_close(img, torch.tanh(rgb[0]))


def test_class_reaches_the_projection_head(tiny):
    gan, _ = tiny
    D = gan.D
    x = torch.randn(2, 3, 128, 128)
    c1, c2 = torch.tensor([1, 2]), torch.tensor([6, 9])
    head = D.head
    pooled = []
    hook = head.register_forward_pre_hook(lambda m, a, kw: pooled.append((a[0], kw["y"])), with_kwargs=True)
    try:
        with torch.no_grad():
            o1, o2 = D(x, c1), D(x, c2)
    finally:
        hook.remove()
    (h, y1), (_, y2) = pooled
    assert torch.equal(y1, c1) and torch.equal(y2, c2)
    embed = head.embed.weight
    with torch.no_grad():
        torch.testing.assert_close(o1 - o2, ((embed[c1] - embed[c2]) * h).sum(1, keepdim=True), rtol=1e-4,
                                   atol=1e-3)
