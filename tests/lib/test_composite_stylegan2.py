"""StyleGAN2 composite blocks: parameter counts from NVlabs' layer formulas, sub-module names, forwards
written by hand from NVlabs' ``SynthesisBlock``/``DiscriminatorBlock``/``DiscriminatorEpilogue``, and the
outputs of the authors' own networks (stylegan2-ada-pytorch, ``tests/fixtures/converters/stylegan2_ada_32``)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from blocks import ShapeError, StyleGAN2DBlock, StyleGAN2DEpilogue, StyleGAN2SynthesisBlock

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "converters" / "stylegan2_ada_32"
SQRT_HALF = math.sqrt(0.5)


# ---- NVlabs' layer formulas (training/networks.py) --------------------------------------------------

def n_synthesis_layer(cin: int, cout: int, w_dim: int, noise: bool = True, k: int = 3) -> int:
    return w_dim * cin + cin + cout * cin * k * k + int(noise) + cout  # affine, weight, noise_strength, bias


def n_torgb(cin: int, img: int, w_dim: int) -> int:
    return w_dim * cin + cin + img * cin + img


def n_conv2d(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cout * cin * k * k + (cout if bias else 0)


def n_fc(fin: int, fout: int) -> int:
    return fout * fin + fout


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def perturbed(block: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter redrawn (noise strengths and biases are 0 at init, which would hide them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(p + 0.5 * torch.randn(p.shape, generator=g))
    return block


# ---- parameter counts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cin, cout, res, is_last, arch, use_noise", [
    (0, 8, 4, False, "skip", True), (8, 6, 8, False, "skip", True), (8, 6, 8, False, "resnet", True),
    (8, 6, 8, True, "resnet", False), (0, 8, 4, False, "orig", True), (8, 6, 8, True, "orig", True),
])
def test_synthesis_block_parameter_count(cin, cout, res, is_last, arch, use_noise):
    w_dim, img = 5, 3
    b = StyleGAN2SynthesisBlock(cin, cout, w_dim, resolution=res, img_channels=img, is_last=is_last, architecture=arch,
                       use_noise=use_noise)
    expected = n_synthesis_layer(cout, cout, w_dim, use_noise)  # conv1
    expected += cout * res * res if cin == 0 else n_synthesis_layer(cin, cout, w_dim, use_noise)  # const | conv0
    expected += n_torgb(cout, img, w_dim) if is_last or arch == "skip" else 0
    expected += n_conv2d(cin, cout, 1, bias=False) if cin and arch == "resnet" else 0
    assert n_params(b) == expected
    num_conv, num_torgb = 1 + (cin > 0), int(is_last or arch == "skip")
    assert (b.num_conv, b.num_torgb) == (num_conv, num_torgb)
    assert (b.style_layers, b.style_advance) == (num_conv + num_torgb, num_conv)


@pytest.mark.parametrize("cin, arch", [(0, "resnet"), (6, "resnet"), (6, "skip"), (0, "orig"), (6, "orig")])
def test_discriminator_block_parameter_count(cin, arch):
    tmp, cout, img = 6, 10, 3
    b = StyleGAN2DBlock(cin, tmp, cout, 8, img_channels=img, architecture=arch)
    expected = n_conv2d(tmp, tmp, 3) + n_conv2d(tmp, cout, 3)
    expected += n_conv2d(img, tmp, 1) if cin == 0 or arch == "skip" else 0
    expected += n_conv2d(tmp, cout, 1, bias=False) if arch == "resnet" else 0
    assert n_params(b) == expected


@pytest.mark.parametrize("cmap_dim, arch, mbstd_channels", [(0, "resnet", 1), (7, "skip", 2), (0, "orig", 0)])
def test_epilogue_parameter_count(cmap_dim, arch, mbstd_channels):
    c, res, img = 8, 4, 3
    b = StyleGAN2DEpilogue(c, cmap_dim, res, img, arch, mbstd_num_channels=mbstd_channels)
    expected = n_conv2d(c + mbstd_channels, c, 3) + n_fc(c * res * res, c) + n_fc(c, max(cmap_dim, 1))
    expected += n_conv2d(img, c, 1) if arch == "skip" else 0
    assert n_params(b) == expected
    assert (b.mbstd is None) == (mbstd_channels == 0)
    assert b.consumes == (("cmap",) if cmap_dim else ())


def _channels(res: int) -> int:
    return min(32768 // res, 512)  # StyleGAN2 config F: channel_base 32768, channel_max 512


@pytest.mark.parametrize("img_res, n_synthesis, n_discriminator", [
    # Sums of the parameter shapes in NVlabs' state_dicts at config F (dumped from the authors' code).
    (256, 27_933_090, 28_864_129), (1024, 28_268_812, 29_012_513),
])
def test_full_size_networks_have_the_reference_parameter_count(img_res, n_synthesis, n_discriminator):
    top = int(math.log2(img_res))
    with torch.device("meta"):
        g = [StyleGAN2SynthesisBlock(_channels(r // 2) if r > 4 else 0, _channels(r), resolution=r,
                                     is_last=r == img_res)
             for r in (2 ** i for i in range(2, top + 1))]
        d = [StyleGAN2DBlock(_channels(r) if r < img_res else 0, _channels(r), _channels(r // 2), r)
             for r in (2 ** i for i in range(top, 2, -1))]
        d.append(StyleGAN2DEpilogue(_channels(4)))
    assert sum(map(n_params, g)) == n_synthesis
    assert sum(map(n_params, d)) == n_discriminator


# ---- sub-module names ---------------------------------------------------------------------------------

STYLE_CONV = ["bias", "conv.weight", "conv.resample_filter", "conv.affine.weight", "conv.affine.bias",
              "noise.strength", "noise.noise_const"]
TO_RGB = ["bias", "conv.weight", "conv.resample_filter", "conv.affine.weight", "conv.affine.bias"]
EQ_CONV = ["weight", "bias", "resample_filter"]


def _under(prefix: str, names: list[str]) -> list[str]:
    return [f"{prefix}.{n}" for n in names]


def test_state_dict_keys():
    first = StyleGAN2SynthesisBlock(0, 4, 5, resolution=4)
    assert list(first.state_dict()) == ["const", "resample_filter", *_under("conv1", STYLE_CONV),
                                        *_under("torgb", TO_RGB)]
    res = StyleGAN2SynthesisBlock(4, 4, 5, resolution=8, architecture="resnet", is_last=True)
    assert list(res.state_dict()) == ["resample_filter", *_under("conv0", STYLE_CONV),
                                      *_under("conv1", STYLE_CONV), *_under("torgb", TO_RGB),
                                      "skip.weight", "skip.resample_filter"]
    assert [n for n, _ in res.named_children()] == ["conv0", "conv1", "torgb", "skip"]
    assert list(StyleGAN2SynthesisBlock(4, 4, 5, resolution=8, architecture="orig").state_dict()) == [
        "resample_filter", *_under("conv0", STYLE_CONV), *_under("conv1", STYLE_CONV)]
    d = StyleGAN2DBlock(0, 4, 8, 8)
    assert list(d.state_dict()) == ["resample_filter", *_under("fromrgb", EQ_CONV), *_under("conv0", EQ_CONV),
                                    *_under("conv1", EQ_CONV), "skip.weight", "skip.resample_filter"]
    assert [n for n, _ in StyleGAN2DBlock(4, 4, 8, 8, architecture="skip").named_children()] == [
        "fromrgb", "conv0", "conv1"]
    e = StyleGAN2DEpilogue(4, 3, architecture="skip")
    assert [n for n, _ in e.named_children()] == ["fromrgb", "mbstd", "conv", "fc", "out"]
    assert list(e.state_dict()) == [*_under("fromrgb", EQ_CONV), *_under("conv", EQ_CONV), "fc.weight",
                                    "fc.bias", "out.weight", "out.bias"]


# ---- forwards by hand, from NVlabs' forward ------------------------------------------------------------

def upsample_by_hand(img: torch.Tensor) -> torch.Tensor:
    """upfirdn2d.upsample2d with [1, 3, 3, 1]: zero insertion, pad (2, 1), the filter with gain 4."""
    B, C, H, W = img.shape
    z = img.new_zeros(B, C, 2 * H, 2 * W)
    z[:, :, ::2, ::2] = img
    f = torch.outer(*[torch.tensor([1.0, 3, 3, 1]) / 8] * 2) * 4
    return F.conv2d(F.pad(z, (2, 1, 2, 1)), f.expand(C, 1, 4, 4), groups=C)


def downsample_by_hand(img: torch.Tensor) -> torch.Tensor:
    """upfirdn2d.downsample2d with [1, 3, 3, 1]: pad (1, 1), filter, keep every second pixel."""
    C = img.shape[1]
    f = torch.outer(*[torch.tensor([1.0, 3, 3, 1]) / 8] * 2)
    return F.conv2d(F.pad(img, (1, 1, 1, 1)), f.expand(C, 1, 4, 4), stride=2, groups=C)


def synthesis_by_hand(b: StyleGAN2SynthesisBlock, x, img, ws: torch.Tensor):
    """NVlabs SynthesisBlock.forward with explicit style indices: conv0, conv1, then torgb."""
    kw = {"noise_mode": "const"}
    if b.in_channels == 0:
        x = b.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        x = b.conv1(x, ws[:, 0], **kw)
        i = 1
    elif b.architecture == "resnet":
        y = b.skip(x, output_gain=SQRT_HALF)
        x = b.conv0(x, ws[:, 0], **kw)
        x = b.conv1(x, ws[:, 1], output_gain=SQRT_HALF, **kw)
        x = y + x
        i = 2
    else:
        x = b.conv1(b.conv0(x, ws[:, 0], **kw), ws[:, 1], **kw)
        i = 2
    if img is not None:
        img = upsample_by_hand(img)
    if b.is_last or b.architecture == "skip":
        y = b.torgb(x, ws[:, i])
        img = y if img is None else img + y
    return x, img


SYNTH_CASES = {  # (in_channels, is_last, architecture, with img)
    "first_skip": (0, False, "skip", False), "skip": (6, False, "skip", True),
    "resnet": (6, False, "resnet", False), "resnet_last": (6, True, "resnet", False),
    "orig_last": (6, True, "orig", False), "orig_img": (6, False, "orig", True),
    "first_orig_last": (0, True, "orig", False),
}


@pytest.mark.parametrize("case", list(SYNTH_CASES))
@pytest.mark.parametrize("clamp", [None, 0.5])
def test_synthesis_block_forward_by_hand(case, clamp):
    cin, is_last, arch, with_img = SYNTH_CASES[case]
    B, cout, w_dim, res = 3, 5, 4, 8
    torch.manual_seed(1)
    b = perturbed(StyleGAN2SynthesisBlock(cin, cout, w_dim, resolution=res, img_channels=3, is_last=is_last,
                                 architecture=arch, conv_clamp=clamp))
    x = torch.randn(B, cin, res // 2, res // 2) if cin else None
    img = torch.randn(B, 3, res // 2, res // 2) if with_img else None
    ws = torch.randn(B, b.style_layers, w_dim)  # a distinct w per layer: a wrong index is caught
    with torch.no_grad():
        got = b(x, img, w=ws, noise_mode="const")
        want = synthesis_by_hand(b, x, img, ws)
        for g, h in zip(got, want, strict=True):
            assert (g is None) == (h is None)
            if g is not None:
                torch.testing.assert_close(g, h, rtol=1e-5, atol=1e-5)
        # One w of shape (B, w_dim) is every layer's w.
        w1 = ws[:, 0]
        for g, h in zip(b(x, img, w=w1, noise_mode="const"),
                        b(x, img, w=w1[:, None].expand_as(ws), noise_mode="const"), strict=True):
            if g is not None:
                torch.testing.assert_close(g, h, rtol=0, atol=0)


def test_synthesis_resnet_sum_has_gain_sqrt_half():
    """Without clamping (lrelu is positively homogeneous) out = √½ · (skip(x) + conv1(conv0(x)))."""
    torch.manual_seed(2)
    b = perturbed(StyleGAN2SynthesisBlock(4, 6, 5, resolution=8, architecture="resnet"))
    x, ws = torch.randn(2, 4, 4, 4), torch.randn(2, 2, 5)
    with torch.no_grad():
        out, img = b(x, w=ws, noise_mode="const")
        h = b.conv1(b.conv0(x, ws[:, 0], noise_mode="const"), ws[:, 1], noise_mode="const")
        torch.testing.assert_close(out, SQRT_HALF * (b.skip(x) + h), rtol=1e-5, atol=1e-5)
    assert img is None


def test_synthesis_noise_mode_reaches_the_convs():
    torch.manual_seed(3)
    b = perturbed(StyleGAN2SynthesisBlock(4, 6, 5, resolution=8))
    x, ws = torch.randn(2, 4, 4, 4), torch.randn(2, 3, 5)
    with torch.no_grad():
        const, none = b(x, w=ws, noise_mode="const")[0], b(x, w=ws, noise_mode="none")[0]
        b.conv0.noise.strength.zero_()
        b.conv1.noise.strength.zero_()
        torch.testing.assert_close(b(x, w=ws, noise_mode="const")[0], none, rtol=0, atol=0)
    assert not torch.allclose(const, none, atol=1e-3)


def discriminator_by_hand(b: StyleGAN2DBlock, x, img):
    """NVlabs DiscriminatorBlock.forward."""
    if b.in_channels == 0 or b.architecture == "skip":
        y = b.fromrgb(img)
        x = x + y if x is not None else y
        img = downsample_by_hand(img) if b.architecture == "skip" else None
    if b.architecture == "resnet":
        y = b.skip(x, output_gain=SQRT_HALF)
        x = b.conv1(b.conv0(x), output_gain=SQRT_HALF)
        x = y + x
    else:
        x = b.conv1(b.conv0(x))
    return x, img


@pytest.mark.parametrize("cin, arch", [(0, "resnet"), (6, "resnet"), (0, "skip"), (6, "skip"), (6, "orig")])
@pytest.mark.parametrize("clamp", [None, 0.5])
def test_discriminator_block_forward_by_hand(cin, arch, clamp):
    torch.manual_seed(4)
    b = perturbed(StyleGAN2DBlock(cin, 6, 9, 8, img_channels=3, architecture=arch, conv_clamp=clamp))
    x = torch.randn(3, cin, 8, 8) if cin else None
    img = torch.randn(3, 3, 8, 8) if cin == 0 or arch == "skip" else None
    with torch.no_grad():
        got, want = b(x, img), discriminator_by_hand(b, x, img)
    assert got[0].shape == (3, 9, 4, 4)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    assert (got[1] is None) == (arch != "skip")
    if arch == "skip":
        torch.testing.assert_close(got[1], want[1], rtol=1e-6, atol=1e-6)
    if arch == "resnet" and clamp is None:  # the √½ gains, checked without going through output_gain
        with torch.no_grad():
            h = b.fromrgb(img) if cin == 0 else x
            torch.testing.assert_close(got[0], SQRT_HALF * (b.skip(h) + b.conv1(b.conv0(h))), rtol=1e-5,
                                       atol=1e-5)


def mbstd_by_hand(x: torch.Tensor, group_size: int, channels: int) -> torch.Tensor:
    """NVlabs MinibatchStdLayer: sample i is in group i mod (B / G)."""
    B, C, H, W = x.shape
    G = min(group_size, B)
    y = x.reshape(G, -1, channels, C // channels, H, W)
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=[2, 3, 4])  # (B/G, F)
    return torch.cat([x, y.reshape(-1, channels, 1, 1).repeat(G, 1, H, W)], dim=1)


@pytest.mark.parametrize("cmap_dim, arch, mbstd_channels", [(0, "resnet", 1), (5, "skip", 2), (3, "orig", 0)])
def test_epilogue_forward_by_hand(cmap_dim, arch, mbstd_channels):
    torch.manual_seed(5)
    c, B = 4, 4
    b = perturbed(StyleGAN2DEpilogue(c, cmap_dim, 4, 3, arch, mbstd_group_size=2,
                                        mbstd_num_channels=mbstd_channels))
    x = torch.randn(B, c, 4, 4)
    img = torch.randn(B, 3, 4, 4) if arch == "skip" else None
    cmap = torch.randn(B, cmap_dim) if cmap_dim else None
    with torch.no_grad():
        got = b(x, img, cmap=cmap)
        h = x + b.fromrgb(img) if arch == "skip" else x
        h = mbstd_by_hand(h, 2, mbstd_channels) if mbstd_channels else h
        h = b.out(b.fc(b.conv(h).flatten(1)))
        if cmap_dim:
            h = (h * cmap).sum(dim=1, keepdim=True) / math.sqrt(cmap_dim)
    assert got.shape == (B, 1)
    torch.testing.assert_close(got, h, rtol=1e-5, atol=1e-5)


# ---- errors at the boundary ---------------------------------------------------------------------------

def test_bad_inputs_name_the_block():
    first, later = StyleGAN2SynthesisBlock(0, 4, 5, resolution=4), StyleGAN2SynthesisBlock(4, 4, 5, resolution=8)
    w = torch.randn(2, 3, 5)
    with pytest.raises(ValueError, match="StyleGAN2SynthesisBlock: the first block"):
        first(torch.randn(2, 4, 4, 4), w=w[:, :2])
    with pytest.raises(TypeError, match="StyleGAN2SynthesisBlock: x of shape"):
        later(w=w)
    with pytest.raises(ShapeError, match="StyleGAN2SynthesisBlock: x"):  # x at the output resolution, not half of it
        later(torch.randn(2, 4, 8, 8), w=w)
    with pytest.raises(ShapeError, match="StyleGAN2SynthesisBlock: w"):  # conv0, conv1, torgb: 3 styles, not 2
        later(torch.randn(2, 4, 4, 4), w=w[:, :2])
    with pytest.raises(ValueError, match="StyleGAN2DBlock: in_channels"):
        StyleGAN2DBlock(3, 4, 8, 8)
    with pytest.raises(TypeError, match="StyleGAN2DBlock: img of shape"):
        StyleGAN2DBlock(0, 4, 8, 8)(None)
    with pytest.raises(TypeError, match="StyleGAN2DBlock: img is read only"):
        StyleGAN2DBlock(4, 4, 8, 8)(torch.randn(2, 4, 8, 8), torch.randn(2, 3, 8, 8))
    with pytest.raises(TypeError, match="StyleGAN2DEpilogue: cmap of shape"):
        StyleGAN2DEpilogue(4, cmap_dim=3)(torch.randn(2, 4, 4, 4))
    with pytest.raises(ShapeError, match="StyleGAN2DEpilogue: cmap"):
        StyleGAN2DEpilogue(4, cmap_dim=3)(torch.randn(2, 4, 4, 4), cmap=torch.randn(2, 2))
    with pytest.raises(ValueError, match="StyleGAN2SynthesisBlock: architecture"):
        StyleGAN2SynthesisBlock(4, 4, resolution=8, architecture="residual")


def test_export():
    torch.manual_seed(6)
    cases = [
        (StyleGAN2SynthesisBlock(4, 3, 5, resolution=8, architecture="resnet", is_last=True),
         (torch.randn(2, 4, 4, 4),), {"w": torch.randn(2, 3, 5)}),
        (StyleGAN2SynthesisBlock(0, 3, 5, resolution=4), (), {"w": torch.randn(2, 5)}),
        (StyleGAN2DBlock(0, 4, 6, 8, architecture="skip"), (), {"img": torch.randn(2, 3, 8, 8)}),
        (StyleGAN2DEpilogue(4, cmap_dim=3, architecture="skip", mbstd_group_size=2),
         (torch.randn(4, 4, 4, 4), torch.randn(4, 3, 4, 4), torch.randn(4, 3)), {}),
    ]
    for block, args, kwargs in cases:
        block.eval()
        exported = torch.export.export(block, args, kwargs).module()
        want, got = block(*args, **kwargs), exported(*args, **kwargs)
        for g, h in zip(*[o if isinstance(o, tuple) else (o,) for o in (got, want)], strict=True):
            torch.testing.assert_close(g, h)


# ---- end to end against the authors' networks -----------------------------------------------------------

# NVlabs' SynthesisLayer/ToRGBLayer keep weight, affine and the noise as their own attributes; here the
# modulated conv (weight, affine, resample_filter) is the layer's `conv` and the noise its `noise` block.
RENAME = [
    (r"\.(conv0|conv1|torgb)\.(affine\.weight|affine\.bias|weight|resample_filter)$", r".\1.conv.\2"),
    (r"\.noise_strength$", ".noise.strength"),
    (r"\.noise_const$", ".noise.noise_const"),
]


def ours(key: str) -> str:
    for pattern, repl in RENAME:
        key = re.sub(pattern, repl, key)
    return key


def _load(block: torch.nn.Module, weights: dict[str, torch.Tensor], prefix: str, rename: bool) -> None:
    """Load the NVlabs tensors under ``prefix``; Conv2dLayer and FullyConnectedLayer keep their names."""
    state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    state = {ours("." + k)[1:] if rename else k: v for k, v in state.items()}
    missing, unexpected = block.load_state_dict(state, strict=False)
    assert not unexpected
    # NVlabs' ToRGBLayer holds no resample_filter; our modulated conv always does (same value: unused).
    assert missing == (["torgb.conv.resample_filter"] if hasattr(block, "torgb") and block.torgb else [])


@pytest.fixture(scope="module")
def authors():
    config = json.loads((FIXTURE / "config.json").read_text())
    return config, load_file(FIXTURE / "weights.safetensors"), load_file(FIXTURE / "io.safetensors")


@pytest.mark.parametrize("impl", ["ref", "auto"])
def test_synthesis_matches_the_authors_network(authors, impl):
    config, weights, io = authors
    g = config["constructors"]["G"]["kwargs"]
    sk = g["synthesis_kwargs"]
    top = g["img_resolution"]
    ch = {r: min(sk["channel_base"] // r, sk["channel_max"]) for r in (2 ** i for i in range(1, 11))}
    blocks = {}
    for r in (2 ** i for i in range(2, int(math.log2(top)) + 1)):  # SynthesisNetwork: b4 .. b32
        blocks[r] = StyleGAN2SynthesisBlock(ch[r // 2] if r > 4 else 0, ch[r], g["w_dim"], resolution=r,
                                   img_channels=g["img_channels"], is_last=r == top,
                                   architecture=sk["architecture"], conv_clamp=sk["conv_clamp"], impl=impl)
        _load(blocks[r], weights, f"G.synthesis.b{r}.", rename=True)
    ws = io["input.ws"]
    assert sum(b.style_advance for b in blocks.values()) + blocks[top].num_torgb == ws.shape[1]

    def synthesis(ws):
        x = img = None
        w_idx = 0
        for b in blocks.values():
            x, img = b(x, img, w=ws.narrow(1, w_idx, b.style_layers), noise_mode="const")
            w_idx += b.style_advance
        return img

    want = io["G.eval.synthesis_img_from_ws"]
    with torch.no_grad():
        got = synthesis(ws)
        rel = ((got - want).abs().max() / want.abs().max()).item()
        assert rel < 1e-5, f"max |ours - NVlabs| / max |NVlabs| = {rel:.3g}"
        # The per-layer ws are distinct, so the comparison pins which w each layer reads.
        assert not torch.allclose(synthesis(ws.flip(1)), want, atol=1e-2)


@pytest.mark.parametrize("impl", ["ref", "auto"])
def test_discriminator_matches_the_authors_network(authors, impl):
    config, weights, io = authors
    d = config["constructors"]["D"]["kwargs"]
    top = d["img_resolution"]
    ch = {r: min(d["channel_base"] // r, d["channel_max"]) for r in (2 ** i for i in range(1, 11))}
    common = {"img_channels": d["img_channels"], "architecture": d["architecture"], "conv_clamp": d["conv_clamp"],
              "impl": impl}
    blocks = []
    for r in (2 ** i for i in range(int(math.log2(top)), 2, -1)):  # Discriminator: b32 .. b8, then b4
        blocks.append(StyleGAN2DBlock(ch[r] if r < top else 0, ch[r], ch[r // 2], r, **common))
        _load(blocks[-1], weights, f"D.b{r}.", rename=False)
    epilogue = StyleGAN2DEpilogue(ch[4], 0, 4, **common, **d["epilogue_kwargs"])
    _load(epilogue, weights, "D.b4.", rename=False)

    def discriminator(img):
        x = None
        for b in blocks:
            x, img = b(x, img)
        return epilogue(x, img)

    with torch.no_grad():
        for image, name in (("input.x", "D.eval.out"), ("G.eval.img_psi1", "D.eval.out_on_G_img")):
            got, want = discriminator(io[image]), io[name]
            rel = ((got - want).abs().max() / want.abs().max()).item()
            assert rel < 1e-5, f"{name}: max |ours - NVlabs| / max |NVlabs| = {rel:.3g}"


@pytest.mark.parametrize("arch", ["skip", "resnet"])
def test_use_fp16_computes_in_bfloat16_and_hands_float32_back(arch):
    """StyleGAN2-ADA's fp16 blocks: bfloat16 inside, float32 in and out; force_fp32 gives the float32 function."""
    from blocks.composite.stylegan2 import HALF, force_fp32

    torch.manual_seed(5)
    g = perturbed(StyleGAN2SynthesisBlock(8, 8, 5, resolution=8, architecture=arch, use_fp16=True, conv_clamp=256))
    d = perturbed(StyleGAN2DBlock(0, 8, 8, resolution=8, architecture=arch, use_fp16=True, conv_clamp=256))
    x, img, ws = torch.randn(2, 8, 4, 4), torch.randn(2, 3, 4, 4), torch.randn(2, g.style_layers, 5)
    seen = []
    g.conv0.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    d.conv0.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.no_grad():
        half = [*g(x, img if arch == "skip" else None, ws, noise_mode="const"), *d(None, img.repeat(1, 1, 2, 2))]
        assert seen == [HALF, HALF]
        assert all(t is None or t.dtype == torch.float32 for t in half)
        assert force_fp32(g) == 1 and force_fp32(d) == 1 and not g.use_fp16
        full = [*g(x, img if arch == "skip" else None, ws, noise_mode="const"), *d(None, img.repeat(1, 1, 2, 2))]
        assert seen[2:] == [torch.float32, torch.float32]
    for a, b in zip(half, full):
        if a is not None:
            assert 1e-4 < float((a - b).abs().max() / b.abs().max()) < 5e-2  # bfloat16's 8 bits of mantissa
    assert force_fp32(g, False) == 1 and g.use_fp16  # and back
