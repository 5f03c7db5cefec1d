"""BigGAN-deep (recipes/biggan_deep.yaml) against ajbrock/BigGAN-PyTorch's BigGANdeep.py at ImageNet 128x128.

Canonical counts are computed on meta tensors (``assemble.plan``); behaviour is checked on the tiny build.
"""

from __future__ import annotations

import pytest
import torch

import assemble
from assemble.program import BlockNode, ResidualNode
from assemble.show import totals
from blocks import ConditionalBatchNorm, Conv2dLayer, LinearLayer, ProjectionHead

# BigGANdeep.py G_arch / D_arch at 128x128: channel multipliers (of ch) per resolution.
G_IN, G_OUT, G_RES = [16, 16, 8, 4, 2], [16, 8, 4, 2, 1], [8, 16, 32, 64, 128]
D_IN, D_OUT, D_RES = [1, 2, 4, 8, 16], [2, 4, 8, 16, 16], [64, 32, 16, 8, 4]


def reference_counts(ch: int = 128, depth: int = 2, dim_z: int = 128, shared_dim: int = 128,
                     n_classes: int = 1000, attention: int = 64, channel_ratio: int = 4,
                     bottom_width: int = 4, rgb_channels: int = 128) -> tuple[int, int]:
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
    g += 2 * G_OUT[-1] * ch + sn_conv2d(G_OUT[-1] * ch, rgb_channels)  # output_layer: bn, SNConv2d(ch, 128)

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
    g, d = reference_counts()
    assert (g, d) == (50_388_609, 34_590_210)
    # google/compare_gan compare_gan/architectures/resnet_biggan_deep_test.py asserts G 50244484 and
    # D 34590210: the same D, and the same G except that its last conv maps 128 channels to 3, not 128.
    assert d == 34_590_210
    assert reference_counts(rgb_channels=3)[0] == 50_244_484


def test_canonical_parameter_counts(canonical):
    _, _, plans = canonical
    assert totals(plans["generator"])["params"] == 50_388_609
    assert totals(plans["discriminator"])["params"] == 34_590_210


def _keys(nodes):
    return [n.key for n in nodes]


def _top(nodes):
    return [n.key if isinstance(n, BlockNode) else "res" for n in nodes]


def test_layer_structure(canonical):
    _, specs, plans = canonical
    g_nodes = specs["generator"].programs["synthesis"]
    assert _top(g_nodes) == ["concat", "linear", "reshape", *["res"] * 8, "self_attention", "res", "res",
                             "batch_norm", "relu", "conv", "keep_channels", "tanh"]
    assert g_nodes[-3].args["out_channels"] == 128 and g_nodes[-2].args["channels"] == 3
    gblocks = [n for n in g_nodes if isinstance(n, ResidualNode)]
    for k, (first, second) in enumerate(zip(gblocks[::2], gblocks[1::2])):
        assert _keys(first.body) == ["conditional_batch_norm", "relu", "conv", "conditional_batch_norm", "relu",
                                     "conv", "conditional_batch_norm", "relu", "conv",
                                     "conditional_batch_norm", "relu", "conv"]
        assert [c.args["kernel_size"] for c in first.body if c.key == "conv"] == [1, 3, 3, 1]
        assert _keys(second.body) == ["conditional_batch_norm", "relu", "conv", "conditional_batch_norm", "relu",
                                      "nearest_up", "conv", "conditional_batch_norm", "relu", "conv",
                                      "conditional_batch_norm", "relu", "conv"]
        assert first.shortcut == []  # same channels, no upsampling: identity
        assert _keys(second.shortcut) == (["nearest_up"] if G_IN[k] == G_OUT[k] else ["keep_channels", "nearest_up"])

    d_nodes = specs["discriminator"].programs["steps"]
    assert _top(d_nodes) == ["conv", "res", "res", "self_attention", *["res"] * 8, "relu", "global_sum_pool",
                             "projection_head"]
    dblocks = [n for n in d_nodes if isinstance(n, ResidualNode)]
    for k, (first, second) in enumerate(zip(dblocks[::2], dblocks[1::2])):
        assert _keys(first.body) == ["relu", "conv", "relu", "conv", "relu", "conv", "relu", "avg_pool_down", "conv"]
        assert _keys(second.body) == ["relu", "conv", "relu", "conv", "relu", "conv", "relu", "conv"]
        grows = D_IN[k] != D_OUT[k]
        assert _keys(first.shortcut) == (["avg_pool_down", "conv", "concat"] if grows else ["avg_pool_down"])
        assert second.shortcut == []

    for net in ("generator", "discriminator"):
        for path, args in plans[net].args.items():
            if "sn_eps" in args:
                assert args["sn_eps"] == 1e-6, path
            if "y_dim" in args:
                assert args["y_dim"] == 256, path  # ccbn input_size = shared_dim + dim_z


def test_every_batch_norm_and_the_linear_read_z_then_y(tiny):
    gan, v = tiny
    G = gan.G
    seen, linear_in = [], []
    bns = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm)]
    linear = next(m for m in G.modules() if isinstance(m, LinearLayer))
    hooks = [m.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["y"]), with_kwargs=True) for m in bns]
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
    want = torch.cat([z, G.shared["0"].embed.weight[c]], dim=1)  # hier: cat([z, y]), z first
    assert len(seen) == 4 * 2 * 5
    for y in [linear_in[0], *seen]:
        torch.testing.assert_close(y, want, rtol=0, atol=0)
    assert rgb[0].shape[1] == 128 and img.shape[1] == 3
    torch.testing.assert_close(img, torch.tanh(rgb[0][:, :3]))  # the first 3 of 128 channels


def test_discriminator_skip_keeps_the_pooled_input_and_class_reaches_the_head(tiny):
    gan, v = tiny
    D = gan.D
    x = torch.randn(2, 3, 128, 128)
    c1, c2 = torch.tensor([1, 2]), torch.tensor([6, 9])
    stem = next(m for m in D.modules() if isinstance(m, Conv2dLayer))
    head = next(m for m in D.modules() if isinstance(m, ProjectionHead))
    first = D.steps["1"]  # the first DBlock: ch -> 2ch, pooled
    stem_out, skip, pooled = [], [], []
    hooks = [stem.register_forward_hook(lambda m, a, out: stem_out.append(out)),
             first["shortcut"]["2"].register_forward_hook(lambda m, a, out: skip.append(out)),
             head.register_forward_pre_hook(lambda m, a, kw: pooled.append((a[0], kw["y"])), with_kwargs=True)]
    try:
        with torch.no_grad():
            o1, o2 = D(x, c1), D(x, c2)
    finally:
        for h in hooks:
            h.remove()
    ch = v["ch"]
    assert skip[0].shape == (2, 2 * ch, 64, 64)
    # [x, conv_sc(x)] on the pooled input: the first ch channels are the pooled stem output itself
    torch.testing.assert_close(skip[0][:, :ch], torch.nn.functional.avg_pool2d(stem_out[0], 2))
    (h, y1), (_, y2) = pooled
    assert torch.equal(y1, c1) and torch.equal(y2, c2)
    embed = head.embed.weight
    with torch.no_grad():
        torch.testing.assert_close(o1 - o2, ((embed[c1] - embed[c2]) * h).sum(1, keepdim=True), rtol=1e-4,
                                   atol=1e-3)
