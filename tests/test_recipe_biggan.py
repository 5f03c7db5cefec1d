"""BigGAN (recipes/biggan.yaml) against ajbrock/BigGAN-PyTorch's BigGAN.py / layers.py at ImageNet 128x128.

Canonical counts are computed on meta tensors (``assemble.plan``); behaviour is checked on the tiny build.
"""

from __future__ import annotations

import pytest
import torch

import assemble
from assemble.show import totals
from assemble.spec import BlockNode, walk
from blocks import ConditionalBatchNorm, LinearLayer, ProjectionHead

# BigGAN.py G_arch / D_arch: channel multipliers (of ch) per block, block by block.
G_ARCH = {  # resolution: (in_channels, out_channels)
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
}
D_ARCH = {  # resolution: (in_channels (3 = the image), out_channels, output resolution of each block)
    128: ([3, 1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [64, 32, 16, 8, 4, 4]),
    256: ([3, 1, 2, 4, 8, 8, 16], [1, 2, 4, 8, 8, 16, 16], [128, 64, 32, 16, 8, 4, 4]),
}


def reference_counts(resolution: int = 128, ch: int = 96, dim_z: int = 120, shared_dim: int = 128,
                     n_classes: int = 1000, attention: int = 64, bottom_width: int = 4) -> tuple[int, int]:
    """Trainable parameters of BigGAN-PyTorch's Generator and Discriminator, from their layer definitions
    (G_shared, hier, G_param = D_param = 'SN'; spectral norm adds buffers u0, sv0 only)."""

    def sn_conv2d(i, o, k=3):  # layers.SNConv2d(i, o, kernel_size=k), bias=True
        return o * i * k * k + o

    def sn_linear(i, o, bias=True):  # layers.SNLinear
        return o * i + (o if bias else 0)

    def attention_(c):  # layers.Attention: theta, phi (c -> c/8), g (c -> c/2), o (c/2 -> c), no bias; gamma
        return 2 * c * (c // 8) + c * (c // 2) + (c // 2) * c + 1

    g_in, g_out = ([m * ch for m in ms] for ms in G_ARCH[resolution])
    num_slots = len(g_in) + 1
    z_chunk_size = dim_z // num_slots
    bn_input = shared_dim + z_chunk_size  # ccbn input_size = shared_dim + z_chunk_size

    def ccbn(c):  # layers.ccbn: gain and bias = SNLinear(input_size, c, bias=False)
        return 2 * sn_linear(bn_input, c, bias=False)

    g = n_classes * shared_dim  # G.shared = nn.Embedding(n_classes, shared_dim)
    g += sn_linear(z_chunk_size, g_in[0] * bottom_width ** 2)  # G.linear
    for k, (i, o) in enumerate(zip(g_in, g_out)):  # layers.GBlock: conv1, conv2, conv_sc (1x1), bn1, bn2
        g += sn_conv2d(i, o) + sn_conv2d(o, o) + sn_conv2d(i, o, 1) + ccbn(i) + ccbn(o)
        if bottom_width * 2 ** (k + 1) == attention:
            g += attention_(o)
    g += 2 * g_out[-1] + sn_conv2d(g_out[-1], 3)  # output_layer: layers.bn (gain, bias), SNConv2d(ch, 3)

    d_in, d_out, d_res = D_ARCH[resolution]
    d_in = [3] + [m * ch for m in d_in[1:]]
    d_out = [m * ch for m in d_out]
    d = 0
    for k, (i, o, r) in enumerate(zip(d_in, d_out, d_res)):  # layers.DBlock, wide: hidden = out
        downsample = k < len(d_out) - 1
        d += sn_conv2d(i, o) + sn_conv2d(o, o)
        if i != o or downsample:  # learnable_sc
            d += sn_conv2d(i, o, 1)
        if r == attention:
            d += attention_(o)
    d += sn_linear(d_out[-1], 1) + n_classes * d_out[-1]  # D.linear, D.embed (SNEmbedding)
    return g, d


@pytest.fixture(scope="module")
def canonical():
    return assemble.plan("biggan")


@pytest.fixture(scope="module")
def tiny():
    recipe = assemble.load("biggan")
    gan = assemble.build(recipe, **recipe["tiny"])
    gan.G.eval()  # running BN statistics and no power iteration: calls are deterministic
    gan.D.eval()
    return gan, recipe["tiny"]


def test_reference_formula_matches_the_published_totals():
    # google/compare_gan compare_gan/architectures/resnet_biggan_test.py ("Test whether resnet_biggan
    # matches the original BigGAN architecture"): G 70433988, D 87982370 at 128x128, z 120, 1000 classes,
    # ch 96; BigGAN-PyTorch's author notes: "ch 96, all tricks: G 70305988 [+ 128,000 shared], D 87982370".
    assert reference_counts() == (70_433_988, 87_982_370)
    assert reference_counts()[0] - 1000 * 128 == 70_305_988


def test_canonical_parameter_counts(canonical):
    _, _, plans = canonical
    assert totals(plans["generator"])["params"] == 70_433_988
    assert totals(plans["discriminator"])["params"] == 87_982_370


def test_256_parameter_counts_follow_the_reference_arch():
    # BigGAN.py arch[256]: 6 G blocks -> 7 z slots; dim_z 140 gives chunks of 20 as at 128.
    _, _, plans = assemble.plan("biggan", resolution=256, z_dim=140)
    g, d = reference_counts(resolution=256, dim_z=140)
    assert (totals(plans["generator"])["params"], totals(plans["discriminator"])["params"]) == (g, d)


def test_module_tree_follows_biggan_pytorch(canonical):
    """BigGAN.py's tree: G.shared, G.linear, G.blocks[k][0] (GBlock) and [1] (attention at 64x64),
    G.output_layer (bn, relu, conv); D.blocks[k][0] (DBlock) and [1] (attention at 64x64), the projection head."""
    _, specs, plans = canonical
    g, d = specs["generator"], specs["discriminator"]
    assert g.parts == ["shared", "skip_z", "linear", "reshape", "blocks", "output_layer", "tanh"]
    g_blocks = [[(c.name, c.key) for c in k.children] for k in g.nodes[4].children]
    assert [k.name for k in g.nodes[4].children] == ["0", "1", "2", "3", "4"]
    assert g_blocks == [[("0", "biggan_g_block")]] * 3 + [[("0", "biggan_g_block"), ("1", "self_attention")]] + [
        [("0", "biggan_g_block")]]
    assert [(c.name, c.key) for c in g.nodes[5].children] == [("0", "batch_norm"), ("1", "relu"), ("2", "conv")]
    assert d.parts == ["blocks", "relu", "global_sum_pool", "head"]
    d_blocks = [[c.key for c in k.children] for k in d.nodes[0].children]
    assert d_blocks == [["biggan_d_block", "self_attention"]] + [["biggan_d_block"]] * 5  # attention at 64x64

    g_args = plans["generator"].args
    for k, (cin, cout) in enumerate(zip(*G_ARCH[128])):
        a = g_args[f"blocks.{k}.0"]
        assert (a["in_channels"], a["out_channels"]) == (96 * cin, 96 * cout)
        assert a["y_dim"] == 148 and a.get("upsample", True) is True  # ccbn reads [shared 128, z chunk 20]
    d_args = plans["discriminator"].args
    d_in, d_out, _ = D_ARCH[128]
    for k, (cin, cout) in enumerate(zip(d_in, d_out)):
        a = d_args[f"blocks.{k}.0"]
        assert (a["in_channels"], a["out_channels"]) == (3 if k == 0 else 96 * cin, 96 * cout)
        # layers.DBlock: the first is not preactivated; the last (16ch -> 16ch at 4x4) does not pool
        assert a["preactivation"] is (k > 0) and a["downsample"] is (k < 5)

    # Every spectrally normalised layer uses the launch script's SN_eps 1e-6; every batch norm BN_eps 1e-5.
    for net, spec in specs.items():
        for node in walk(spec.nodes):
            if not isinstance(node, BlockNode):
                continue
            args = plans[net].args[node.module_path]
            if node.key in ("conv", "linear", "biggan_g_block", "biggan_d_block", "self_attention",
                            "projection_head"):
                assert args.get("sn", True) is True and args["sn_eps"] == 1e-6, node.path
            if node.key in ("biggan_g_block", "batch_norm"):
                assert args["bn_eps" if node.key == "biggan_g_block" else "eps"] == 1e-5, node.path
            if node.key == "self_attention":
                assert args["in_channels"] == (192 if net == "generator" else 96), node.path


def _chunk(z, i, size):
    return z[:, i * size:(i + 1) * size]


def test_each_g_block_reads_its_own_ys_row(tiny):
    gan, v = tiny
    G = gan.G
    size = v["z_dim"] // 6
    seen, linear_in = [], []
    bns = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm)]
    linear = next(m for m in G.modules() if isinstance(m, LinearLayer))
    hooks = [m.register_forward_pre_hook(lambda m, a, kw: seen.append(kw.get("y", a[-1])), with_kwargs=True)
             for m in bns]
    hooks.append(linear.register_forward_pre_hook(lambda m, a: linear_in.append(a[0])))
    try:
        z = torch.randn(3, v["z_dim"])
        c = torch.tensor([1, 7, 3])
        G(z, c)
    finally:
        for h in hooks:
            h.remove()
    shared = G.shared.embed.weight[c]
    assert len(bns) == 10 and len(seen) == 10
    torch.testing.assert_close(linear_in[0], _chunk(z, 0, size), rtol=0, atol=0)
    for k in range(5):  # both batch norms of block k: [shared(c), z chunk k + 1]
        want = torch.cat([shared, _chunk(z, k + 1, size)], dim=1)
        for y in seen[2 * k:2 * k + 2]:
            torch.testing.assert_close(y, want, rtol=0, atol=0)


def test_every_z_chunk_changes_the_image(tiny):
    gan, v = tiny
    size = v["z_dim"] // 6
    z = torch.randn(1, v["z_dim"]).repeat(8, 1)  # eval mode: samples are independent, so one batch
    for i in range(6):  # row i + 2: chunk i moved
        z[i + 2, i * size:(i + 1) * size] += 1.0
    with torch.no_grad():
        out = gan.G(z, torch.full((8,), 4))
    torch.testing.assert_close(out[1], out[0], rtol=0, atol=1e-6)
    for i in range(6):
        assert (out[i + 2] - out[0]).abs().max() > 1e-4, f"z chunk {i} does not reach the output"


def test_synthesis_from_an_embedded_class_vector(tiny):
    """Running the parts after G.shared with y set by hand is BigGAN-PyTorch's G(z, G.shared(y)) (class
    interpolation)."""
    gan, v = tiny
    z = torch.randn(2, v["z_dim"])
    c = torch.tensor([2, 5])
    with torch.no_grad():
        y = gan.G.shared(c)
        out = gan.G.run(parts=gan.G.parts_after("y"), z=z, registers={"y": y})["_"]
        torch.testing.assert_close(out, gan.G(z, c))


def test_class_reaches_the_projection_head(tiny):
    gan, _ = tiny
    D = gan.D
    head = next(m for m in D.modules() if isinstance(m, ProjectionHead))
    seen = []
    hook = head.register_forward_pre_hook(lambda m, a, kw: seen.append((a[0], kw["y"])), with_kwargs=True)
    try:
        x = torch.randn(2, 3, 128, 128)
        c1, c2 = torch.tensor([1, 2]), torch.tensor([6, 9])
        with torch.no_grad():
            o1, o2 = D(x, c1), D(x, c2)
    finally:
        hook.remove()
    (h, y1), (_, y2) = seen
    assert torch.equal(y1, c1) and torch.equal(y2, c2)
    # out = linear(h) + <embed(c), h>: only the projection term depends on the class
    embed = head.embed.weight
    with torch.no_grad():
        want = ((embed[c1] - embed[c2]) * h).sum(1, keepdim=True)
    torch.testing.assert_close(o1 - o2, want, rtol=1e-4, atol=1e-3)
    assert (o1 - o2).abs().max() > 1e-4


def test_orthogonal_init(tiny):
    gan, _ = tiny
    w = gan.G.shared.embed.weight  # (n_classes, shared_dim) = (10, 8): tall, so WᵀW = I
    torch.testing.assert_close(w.T @ w, torch.eye(w.shape[1]), atol=1e-5, rtol=0)
    conv = next(m for m in gan.D.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    wm = conv.parametrizations.weight.original.flatten(1)  # (out, in·9), wide: WWᵀ = I
    torch.testing.assert_close(wm @ wm.T, torch.eye(wm.shape[0]), atol=1e-5, rtol=0)
