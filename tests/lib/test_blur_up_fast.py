"""BlurUp's "interp" impl (bilinear interpolation with the border scaled by 3/4) equals the reference."""

from __future__ import annotations

import pytest
import torch

from blocks import BlurUp
from blocks.resample.fir import _bilinear_up2, setup_filter, upsample2d

CL = torch.channels_last


@pytest.mark.parametrize("shape", [(2, 5, 7, 4), (1, 3, 1, 1), (3, 1, 2, 6)])
def test_bilinear_up2_equals_the_fir_upsampler_values_and_gradients(shape):
    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=CL).requires_grad_()
    f = setup_filter((1, 3, 3, 1))
    got, want = _bilinear_up2(x), upsample2d(x, f, 2, impl="ref")
    torch.testing.assert_close(got, want)
    g = torch.randn_like(want)
    torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0])


def test_interp_impl_runs_bilinear_for_channels_last_and_falls_back_otherwise(monkeypatch):
    import blocks.resample.fir as fir

    calls = []
    monkeypatch.setattr(fir, "_bilinear_up2", lambda x: calls.append(1) or upsample2d(x, setup_filter((1, 3, 3, 1)), 2))
    x = torch.randn(2, 4, 5, 6)
    ref = BlurUp(impl="ref")
    interp = BlurUp(impl="interp")
    torch.testing.assert_close(interp(x), ref(x))  # NCHW: the "fast" conv_transpose path
    assert calls == []
    torch.testing.assert_close(interp(x.contiguous(memory_format=CL)), ref(x))
    assert calls == [1]
    other = BlurUp(resample_filter=(1, 2, 1), impl="interp")  # not [1, 3, 3, 1]: never bilinear
    torch.testing.assert_close(other(x.contiguous(memory_format=CL)), BlurUp(resample_filter=(1, 2, 1), impl="ref")(x))
    assert calls == [1] and BlurUp(factor=4, impl="interp")._bilinear is False
    assert BlurUp(resample_filter=(2, 6, 6, 2))._bilinear is True  # any scale of the taps


def test_interp_impl_keeps_channels_last_and_dtype_and_second_derivatives():
    block = BlurUp(impl="interp")
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64).contiguous(memory_format=CL).requires_grad_()
    y = block(x)
    assert y.is_contiguous(memory_format=CL) and y.shape == (2, 3, 8, 8)
    assert torch.autograd.gradgradcheck(lambda t: block(t.contiguous(memory_format=CL)), (x,))
    xb = torch.randn(2, 8, 6, 6).contiguous(memory_format=CL)
    yb = block(xb.bfloat16())
    assert yb.dtype == torch.bfloat16
    torch.testing.assert_close(yb.float(), BlurUp(impl="ref")(xb), rtol=0.02, atol=0.02)


def test_interp_is_the_cpu_default_and_constructs_on_meta():
    assert BlurUp.default_impl["cpu"] == "interp"
    with torch.device("meta"):
        assert BlurUp()._bilinear is True
