"""Initialisers: orthogonality, the moments of each distribution, and what they must leave alone."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from blocks import (
    INITS,
    AdaIN,
    BatchNorm,
    ConditionalBatchNorm,
    Conv2dLayer,
    LinearLayer,
    UnknownKeyError,
    apply_init,
    init_normal,
    init_orthogonal,
    init_spade_xavier,
)


def as_matrix(w: torch.Tensor) -> torch.Tensor:
    return w.detach().flatten(1)


@pytest.mark.parametrize(
    "layer",
    [nn.Linear(16, 40), nn.Linear(40, 16), nn.Conv2d(3, 8, 3), nn.Conv2d(8, 64, 1), nn.Embedding(10, 6)],
    ids=["tall", "wide", "conv-wide", "conv-tall", "embed-tall"])
def test_orthogonal_gives_orthonormal_rows_or_columns(layer):
    init_orthogonal(layer)
    w = as_matrix(layer.weight)
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w  # WWᵀ = I for wide, WᵀW = I for tall
    torch.testing.assert_close(gram, torch.eye(min(rows, cols)), atol=1e-5, rtol=0)


def test_orthogonal_reaches_the_original_under_spectral_norm_and_keeps_biases():
    layer = Conv2dLayer(4, 6, sn=True)
    bias = layer.conv.bias.detach().clone()
    apply_init(layer, "orthogonal")
    w = as_matrix(layer.conv.parametrizations.weight.original)
    torch.testing.assert_close(w @ w.T, torch.eye(6), atol=1e-5, rtol=0)
    assert torch.equal(layer.conv.bias, bias)  # BigGAN leaves biases at torch's default


def test_normal_statistics_biases_and_norm_weights():
    net = nn.Sequential(LinearLayer(400, 500), nn.Conv2d(64, 64, 3), BatchNorm(4000), nn.BatchNorm2d(3000))
    init_normal(net)
    for w in (net[0].linear.weight.detach(), net[1].weight.detach()):
        assert abs(float(w.mean())) < 1e-3
        assert abs(float(w.std()) / 0.02 - 1) < 0.02
    for bias in (net[0].linear.bias, net[1].bias, net[2].bias, net[3].bias):
        assert torch.equal(bias, torch.zeros_like(bias))
    # DCGAN's weights_init: BatchNorm weight ~ N(1, 0.02).
    for w in (net[2].weight.detach(), net[3].weight.detach()):
        assert abs(float(w.mean()) - 1) < 2e-3
        assert abs(float(w.std()) / 0.02 - 1) < 0.1


def test_kaiming_and_xavier_variances():
    conv = nn.Conv2d(32, 256, 3)
    apply_init(conv, "kaiming")
    fan_in, fan_out = 32 * 9, 256 * 9
    w = conv.weight.detach()
    assert abs(float(w.var()) / (2 / fan_in) - 1) < 0.03  # He: N(0, 2 / fan_in)
    apply_init(conv, "xavier")
    bound = math.sqrt(6 / (fan_in + fan_out))
    w = conv.weight.detach()
    assert float(w.abs().max()) <= bound
    assert abs(float(w.var()) / (bound**2 / 3) - 1) < 0.03  # U(-a, a) has variance a²/3


def test_spade_xavier_is_xavier_normal_with_gain_002_under_spectral_norm_too():
    net = nn.Sequential(Conv2dLayer(32, 256, 3, sn=True), nn.Linear(300, 500), nn.BatchNorm2d(4000),
                        nn.BatchNorm2d(8, affine=False))
    init_spade_xavier(net)
    conv_w = net[0].conv.parametrizations.weight.original.detach()
    for w, fan_in, fan_out in ((conv_w, 32 * 9, 256 * 9), (net[1].weight.detach(), 300, 500)):
        assert abs(float(w.mean())) < 1e-4
        assert abs(float(w.var()) / (0.02**2 * 2 / (fan_in + fan_out)) - 1) < 0.03
    for bias in (net[0].conv.bias, net[1].bias, net[2].bias):
        assert torch.equal(bias, torch.zeros_like(bias))
    bn_w = net[2].weight.detach()
    assert abs(float(bn_w.mean()) - 1) < 2e-3  # BatchNorm2d weight ~ N(1, 0.02)
    assert abs(float(bn_w.std()) / 0.02 - 1) < 0.1


class Equalized(nn.Module):
    """Stands in for an equalized-lr layer: declares its own runtime scaling."""

    equalized = True

    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(4, 4)


@pytest.mark.parametrize("scheme", ["normal", "orthogonal", "xavier", "kaiming", "spade_xavier"])
def test_every_scheme_skips_equalized_layers_and_cbn_class_gains(scheme):
    net = nn.ModuleDict({"eq": Equalized(), "adain": AdaIN(3, 5), "cbn": ConditionalBatchNorm(3, n_classes=4),
                         "lin": nn.Linear(5, 5)})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert apply_init(net, scheme) is net
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "lin.weight" in changed
    assert not any(k.startswith(("eq.", "adain.", "cbn.")) for k in changed), changed


def test_meta_tensors_are_skipped_and_unknown_schemes_name_the_closest():
    with torch.device("meta"):
        net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm2d(3))
    for scheme in INITS:
        apply_init(net, scheme)
    assert INITS.list() == ["kaiming", "normal", "orthogonal", "spade_xavier", "xavier"]
    with pytest.raises(UnknownKeyError, match="orthogonal"):
        apply_init(nn.Linear(2, 2), "orthogonl")


@pytest.mark.parametrize("scheme", ["orthogonal", "normal", "xavier", "kaiming", "spade_xavier"])
def test_spectral_norm_estimate_follows_the_reinitialised_weight(scheme):
    """The stored u, v are re-estimated after the refill, so σ = uᵀWv (what eval mode divides by) is the new
    weight's largest singular value, not a stale number near 0 or negative."""
    torch.manual_seed(0)
    layer = Conv2dLayer(16, 32, sn=True)
    apply_init(layer, scheme)
    sn = layer.conv.parametrizations.weight[0]
    w = as_matrix(layer.conv.parametrizations.weight.original)
    sigma = torch.vdot(sn._u, w @ sn._v)
    torch.testing.assert_close(sigma, torch.linalg.matrix_norm(w, ord=2), rtol=0.05, atol=0)
    layer.eval()
    torch.testing.assert_close(torch.linalg.matrix_norm(as_matrix(layer.conv.weight), ord=2),
                               torch.tensor(1.0), rtol=0.05, atol=0)
