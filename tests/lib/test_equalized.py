"""Equalized layers: the run-time He scale, unit output variance at init, lr_mul on weight and bias,
activation gain and clamp, and up/down resampling exactly as NVlabs' Conv2dLayer (blur then strided conv;
1x1: downsample then conv; up: transposed conv then blur, with the kernel applied as a true convolution)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from blocks import (
    EqualizedConv2d,
    EqualizedLinear,
    ShapeError,
    downsample2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

F4 = setup_filter((1, 3, 3, 1))


def test_linear_weight_scale_and_forward_formula():
    torch.manual_seed(0)
    layer = EqualizedLinear(20, 7, bias_init=0.3, lr_mul=0.1, gain=2.0).double()
    assert layer.weight_gain == pytest.approx(2.0 * 0.1 / math.sqrt(20))
    x = torch.randn(5, 20, dtype=torch.float64)
    want = x @ (layer.weight * 2.0 * 0.1 / math.sqrt(20)).t() + layer.bias * 0.1
    torch.testing.assert_close(layer(x), want)
    torch.testing.assert_close(layer.effective_bias(), torch.full((7,), 0.3, dtype=torch.float64))


def test_stored_weights_are_n01_over_lr_mul():
    torch.manual_seed(0)
    layer = EqualizedLinear(512, 512, lr_mul=0.01)
    assert layer.weight.std().item() == pytest.approx(100.0, rel=0.01)
    assert layer.effective_weight().std().item() == pytest.approx(1 / math.sqrt(512), rel=0.01)


def test_lr_mul_scales_the_gradient_of_the_stored_parameters():
    """d y / d stored = weight_gain · d y / d effective: the relative update size is the same per layer."""
    layer = EqualizedLinear(4, 3, lr_mul=0.5).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    layer(x).sum().backward()
    eff_grad = torch.ones(6, 3, dtype=torch.float64).t() @ x  # d sum(x Wᵀ) / d W
    torch.testing.assert_close(layer.weight.grad, eff_grad * 0.5 / 2.0)
    torch.testing.assert_close(layer.bias.grad, torch.full((3,), 6 * 0.5, dtype=torch.float64))


@pytest.mark.parametrize("impl", EqualizedLinear.impls)
def test_linear_unit_variance_at_init(impl):
    torch.manual_seed(1)
    x = torch.randn(4096, 256)
    assert EqualizedLinear(256, 256, impl=impl)(x).var().item() == pytest.approx(1.0, abs=0.05)
    # lrelu · √2 after it: E[y²] = 2 · (½ + ½ · 0.2²) = 1.04 (the He argument)
    y = EqualizedLinear(256, 256, activation="lrelu", impl=impl)(x)
    assert y.square().mean().item() == pytest.approx(1.04, abs=0.05)


@pytest.mark.parametrize("impl", EqualizedConv2d.impls)
def test_conv_unit_variance_at_init_and_formula(impl):
    torch.manual_seed(2)
    conv = EqualizedConv2d(64, 64, 3, impl=impl)
    x = torch.randn(8, 64, 12, 12)
    y = conv(x)
    assert y[..., 1:-1, 1:-1].var().item() == pytest.approx(1.0, abs=0.05)  # away from the zero padding
    assert conv.weight_gain == pytest.approx(1 / math.sqrt(64 * 9))
    torch.testing.assert_close(y, F.conv2d(x, conv.weight / math.sqrt(64 * 9), conv.bias, padding=1),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", EqualizedConv2d.impls)
def test_activation_gain_clamp_and_output_gain(impl):
    torch.manual_seed(3)
    conv = EqualizedConv2d(3, 4, 3, activation="lrelu", bias_init=0.2, conv_clamp=0.5, impl=impl).double()
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    pre = F.conv2d(x, conv.effective_weight(), padding=1) + 0.2
    act = F.leaky_relu(pre, 0.2) * math.sqrt(2)
    torch.testing.assert_close(conv(x), act.clamp(-0.5, 0.5))
    # NVlabs' forward gain scales both the activation gain and the clamp
    g = math.sqrt(0.5)
    torch.testing.assert_close(conv(x, output_gain=g), (act * g).clamp(-0.5 * g, 0.5 * g))


@pytest.mark.parametrize("impl", EqualizedConv2d.impls)
@pytest.mark.parametrize("k", [3, 1])
@pytest.mark.parametrize("H,W", [(8, 6), (7, 5)])
def test_down_is_blur_then_strided_conv(impl, k, H, W):
    torch.manual_seed(4)
    conv = EqualizedConv2d(3, 5, k, down=2, impl=impl).double()
    x = torch.randn(2, 3, H, W, dtype=torch.float64)
    w = conv.effective_weight()
    if k == 1:
        want = F.conv2d(downsample2d(x, F4, impl="ref"), w)  # 1x1: downsample first, then the conv
    else:
        # blur with the padding grown by the filter (k//2 + 1 = 2 per side), then stride-2 valid conv
        want = F.conv2d(upfirdn2d(x, F4, padding=2, impl="ref"), w, stride=2)
    got = conv(x)
    assert got.shape == (2, 5, H // 2, W // 2)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("impl", EqualizedConv2d.impls)
@pytest.mark.parametrize("k", [3, 1])
def test_up_is_transposed_conv_then_blur(impl, k):
    torch.manual_seed(5)
    conv = EqualizedConv2d(3, 5, k, up=2, impl=impl).double()
    x = torch.randn(2, 3, 4, 7, dtype=torch.float64)
    w = conv.effective_weight()
    # Zero-insertion upsampling + blur (gain 4), padded once by k//2, then the kernel as a true
    # convolution (flipped), as NVlabs' layers use flip_weight = (up == 1).
    want = F.conv2d(upsample2d(x, F4, padding=k // 2, impl="ref"), w.flip((2, 3)))
    got = conv(x)
    assert got.shape == (2, 5, 8, 14)
    torch.testing.assert_close(got, want)


def test_parameter_layout_and_errors():
    conv = EqualizedConv2d(8, 16, 3, bias=False)
    assert {n: tuple(p.shape) for n, p in conv.named_parameters()} == {"weight": (16, 8, 3, 3)}
    assert "resample_filter" in dict(conv.named_buffers())
    lin = EqualizedLinear(512, 512)
    assert sum(p.numel() for p in lin.parameters()) == 512 * 512 + 512
    with pytest.raises(ShapeError, match=r"^EqualizedConv2d"):
        conv(torch.zeros(1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"^EqualizedConv2d"):
        EqualizedConv2d(8, 16, up=2, down=2)
    with pytest.raises(ShapeError, match=r"^EqualizedConv2d"):
        EqualizedConv2d(2, 2, 3, down=2)(torch.zeros(1, 2, 1, 1))
    with pytest.raises(ShapeError, match=r"^EqualizedLinear"):
        lin(torch.zeros(2, 3))
