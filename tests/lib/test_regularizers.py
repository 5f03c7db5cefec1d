"""Regularizers against closed forms: linear critics, a linear generator, orthogonal matrices."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from blocks import (
    R1,
    Drift,
    GradientPenalty,
    OffDiagOrthogonal,
    Orthogonal,
    PathLength,
    ShapeError,
    WeightClip,
    r1_penalty,
)


def linear_critic(in_shape: tuple[int, ...], scale: float = 1.0) -> nn.Module:
    critic = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), 1))
    with torch.no_grad():
        critic[1].weight.mul_(scale)
    return critic


def w_norm(critic: nn.Module) -> torch.Tensor:
    return critic[1].weight.detach().norm()


# ---- gradient penalty ------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.3, 5.0])
def test_gradient_penalty_on_linear_critic(scale):
    critic = linear_critic((2, 3, 3), scale)
    real, fake = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    gp = GradientPenalty()(critic, real, fake)
    torch.testing.assert_close(gp, 10 * (w_norm(critic) - 1) ** 2)
    progan = GradientPenalty(weight=10.0, target=750.0)(critic, real, fake)
    torch.testing.assert_close(progan, 10 / 750**2 * (w_norm(critic) - 750) ** 2)


def test_gradient_penalty_uses_per_sample_interpolates():
    """A quadratic critic D(x) = ½‖x‖² has ∇D(x̂) = x̂: the penalty depends on where x̂ lies."""

    def critic(x):
        return 0.5 * x.square().sum(dim=1)

    real, fake = torch.randn(6, 3), torch.randn(6, 3)
    torch.manual_seed(11)
    got = GradientPenalty()(critic, real, fake)
    torch.manual_seed(11)
    alpha = torch.rand(6, 1)
    mixed = real + (fake - real) * alpha
    torch.testing.assert_close(got, 10 * ((mixed.norm(dim=1) - 1) ** 2).mean())


def test_gradient_penalty_trains_the_critic_only():
    critic = linear_critic((3,), 3.0)
    real, fake = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    GradientPenalty()(critic, real, fake).backward()
    assert real.grad is None and fake.grad is None
    # d/dw 10 (‖w‖ - 1)² = 20 (‖w‖ - 1) w / ‖w‖: shrinks a critic steeper than 1
    w = critic[1].weight.detach()
    torch.testing.assert_close(critic[1].weight.grad, 20 * (w.norm() - 1) * w / w.norm())
    with pytest.raises(ShapeError, match="GradientPenalty"):
        GradientPenalty()(critic, real, fake[:3])


# ---- R1 --------------------------------------------------------------------------------------------


def test_r1_on_linear_critic_and_with_shared_forward():
    critic = linear_critic((2, 4), 2.0)
    real = torch.randn(5, 2, 4)
    reg = R1()
    assert (reg.gamma, reg.weight, reg.interval) == (10.0, 5.0, 16)
    torch.testing.assert_close(reg(critic, real), 10 / 2 * w_norm(critic) ** 2)
    real = real.requires_grad_(True)
    torch.testing.assert_close(r1_penalty(critic(real), real, gamma=1.0), 0.5 * w_norm(critic) ** 2)


def test_r1_on_quadratic_critic_averages_squared_norms():
    real = torch.randn(4, 3)
    got = R1(gamma=2.0)(lambda x: 0.5 * x.square().sum(dim=1), real)  # ∇ = x
    torch.testing.assert_close(got, real.square().sum(dim=1).mean())


# ---- path length -----------------------------------------------------------------------------------


def linear_generator(N: int, D: int, C: int, H: int, W: int):
    """images = reshape(w_flat @ A): the Jacobian w.r.t. ws is A, so J_wᵀ y = A y_flat."""
    A = torch.randn(N * D, C * H * W)

    def generate(ws):
        return (ws.flatten(1) @ A).view(-1, C, H, W)

    return generate, A


def lengths_by_hand(A: torch.Tensor, noise: torch.Tensor, N: int, D: int) -> torch.Tensor:
    H, W = noise.shape[2:]
    y = noise.flatten(1) / math.sqrt(H * W)  # (B, CHW)
    g = (y @ A.T).view(-1, N, D)  # (B, N, D): J_wᵀ y per layer
    return g.square().sum(dim=2).mean(dim=1).sqrt()


def test_path_length_penalty_and_running_mean_by_hand():
    N, D, C, H, W = 3, 4, 2, 3, 3
    generate, A = linear_generator(N, D, C, H, W)
    ws = torch.randn(5, N, D, requires_grad=True)
    reg = PathLength()
    assert (reg.weight, reg.decay, reg.interval, reg.network) == (2.0, 0.01, 4, "G")
    torch.manual_seed(3)
    got = reg(generate(ws), ws)
    torch.manual_seed(3)
    lengths = lengths_by_hand(A, torch.randn(5, C, H, W), N, D)
    pl_mean = 0.0 + 0.01 * (lengths.mean() - 0.0)  # moved from 0 by decay
    torch.testing.assert_close(reg.pl_mean, pl_mean)
    torch.testing.assert_close(got, 2.0 * ((lengths - pl_mean) ** 2).mean())
    torch.manual_seed(4)
    reg(generate(ws), ws)
    torch.manual_seed(4)
    second = lengths_by_hand(A, torch.randn(5, C, H, W), N, D).mean()
    torch.testing.assert_close(reg.pl_mean, pl_mean + 0.01 * (second - pl_mean))


def test_path_length_penalty_is_zero_when_length_equals_running_mean():
    N, D, C, H, W = 2, 3, 1, 4, 4
    generate, A = linear_generator(N, D, C, H, W)
    ws = torch.randn(1, N, D, requires_grad=True)
    torch.manual_seed(0)
    length = lengths_by_hand(A, torch.randn(1, C, H, W), N, D)
    reg = PathLength()
    reg.pl_mean.fill_(length.item())
    torch.manual_seed(0)
    assert reg(generate(ws), ws).item() < 1e-10
    torch.testing.assert_close(reg.pl_mean, length[0])  # unchanged: the mean was already the length


def test_path_length_needs_a_graph_and_keeps_pl_mean_as_buffer():
    reg = PathLength()
    assert "pl_mean" in reg.state_dict() and not list(reg.parameters())
    ws = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"PathLength.*graph"):
        reg(torch.randn(2, 1, 2, 2), ws)


# ---- orthogonal ------------------------------------------------------------------------------------


def with_weight(w: torch.Tensor) -> nn.Module:
    lin = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        lin.weight.copy_(w)
    return lin


def test_orthogonal_zero_for_orthogonal_rows():
    q, _ = torch.linalg.qr(torch.randn(6, 6))
    for reg in (Orthogonal(), OffDiagOrthogonal()):
        assert reg(with_weight(q)).item() < 1e-10
        assert reg(with_weight(torch.randn(6, 6))).item() > 0


def test_offdiag_ignores_the_diagonal():
    q, _ = torch.linalg.qr(torch.randn(5, 5))
    scaled = q * torch.tensor([1.0, 2.0, 3.0, 0.5, 4.0])[:, None]  # orthogonal rows, norms != 1
    assert OffDiagOrthogonal()(with_weight(scaled)).item() < 1e-9
    gram = scaled @ scaled.T
    full = Orthogonal(weight=1.0)(with_weight(scaled))
    torch.testing.assert_close(full, 0.5 * ((gram - torch.eye(5)) ** 2).sum())
    assert full.item() > 1.0


def test_orthogonal_gradient_equals_biggans_update():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    w = conv.weight.detach().reshape(4, -1)
    beta = 1e-4
    OffDiagOrthogonal(weight=beta)(conv).backward()
    biggan = 2 * ((w @ w.T) * (1 - torch.eye(4))) @ w  # utils.ortho's grad, times strength
    torch.testing.assert_close(conv.weight.grad.reshape(4, -1), beta * biggan)
    assert conv.bias.grad is None  # 1-D parameters are skipped
    conv.weight.grad = None
    Orthogonal(weight=beta)(conv).backward()
    torch.testing.assert_close(conv.weight.grad.reshape(4, -1), beta * 2 * (w @ w.T - torch.eye(4)) @ w)


def test_orthogonal_skips_named_parameters():
    net = nn.ModuleDict({"shared": nn.Embedding(10, 4), "linear": nn.Linear(4, 4)})
    reg = OffDiagOrthogonal(skip=("shared",))
    reg(net).backward()
    assert net["shared"].weight.grad is None and net["linear"].weight.grad is not None
    with pytest.raises(ValueError, match="OffDiagOrthogonal"):
        OffDiagOrthogonal(skip=("shared", "linear"))(net)


# ---- weight clip, drift ----------------------------------------------------------------------------


def test_weight_clip_bounds_in_place():
    critic = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    with torch.no_grad():
        critic[0].weight.mul_(100)
        critic[1].weight.fill_(0.005)
    assert WeightClip()(critic) is None
    for p in critic.parameters():
        assert p.abs().max() <= 0.01
    assert (critic[1].weight == 0.005).all(), "values inside [-c, c] are untouched"
    assert (critic[0].weight.abs() == 0.01).any()


def test_drift_value():
    logits = torch.tensor([[1.0], [-3.0]])
    torch.testing.assert_close(Drift()(logits), torch.tensor(0.001 * (1 + 9) / 2))
    with pytest.raises(ShapeError, match="Drift"):
        Drift()(torch.randn(2, 3))
