"""Modulated convolution (StyleGAN2 eq. 1-3) and the styled layers: unit-norm demodulated weights, the
module against a per-sample loop of F.conv2d written here, unit styles without demodulation = a plain
conv, every formulation equal (with up/down, non-square, gradients), scale invariance and unit output
variance from demodulation, NVlabs' SynthesisLayer / ToRGBLayer formulas and parameter counts."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from blocks import (
    ModulatedConv2d,
    ShapeError,
    StyleConv,
    StyleToRGB,
    modulated_conv2d,
    modulated_weight,
    setup_filter,
    upsample2d,
)

IMPLS = ModulatedConv2d.impls
F4 = setup_filter((1, 3, 3, 1))


def affine_styles(block: ModulatedConv2d, w: torch.Tensor) -> torch.Tensor:
    """The affine layer written out: equalized FC w_dim -> C with its bias (1 at init)."""
    a = block.affine
    return w @ (a.weight / math.sqrt(a.in_features)).t() + a.bias


def per_sample_loop(x, weight, styles, demodulate=True, padding=1, eps=1e-8):
    """StyleGAN2 eq. 1-3, one sample at a time, with F.conv2d."""
    outs = []
    for b in range(x.shape[0]):
        wb = weight * styles[b].reshape(1, -1, 1, 1)
        if demodulate:
            wb = wb / torch.sqrt(wb.square().sum(dim=(1, 2, 3), keepdim=True) + eps)
        outs.append(F.conv2d(x[b : b + 1], wb, padding=padding))
    return torch.cat(outs)


def test_demodulated_weights_have_unit_norm_per_sample_and_output_channel():
    torch.manual_seed(0)
    weight = torch.randn(6, 4, 3, 3, dtype=torch.float64) * 5
    styles = torch.randn(3, 4, dtype=torch.float64) * 2
    w = modulated_weight(weight, styles)
    assert w.shape == (3, 6, 4, 3, 3)
    norms = w.square().sum(dim=(2, 3, 4)).sqrt()
    torch.testing.assert_close(norms, torch.ones(3, 6, dtype=torch.float64))
    plain = modulated_weight(weight, styles, demodulate=False)
    torch.testing.assert_close(plain[1], weight * styles[1].reshape(1, 4, 1, 1))


@pytest.mark.parametrize("impl", IMPLS)
def test_module_equals_a_per_sample_loop(impl):
    torch.manual_seed(1)
    block = ModulatedConv2d(4, 6, w_dim=5, impl=impl).double()
    x = torch.randn(3, 4, 5, 7, dtype=torch.float64)
    w = torch.randn(3, 5, dtype=torch.float64)
    want = per_sample_loop(x, block.weight / math.sqrt(4 * 9), affine_styles(block, w))
    torch.testing.assert_close(block(x, w), want)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("k", [1, 3])
def test_unit_styles_without_demodulation_are_a_plain_conv(impl, k):
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    weight = torch.randn(3, 4, k, k, dtype=torch.float64)
    got = modulated_conv2d(x, weight, torch.ones(2, 4, dtype=torch.float64), demodulate=False, impl=impl)
    torch.testing.assert_close(got, F.conv2d(x, weight, padding=k // 2))


@pytest.mark.parametrize("impl", IMPLS)
def test_demodulation_is_scale_invariant(impl):
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    weight = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    s = torch.randn(2, 4, dtype=torch.float64)
    y = modulated_conv2d(x, weight, s, impl=impl)
    torch.testing.assert_close(modulated_conv2d(x, weight * 7.0, s, impl=impl), y)
    torch.testing.assert_close(modulated_conv2d(x, weight, s * torch.tensor([[3.0], [0.2]], dtype=s.dtype),
                                                impl=impl), y)


@pytest.mark.parametrize("impl", IMPLS)
def test_demodulation_gives_unit_output_variance(impl):
    """With i.i.d. unit-variance input, each output pixel away from the border is Σ w''·x with Σ w''² = 1."""
    torch.manual_seed(2)
    x = torch.randn(16, 32, 10, 10)
    s = torch.randn(16, 32) * 3 + 1
    y = modulated_conv2d(x, torch.randn(32, 32, 3, 3), s, impl=impl)
    assert y[..., 1:-1, 1:-1].var().item() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("H,W", [(4, 7), (5, 5)])
def test_every_formulation_is_equal_with_gradients(up, down, demodulate, H, W):
    torch.manual_seed(3)
    ref = ModulatedConv2d(3, 4, w_dim=5, up=up, down=down, demodulate=demodulate, impl="ref").double()
    x0 = torch.randn(3, 3, H, W, dtype=torch.float64)
    w0 = torch.randn(3, 5, dtype=torch.float64)
    results = {}
    for impl in IMPLS:
        block = ModulatedConv2d(3, 4, w_dim=5, up=up, down=down, demodulate=demodulate, impl=impl).double()
        block.load_state_dict(copy.deepcopy(ref.state_dict()))
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        y = block(x, w)
        y.mul(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
        results[impl] = (y, x.grad, w.grad, block.weight.grad, block.affine.weight.grad)
    assert results["ref"][0].shape == (3, 4, H * up // down, W * up // down)
    for impl in IMPLS[1:]:
        for a, b in zip(results["ref"], results[impl]):
            torch.testing.assert_close(b, a)


@pytest.mark.parametrize("impl", IMPLS)
def test_up_matches_nvlabs_convention(impl):
    """up=2: FIR upsampling (padded once by k//2) then the kernel as a true convolution (flip_weight=False),
    per sample with the demodulated weight."""
    torch.manual_seed(4)
    block = ModulatedConv2d(3, 2, w_dim=4, up=2, impl=impl).double()
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64)
    w = torch.randn(2, 4, dtype=torch.float64)
    wm = modulated_weight(block.weight / math.sqrt(27), affine_styles(block, w))
    want = torch.cat([F.conv2d(upsample2d(x[b : b + 1], F4, padding=1), wm[b].flip((2, 3)))
                      for b in range(2)])
    torch.testing.assert_close(block(x, w), want)


def test_modulated_conv2d_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"^modulated_conv2d"):
        modulated_conv2d(torch.zeros(2, 3, 4, 4), torch.zeros(5, 3, 3, 3), torch.zeros(2, 4))
    block = ModulatedConv2d(3, 5, w_dim=4)
    with pytest.raises(ShapeError, match=r"^ModulatedConv2d"):
        block(torch.zeros(2, 3, 4, 4), torch.zeros(3, 4))


# ---- styled layers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_style_conv_is_nvlabs_synthesis_layer(impl):
    torch.manual_seed(5)
    layer = StyleConv(4, 6, w_dim=5, resolution=(5, 7), conv_clamp=1.5, noise_mode="const", impl=impl)
    layer = layer.double()
    with torch.no_grad():
        layer.noise.strength.fill_(0.7)
        layer.bias.normal_()
    x = torch.randn(3, 4, 5, 7, dtype=torch.float64)
    w = torch.randn(3, 5, dtype=torch.float64)
    y = per_sample_loop(x, layer.conv.weight / math.sqrt(36), affine_styles(layer.conv, w))
    y = y + layer.noise.noise_const * 0.7 + layer.bias.reshape(1, -1, 1, 1)
    want = (F.leaky_relu(y, 0.2) * math.sqrt(2)).clamp(-1.5, 1.5)
    torch.testing.assert_close(layer(x, w), want)
    # no noise: the same without the noise term
    y_none = layer(x, w, noise_mode="none")
    torch.testing.assert_close(y_none, (F.leaky_relu(y - layer.noise.noise_const * 0.7, 0.2) * math.sqrt(2))
                               .clamp(-1.5, 1.5))
    # random noise: a fresh draw per call, one image per sample shared by the channels
    torch.manual_seed(6)
    a = layer(x, w, noise_mode="random")
    b = layer(x, w, noise_mode="random")
    assert not torch.equal(a, b)


def test_style_conv_parameter_count_matches_nvlabs():
    with torch.device("meta"):
        layer = StyleConv(512, 512, w_dim=512, resolution=8, up=2)
    counts = {n: p.numel() for n, p in layer.named_parameters()}
    # affine (512·512 + 512) + weight 512·512·3·3 + noise strength 1 + bias 512
    assert sum(counts.values()) == 262_656 + 2_359_296 + 1 + 512
    assert counts["noise.strength"] == 1 and layer.noise.strength.dim() == 0
    assert tuple(layer.noise.noise_const.shape) == (8, 8)
    assert layer.bias.shape == (512,)
    assert not any("bias" in n for n, _ in layer.conv.named_parameters() if not n.startswith("affine"))


def test_style_conv_starts_with_zero_noise_strength_and_upsamples():
    layer = StyleConv(3, 4, w_dim=2, up=2)
    assert layer.noise.strength.item() == 0.0
    x, w = torch.randn(2, 3, 3, 5), torch.randn(2, 2)
    torch.manual_seed(0)
    a = layer(x, w)
    torch.testing.assert_close(a, layer(x, w, noise_mode="none"))  # strength 0: noise has no effect
    assert a.shape == (2, 4, 6, 10)


@pytest.mark.parametrize("impl", IMPLS)
def test_style_to_rgb_is_nvlabs_torgb(impl):
    torch.manual_seed(7)
    layer = StyleToRGB(6, w_dim=5, conv_clamp=0.8, impl=impl).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 6, 4, 3, dtype=torch.float64)
    w = torch.randn(2, 5, dtype=torch.float64)
    styles = affine_styles(layer.conv, w) / math.sqrt(6)  # NVlabs: weight_gain applied to the styles
    want = per_sample_loop(x, layer.conv.weight, styles, demodulate=False, padding=0)
    want = (want + layer.bias.reshape(1, -1, 1, 1)).clamp(-0.8, 0.8)
    torch.testing.assert_close(layer(x, w), want)


def test_style_to_rgb_parameter_count_matches_nvlabs():
    layer = StyleToRGB(512, 3, w_dim=512)
    assert sum(p.numel() for p in layer.parameters()) == (512 * 512 + 512) + 3 * 512 + 3
    assert layer.conv.affine.bias.detach().eq(1).all()  # bias_init = 1
    assert not layer.conv.demodulate
