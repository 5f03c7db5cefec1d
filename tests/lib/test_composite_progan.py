"""ProGAN composite blocks: parameter counts against networks.py's layer formulas (G_paper, D_paper), the
module names, and chains of blocks at every stage and fade-in α against forwards written by hand from the
reference (the blocks' own parameters, the reference's gains), including which toRGB/fromRGB run when."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blocks import COMPOSITE, FromRGB, ProGANDBlock, ProGANDEpilogue, ProGANGBlock, ShapeError, ToRGB

# A tiny config whose feature maps differ per resolution (nf = 24, 24, 16, 8, 4), so a channel mix-up shows.
TINY = {"resolution": 32, "latent_size": 12, "fmap_base": 64, "fmap_max": 24}
SQRT2 = math.sqrt(2)  # He gain of every conv and dense but toRGB and Dense1 (1) and the 4x4 Dense (√2/4)


def nf(stage: int, fmap_base: int = 8192, fmap_decay: float = 1.0, fmap_max: int = 512) -> int:
    return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)


def reference_counts(resolution: int = 1024, num_channels: int = 3, latent_size: int = 512, fmap_base: int = 8192,
                     fmap_max: int = 512) -> tuple[int, int]:
    """Parameters of networks.py G_paper and D_paper (fmap_decay 1, no labels), from its layer definitions:
    dense [fan_in, fmaps], conv2d [k, k, in, fmaps], one bias per output channel (the 4x4 dense's after the
    reshape)."""
    log2 = resolution.bit_length() - 1

    def n(stage: int) -> int:
        return nf(stage, fmap_base, 1.0, fmap_max)

    def conv(k: int, cin: int, cout: int) -> int:
        return k * k * cin * cout + cout

    C = num_channels
    g = latent_size * n(1) * 16 + n(1) + conv(3, n(1), n(1))
    g += sum(conv(3, n(r - 2), n(r - 1)) + conv(3, n(r - 1), n(r - 1)) for r in range(3, log2 + 1))
    g += sum(conv(1, n(r - 1), C) for r in range(2, log2 + 1))
    d = sum(conv(1, C, n(r - 1)) for r in range(2, log2 + 1))
    d += sum(conv(3, n(r - 1), n(r - 1)) + conv(3, n(r - 1), n(r - 2)) for r in range(3, log2 + 1))
    d += conv(3, n(1) + 1, n(1)) + n(1) * 16 * n(0) + n(0) + n(0) * 1 + 1
    return g, d


def chains(resolution: int, latent_size: int, fmap_base: int, fmap_max: int) -> tuple[list[nn.Module], ...]:
    """G: the 4x4 block, then one block per resolution; D: blocks from the top resolution down, then the
    epilogue. Stage s works at 4·2^s pixels."""
    n = [nf(k, fmap_base, 1.0, fmap_max) for k in range(resolution.bit_length())]
    stages = resolution.bit_length() - 2
    G = [ProGANGBlock(latent_size, n[1], 4, 0)]
    G += [ProGANGBlock(n[s], n[s + 1], 4 * 2**s, s) for s in range(1, stages)]
    D = [ProGANDBlock(n[s + 1], n[s], 4 * 2**s, s) for s in reversed(range(1, stages))]
    D += [ProGANDEpilogue(n[1], n[0])]
    return G, D


def count(mods: list[nn.Module]) -> int:
    return sum(p.numel() for m in mods for p in m.parameters())


def test_parameter_counts_follow_the_reference_formula():
    G, D = chains(**TINY)
    assert (count(G), count(D)) == reference_counts(TINY["resolution"], 3, TINY["latent_size"], TINY["fmap_base"],
                                                    TINY["fmap_max"])  # no toRGB/fromRGB twice
    with torch.device("meta"):  # the paper's 1024x1024 networks (table 2: 23.1M each), without memory
        G, D = chains(1024, 512, 8192, 512)
    assert reference_counts() == (count(G), count(D)) == (23_079_115, 23_087_249)


def test_module_names_follow_the_reference_scopes():
    G, D = chains(**TINY)

    def params(m: nn.Module) -> dict[str, tuple[int, ...]]:
        return {k: tuple(p.shape) for k, p in m.named_parameters()}

    # 4x4/Dense (weight; its bias after the reshape), 4x4/Conv, ToRGB
    assert params(G[0]) == {"dense.weight": (16 * 24, 12), "dense_bias.bias": (24,), "conv.weight": (24, 24, 3, 3),
                            "conv.bias": (24,), "torgb.weight": (3, 24, 1, 1), "torgb.bias": (3,)}
    assert params(G[2]) == {"conv0.weight": (8, 16, 3, 3), "conv0.bias": (8,), "conv1.weight": (8, 8, 3, 3),
                            "conv1.bias": (8,), "torgb.weight": (3, 8, 1, 1), "torgb.bias": (3,)}
    assert [k for k, _ in G[2].named_children()] == ["norm", "upscale", "conv0", "conv1", "torgb", "fade"]
    assert G[0].fade is None and "fade.alpha" in G[1].state_dict()
    # D: FromRGB, {res}/Conv0 (in -> in), {res}/Conv1 (in -> next lower nf); 4x4: Conv, Dense0, Dense1
    assert params(D[0]) == {"fromrgb.weight": (4, 3, 1, 1), "fromrgb.bias": (4,), "conv0.weight": (4, 4, 3, 3),
                            "conv0.bias": (4,), "conv1.weight": (8, 4, 3, 3), "conv1.bias": (8,)}
    assert list(D[0].state_dict())[-1] == "fade.alpha"
    assert params(D[-1]) == {"fromrgb.weight": (24, 3, 1, 1), "fromrgb.bias": (24,), "conv.weight": (24, 25, 3, 3),
                             "conv.bias": (24,), "dense0.weight": (24, 24 * 16), "dense0.bias": (24,),
                             "dense1.weight": (1, 24), "dense1.bias": (1,)}
    assert [k for k, _ in D[-1].named_children()] == ["fromrgb", "fade", "downscale", "mbstd", "conv", "dense0",
                                                      "dense1"]
    assert COMPOSITE.entry("progan_d_epilogue").batch_coupled and not COMPOSITE.entry("progan_d_block").batch_coupled
    assert ProGANDBlock.consumes == ProGANDEpilogue.consumes == ("img",) and ProGANGBlock.consumes == ()


# ---- the reference's forward, by hand -----------------------------------------------------------------


def _pn(x):
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-8)


def _up(x):
    return x.repeat_interleave(2, 2).repeat_interleave(2, 3)


def _lrelu(x):
    return torch.where(x >= 0, x, 0.2 * x)


def _conv(m, x, gain=SQRT2, act=True):
    """networks.py conv2d + apply_bias (+ leaky ReLU): weight N(0, 1) times gain / √fan_in, SAME padding."""
    w = m.weight
    y = F.conv2d(x, w * gain / math.sqrt(w[0].numel()), m.bias, padding=w.shape[-1] // 2)
    return _lrelu(y) if act else y


def _dense(m, x, gain=SQRT2, act=True):
    y = x @ (m.weight * gain / math.sqrt(m.weight.shape[1])).T
    y = y if m.bias is None else y + m.bias
    return _lrelu(y) if act else y


def _g_feats(G, z, S):
    """Features of every G block up to stage S (G_paper block())."""
    b = G[0]
    x = _dense(b.dense, _pn(z), gain=SQRT2 / 4, act=False).reshape(z.shape[0], -1, 4, 4)
    x = _pn(_lrelu(x + b.dense_bias.bias.view(1, -1, 1, 1)))
    feats = [_pn(_conv(b.conv, x))]
    for b in G[1 : S + 1]:
        feats.append(_pn(_conv(b.conv1, _pn(_conv(b.conv0, _up(feats[-1]))))))
    return feats


def _torgb(b, x):
    return _conv(b.torgb, x, gain=1.0, act=False)


def _fromrgb(b, img):
    return _conv(b.fromrgb, img, gain=SQRT2)


def _d_by_hand(D, img, S, alpha):
    """D_paper, structure 'linear', with lod_in - lod = 1 - α for the block fading in."""
    top = len(D) - 1 - S  # D runs from the top resolution down; D[-1] (the epilogue) is stage 0
    x = _fromrgb(D[top], img)
    if S > 0:
        x = F.avg_pool2d(_conv(D[top].conv1, _conv(D[top].conv0, x)), 2)
        old = _fromrgb(D[top + 1], F.avg_pool2d(img, 2))
        x = old + (x - old) * alpha
        for b in D[top + 1 : -1]:
            x = F.avg_pool2d(_conv(b.conv1, _conv(b.conv0, x)), 2)
    g = min(4, x.shape[0])  # minibatch stddev, group 4: sample i in group i mod (B / g)
    y = x.reshape(g, -1, *x.shape[1:])
    sd = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean((1, 2, 3))
    x = torch.cat([x, sd.repeat(g).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])], 1)
    x = _conv(D[-1].conv, x).flatten(1)
    return _dense(D[-1].dense1, _dense(D[-1].dense0, x), gain=1.0, act=False)


# ---- running the chains as a progressive network does ------------------------------------------------


def set_stage(mods, S, alpha=None):
    for b in mods:
        for m in b.modules():
            if hasattr(m, "set_stage"):
                m.set_stage(S)
            if alpha is not None and hasattr(m, "set_alpha"):
                m.set_alpha(alpha)


def run_g(G, z, S):
    """The generator at stage S: blocks of stage <= S, (x, rgb) passed on; each output checked against its
    shape law. Returns the image and every block's rgb output."""
    x, rgb, rgbs = z, None, []
    for b in G[: S + 1]:
        law = b.out_shape(tuple(x.shape), None if rgb is None else tuple(rgb.shape))
        x, rgb = b(x, rgb)
        assert [tuple(x.shape), None if rgb is None else tuple(rgb.shape)] == law
        rgbs.append(rgb)
    return rgb, rgbs


def run_d(D, img, S):
    x = None
    for b in D[len(D) - 1 - S :]:
        law = b.out_shape(None if x is None else tuple(x.shape), img=tuple(img.shape))
        x = b(x, img=img)
        assert tuple(x.shape) == law
    return x


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    G, D = chains(**TINY)
    G, D = [m.double() for m in G], [m.double() for m in D]  # float64: the by-hand forwards round alike
    with torch.no_grad():  # non-zero biases, so a wrong bias path shows
        for p in (p for m in G + D for p in m.parameters()):
            if p.dim() == 1:
                p.normal_(0, 0.1)
    return G, D


def _hooks(mods, cls, ran):
    found = [m for b in mods for m in b.modules() if type(m) is cls]
    return [m.register_forward_hook(lambda m, i, o, k=k: ran.append(k)) for k, m in enumerate(found)]


@pytest.mark.parametrize("S", [0, 1, 2, 3])
def test_generator_chain_against_the_reference_by_hand(nets, S):
    G, _ = nets
    z = torch.randn(4, TINY["latent_size"], dtype=torch.float64)
    ran: list[int] = []
    hooks = _hooks(G, ToRGB, ran)
    try:
        with torch.no_grad():
            feats = _g_feats(G, z, S)
            new = _torgb(G[S], feats[S])
            old = _up(_torgb(G[S - 1], feats[S - 1])) if S else new
            assert S == 0 or not torch.allclose(old, new, atol=1e-3)
            for alpha in (0.0, 0.3, 1.0):
                set_stage(G, S, alpha)
                ran.clear()
                img, rgbs = run_g(G, z, S)
                assert img.shape == (4, 3, 4 * 2**S, 4 * 2**S)
                torch.testing.assert_close(img, old + (new - old) * alpha, rtol=1e-9, atol=1e-9)
                assert sorted(ran) == sorted({S - 1, S} - {-1})  # its own toRGB, and the previous one's
                assert all(r is None for r in rgbs[: max(S - 1, 0)])  # below: no toRGB computed
            if S:
                set_stage(G, S, 0.0)
                faded_out, rgbs = run_g(G, z, S)
                torch.testing.assert_close(rgbs[S - 1], _torgb(G[S - 1], feats[S - 1]))  # the old path, as is
                set_stage(G, S - 1, 1.0)
                # α = 0 is exactly the previous stage's image, upsampled
                torch.testing.assert_close(faded_out, _up(run_g(G, z, S - 1)[0]), rtol=0, atol=0)
    finally:
        for h in hooks:
            h.remove()


@pytest.mark.parametrize("S", [0, 1, 2, 3])
def test_discriminator_chain_against_the_reference_by_hand(nets, S):
    _, D = nets
    img = torch.randn(8, 3, 4 * 2**S, 4 * 2**S, dtype=torch.float64)
    ran: list[int] = []
    hooks = _hooks(D[::-1], FromRGB, ran)  # indexed by stage
    try:
        with torch.no_grad():
            for alpha in (0.0, 0.3, 1.0):
                set_stage(D, S, alpha)
                ran.clear()
                out = run_d(D, img, S)
                assert out.shape == (8, 1)
                torch.testing.assert_close(out, _d_by_hand(D, img, S, alpha), rtol=1e-9, atol=1e-9)
                assert sorted(ran) == sorted({S - 1, S} - {-1})
            if S:
                set_stage(D, S, 0.0)
                faded_out = run_d(D, img, S)
                set_stage(D, S - 1, 1.0)
                # α = 0 is exactly the previous stage reading the average-pooled image
                torch.testing.assert_close(faded_out, run_d(D, F.avg_pool2d(img, 2), S - 1), rtol=0, atol=0)
                assert not torch.allclose(faded_out, _d_by_hand(D, img, S, 1.0), atol=1e-4)
    finally:
        for h in hooks:
            h.remove()


# ---- the stage protocol and bad input -----------------------------------------------------------------


def test_stage_protocol_and_errors():
    g = ProGANGBlock(4, 6, 8, 1, num_channels=1)
    assert g.current_stage == 1  # alone, a block is the top one
    x = torch.randn(2, 4, 4, 4)
    assert g(x, torch.randn(2, 1, 4, 4))[1].shape == (2, 1, 8, 8)
    g.set_stage(0)
    with pytest.raises(ValueError, match=r"^ProGANGBlock: called at stage 0, below its own stage 1"):
        g(x)
    with pytest.raises(ValueError, match=r"^ProGANGBlock"):
        g.set_stage(-1)
    g.set_stage(3)
    assert g(x)[1] is None and g.out_shape((2, 4, 4, 4))[1] is None
    with pytest.raises(ShapeError, match=r"^ProGANGBlock: rgb"):  # the previous image at the wrong size
        ProGANGBlock(4, 6, 8, 1)(x, torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"^ProGANGBlock: the 4x4 block"):
        ProGANGBlock(4, 6, 4, 0)(torch.randn(2, 4), torch.randn(2, 3, 2, 2))

    d = ProGANDBlock(6, 4, 8, 1)
    with pytest.raises(TypeError, match=r"^ProGANDBlock: img is required"):
        d(torch.randn(2, 6, 4, 4))
    d(torch.randn(2, 3, 8, 8), img=torch.randn(2, 3, 8, 8))  # at the top, x is not read (nor checked)
    d.set_stage(2)
    with pytest.raises(TypeError, match=r"^ProGANDBlock: x is required"):
        d(img=torch.randn(2, 3, 16, 16))
    with pytest.raises(ShapeError, match=r"^ProGANDBlock: img"):  # the image of the wrong stage
        d(torch.randn(2, 6, 8, 8), img=torch.randn(2, 3, 8, 8))
    assert d(torch.randn(2, 6, 8, 8), img=torch.randn(2, 3, 16, 16)).shape == (2, 4, 4, 4)
    d.set_stage(5)
    assert d(torch.randn(2, 6, 8, 8)).shape == (2, 4, 4, 4)  # far below the top: no image needed

    e = ProGANDEpilogue(6, 5, mbstd_group_size=1)
    assert e.mbstd is None and e.conv.in_channels == 6
    with pytest.raises(ShapeError, match=r"^ProGANDEpilogue: img"):
        e(img=torch.randn(2, 3, 8, 8))
    for bad in ({"resolution": 12}, {"resolution": 4}, {"stage": -1}, {"out_channels": 0}):
        with pytest.raises(ValueError, match=r"^ProGANDBlock"):
            ProGANDBlock(**{"in_channels": 6, "out_channels": 4, "resolution": 8, "stage": 1, **bad})


def test_exports_one_stage_with_its_fade():
    G, D = chains(16, 8, 32, 8)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.g, self.d = nn.ModuleList(G), nn.ModuleList(D)

        def forward(self, z):
            img, _ = run_g(self.g, z, 2)
            return run_d(self.d, img, 2)

    set_stage(G + D, 2, 0.3)
    net, z = Net().eval(), torch.randn(4, 8)
    exported = torch.export.export(net, (z,))
    torch.testing.assert_close(exported.module()(z), net(z))
