"""The progan recipe: the reference parameter counts of networks.py (G_paper, D_paper) at 1024x1024, and
progressive growing: per-stage sizes, the fade-in blend checked against the layers run by hand, and each
toRGB/fromRGB used (without copies) at its own stage and as the old path of the next."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import assemble
from assemble.show import totals
from blocks import BiasAct, EqualizedConv2d, EqualizedLinear, FromRGB, ShapeError, ToRGB

TINY = assemble.load("progan")["tiny"]


def reference_counts(resolution: int = 1024, num_channels: int = 3, latent_size: int = 512, fmap_base: int = 8192,
                     fmap_decay: float = 1.0, fmap_max: int = 512, label_size: int = 0) -> tuple[int, int]:
    """Parameters of tkarras/progressive_growing_of_gans networks.py, from its layer definitions.

    get_weight: dense [fan_in, fmaps], conv2d [k, k, in, fmaps] (the fused up/down variants keep the 3x3
    weight); apply_bias: one bias per output channel (the 4x4 dense is reshaped before its bias).
    """
    log2 = resolution.bit_length() - 1

    def nf(stage: int) -> int:
        return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)

    def conv(k: int, cin: int, cout: int) -> int:
        return k * k * cin * cout + cout

    C = num_channels
    # G_paper: 4x4/Dense (latent -> nf(1)*16, bias on the reshaped nf(1) channels), 4x4/Conv,
    # {res}/Conv0_up and Conv1 for res = 8 .. resolution, ToRGB_lod{0..log2-2}
    g = (latent_size + label_size) * nf(1) * 16 + nf(1) + conv(3, nf(1), nf(1))
    g += sum(conv(3, nf(r - 2), nf(r - 1)) + conv(3, nf(r - 1), nf(r - 1)) for r in range(3, log2 + 1))
    g += sum(conv(1, nf(r - 1), C) for r in range(2, log2 + 1))
    # D_paper: FromRGB_lod{..} at every resolution; {res}/Conv0 and Conv1_down for res = resolution .. 8;
    # 4x4/Conv (after minibatch stddev: nf(1) + 1 inputs), Dense0 (nf(1)*16 -> nf(0)), Dense1 (-> 1 + labels)
    d = sum(conv(1, C, nf(r - 1)) for r in range(2, log2 + 1))
    d += sum(conv(3, nf(r - 1), nf(r - 1)) + conv(3, nf(r - 1), nf(r - 2)) for r in range(3, log2 + 1))
    d += conv(3, nf(1) + 1, nf(1)) + nf(1) * 16 * nf(0) + nf(0) + nf(0) * (1 + label_size) + 1 + label_size
    return g, d


def test_reference_parameter_counts_at_1024():
    """networks.py at resolution 1024 (CelebA-HQ, 3 channels, no labels): G 23,079,115 and D 23,087,249,
    the "23.1M" of both networks in the paper's table 2."""
    assert reference_counts() == (23_079_115, 23_087_249)
    _, specs, plans = assemble.plan("progan")
    assert specs["generator"].stages == specs["discriminator"].stages == 9
    assert totals(plans["generator"])["params"] == 23_079_115
    assert totals(plans["discriminator"])["params"] == 23_087_249
    assert plans["generator"].output_shapes["rgb"] == (3, 1024, 1024)
    # networks.py's scopes: G 4x4 .. 1024x1024 (block s at stage s), D 1024x1024 .. 8x8 then the 4x4 epilogue
    sizes = [f"{4 * 2 ** s}x{4 * 2 ** s}" for s in range(9)]
    assert specs["generator"].parts == sizes and specs["discriminator"].parts == sizes[::-1]
    g, d = plans["generator"].args, plans["discriminator"].args
    assert (g["4x4"]["in_channels"], g["4x4"]["out_channels"], g["4x4"]["stage"]) == (512, 512, 0)
    assert [(g[n]["out_channels"], g[n]["stage"]) for n in sizes[1:]] == [
        (512, 1), (512, 2), (512, 3), (256, 4), (128, 5), (64, 6), (32, 7), (16, 8)]
    assert [(d[n]["in_channels"], d[n]["out_channels"]) for n in sizes[:0:-1]] == [
        (16, 32), (32, 64), (64, 128), (128, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    assert (d["4x4"]["in_channels"], d["4x4"]["hidden_features"], d["4x4"]["mbstd_group_size"]) == (512, 512, 4)


def test_tiny_counts_follow_the_reference_formula():
    gan = assemble.build("progan", **TINY)
    g, d = reference_counts(TINY["resolution"], 3, TINY["z_dim"], TINY["fmap_base"], 1.0, TINY["fmap_max"])
    assert sum(p.numel() for p in gan.G.parameters()) == g  # no toRGB or fromRGB twice
    assert sum(p.numel() for p in gan.D.parameters()) == d
    assert totals(gan.plans["generator"])["params"] == g and totals(gan.plans["discriminator"])["params"] == d


def _modules(net: assemble.Network, cls: type) -> list[torch.nn.Module]:
    """The blocks of exactly this class, in program order."""
    return [m for m in net.modules() if type(m) is cls]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    gan = assemble.build("progan", **TINY)
    with torch.no_grad():  # non-zero biases, so a wrong bias path shows
        for p in [*gan.G.parameters(), *gan.D.parameters()]:
            if p.dim() == 1:
                p.normal_(0, 0.1)
    return gan


def _pn(x):
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-8)


def _up(x):
    return x.repeat_interleave(2, 2).repeat_interleave(2, 3)


def _lrelu(x):
    return torch.where(x >= 0, x, 0.2 * x)


def test_stage_sizes_and_which_rgb_layers_run(tiny):
    G, D = tiny.G, tiny.D
    to_rgb, from_rgb = _modules(G, ToRGB), _modules(D, FromRGB)[::-1]  # D: top resolution first
    assert G.num_stages == D.num_stages == 4 and len(to_rgb) == len(from_rgb) == 4
    ran: list[int] = []
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: ran.append(k))
             for mods in (to_rgb, from_rgb) for k, m in enumerate(mods)]
    z = torch.randn(4, TINY["z_dim"])
    try:
        for s in range(4):
            G.set_stage(s)
            D.set_stage(s)
            ran.clear()
            img = G(z)
            assert img.shape == (4, 3, 4 * 2 ** s, 4 * 2 ** s)
            assert sorted(ran) == sorted({s - 1, s} - {-1})  # its own, and the previous one while fading
            ran.clear()
            assert D(img).shape == (4, 1)
            assert sorted(ran) == sorted({s - 1, s} - {-1})
            wrong = 4 * 2 ** (s + 1)
            with pytest.raises(ShapeError):
                D(torch.randn(4, 3, wrong, wrong))
    finally:
        for h in hooks:
            h.remove()
        G.set_stage(3)
        D.set_stage(3)


def _g_by_hand(G, z, s):
    """G's features at stages s-1 and s, run layer by layer (networks.py block(), without the assembler)."""
    lin, = _modules(G, EqualizedLinear)
    bias, = _modules(G, BiasAct)
    convs = _modules(G, EqualizedConv2d)
    x = lin(_pn(z)).reshape(z.shape[0], -1, 4, 4)
    x = _pn(_lrelu(x + bias.bias.view(1, -1, 1, 1)))
    x = _pn(convs[0](x))
    feats = [x]
    for k in range(1, s + 1):
        x = _pn(convs[2 * k](_pn(convs[2 * k - 1](_up(x)))))
        feats.append(x)
    return feats[s - 1], feats[s]


@pytest.mark.parametrize("s", [1, 2, 3])
def test_generator_fade_in_against_layers_by_hand(tiny, s):
    G = tiny.G
    to_rgb = _modules(G, ToRGB)
    z = torch.randn(4, TINY["z_dim"])
    G.set_stage(s)
    try:
        with torch.no_grad():
            prev, cur = _g_by_hand(G, z, s)
            old, new = _up(to_rgb[s - 1](prev)), to_rgb[s](cur)
            assert not torch.allclose(old, new, atol=1e-3)
            for alpha in (0.0, 0.3, 1.0):
                G.set_alpha(alpha)
                torch.testing.assert_close(G(z), old + (new - old) * alpha, rtol=1e-5, atol=1e-5)
            G.set_alpha(0.0)
            faded_out = G(z)
            G.set_stage(s - 1)
            G.set_alpha(1.0)
            # α = 0 is exactly the previous stage's image, upsampled
            torch.testing.assert_close(faded_out, _up(G(z)), rtol=0, atol=0)
    finally:
        G.set_stage(3)
        G.set_alpha(1.0)


def _d_by_hand(D, img, s, alpha):
    """D at stage s, layer by layer (networks.py D_paper linear structure with lod = stage's lod + 1 - α)."""
    from_rgb = _modules(D, FromRGB)[::-1]  # D's program runs from the top resolution down
    convs = _modules(D, EqualizedConv2d)
    lin0, lin1 = _modules(D, EqualizedLinear)
    n = D.num_stages
    block = {k: (convs[2 * (n - 1 - k)], convs[2 * (n - 1 - k) + 1]) for k in range(1, n)}

    def run_block(x, k):
        c0, c1 = block[k]
        return F.avg_pool2d(c1(c0(x)), 2)

    x = run_block(from_rgb[s](img), s)
    old = from_rgb[s - 1](F.avg_pool2d(img, 2))
    x = old + (x - old) * alpha
    for k in range(s - 1, 0, -1):
        x = run_block(x, k)
    g = min(4, x.shape[0])  # minibatch stddev, group 4: sample i in group i mod (B / g)
    y = x.reshape(g, -1, *x.shape[1:])
    sd = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean((1, 2, 3))
    x = torch.cat([x, sd.repeat(g).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])], 1)
    x = convs[-1](x).flatten(1)
    return lin1(lin0(x))


@pytest.mark.parametrize("s", [1, 2, 3])
def test_discriminator_fade_in_against_layers_by_hand(tiny, s):
    D = tiny.D
    img = torch.randn(8, 3, 4 * 2 ** s, 4 * 2 ** s)
    D.set_stage(s)
    try:
        with torch.no_grad():
            for alpha in (0.0, 0.3, 1.0):
                D.set_alpha(alpha)
                torch.testing.assert_close(D(img), _d_by_hand(D, img, s, alpha), rtol=1e-5, atol=1e-5)
            D.set_alpha(0.0)
            faded_out = D(img)
            D.set_stage(s - 1)
            D.set_alpha(1.0)
            # α = 0 is exactly the previous stage reading the average-pooled image
            torch.testing.assert_close(faded_out, D(F.avg_pool2d(img, 2)), rtol=0, atol=0)
    finally:
        D.set_stage(3)
        D.set_alpha(1.0)


def test_growth_schedule_is_stated():
    """Paper appendix A.1 / config.py preset-v1: 800k images per phase and per fade-in; minibatch 16, then
    14, 6 and 3 at 256, 512 and 1024 (per stage: stage s is 4·2^s pixels)."""
    sched = assemble.load("progan")["train"]["schedule"]
    assert sched["images_per_phase"] == sched["fade_images"] == 800_000
    assert sched["batch"] == {s: {6: 14, 7: 6, 8: 3}.get(s, 16) for s in range(9)}
