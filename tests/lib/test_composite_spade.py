"""SPADE's composite blocks against NVlabs/SPADE: parameter counts from the reference layer formulas, the
reference's sub-module names, the forward passes restated from architecture.py / discriminator.py over the
blocks' own sub-modules (train and eval mode), and the discriminator's n_layers + 1 outputs and shapes."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from blocks import (
    COMPOSITE,
    SPADE,
    Conv2dLayer,
    InstanceNorm,
    LeakyReLU,
    NLayerDiscriminator,
    ShapeError,
    SPADEResnetBlock,
)

# ---- reference parameter formulas (as tests/test_recipe_spade.py) ------------------------------------
# NVlabs/SPADE ade20k: semantic_nc S = 151 (150 labels + dontcare, no instance map), nhidden 128, 3x3 SPADE
# convs; D input = cat(seg, img) = 154 channels, ndf 64, n_layers_D 4.
S = 151


def ref_spade(norm_nc: int, label_nc: int, nhidden: int = 128, ks: int = 3) -> int:
    """normalization.py SPADE: mlp_shared conv(label_nc -> nhidden) + mlp_gamma, mlp_beta conv(nhidden ->
    norm_nc), all ks x ks with bias; the parameter-free norm has none."""
    return (label_nc * nhidden * ks * ks + nhidden) + 2 * (nhidden * norm_nc * ks * ks + norm_nc)


def ref_resblock(fin: int, fout: int, label_nc: int, nhidden: int = 128, ks: int = 3) -> int:
    """architecture.py SPADEResnetBlock: conv_0 (fin -> fmiddle) and conv_1 (fmiddle -> fout), 3x3 with bias,
    norm_0 SPADE(fin), norm_1 SPADE(fmiddle); with fin != fout also conv_s (1x1, no bias), norm_s SPADE(fin).
    Spectral norm keeps the count (weight_orig replaces weight)."""
    fmiddle = min(fin, fout)
    spade = lambda c: ref_spade(c, label_nc, nhidden, ks)  # noqa: E731
    n = fin * fmiddle * 9 + fmiddle + fmiddle * fout * 9 + fout + spade(fin) + spade(fmiddle)
    if fin != fout:
        n += fin * fout + spade(fin)
    return n


def ref_nlayer_d(input_nc: int, ndf: int = 64, n_layers: int = 4, norm: str = "instance") -> int:
    """discriminator.py NLayerDiscriminator (kw 4): model0 conv with bias; model1..model{n-1} conv to
    min(2·nf, 512), bias deleted by get_nonspade_norm_layer unless the sub-norm is 'none', InstanceNorm2d
    without affine; the last conv to 1 with bias."""
    n, nf = input_nc * ndf * 16 + ndf, ndf
    for _ in range(1, n_layers):
        nf_prev, nf = nf, min(nf * 2, 512)
        n += nf_prev * nf * 16 + (nf if norm == "none" else 0)
    return n + nf * 16 + 1


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_reference_formulas_give_the_pinned_totals():
    # the multiscale D of the ade20k configuration has 2 x 2,918,465 parameters (tests/test_recipe_spade.py)
    assert ref_nlayer_d(154) == 2_918_465


@pytest.mark.parametrize("fin, fout", [(1024, 1024), (1024, 512), (128, 64)])
def test_resblock_parameter_count_at_ade20k_sizes(fin, fout):
    with torch.device("meta"):  # no memory, no power iterations
        block = SPADEResnetBlock(fin, fout, S)
    assert n_params(block) == ref_resblock(fin, fout, S)


@pytest.mark.parametrize("hidden, ks", [(8, 5), (16, 1)])
def test_resblock_parameter_count_follows_the_spade_width_and_kernel(hidden, ks):
    block = SPADEResnetBlock(6, 4, 5, hidden_channels=hidden, kernel_size=ks)
    assert n_params(block) == ref_resblock(6, 4, 5, hidden, ks)
    assert n_params(block.norm_s) == ref_spade(6, 5, hidden, ks)
    assert block.norm_1.in_channels == 4 and block.norm_1.kernel_size == ks


def test_nlayer_discriminator_parameter_count_at_ade20k_size():
    with torch.device("meta"):
        d = NLayerDiscriminator(154)
    assert n_params(d) == ref_nlayer_d(154) == 2_918_465
    assert [n_params(c) for c in _d_convs(d)] == [154 * 64 * 16 + 64, 64 * 128 * 16, 128 * 256 * 16, 256 * 512 * 16,
                                            512 * 16 + 1]


@pytest.mark.parametrize("ndf, n_layers", [(4, 5), (300, 2), (8, 1)])
def test_nlayer_discriminator_parameter_count_other_sizes(ndf, n_layers):
    with torch.device("meta"):
        d = NLayerDiscriminator(7, ndf=ndf, n_layers=n_layers)
        d_none = NLayerDiscriminator(7, ndf=ndf, n_layers=n_layers, norm="none")
    assert n_params(d) == ref_nlayer_d(7, ndf, n_layers)
    assert n_params(d_none) == ref_nlayer_d(7, ndf, n_layers, norm="none")


# ---- names: the reference's module tree --------------------------------------------------------------


def _sn_keys(prefix: str) -> list[str]:
    return [f"{prefix}.conv.parametrizations.weight.{k}" for k in ("original", "0._u", "0._v")]


def _spade_keys(prefix: str) -> list[str]:
    return [f"{prefix}.param_free_norm.{k}" for k in ("running_mean", "running_var", "num_batches_tracked")] + [
        f"{prefix}.{m}.{p}" for m in ("mlp_shared.0", "mlp_gamma", "mlp_beta") for p in ("weight", "bias")]


def test_resblock_submodules_and_state_dict_keys():
    learned = SPADEResnetBlock(4, 2, 3, hidden_channels=5)
    assert [n for n, _ in learned.named_children()] == ["conv_0", "conv_1", "conv_s", "norm_0", "norm_1", "norm_s"]
    assert list(learned.state_dict()) == [
        "conv_0.conv.bias", *_sn_keys("conv_0"), "conv_1.conv.bias", *_sn_keys("conv_1"), *_sn_keys("conv_s"),
        *_spade_keys("norm_0"), *_spade_keys("norm_1"), *_spade_keys("norm_s")]
    same = SPADEResnetBlock(3, 3, 3, hidden_channels=5, sn=False)
    assert [n for n, _ in same.named_children()] == ["conv_0", "conv_1", "norm_0", "norm_1"]
    assert list(same.state_dict()) == [
        "conv_0.conv.weight", "conv_0.conv.bias", "conv_1.conv.weight", "conv_1.conv.bias",
        *_spade_keys("norm_0"), *_spade_keys("norm_1")]
    assert SPADEResnetBlock.consumes == ("seg",) and COMPOSITE.entry("spade_resblock").batch_coupled


def test_resblock_layer_settings():
    b = SPADEResnetBlock(6, 4, 3, hidden_channels=5, norm="instance")
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in (b.conv_0, b.conv_1, b.conv_s)] == [
        (6, 4, 3, 1), (4, 4, 3, 1), (6, 4, 1, 0)]
    assert b.conv_0.conv.bias is not None and b.conv_1.conv.bias is not None and b.conv_s.conv.bias is None
    assert all(parametrize.is_parametrized(c.conv, "weight") for c in (b.conv_0, b.conv_1, b.conv_s))
    assert [s.in_channels for s in (b.norm_0, b.norm_1, b.norm_s)] == [6, 4, 6]
    assert all(isinstance(s.param_free_norm, nn.InstanceNorm2d) for s in (b.norm_0, b.norm_1, b.norm_s))
    up = SPADEResnetBlock(2, 5, 3, sn=False)  # fin < fout: fmiddle = fin
    assert (up.conv_0.out_channels, up.conv_1.in_channels, up.norm_1.in_channels) == (2, 2, 2)
    assert not any(parametrize.is_parametrized(c.conv) for c in (up.conv_0, up.conv_1, up.conv_s))
    assert isinstance(up.norm_0.param_free_norm, nn.BatchNorm2d)


def test_nlayer_discriminator_submodules_and_state_dict_keys():
    d = NLayerDiscriminator(7, ndf=4, n_layers=4, max_channels=16)
    assert [n for n, _ in d.named_children()] == [f"model{n}" for n in range(5)]
    assert list(d.state_dict()) == ["model0.0.conv.weight", "model0.0.conv.bias",
                                    *_sn_keys("model1.0.0"), *_sn_keys("model2.0.0"), *_sn_keys("model3.0.0"),
                                    "model4.0.conv.weight", "model4.0.conv.bias"]
    _, norm = d.model2[0]
    assert isinstance(norm, InstanceNorm) and not norm.affine and not norm.track_running_stats
    assert isinstance(d.model2[1], LeakyReLU) and d.model2[1].negative_slope == 0.2
    none = NLayerDiscriminator(7, ndf=4, n_layers=2, norm="none", sn=False)
    assert list(none.state_dict()) == ["model0.0.conv.weight", "model0.0.conv.bias", "model1.0.conv.weight",
                                       "model1.0.conv.bias", "model2.0.conv.weight", "model2.0.conv.bias"]
    assert NLayerDiscriminator.consumes == () and not COMPOSITE.entry("nlayer_discriminator").batch_coupled


def _d_convs(d: NLayerDiscriminator):
    return [m for m in d.modules() if isinstance(m, Conv2dLayer)]


@pytest.mark.parametrize("n_layers, strides", [(4, [2, 2, 2, 1, 1]), (3, [2, 2, 1, 1]), (2, [2, 1, 1]), (1, [2, 1])])
def test_nlayer_discriminator_strides_widths_bias_and_sn(n_layers, strides):
    d = NLayerDiscriminator(5, ndf=3, n_layers=n_layers, max_channels=8)
    convs = _d_convs(d)
    assert [c.stride for c in convs] == strides
    assert all(c.kernel_size == 4 and c.padding == 2 for c in convs)
    assert [c.out_channels for c in convs] == [*[3, 6, 8, 8][:n_layers], 1]
    inner = [False, *[True] * (n_layers - 1), False]
    assert [c.conv.bias is None for c in convs] == inner
    assert [parametrize.is_parametrized(c.conv) for c in convs] == inner


# ---- forward passes restated from the reference -------------------------------------------------------


def _lrelu(t: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(t, 0.2)


def resblock_by_hand(b: SPADEResnetBlock, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """architecture.py SPADEResnetBlock.forward over the block's sub-modules (each called once)."""
    x_s = b.conv_s(b.norm_s(x, seg=seg)) if b.in_channels != b.out_channels else x
    dx = b.conv_0(_lrelu(b.norm_0(x, seg=seg)))
    dx = b.conv_1(_lrelu(b.norm_1(dx, seg=seg)))
    return x_s + dx


def _inputs(c: int, s: int, h: int = 6, w: int = 5, batch: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, c, h, w, generator=gen)
    labels = torch.randint(0, s, (batch, 2 * h, 2 * w), generator=gen)
    return x, F.one_hot(labels, s).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("fin, fout", [(4, 6), (6, 4), (5, 5)], ids=["up", "down", "identity"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_resblock_forward_matches_the_reference(fin, fout, train):
    block = SPADEResnetBlock(fin, fout, 3, hidden_channels=8).train(train)
    if not train:  # running statistics from one batch, so eval mode normalises with something non-trivial
        with torch.no_grad():
            block.train()(*_inputs(fin, 3, seed=5))
        block.eval()
    twin = copy.deepcopy(block)
    x, seg = _inputs(fin, 3)
    with torch.no_grad():
        got = block(x, seg)
        want = resblock_by_hand(twin, x, seg)
    assert got.shape == (3, fout, 6, 5)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # each sub-module ran exactly once: running statistics and power-iteration vectors moved alike
    for (k, a), (_, b) in zip(block.state_dict().items(), twin.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("fin, fout", [(4, 4), (4, 6)], ids=["identity", "learned"])
def test_resblock_with_a_zero_body_is_its_shortcut(fin, fout):
    """conv_1 zeroed: the output is x itself (fin == fout) or conv_s(norm_s(x, seg)), 1x1 without bias."""
    block = SPADEResnetBlock(fin, fout, 3, hidden_channels=8, sn=False).eval()
    with torch.no_grad():
        block.conv_1.conv.weight.zero_()
        block.conv_1.conv.bias.zero_()
        x, seg = _inputs(fin, 3)
        got = block(x, seg=seg)
        if fin == fout:
            torch.testing.assert_close(got, x, rtol=0, atol=0)
        else:
            normed = block.norm_s(x, seg=seg)
            want = torch.einsum("oi,bihw->bohw", block.conv_s.conv.weight[:, :, 0, 0], normed)
            torch.testing.assert_close(got, want)


def test_resblock_reads_the_label_map():
    block = SPADEResnetBlock(4, 6, 3, hidden_channels=8).eval()
    x, seg = _inputs(4, 3)
    with torch.no_grad():
        a, b = block(x, seg=seg), block(x, seg=seg.roll(1, dims=1))
    assert (a - b).abs().mean() > 1e-3


def nlayer_d_by_hand(d: NLayerDiscriminator, x: torch.Tensor, norm: str = "instance") -> list[torch.Tensor]:
    """discriminator.py NLayerDiscriminator.forward (spectralinstance): results[1:] over the block's convs,
    the instance norm and the activation restated."""
    convs = _d_convs(d)
    feats = [_lrelu(convs[0](x))]
    for conv in convs[1:-1]:
        h = conv(feats[-1])
        feats.append(_lrelu(F.instance_norm(h, eps=1e-5) if norm == "instance" else h))
    feats.append(convs[-1](feats[-1]))
    return feats


@pytest.mark.parametrize("norm", ["instance", "none"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_nlayer_discriminator_forward_matches_the_reference(norm, train):
    d = NLayerDiscriminator(5, ndf=4, n_layers=4, norm=norm, max_channels=16).train(train)
    twin = copy.deepcopy(d)
    x = torch.randn(2, 5, 19, 14, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outs = d(x)
        want = nlayer_d_by_hand(twin, x, norm)
    assert isinstance(outs, tuple) and len(outs) == 5
    for got, ref in zip(outs, want, strict=True):
        torch.testing.assert_close(got, ref, rtol=0, atol=0)
    for (k, a), (_, b) in zip(d.state_dict().items(), twin.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)  # one power iteration each in training
    assert (outs[1] < 0).any() and (outs[1] >= 0).any()  # the features carry the leaky ReLU's both sides


def test_nlayer_discriminator_outputs_feed_the_next_submodel():
    d = NLayerDiscriminator(3, ndf=4, n_layers=4, max_channels=16)
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, args, out: seen.append(args[0])) for m in d.models]
    x = torch.randn(2, 3, 16, 16)
    try:
        with torch.no_grad():
            outs = d(x)
    finally:
        for h in hooks:
            h.remove()
    assert len(seen) == 5 and seen[0] is x
    for n in range(4):
        assert seen[n + 1] is outs[n]  # results[n] is exactly the input of model{n + 1}


def test_nlayer_discriminator_shapes():
    d = NLayerDiscriminator(3, ndf=4, n_layers=4, max_channels=16)
    with torch.no_grad():
        outs = d(torch.randn(2, 3, 13, 10))
    # stride 2: H -> H // 2 + 1 (kw 4, padw 2); stride 1: H -> H + 1
    want = [(2, 4, 7, 6), (2, 8, 4, 4), (2, 16, 3, 3), (2, 16, 4, 4), (2, 1, 5, 5)]
    assert [tuple(o.shape) for o in outs] == want == d.out_shape((2, 3, 13, 10))
    # ade20k: 256 -> 129 -> 65 -> 33 -> 34 -> 35 (tests/test_recipe_spade.py)
    with torch.device("meta"):
        big = NLayerDiscriminator(154)
    assert big.out_shape((1, 154, 256, 256)) == [
        (1, 64, 129, 129), (1, 128, 65, 65), (1, 256, 33, 33), (1, 512, 34, 34), (1, 1, 35, 35)]
    assert [tuple(o.shape) for o in big(torch.empty(1, 154, 256, 256, device="meta"))] == big.out_shape(
        (1, 154, 256, 256))


# ---- bad input and arguments --------------------------------------------------------------------------


def test_bad_inputs_name_the_block():
    block = SPADEResnetBlock(4, 6, 3, hidden_channels=8)
    x, seg = _inputs(4, 3)
    with pytest.raises(ShapeError, match="SPADEResnetBlock"):
        block(x, seg=seg[:, :2])
    with pytest.raises(ShapeError, match="SPADEResnetBlock"):
        block(x, seg=seg[:2])
    with pytest.raises(TypeError, match=r"SPADEResnetBlock.*float"):
        block(x, seg=seg.long())
    with pytest.raises(ShapeError, match="SPADEResnetBlock"):
        block(x[:, :3], seg=seg)
    d = NLayerDiscriminator(3, ndf=4, n_layers=2)
    with pytest.raises(ShapeError, match="NLayerDiscriminator"):
        d(torch.randn(2, 4, 8, 8))
    deeper = NLayerDiscriminator(3, ndf=4, n_layers=3)
    with pytest.raises(ValueError, match=r"NLayerDiscriminator.*too small"):
        deeper(torch.randn(2, 3, 1, 1))  # model1 (stride 2) would instance-normalise a 1x1 map
    assert [o.shape[-2:] for o in deeper(torch.randn(2, 3, 1, 2))] == [(1, 2), (1, 2), (2, 3), (3, 4)]
    assert [o.shape[-1] for o in d(torch.randn(2, 3, 1, 1))] == [1, 2, 3]  # model1 has stride 1 here


def test_bad_arguments_name_the_block():
    with pytest.raises(ValueError, match=r"NLayerDiscriminator.*norm"):
        NLayerDiscriminator(3, norm="batch")
    with pytest.raises(ValueError, match=r"NLayerDiscriminator.*n_layers"):
        NLayerDiscriminator(3, n_layers=0)
    with pytest.raises(ValueError, match=r"SPADEResnetBlock.*seg_channels"):
        SPADEResnetBlock(4, 4, 0)
    with pytest.raises(ValueError, match=r"SPADEResnetBlock.*norm"):
        SPADEResnetBlock(4, 4, 3, norm="group")


def test_spade_norms_are_the_library_block():
    b = SPADEResnetBlock(4, 6, 3, hidden_channels=8)
    assert all(isinstance(m, SPADE) for m in (b.norm_0, b.norm_1, b.norm_s))


def test_both_blocks_export():
    block = SPADEResnetBlock(4, 6, 3, hidden_channels=8).eval()
    x, seg = _inputs(4, 3)
    ep = torch.export.export(block, (x,), {"seg": seg})
    torch.testing.assert_close(ep.module()(x, seg=seg), block(x, seg=seg))
    d = NLayerDiscriminator(3, ndf=4, n_layers=3).eval()
    img = torch.randn(2, 3, 12, 12)
    outs = torch.export.export(d, (img,)).module()(img)
    for a, b in zip(outs, d(img), strict=True):
        torch.testing.assert_close(a, b)
