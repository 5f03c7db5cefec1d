"""Conditional batch norm's "fast" impl (statistics from per-sample contiguous sums) equals the reference."""

from __future__ import annotations

import copy

import pytest
import torch

from blocks import ConditionalBatchNorm
from blocks.norms.conditional_bn import _moments_sums, _moments_var_mean


def pair(**kwargs) -> tuple[ConditionalBatchNorm, ConditionalBatchNorm]:
    ref = ConditionalBatchNorm(impl="ref", **kwargs)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.3 * torch.randn_like(p))
    fast = copy.deepcopy(ref)
    fast._init_impl("fast")
    return ref, fast


@pytest.mark.parametrize("shape", [(6, 5, 7, 3), (8, 5)])
@pytest.mark.parametrize("variant", [{"y_dim": 4}, {"n_classes": 3}])
def test_fast_equals_ref_in_training_outputs_gradients_and_running_stats(shape, variant):
    ref, fast = pair(in_channels=5, **variant)
    x = (torch.randn(shape) * 2 + 3).requires_grad_()
    y = torch.randn(shape[0], 4) if "y_dim" in variant else torch.randint(0, 3, (shape[0],))
    for _ in range(2):  # the running statistics move the same way
        out_ref, out_fast = ref(x, y), fast(x, y)
        torch.testing.assert_close(out_fast, out_ref, rtol=1e-4, atol=1e-5)
        g = torch.randn_like(out_ref)
        grads_ref = torch.autograd.grad(out_ref, [x, *ref.parameters()], g)
        grads_fast = torch.autograd.grad(out_fast, [x, *fast.parameters()], g)
        for a, b in zip(grads_fast, grads_ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.running_mean, ref.running_mean)
    torch.testing.assert_close(fast.running_var, ref.running_var, rtol=1e-5, atol=1e-6)
    assert fast.impl == "fast"


def test_fast_equals_ref_in_eval_mode():
    ref, fast = pair(in_channels=3, y_dim=2)
    ref.running_mean.copy_(torch.randn(3))
    fast.running_mean.copy_(ref.running_mean)
    ref.running_var.copy_(torch.rand(3) + 0.5)
    fast.running_var.copy_(ref.running_var)
    ref.eval(), fast.eval()
    x, y = torch.randn(4, 3, 5, 5), torch.randn(4, 2)
    torch.testing.assert_close(fast(x, y), ref(x, y))


def test_sums_give_the_two_pass_moments_and_stay_accurate_for_a_large_mean():
    x = torch.randn(8, 6, 9, 9, dtype=torch.float64)
    for mu in (0.0, 10.0, 100.0):  # the variance's relative error grows like 1e-7 · (1 + μ²/σ²) in float32
        xs = (x + mu).float()
        mean, var = _moments_sums(xs)
        mean_ref, var_ref = _moments_var_mean(x + mu)
        torch.testing.assert_close(mean.double(), mean_ref, rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(var.double(), var_ref, rtol=2e-7 * (1 + mu**2) + 1e-5, atol=0)
    assert (_moments_sums(torch.full((4, 2, 3, 3), 7.0))[1] >= 0).all()  # rounding never makes it negative


def test_fast_in_bfloat16_is_close_to_the_float32_reference():
    ref, fast = pair(in_channels=4, y_dim=3)
    x, y = torch.randn(8, 4, 6, 6) + 2, torch.randn(8, 3)
    expected = ref(x, y)
    got = fast.to(torch.bfloat16)(x.bfloat16(), y.bfloat16())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=0.05, atol=0.05)


def test_fast_gradcheck_in_float64_including_second_order():
    _, fast = pair(in_channels=3, y_dim=2)
    fast = fast.double()
    x = torch.randn(4, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fast(a, b), (x, y))
    assert torch.autograd.gradgradcheck(lambda a, b: fast(a, b), (x, y))
