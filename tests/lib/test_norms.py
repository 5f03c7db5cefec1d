"""Normalisations: statistics, equality with torch / independent formulas, conditioning behaviour."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blocks import (
    NORMS,
    SPADE,
    AdaIN,
    BatchNorm,
    ConditionalBatchNorm,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    ShapeError,
    adain,
    conditional_batch_norm,
    spade,
)


def moments(x: torch.Tensor, dims) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(dims), x.var(dims, unbiased=False)


# ---- batch / instance / layer / group ---------------------------------------------------------------


def test_batch_norm_equals_torch_in_train_and_eval_and_tracks_the_same_stats():
    block, ref = BatchNorm(3), nn.BatchNorm2d(3)
    with torch.no_grad():
        block.weight.copy_(torch.randn(3))
        block.bias.copy_(torch.randn(3))
    ref.load_state_dict(block.state_dict())
    for _ in range(3):
        x = torch.randn(4, 3, 5, 2) * 3 + 1
        torch.testing.assert_close(block(x), ref(x))
    torch.testing.assert_close(block.running_mean, ref.running_mean)
    torch.testing.assert_close(block.running_var, ref.running_var)
    assert int(block.num_batches_tracked) == 3
    block.eval(), ref.eval()
    x = torch.randn(2, 3, 5, 2)
    torch.testing.assert_close(block(x), ref(x))


def test_batch_norm_on_vectors_and_cumulative_momentum():
    block, ref = BatchNorm(4, momentum=None), nn.BatchNorm1d(4, momentum=None)
    for _ in range(3):
        x = torch.randn(6, 4) + 2
        torch.testing.assert_close(block(x), ref(x))
    torch.testing.assert_close(block.running_mean, ref.running_mean)
    out = BatchNorm(4)(torch.randn(8, 4) * 5)
    mean, var = moments(out, 0)
    torch.testing.assert_close(mean, torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(var, torch.ones(4), atol=1e-3, rtol=0)


def test_batch_norm_single_value_per_channel_is_named():
    with pytest.raises(ValueError, match=r"^BatchNorm.*more than one value"):
        BatchNorm(3)(torch.randn(1, 3))


def test_instance_norm_statistics_and_defaults():
    block = InstanceNorm(3)
    assert list(block.parameters()) == [] and list(block.buffers()) == []
    x = torch.randn(2, 3, 6, 5) * torch.tensor([1.0, 4.0, 0.5]).view(1, 3, 1, 1) + 3
    mean, var = moments(block(x), (2, 3))
    torch.testing.assert_close(mean, torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(var, torch.ones(2, 3), atol=1e-3, rtol=0)
    torch.testing.assert_close(block(x), nn.InstanceNorm2d(3)(x))
    block.eval()  # no running stats: batch statistics in eval mode too, as torch
    torch.testing.assert_close(block(x), nn.InstanceNorm2d(3)(x))


def test_instance_norm_affine_and_running_stats_equal_torch():
    block = InstanceNorm(3, affine=True, track_running_stats=True)
    ref = nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    ref.load_state_dict(block.state_dict())
    x = torch.randn(2, 3, 4, 4) + 1
    torch.testing.assert_close(block(x), ref(x))
    block.eval(), ref.eval()
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(block(x), ref(x))
    with pytest.raises(ValueError, match=r"^InstanceNorm"):
        InstanceNorm(3)(torch.randn(2, 3))


def test_layer_norm_normalises_each_sample_over_c_h_w_with_per_channel_affine():
    block = LayerNorm(3)
    assert [tuple(p.shape) for p in block.parameters()] == [(3,), (3,)]
    g, b = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.1, 0.2, 0.3])
    with torch.no_grad():
        block.weight.copy_(g)
        block.bias.copy_(b)
    x = torch.randn(2, 3, 5, 4) * torch.tensor([1.0, 4.0, 0.5]).view(1, 3, 1, 1) + 3
    mean = x.mean((1, 2, 3), keepdim=True)
    var = x.var((1, 2, 3), unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * g.view(1, 3, 1, 1) + b.view(1, 3, 1, 1)
    torch.testing.assert_close(block(x), expected)
    v = torch.randn(4, 3)
    torch.testing.assert_close(block(v), F.layer_norm(v, (3,), g, b))


def test_group_norm_statistics_per_group_and_torch_equality():
    block = GroupNorm(8, num_groups=4)
    x = torch.randn(2, 8, 3, 3) * torch.arange(1.0, 9.0).view(1, 8, 1, 1)
    out = block(x).view(2, 4, 2 * 9)
    mean, var = moments(out, 2)
    torch.testing.assert_close(mean, torch.zeros(2, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(var, torch.ones(2, 4), atol=1e-3, rtol=0)
    torch.testing.assert_close(block(x), nn.GroupNorm(4, 8)(x))


def test_group_norm_default_32_clamps_to_channels_and_names_bad_divisors():
    assert GroupNorm(64).num_groups == 32
    assert GroupNorm(6).num_groups == 6
    with pytest.raises(ValueError, match=r"^GroupNorm: num_groups=32 does not divide in_channels=48.*24"):
        GroupNorm(48)
    assert GroupNorm(48, num_groups=16).num_groups == 16


def test_batch_coupling_flags_match_behaviour():
    keys = ("batch_norm", "instance_norm", "layer_norm", "group_norm")
    flags = {k: NORMS.entry(k).batch_coupled for k in keys}
    assert flags == {"batch_norm": True, "instance_norm": False, "layer_norm": False, "group_norm": False}
    x = torch.randn(3, 4, 3, 3)
    y = x.clone()
    y[1:] = torch.randn(2, 4, 3, 3)
    for block in (BatchNorm(4), InstanceNorm(4), LayerNorm(4), GroupNorm(4, num_groups=2)):
        same = torch.allclose(block(x)[0], block(y)[0])
        assert same != NORMS.entry(block.registry_key).batch_coupled


# ---- AdaIN ------------------------------------------------------------------------------------------


def stylegan_style_mod(block: AdaIN, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """StyleGAN's instance_norm + style_mod written out independently (TF layout: reshape [-1, 2, C])."""
    c = block.in_channels
    xc = x - x.mean((2, 3), keepdim=True)
    xn = xc * torch.rsqrt(xc.square().mean((2, 3), keepdim=True) + 1e-8)
    style = w @ (block.weight * block.w_dim**-0.5).T + block.bias  # (B, 2C)
    style = style.view(-1, 2, c, 1, 1)
    return xn * (style[:, 0] + 1) + style[:, 1]


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_adain_instance_mean_is_the_bias_and_std_the_scale(impl):
    torch.manual_seed(1)
    block = AdaIN(4, 6, impl=impl)
    with torch.no_grad():
        block.bias.copy_(torch.randn(8))
    x, w = torch.randn(3, 4, 8, 7) * 5 + 2, torch.randn(3, 6)
    out = block(x, w)
    style = F.linear(w, block.weight / 6**0.5, block.bias)
    scale, shift = style[:, :4] + 1, style[:, 4:]  # StyleGAN's +1 on the first half
    mean, var = moments(out, (2, 3))
    torch.testing.assert_close(mean, shift, atol=1e-4, rtol=0)
    torch.testing.assert_close(var.sqrt(), scale.abs(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out, stylegan_style_mod(block, x, w), atol=1e-4, rtol=1e-4)


def test_adain_init_layout_and_identity_at_zero_style():
    block = AdaIN(16, 512)
    assert sum(p.numel() for p in block.parameters()) == 512 * 32 + 32
    assert block.equalized and torch.equal(block.bias, torch.zeros(32))
    # Stored N(0, 1), scaled by 1/sqrt(512) at run time.
    assert abs(float(block.weight.detach().std()) - 1) < 0.02
    x = torch.randn(2, 16, 4, 4)
    torch.testing.assert_close(block(x, torch.zeros(2, 512)), F.instance_norm(x, eps=1e-8))


def test_adain_function_ref_and_fast_agree_and_half_precision_runs():
    x, scale, bias = torch.randn(2, 3, 5, 4), torch.randn(2, 3), torch.randn(2, 3)
    expected = F.instance_norm(x, eps=1e-8) * scale[..., None, None] + bias[..., None, None]
    torch.testing.assert_close(adain(x, scale, bias), expected, atol=1e-5, rtol=1e-5)
    ref, fast = AdaIN(3, 4, impl="ref"), AdaIN(3, 4, impl="fast")
    fast.load_state_dict(ref.state_dict())
    w = torch.randn(2, 4)
    torch.testing.assert_close(fast(x, w), ref(x, w), atol=1e-5, rtol=1e-5)
    out = ref.bfloat16()(x.bfloat16(), w.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), fast(x, w), atol=0.1, rtol=0.05)


def test_adain_bad_inputs_name_the_block():
    block = AdaIN(3, 4)
    with pytest.raises(ShapeError, match=r"^AdaIN.*w"):
        block(torch.randn(2, 3, 4, 4), torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"^AdaIN.*spatial"):
        block(torch.randn(2, 3, 1, 1), torch.randn(2, 4))


# ---- conditional batch norm -------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["ref", "fused"])
def test_cbn_equal_class_embeddings_reduce_to_batch_norm(impl):
    block = ConditionalBatchNorm(3, n_classes=5, impl=impl)
    g, b = torch.randn(3), torch.randn(3)
    with torch.no_grad():
        block.class_gain.copy_(g.expand(5, 3))
        block.class_bias.copy_(b.expand(5, 3))
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(g)
        bn.bias.copy_(b)
    x, y = torch.randn(4, 3, 5, 6) * 2 + 1, torch.tensor([0, 3, 1, 4])
    torch.testing.assert_close(block(x, y), bn(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(block.running_mean, bn.running_mean)
    torch.testing.assert_close(block.running_var, bn.running_var)
    block.eval(), bn.eval()
    torch.testing.assert_close(block(x, y), bn(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["ref", "fused"])
def test_cbn_each_class_uses_its_own_affine(impl):
    block = ConditionalBatchNorm(3, n_classes=4, impl=impl)
    assert torch.equal(block.class_gain, torch.ones(4, 3))
    assert torch.equal(block.class_bias, torch.zeros(4, 3))
    with torch.no_grad():
        block.class_gain.normal_()
        block.class_bias.normal_()
    x = torch.randn(2, 3, 4, 4)
    normed = F.batch_norm(x, None, None, training=True)
    for y in (torch.tensor([0, 2]), torch.tensor([1, 3])):
        expected = normed * block.class_gain[y][..., None, None] + block.class_bias[y][..., None, None]
        torch.testing.assert_close(block(x, y), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(block(x, torch.tensor([0, 2])), block(x, torch.tensor([1, 3])))


@pytest.mark.parametrize("impl", ["ref", "fused"])
def test_cbn_linear_variant_with_zero_weights_is_plain_batch_norm(impl):
    block = ConditionalBatchNorm(3, y_dim=7, impl=impl)
    with torch.no_grad():
        block.gain.weight.zero_()
        block.bias.weight.zero_()
    bn = nn.BatchNorm2d(3, affine=False)
    x, y = torch.randn(4, 3, 3, 5) - 2, torch.randn(4, 7)
    torch.testing.assert_close(block(x, y), bn(x), atol=1e-5, rtol=1e-5)
    v = torch.randn(5, 3)
    torch.testing.assert_close(block(v, torch.randn(5, 7)), F.batch_norm(v, None, None, training=True),
                               atol=1e-5, rtol=1e-5)


def test_cbn_linear_variant_is_biggan_ccbn():
    block = ConditionalBatchNorm(4, y_dim=6, sn=True, sn_eps=1e-6)
    # BigGAN's ccbn: two bias-free (SN) linears y -> C, no BN affine: 2·y_dim·C parameters.
    assert sum(p.numel() for p in block.parameters()) == 2 * 6 * 4
    assert block.gain.parametrizations.weight[0].eps == 1e-6
    x, y = torch.randn(3, 4, 2, 2), torch.randn(3, 6)
    out = block(x, y)
    block.eval()
    gain, bias = 1 + y @ block.gain.weight.T, y @ block.bias.weight.T
    expected = F.batch_norm(x, None, None, training=True) * gain[..., None, None] + bias[..., None, None]
    block.train()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_cbn_function_and_fused_path_equal_the_reference_in_train_and_eval():
    x, gain, bias = torch.randn(3, 4, 5, 2), torch.randn(3, 4), torch.randn(3, 4)
    rm, rv = torch.randn(4), torch.rand(4) + 0.5
    expected = (x - rm[:, None, None]) / torch.sqrt(rv[:, None, None] + 1e-5) * gain[..., None, None] \
        + bias[..., None, None]
    torch.testing.assert_close(conditional_batch_norm(x, gain, bias, rm, rv, False), expected)
    ref, fused = (ConditionalBatchNorm(4, y_dim=2, impl=i) for i in ("ref", "fused"))
    fused.load_state_dict(ref.state_dict())
    y = torch.randn(3, 2)
    for _ in range(2):
        torch.testing.assert_close(fused(x, y), ref(x, y), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.running_var, ref.running_var)
    ref.eval(), fused.eval()
    torch.testing.assert_close(fused(x, y), ref(x, y), atol=1e-5, rtol=1e-5)


def test_cbn_bad_arguments_name_the_block():
    for kwargs in ({}, {"y_dim": 3, "n_classes": 4}):
        with pytest.raises(ValueError, match=r"^ConditionalBatchNorm: give exactly one"):
            ConditionalBatchNorm(3, **kwargs)
    with pytest.raises(ValueError, match=r"^ConditionalBatchNorm.*\[0, 4\)"):
        ConditionalBatchNorm(3, n_classes=4)(torch.randn(2, 3, 2, 2), torch.tensor([0, 4]))
    with pytest.raises(TypeError, match=r"^ConditionalBatchNorm"):
        ConditionalBatchNorm(3, n_classes=4)(torch.randn(2, 3, 2, 2), torch.tensor([0.0, 1.0]))
    with pytest.raises(ShapeError, match=r"^ConditionalBatchNorm"):
        ConditionalBatchNorm(3, y_dim=4)(torch.randn(2, 3, 2, 2), torch.randn(2, 5))


# ---- SPADE -------------------------------------------------------------------------------------------


def test_spade_parameter_count_equals_nvlabs():
    s, c = 35, 256
    block = SPADE(c, s)
    nvlabs = (9 * s * 128 + 128) + 2 * (9 * 128 * c + c)  # mlp_shared, mlp_gamma, mlp_beta (3x3, hidden 128)
    assert sum(p.numel() for p in block.parameters()) == nvlabs
    assert set(block.state_dict()) >= {"mlp_shared.0.weight", "mlp_gamma.weight", "mlp_beta.bias",
                                       "param_free_norm.running_mean"}


def constant_gamma_beta(block: SPADE, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """γ, β away from the borders for a map equal to ``label`` everywhere: each conv sees a constant
    input over its whole kernel, so it reduces to (weight summed over the kernel) @ input + bias."""
    shared = block.mlp_shared[0]
    actv = torch.relu(shared.weight.sum((2, 3)) @ label + shared.bias)  # (hidden,)
    gamma = block.mlp_gamma.weight.sum((2, 3)) @ actv + block.mlp_gamma.bias
    beta = block.mlp_beta.weight.sum((2, 3)) @ actv + block.mlp_beta.bias
    return gamma, beta


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("kernel_size", [1, 3])
def test_spade_constant_map_is_a_norm_with_constant_gamma_beta(impl, kernel_size):
    block = SPADE(3, 4, hidden_channels=16, kernel_size=kernel_size, impl=impl)
    label = torch.tensor([0.0, 1.0, 0.0, 0.0])
    x = torch.randn(2, 3, 9, 8) * 3 + 1
    seg = label.view(1, 4, 1, 1).expand(2, 4, 9, 8)
    out = block(x, seg)
    gamma, beta = constant_gamma_beta(block, label)
    normed = F.batch_norm(x, None, None, training=True)
    expected = normed * (1 + gamma.view(1, 3, 1, 1)) + beta.view(1, 3, 1, 1)
    # Zero padding changes γ, β within (kernel_size // 2) · 2 pixels of the border (two convs deep): with
    # 1x1 kernels the whole map is exact, with 3x3 the interior at distance >= 2 is.
    r = (kernel_size // 2) * 2
    inner = (slice(None), slice(None), slice(r, 9 - r), slice(r, 8 - r))
    torch.testing.assert_close(out[inner], expected[inner], atol=1e-5, rtol=1e-5)
    if r:
        assert not torch.allclose(out[..., 0, :], expected[..., 0, :], atol=1e-4)


def test_spade_local_label_change_stays_within_the_receptive_field():
    block = SPADE(2, 3, hidden_channels=8).eval()
    x = torch.randn(1, 2, 11, 10)
    seg = F.one_hot(torch.randint(0, 3, (1, 11, 10)), 3).permute(0, 3, 1, 2).float()
    changed = seg.clone()
    changed[0, :, 5, 4] = torch.tensor([1.0, 1.0, 1.0]) - seg[0, :, 5, 4]
    diff = (block(x, seg) - block(x, changed)).abs().amax(1)[0]  # (H, W)
    inside = torch.zeros(11, 10, dtype=torch.bool)
    inside[3:8, 2:7] = True  # two 3x3 convs: Chebyshev distance <= 2 of (5, 4)
    assert diff[~inside].max() == 0
    assert diff[5, 4] > 0


def test_spade_resizes_the_map_nearest_and_matches_the_function():
    block = SPADE(2, 3, hidden_channels=8, norm="instance")
    small = F.one_hot(torch.randint(0, 3, (2, 3, 2)), 3).permute(0, 3, 1, 2).float()  # (2, 3, 3, 2)
    big = small.repeat_interleave(2, 2).repeat_interleave(3, 3)  # (2, 3, 6, 6), nearest x2, x3
    x = torch.randn(2, 2, 6, 6)
    torch.testing.assert_close(block(x, small), block(x, big))
    shared = block.mlp_shared[0]
    by_function = spade(F.instance_norm(x), big, shared.weight, shared.bias, block.mlp_gamma.weight,
                        block.mlp_gamma.bias, block.mlp_beta.weight, block.mlp_beta.bias)
    torch.testing.assert_close(block(x, small), by_function)


def test_spade_instance_norm_option_is_batch_independent_and_bad_inputs_are_named():
    block = SPADE(2, 3, hidden_channels=4, norm="instance")
    x, seg = torch.randn(3, 2, 4, 4), torch.rand(3, 3, 4, 4)
    y = x.clone()
    y[1:] = torch.randn(2, 2, 4, 4)
    torch.testing.assert_close(block(x, seg)[0], block(y, seg)[0])
    with pytest.raises(ShapeError, match=r"^SPADE.*seg"):
        block(x, torch.rand(3, 4, 4, 4))
    with pytest.raises(ValueError, match=r"^SPADE"):
        SPADE(2, 3, norm="layer")


def test_categorical_conditional_bn_starts_as_sn_gan_or_as_biggan_pytorch():
    from blocks import ConditionalBatchNorm

    identity = ConditionalBatchNorm(64, n_classes=10)
    assert torch.equal(identity.class_gain, torch.ones(10, 64)) and not identity.class_bias.any()
    torch.manual_seed(0)
    xavier = ConditionalBatchNorm(64, n_classes=10, class_init="xavier")
    a = (6 / (10 + 64)) ** 0.5  # xavier_uniform_ of an (n_classes, C) embedding
    assert (xavier.class_gain - 1).abs().max() <= a and xavier.class_bias.abs().max() <= a
    assert (xavier.class_gain - 1).std() > a / 3 and xavier.class_bias.std() > a / 3  # classes differ at once
    with pytest.raises(ValueError, match="class_init should be 'identity' or 'xavier'"):
        ConditionalBatchNorm(8, n_classes=2, class_init="ones")
