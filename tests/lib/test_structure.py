"""Invariants of the structure blocks: residual, fade-in, minibatch statistics and the combinators."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from blocks import (
    STRUCTURE,
    Add,
    Block,
    Concat,
    Dropout,
    FadeIn,
    Flatten,
    GlobalAvgPool,
    GlobalSumPool,
    KeepChannels,
    MinibatchDiscrimination,
    MinibatchStdDev,
    Reshape,
    Residual,
    Scale,
    ShapeError,
    fade_in,
    minibatch_stddev,
)


class Zero(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


class AddCond(Block):
    """Test helper: adds the mean of a conditioning vector to x; records what it was called with."""

    def __init__(self, name: str):
        super().__init__()
        self.consumes = (name,)
        self.name = name
        self.seen: list[str] = []

    def forward(self, x, **cond):
        self.seen.append(",".join(sorted(cond)))
        return x + cond[self.name].mean(dim=1).view(-1, *[1] * (x.dim() - 1))


# ---- residual --------------------------------------------------------------------------------------


def test_residual_zero_body_identity_shortcut_is_identity_then_scaled():
    x = torch.randn(3, 4, 5, 5)
    torch.testing.assert_close(Residual(Zero())(x), x, rtol=0, atol=0)
    torch.testing.assert_close(Residual(Zero(), scale=0.5 ** 0.5)(x), x * 0.5 ** 0.5)


def test_residual_is_scaled_sum_of_branches():
    body, short = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1, bias=False)
    x = torch.randn(2, 4, 6, 6)
    out = Residual(body, short, scale=0.5)(x)
    torch.testing.assert_close(out, (body(x) + short(x)) * 0.5)


def test_residual_routes_conditioning_to_consumers_only():
    body, short = AddCond("w"), AddCond("y")
    block = Residual(body, short)
    assert set(block.consumes) == {"w", "y"}
    x, w, y = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 5)
    out = block(x, w=w, y=y)
    assert body.seen == ["w"] and short.seen == ["y"]
    torch.testing.assert_close(out, 2 * x + w.mean(1, keepdim=True) + y.mean(1, keepdim=True))
    assert Residual(body).consumes == ("w",)
    with pytest.raises(TypeError, match=r"Residual.*'y'"):
        Residual(body)(x, w=w, y=y)


def test_residual_shape_mismatch_names_both_shapes():
    block = Residual(nn.Conv2d(4, 8, 1))
    x = torch.randn(2, 4, 3, 3)
    with pytest.raises(ShapeError, match=r"Residual.*\(2, 4, 3, 3\).*\(2, 8, 3, 3\)"):
        block(x)
    with pytest.raises(ShapeError, match=r"Residual.*\(2, 4, 3, 3\).*\(2, 8, 3, 3\)"):
        block.out_shape((2, 4, 3, 3))


def test_residual_out_shape_of_plain_modules_runs_on_meta():
    block = Residual(nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU()), nn.Conv2d(4, 6, 1))
    assert block.out_shape((2, 4, 7, 7)) == (2, 6, 7, 7)
    assert not any(p.is_meta for p in block.parameters())


def test_residual_child_errors_name_the_residual():
    with pytest.raises(ValueError, match="Residual: body"):
        Residual(nn.Conv2d(4, 4, 1))(torch.randn(2, 3, 5, 5))


# ---- fade-in ---------------------------------------------------------------------------------------


def test_fade_in_endpoints_and_blend():
    old, new = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    fade = FadeIn()
    torch.testing.assert_close(fade(old, new), new)  # default alpha = 1
    fade.set_alpha(0.0)
    torch.testing.assert_close(fade(old, new), old)
    fade.set_alpha(0.25)
    torch.testing.assert_close(fade(old, new), 0.75 * old + 0.25 * new)


def test_fade_in_endpoints_are_exact():
    """alpha = 1 is the new path bit for bit (a faded-in ProGAN stage is exactly the grown network)."""
    old, new = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    fade = FadeIn()
    assert torch.equal(fade(old, new), new)
    fade.set_alpha(0.0)
    assert torch.equal(fade(old, new), old)
    assert torch.equal(fade_in(old, new, 1.0), new) and torch.equal(fade_in(old, new, 0), old)


def test_fade_in_alpha_is_a_saved_buffer_and_checked():
    fade = FadeIn()
    assert list(fade.parameters()) == [] and "alpha" in fade.state_dict()
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="FadeIn"):
            fade.set_alpha(bad)
    with pytest.raises(ShapeError, match="FadeIn"):
        fade(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 8))


# ---- minibatch standard deviation ------------------------------------------------------------------


def group_stddev_by_hand(x: torch.Tensor, group_size: int, num_channels: int) -> torch.Tensor:
    """The statistic of every sample, with explicit loops: sample i is in group i mod (B / G)."""
    B, C = x.shape[:2]
    G = min(group_size, B)
    n = B // G
    c = C // num_channels
    out = torch.empty(B, num_channels, dtype=torch.float64)
    for i in range(B):
        members = x[[i % n + g * n for g in range(G)]].double()  # (G, C, H, W)
        for f in range(num_channels):
            part = members[:, f * c:(f + 1) * c]
            mean = sum(part[g] for g in range(G)) / G
            var = sum((part[g] - mean) ** 2 for g in range(G)) / G
            out[i, f] = (var + 1e-8).sqrt().mean()
    return out


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize(("B", "group_size", "num_channels"), [(8, 4, 1), (8, 2, 1), (4, 4, 2), (6, None, 3)])
def test_minibatch_stddev_equals_group_std_by_hand(impl, B, group_size, num_channels):
    x = torch.randn(B, 6, 3, 2)
    out = MinibatchStdDev(group_size, num_channels, impl=impl)(x)
    assert out.shape == (B, 6 + num_channels, 3, 2)
    torch.testing.assert_close(out[:, :6], x, rtol=0, atol=0)
    stats = out[:, 6:]
    assert (stats == stats[:, :, :1, :1]).all(), "each statistic map must be constant"
    expected = group_stddev_by_hand(x, group_size or B, num_channels)
    torch.testing.assert_close(stats[:, :, 0, 0].double(), expected)


def test_minibatch_stddev_is_sqrt_eps_for_identical_samples():
    x = torch.randn(1, 5, 3, 3).expand(4, 5, 3, 3).contiguous()
    stats = MinibatchStdDev()(x)[:, 5:]
    torch.testing.assert_close(stats, torch.full_like(stats, 1e-4))  # sqrt(0 + 1e-8)


def test_minibatch_stddev_groups_follow_nvlabs_layout():
    # Batch 8, groups of 4 -> n = 2 groups: samples {0, 2, 4, 6} and {1, 3, 5, 7}.
    x = torch.zeros(8, 1, 1, 1)
    x[1::2] = torch.tensor([0.0, 2.0, 0.0, 2.0]).view(4, 1, 1, 1)
    stats = MinibatchStdDev()(x)[:, 1, 0, 0]
    torch.testing.assert_close(stats[0::2], torch.full((4,), 1e-4))
    torch.testing.assert_close(stats[1::2], torch.full((4,), math.sqrt(1.0 + 1e-8)))


def test_minibatch_stddev_fast_matches_ref_in_double_backward():
    """R1 and GP differentiate D's input gradient again: the fast path must agree to second order.

    A Hessian-vector product with a random v (not the gradient itself, whose product would hide a
    detached group mean) through the statistic's path only."""
    x = torch.randn(8, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 1, 4, 4, dtype=torch.float64)
    v = torch.randn_like(x)
    second = {}
    for impl in ("ref", "fast"):
        stats = minibatch_stddev(x, impl=impl)[:, 6:]
        (g,) = torch.autograd.grad((stats * w).sum(), x, create_graph=True)
        (second[impl],) = torch.autograd.grad((g * v).sum(), x)
    torch.testing.assert_close(second["fast"], second["ref"])
    assert second["ref"].abs().sum() > 0


def test_minibatch_stddev_rejects_indivisible_batch_and_channels():
    with pytest.raises(ValueError, match=r"MinibatchStdDev.*6.*4"):
        MinibatchStdDev()(torch.randn(6, 4, 2, 2))
    with pytest.raises(ValueError, match=r"MinibatchStdDev.*num_channels"):
        MinibatchStdDev(num_channels=3)(torch.randn(4, 4, 2, 2))
    assert MinibatchStdDev()(torch.randn(3, 4, 2, 2)).shape == (3, 5, 2, 2)  # group clamped to the batch


# ---- minibatch discrimination ----------------------------------------------------------------------


def test_minibatch_discrimination_equals_hand_loop_over_pairs():
    torch.manual_seed(0)
    block = MinibatchDiscrimination(6, n_kernels=4, kernel_dim=3)
    with torch.no_grad():
        block.log_scale.normal_()
        block.bias.normal_()
    x = torch.randn(5, 6)
    out = block(x)
    T = block.effective_weight().detach().double()
    m = [torch.einsum("d,dkc->kc", x[i].double(), T) for i in range(5)]
    expected = torch.zeros(5, 4, dtype=torch.float64)
    for i in range(5):
        for j in range(5):
            if j != i:  # the reference code excludes the sample itself
                expected[i] += torch.exp(-(m[i] - m[j]).abs().sum(dim=1))
    expected += block.bias.detach().double()
    torch.testing.assert_close(out[:, :6], x, rtol=0, atol=0)
    torch.testing.assert_close(out[:, 6:].double(), expected, rtol=1e-5, atol=1e-6)


def test_minibatch_discrimination_weight_norm_and_parameter_layout():
    block = MinibatchDiscrimination(10)
    shapes = {k: tuple(v.shape) for k, v in block.named_parameters()}
    assert shapes == {"weight": (10, 100, 5), "log_scale": (100, 5), "bias": (100,)}
    torch.testing.assert_close(block.bias.detach(), torch.full((100,), -1.0))
    with torch.no_grad():
        block.log_scale.fill_(math.log(3.0))
    norms = block.effective_weight().square().sum(dim=0).sqrt()  # (K, Dk): norm over the inputs
    torch.testing.assert_close(norms, torch.full_like(norms, 3.0))
    plain = MinibatchDiscrimination(10, weight_norm=False, bias=False)
    assert [k for k, _ in plain.named_parameters()] == ["weight"]


def test_minibatch_discrimination_identical_samples_count_the_others():
    block = MinibatchDiscrimination(3, n_kernels=2, kernel_dim=2)
    x = torch.randn(1, 3).expand(4, 3)
    o = block(x)[:, 3:]
    torch.testing.assert_close(o, torch.full_like(o, 3.0 - 1.0))  # 3 others at distance 0, bias -1


# ---- combinators -----------------------------------------------------------------------------------


def test_add_and_its_errors():
    a, b, c = torch.randn(3, 2, 4), torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    torch.testing.assert_close(Add()(a, b, c), a + b + c)
    with pytest.raises(ValueError, match=r"Add.*2 or more"):
        Add()(a)
    with pytest.raises(ShapeError, match=r"Add: input 1.*\(3, 2, 4\).*\(3, 2, 5\)"):
        Add()(a, torch.randn(3, 2, 5))


def test_concat_and_its_errors():
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4)
    out = Concat()(a, b)
    assert out.shape == Concat().out_shape(a.shape, b.shape) == (2, 8, 4, 4)
    torch.testing.assert_close(out[:, 3:], b)
    assert Concat()(torch.randn(2, 6), torch.randn(2, 10)).shape == (2, 16)  # z ++ y
    with pytest.raises(ShapeError, match="Concat: input 1"):
        Concat()(a, torch.randn(2, 5, 4, 3))
    with pytest.raises(ShapeError, match="Concat: input 1"):
        Concat()(a, torch.randn(2, 5, 16))


def test_reshape_flatten_and_their_errors():
    x = torch.randn(2, 48)
    y = Reshape([3, 4, 4])(x)
    assert y.shape == (2, 3, 4, 4) and torch.equal(y.flatten(1), x)
    assert torch.equal(Flatten()(y), x) and Flatten().out_shape((2, 3, 4, 4)) == (2, 48)
    with pytest.raises(ShapeError, match=r"Reshape.*48 elements"):
        Reshape((3, 4, 4))(torch.randn(2, 50))
    with pytest.raises(ValueError, match="Reshape"):
        Reshape((3, 0))


def test_global_pools_and_scale():
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(GlobalSumPool()(x), x.sum(dim=(2, 3)))
    torch.testing.assert_close(GlobalAvgPool()(x), x.sum(dim=(2, 3)) / 20)
    torch.testing.assert_close(Scale(0.5 ** 0.5)(x), x / math.sqrt(2))
    with pytest.raises(ShapeError, match="GlobalSumPool"):
        GlobalSumPool()(torch.randn(2, 3, 4))


def test_keep_channels_keeps_the_leading_channels():
    """BigGAN-deep's skip ``x[:, :out_channels]`` and its RGB slice of the last conv's channels."""
    x = torch.randn(2, 6, 4, 5)
    out = KeepChannels(4)(x)
    assert out.shape == KeepChannels(4).out_shape(x.shape) == (2, 4, 4, 5)
    assert torch.equal(out, x[:, :4])
    assert torch.equal(KeepChannels(6)(x), x) and KeepChannels(3)(torch.randn(2, 8)).shape == (2, 3)
    with pytest.raises(ShapeError, match=r"KeepChannels.*cannot keep 7 channels of 6"):
        KeepChannels(7)(x)
    with pytest.raises(ValueError, match="KeepChannels"):
        KeepChannels(0)


def test_dropout_masks_scaling_and_modes():
    x = torch.ones(64, 4, 8, 8)
    drop = Dropout()
    out = drop(x)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.5) < 0.03
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 2.0))  # 1 / (1 - p)
    assert not torch.equal(kept[0], kept[1]), "samples must get independent masks"
    drop.eval()
    assert torch.equal(drop(x), x)
    pix2pix = Dropout(at_test_time=True).eval()
    assert (pix2pix(x) == 0).any()
    with pytest.raises(ValueError, match="Dropout"):
        Dropout(p=1.0)


def test_combinators_are_registered_structure_blocks():
    for key in ("add", "concat", "reshape", "flatten", "global_sum_pool", "global_avg_pool", "scale",
                "dropout", "keep_channels", "residual", "fade_in", "minibatch_stddev", "minibatch_discrimination"):
        assert key in STRUCTURE, key
