"""BigGAN and BigGAN-deep composite blocks against ajbrock/BigGAN-PyTorch.

Each block's forward is compared, in training and eval mode, with a by-hand transcription of the reference's
forward (``layers.GBlock``/``DBlock``, ``BigGANdeep.GBlock``/``DBlock``, ``layers.ccbn``/``bn``) run on the
block's own sub-modules; parameter counts with the reference's layer formulas, summed over the BigGAN and
BigGAN-deep 128x128 networks up to their published totals.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from blocks import (
    COMPOSITE,
    BatchNorm,
    BigGANDBlock,
    BigGANDeepDBlock,
    BigGANDeepGBlock,
    BigGANGBlock,
    ConditionalBatchNorm,
    ShapeError,
)

# ---- the reference's layer formulas (trainable parameters) -------------------------------------------


def sn_conv2d(i: int, o: int, k: int = 3) -> int:  # layers.SNConv2d, bias=True
    return o * i * k * k + o


def sn_linear(i: int, o: int, bias: bool = True) -> int:  # layers.SNLinear
    return o * i + (o if bias else 0)


def ccbn(y_dim: int, c: int) -> int:  # layers.ccbn: gain, bias = SNLinear(y_dim, c, bias=False)
    return 2 * sn_linear(y_dim, c, bias=False)


def attention(c: int) -> int:  # layers.Attention: theta, phi (c/8), g (c/2), o (c/2 -> c), no bias; gamma
    return 2 * c * (c // 8) + c * (c // 2) + (c // 2) * c + 1


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def on_meta(cls, **kwargs):
    with torch.device("meta"):
        return cls(**kwargs)


@pytest.mark.parametrize("i,o,up", [(12, 8, True), (8, 8, True), (8, 8, False), (6, 10, False)])
def test_g_block_parameter_counts(i, o, up):
    sc = sn_conv2d(i, o, 1) if i != o or up else 0  # learnable_sc
    convs = sn_conv2d(i, o) + sn_conv2d(o, o) + sc
    assert n_params(BigGANGBlock(i, o, y_dim=7, upsample=up)) == convs + ccbn(7, i) + ccbn(7, o)
    # SN-GAN's categorical CBN: a gain and a bias per class and channel; layers.bn: a gain and bias per channel
    assert n_params(BigGANGBlock(i, o, n_classes=5, upsample=up)) == convs + 2 * 5 * (i + o)
    assert n_params(BigGANGBlock(i, o, upsample=up, sn=False)) == convs + 2 * (i + o)


@pytest.mark.parametrize("i,o,down,wide", [(3, 8, True, True), (8, 8, True, True), (8, 8, False, True),
                                           (8, 12, False, False), (6, 12, True, False)])
def test_d_block_parameter_counts(i, o, down, wide):
    h = o if wide else i
    sc = sn_conv2d(i, o, 1) if i != o or down else 0
    assert n_params(BigGANDBlock(i, o, downsample=down, wide=wide)) == sn_conv2d(i, h) + sn_conv2d(h, o) + sc


@pytest.mark.parametrize("i,o", [(16, 16), (16, 8), (12, 4)])
def test_deep_g_block_parameter_counts(i, o):
    h = i // 4
    convs = sn_conv2d(i, h, 1) + 2 * sn_conv2d(h, h) + sn_conv2d(h, o, 1)
    assert n_params(BigGANDeepGBlock(i, o, y_dim=6)) == convs + ccbn(6, i) + 3 * ccbn(6, h)
    h = i // 2
    convs = sn_conv2d(i, h, 1) + 2 * sn_conv2d(h, h) + sn_conv2d(h, o, 1)
    assert n_params(BigGANDeepGBlock(i, o, y_dim=6, channel_ratio=2)) == convs + ccbn(6, i) + 3 * ccbn(6, h)


@pytest.mark.parametrize("i,o", [(8, 8), (8, 16), (4, 12)])
def test_deep_d_block_parameter_counts(i, o):
    h = o // 4
    sc = sn_conv2d(i, o - i, 1) if i != o else 0
    convs = sn_conv2d(i, h, 1) + 2 * sn_conv2d(h, h) + sn_conv2d(h, o, 1)
    assert n_params(BigGANDeepDBlock(i, o)) == convs + sc


def test_biggan_128_blocks_add_up_to_the_published_totals():
    """BigGAN.py at 128x128, ch 96: G 70,433,988 and D 87,982,370 (google/compare_gan's resnet_biggan_test)
    once the non-block layers (shared embedding, linear, attention, output layer; D's head) are added."""
    ch, y_dim = 96, 128 + 20  # ccbn reads [shared embedding (128), z chunk (120 / 6)]
    g_in, g_out = [16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch], [16 * ch, 8 * ch, 4 * ch, 2 * ch, ch]
    g = sum(n_params(on_meta(BigGANGBlock, in_channels=i, out_channels=o, y_dim=y_dim, sn_eps=1e-6))
            for i, o in zip(g_in, g_out))
    g += 1000 * 128 + sn_linear(20, 16 * ch * 16) + attention(2 * ch) + 2 * ch + sn_conv2d(ch, 3)
    assert g == 70_433_988

    d_in, d_out = [3, ch, 2 * ch, 4 * ch, 8 * ch, 16 * ch], [ch, 2 * ch, 4 * ch, 8 * ch, 16 * ch, 16 * ch]
    d = sum(n_params(on_meta(BigGANDBlock, in_channels=i, out_channels=o, preactivation=k > 0,
                             downsample=k < 5, sn_eps=1e-6))
            for k, (i, o) in enumerate(zip(d_in, d_out)))
    d += attention(ch) + sn_linear(16 * ch, 1) + 1000 * 16 * ch  # attention at 64x64; D.linear, D.embed
    assert d == 87_982_370


def test_biggan_deep_128_blocks_add_up_to_the_reference_totals():
    """BigGANdeep.py at 128x128, ch 128, depth 2: G 50,244,484 and D 34,590,210 (tests/test_recipe_biggan_deep;
    compare_gan's resnet_biggan_deep_test asserts the same)."""
    ch, y_dim = 128, 128 + 128  # every ccbn reads [shared(c), z]
    g_in, g_out = [16, 16, 8, 4, 2], [16, 8, 4, 2, 1]
    g = 0
    for i, o in zip(g_in, g_out):  # per resolution: keep the channels, then change them and upsample
        g += n_params(on_meta(BigGANDeepGBlock, in_channels=i * ch, out_channels=i * ch, y_dim=y_dim,
                              upsample=False))
        g += n_params(on_meta(BigGANDeepGBlock, in_channels=i * ch, out_channels=o * ch, y_dim=y_dim))
    g += 1000 * 128 + sn_linear(256, 16 * ch * 16) + attention(2 * ch) + 2 * ch + sn_conv2d(ch, 3)
    assert g == 50_244_484

    d_in, d_out = [1, 2, 4, 8, 16], [2, 4, 8, 16, 16]
    d = sn_conv2d(3, ch)  # input_conv
    for i, o in zip(d_in, d_out):  # per resolution: change the channels and downsample, then keep them
        d += n_params(on_meta(BigGANDeepDBlock, in_channels=i * ch, out_channels=o * ch))
        d += n_params(on_meta(BigGANDeepDBlock, in_channels=o * ch, out_channels=o * ch, downsample=False))
    d += attention(2 * ch) + sn_linear(16 * ch, 1) + 1000 * 16 * ch
    assert d == 34_590_210


# ---- names ---------------------------------------------------------------------------------------------


def _children(m):
    return [n for n, _ in m.named_children()]


def _conv_params(*names):
    return {f"{n}.conv.{p}" for n in names for p in ("bias", "parametrizations.weight.original")}


def test_sub_module_names_and_state_dict_keys_follow_the_reference():
    g = BigGANGBlock(8, 4, y_dim=5)
    assert _children(g) == ["conv1", "conv2", "conv_sc", "bn1", "bn2"]  # layers.GBlock's order
    ccbn_params = {f"{b}.{lin}.parametrizations.weight.original" for b in ("bn1", "bn2") for lin in ("gain", "bias")}
    assert {n for n, _ in g.named_parameters()} == _conv_params("conv1", "conv2", "conv_sc") | ccbn_params
    assert {"bn1.running_mean", "bn2.running_var", "conv1.conv.parametrizations.weight.0._u"} <= set(g.state_dict())
    assert _children(BigGANGBlock(4, 4, upsample=False)) == ["conv1", "conv2", "bn1", "bn2"]
    assert isinstance(BigGANGBlock(4, 4).bn1, BatchNorm)
    assert {n for n, _ in BigGANGBlock(4, 4, n_classes=3).bn2.named_parameters()} == {"class_gain", "class_bias"}

    assert _children(BigGANDBlock(3, 8)) == ["conv1", "conv2", "conv_sc"]
    assert _children(BigGANDBlock(8, 8, downsample=False)) == ["conv1", "conv2"]
    assert {n for n, _ in BigGANDBlock(3, 8).named_parameters()} == _conv_params("conv1", "conv2", "conv_sc")

    deep_g = BigGANDeepGBlock(16, 8, y_dim=4)
    assert _children(deep_g) == ["conv1", "conv2", "conv3", "conv4", "bn1", "bn2", "bn3", "bn4"]
    assert all(isinstance(getattr(deep_g, f"bn{k}"), ConditionalBatchNorm) for k in range(1, 5))
    assert _children(BigGANDeepDBlock(8, 16)) == ["conv1", "conv2", "conv3", "conv4", "conv_sc"]
    assert _children(BigGANDeepDBlock(8, 8)) == ["conv1", "conv2", "conv3", "conv4"]


def test_kernel_sizes_channels_and_epsilons():
    g = BigGANDeepGBlock(16, 8, y_dim=4, sn_eps=1e-6, bn_eps=1e-3)
    shapes = [tuple(getattr(g, f"conv{k}").conv.weight.shape) for k in range(1, 5)]
    assert shapes == [(4, 16, 1, 1), (4, 4, 3, 3), (4, 4, 3, 3), (8, 4, 1, 1)]
    assert [getattr(g, f"bn{k}").in_channels for k in range(1, 5)] == [16, 4, 4, 4]
    assert all(getattr(g, f"bn{k}").eps == 1e-3 for k in range(1, 5))
    assert g.conv2.conv.parametrizations.weight[0].eps == 1e-6
    assert g.bn3.gain.parametrizations.weight[0].eps == 1e-6
    d = BigGANDeepDBlock(8, 16)
    shapes = [tuple(getattr(d, f"conv{k}").conv.weight.shape) for k in range(1, 5)]
    assert shapes == [(4, 8, 1, 1), (4, 4, 3, 3), (4, 4, 3, 3), (16, 4, 1, 1)]
    assert tuple(d.conv_sc.conv.weight.shape) == (8, 8, 1, 1)
    assert tuple(BigGANGBlock(8, 4, y_dim=2).conv_sc.conv.weight.shape) == (4, 8, 1, 1)
    assert tuple(BigGANDBlock(8, 4, wide=False).conv1.conv.weight.shape) == (8, 8, 3, 3)
    plain = BigGANGBlock(4, 6, y_dim=3, sn=False)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


def test_registry_metadata():
    for key in ("biggan_g_block", "biggan_deep_g_block"):
        assert COMPOSITE.entry(key).consumes == ("y",) and COMPOSITE.entry(key).batch_coupled
    for key in ("biggan_d_block", "biggan_deep_d_block"):
        assert COMPOSITE.entry(key).consumes == () and not COMPOSITE.entry(key).batch_coupled
    assert BigGANGBlock(4, 4, y_dim=2).consumes == ("y",)
    assert BigGANGBlock(4, 4, n_classes=2).consumes == ("y",)
    assert BigGANGBlock(4, 4).consumes == ()


# ---- forward against the reference, by hand -----------------------------------------------------------


def up(t):  # BigGAN.py: functools.partial(F.interpolate, scale_factor=2), mode nearest
    return F.interpolate(t, scale_factor=2)


def pool(t):  # nn.AvgPool2d(2)
    return F.avg_pool2d(t, 2)


def conv(layer, h, k):
    """which_conv: k x k, padding k // 2; the weight read once (one power iteration in training, as the module)."""
    c = layer.conv
    assert c.kernel_size == (k, k)
    return F.conv2d(h, c.weight, c.bias, padding=k // 2)


def bn_by_hand(bn, h, y, eps):
    """layers.ccbn (gain 1 + gain(y), bias bias(y)), SN-GAN's categorical CBN, or layers.bn (y None)."""
    if y is None:
        return F.batch_norm(h, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.training, 0.1, eps)
    out = F.batch_norm(h, bn.running_mean, bn.running_var, None, None, bn.training, 0.1, eps)
    if bn.n_classes is not None:
        gain, bias = bn.class_gain[y], bn.class_bias[y]
    else:
        gain, bias = 1 + bn.gain(y), bn.bias(y)
    return out * gain[:, :, None, None] + bias[:, :, None, None]


def g_block_by_hand(b, x, y, eps):  # layers.GBlock.forward
    h = F.relu(bn_by_hand(b.bn1, x, y, eps))
    if b.upsample:
        h, x = up(h), up(x)
    h = conv(b.conv1, h, 3)
    h = F.relu(bn_by_hand(b.bn2, h, y, eps))
    h = conv(b.conv2, h, 3)
    if b.in_channels != b.out_channels or b.upsample:
        x = conv(b.conv_sc, x, 1)
    return h + x


def d_block_by_hand(b, x):  # layers.DBlock.forward
    h = F.relu(x) if b.preactivation else x
    h = conv(b.conv2, F.relu(conv(b.conv1, h, 3)), 3)
    if b.downsample:
        h = pool(h)
    learnable_sc = b.in_channels != b.out_channels or b.downsample
    if b.preactivation:
        s = conv(b.conv_sc, x, 1) if learnable_sc else x
        s = pool(s) if b.downsample else s
    else:
        s = pool(x) if b.downsample else x
        s = conv(b.conv_sc, s, 1) if learnable_sc else s
    return h + s


def deep_g_block_by_hand(b, x, y, eps):  # BigGANdeep.GBlock.forward
    h = conv(b.conv1, F.relu(bn_by_hand(b.bn1, x, y, eps)), 1)
    h = F.relu(bn_by_hand(b.bn2, h, y, eps))
    if b.upsample:
        h = up(h)
    h = conv(b.conv2, h, 3)
    h = conv(b.conv3, F.relu(bn_by_hand(b.bn3, h, y, eps)), 3)
    h = conv(b.conv4, F.relu(bn_by_hand(b.bn4, h, y, eps)), 1)
    if b.in_channels != b.out_channels:
        x = x[:, : b.out_channels]
    if b.upsample:
        x = up(x)
    return h + x


def deep_d_block_by_hand(b, x):  # BigGANdeep.DBlock.forward
    h = conv(b.conv1, F.relu(x), 1)
    h = conv(b.conv2, F.relu(h), 3)
    h = conv(b.conv3, F.relu(h), 3)
    h = F.relu(h)
    if b.downsample:
        h = pool(h)
    h = conv(b.conv4, h, 1)
    s = pool(x) if b.downsample else x
    if b.in_channels != b.out_channels:
        s = torch.cat([s, conv(b.conv_sc, s, 1)], 1)
    return h + s


def _randomize_class_affine(block):
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, ConditionalBatchNorm) and m.n_classes is not None:
                m.class_gain.normal_(1, 0.5)
                m.class_bias.normal_(0, 0.5)
            if isinstance(m, BatchNorm):
                m.weight.normal_(1, 0.5)
                m.bias.normal_(0, 0.5)


def check_train_and_eval(block, by_hand, x, cond, steps=2):
    """``steps`` training calls, then one in eval mode: each against ``by_hand`` on a twin that starts from
    the same state (power-iteration vectors, running statistics); x is left untouched (out-of-place ReLU)."""
    twin = copy.deepcopy(block)
    x0 = x.clone()
    for mode in ["train"] * steps + ["eval"]:
        block.train(mode == "train")
        twin.train(mode == "train")
        out = block(x, **cond)
        with torch.no_grad():
            ref = by_hand(twin, x, *cond.values())
        assert out.shape == ref.shape == block.out_shape(tuple(x.shape), **{k: v.shape for k, v in cond.items()})
        torch.testing.assert_close(out.detach(), ref, rtol=1e-5, atol=1e-5, msg=f"{mode} mode")
        torch.testing.assert_close(x, x0, rtol=0, atol=0)
    for (name, a), (_, b) in zip(block.named_buffers(), twin.named_buffers()):  # running stats, u, v
        if name.endswith("num_batches_tracked"):  # BatchNorm's step counter; F.batch_norm keeps none
            continue
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


G_VARIANTS = [  # (in, out, upsample): learned shortcut with and without upsampling, identity shortcut
    (6, 4, True), (4, 4, True), (6, 4, False), (4, 4, False)]


@pytest.mark.parametrize("i,o,upsample", G_VARIANTS)
def test_g_block_ccbn_matches_reference(i, o, upsample):
    eps = 1e-2  # not the default, so the by-hand value misses an eps that is not passed through
    block = BigGANGBlock(i, o, y_dim=5, upsample=upsample, bn_eps=eps)
    assert hasattr(block, "conv_sc") == (i != o or upsample)
    x, y = torch.randn(3, i, 4, 5), torch.randn(3, 5)
    check_train_and_eval(block, lambda b, x, y: g_block_by_hand(b, x, y, eps), x, {"y": y})


@pytest.mark.parametrize("i,o,upsample", G_VARIANTS[:2])
def test_g_block_categorical_and_unconditional_match_reference(i, o, upsample):
    eps = 1e-2
    block = BigGANGBlock(i, o, n_classes=4, upsample=upsample, sn=False, bn_eps=eps)  # SN-GAN's G block
    _randomize_class_affine(block)
    x = torch.randn(4, i, 3, 3)
    y = torch.tensor([0, 3, 3, 1])
    check_train_and_eval(block, lambda b, x, y: g_block_by_hand(b, x, y, eps), x, {"y": y})

    plain = BigGANGBlock(i, o, upsample=upsample, bn_eps=eps)  # WGAN-GP / unconditional SN-GAN
    _randomize_class_affine(plain)
    check_train_and_eval(plain, lambda b, x: g_block_by_hand(b, x, None, eps), x, {})


@pytest.mark.parametrize("preactivation", [True, False])
@pytest.mark.parametrize("i,o,downsample,wide", [(3, 6, True, True), (6, 6, True, False), (6, 6, False, True),
                                                 (4, 6, False, False)])
def test_d_block_matches_reference(i, o, downsample, wide, preactivation):
    block = BigGANDBlock(i, o, preactivation=preactivation, downsample=downsample, wide=wide)
    assert hasattr(block, "conv_sc") == (i != o or downsample)
    assert block.conv1.out_channels == (o if wide else i)
    check_train_and_eval(block, d_block_by_hand, torch.randn(2, i, 6, 4), {})


@pytest.mark.parametrize("i,o,upsample", [(16, 8, True), (16, 16, True), (16, 16, False), (12, 4, False)])
def test_deep_g_block_matches_reference(i, o, upsample):
    eps = 1e-2
    block = BigGANDeepGBlock(i, o, y_dim=6, upsample=upsample, bn_eps=eps)
    x, y = torch.randn(3, i, 4, 3), torch.randn(3, 6)
    check_train_and_eval(block, lambda b, x, y: deep_g_block_by_hand(b, x, y, eps), x, {"y": y})


@pytest.mark.parametrize("i,o,downsample", [(8, 16, True), (8, 8, True), (8, 8, False), (4, 12, False)])
def test_deep_d_block_matches_reference(i, o, downsample):
    block = BigGANDeepDBlock(i, o, downsample=downsample)
    check_train_and_eval(block, deep_d_block_by_hand, torch.randn(2, i, 4, 6), {})


def test_deep_skips_keep_the_leading_channels_and_append_the_learned_ones():
    """With the residual branch's last conv zeroed, the output is the skip alone."""
    g = BigGANDeepGBlock(8, 4, y_dim=3, sn=False).eval()
    d = BigGANDeepDBlock(4, 12, sn=False)
    with torch.no_grad():
        g.conv4.conv.weight.zero_()
        g.conv4.conv.bias.zero_()
        d.conv4.conv.weight.zero_()
        d.conv4.conv.bias.zero_()
    x = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(g(x, y=torch.randn(2, 3)), up(x[:, :4]))
    x = torch.randn(2, 4, 4, 4)
    out = d(x)
    torch.testing.assert_close(out[:, :4], pool(x))
    torch.testing.assert_close(out[:, 4:], d.conv_sc(pool(x)))


# ---- routing and the reference's order of operations ---------------------------------------------------


def _record_inputs(modules):
    seen = []
    for m in modules:
        m.register_forward_pre_hook(lambda mod, args: seen.append(args))
    return seen


@pytest.mark.parametrize("make,n_bn", [(lambda: BigGANGBlock(4, 6, y_dim=3), 2),
                                       (lambda: BigGANGBlock(4, 6, n_classes=3), 2),
                                       (lambda: BigGANDeepGBlock(8, 4, y_dim=3), 4)])
def test_every_batch_norm_reads_the_same_y(make, n_bn):
    block = make()
    seen = _record_inputs([getattr(block, f"bn{k}") for k in range(1, n_bn + 1)])
    y = torch.randn(2, 3) if block.y_dim is not None else torch.tensor([2, 0])
    block(torch.randn(2, block.in_channels, 3, 3), y=y)
    assert len(seen) == n_bn and all(args[1] is y for args in seen)


@pytest.mark.parametrize("preactivation,expected", [(True, (6, 4)), (False, (3, 2))])
def test_d_shortcut_order_conv_then_pool_when_preactivated(preactivation, expected):
    # 1x1 conv and average pooling commute, so the order shows only in what conv_sc is given
    block = BigGANDBlock(3, 5, preactivation=preactivation)
    seen = _record_inputs([block.conv_sc])
    block(torch.randn(2, 3, 6, 4))
    assert tuple(seen[0][0].shape[2:]) == expected


def test_g_shortcut_upsamples_before_its_conv():
    block = BigGANGBlock(3, 5, y_dim=2)
    seen = _record_inputs([block.conv_sc, block.conv1])
    block(torch.randn(2, 3, 3, 4), y=torch.randn(2, 2))
    assert [tuple(a[0].shape[2:]) for a in seen] == [(6, 8), (6, 8)]  # conv1 first, then conv_sc, both at 2x


def test_deep_g_upsamples_between_bn2_and_conv2():
    block = BigGANDeepGBlock(8, 8, y_dim=2)
    seen = _record_inputs([block.conv1, block.conv2, block.conv3, block.conv4])
    block(torch.randn(2, 8, 3, 4), y=torch.randn(2, 2))
    assert [tuple(a[0].shape[2:]) for a in seen] == [(3, 4), (6, 8), (6, 8), (6, 8)]


def test_deep_d_pools_before_conv4():
    block = BigGANDeepDBlock(4, 8)
    seen = _record_inputs([block.conv3, block.conv4, block.conv_sc])
    block(torch.randn(2, 4, 6, 4))
    assert [tuple(a[0].shape[1:]) for a in seen] == [(2, 6, 4), (2, 3, 2), (4, 3, 2)]


# ---- bad arguments and inputs --------------------------------------------------------------------------


def test_bad_arguments_name_the_block():
    with pytest.raises(ValueError, match="BigGANGBlock: give at most one"):
        BigGANGBlock(4, 4, y_dim=3, n_classes=5)
    with pytest.raises(ValueError, match="BigGANDeepGBlock: out_channels=8 exceeds"):
        BigGANDeepGBlock(4, 8, y_dim=3)
    with pytest.raises(ValueError, match="BigGANDeepGBlock: in_channels=3 // channel_ratio=4"):
        BigGANDeepGBlock(3, 2, y_dim=3)
    with pytest.raises(ValueError, match="BigGANDeepDBlock: out_channels=4 is below"):
        BigGANDeepDBlock(8, 4)
    with pytest.raises(ValueError, match="BigGANDBlock: out_channels must be >= 1"):
        BigGANDBlock(3, 0)


def test_bad_inputs_name_the_block():
    g = BigGANGBlock(4, 4, y_dim=3)
    x = torch.randn(2, 4, 3, 3)
    with pytest.raises(ShapeError, match="BigGANGBlock"):
        g(x, y=torch.randn(2, 5))
    with pytest.raises(ShapeError, match="BigGANGBlock"):
        g(x, y=torch.randn(3, 3))
    with pytest.raises(ShapeError, match="BigGANGBlock"):
        g(torch.randn(2, 5, 3, 3), y=torch.randn(2, 3))
    with pytest.raises(TypeError, match="BigGANGBlock: needs the conditioning y"):
        g(x)
    with pytest.raises(TypeError, match="BigGANGBlock: y should be a float"):
        g(x, y=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="BigGANGBlock: is unconditional"):
        BigGANGBlock(4, 4)(x, y=torch.randn(2, 3))
    with pytest.raises(ValueError, match="BigGANGBlock: y should hold class indices in"):
        BigGANGBlock(4, 4, n_classes=3)(x, y=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="BigGANDBlock: x should be at least 2x2"):
        BigGANDBlock(4, 4)(torch.randn(2, 4, 1, 5))
    with pytest.raises(ValueError, match="BigGANDeepDBlock: x should be at least 2x2"):
        BigGANDeepDBlock(4, 4)(torch.randn(2, 4, 5, 1))


def test_blocks_export_and_the_exported_program_agrees():
    cases = [(BigGANGBlock(4, 6, y_dim=3), torch.randn(2, 4, 4, 4), {"y": torch.randn(2, 3)}),
             (BigGANDBlock(3, 6, preactivation=False), torch.randn(2, 3, 4, 4), {}),
             (BigGANDeepGBlock(8, 4, y_dim=3), torch.randn(2, 8, 4, 4), {"y": torch.randn(2, 3)}),
             (BigGANDeepDBlock(4, 8), torch.randn(2, 4, 4, 4), {})]
    for block, x, cond in cases:
        block.eval()  # no power iteration or running-statistics update: two calls give the same output
        exported = torch.export.export(block, (x,), cond)
        torch.testing.assert_close(exported.module()(x, **cond), block(x, **cond))
