"""Losses against textbook values and independent reference computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from blocks import (
    L1,
    LOSSES,
    ACLoss,
    FeatureMatching,
    Hinge,
    InfoGANMI,
    KLDivergence,
    LeastSquares,
    MatchingAware,
    Minimax,
    NonSaturating,
    ShapeError,
    Wasserstein,
    wrong_pairs,
)

LOG2 = math.log(2.0)


def zeros(n=4):
    return torch.zeros(n)


# ---- adversarial -----------------------------------------------------------------------------------


def test_minimax_and_non_saturating_at_logit_zero():
    for loss in (Minimax(), NonSaturating()):
        torch.testing.assert_close(loss.d_loss(zeros(), zeros()), torch.tensor(2 * LOG2))
    torch.testing.assert_close(Minimax().g_loss(zeros()), torch.tensor(-LOG2))  # log(1 - 1/2)
    torch.testing.assert_close(NonSaturating().g_loss(zeros()), torch.tensor(LOG2))  # -log(1/2)


def test_logistic_losses_equal_bce_on_probabilities():
    real, fake = torch.randn(6) * 3, torch.randn(6) * 3
    ones, nil = torch.ones(6), torch.zeros(6)
    d_ref = F.binary_cross_entropy(torch.sigmoid(real), ones) + F.binary_cross_entropy(torch.sigmoid(fake), nil)
    torch.testing.assert_close(NonSaturating().d_loss(real, fake), d_ref)
    torch.testing.assert_close(NonSaturating().g_loss(fake), F.binary_cross_entropy(torch.sigmoid(fake), ones))
    torch.testing.assert_close(Minimax().g_loss(fake), torch.log(1 - torch.sigmoid(fake)).mean())


def test_minimax_saturates_where_non_saturating_does_not():
    fake = torch.full((4,), -10.0, requires_grad=True)  # D confidently rejects the fakes
    (g_minimax,) = torch.autograd.grad(Minimax().g_loss(fake), fake)
    (g_ns,) = torch.autograd.grad(NonSaturating().g_loss(fake), fake)
    assert g_minimax.abs().max() < 1e-4 < g_ns.abs().min()


def test_hinge_values():
    loss = Hinge()
    assert loss.d_loss(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, -5.0])).item() == 0.0
    torch.testing.assert_close(loss.d_loss(zeros(), zeros()), torch.tensor(2.0))
    torch.testing.assert_close(loss.d_loss(torch.tensor([0.5]), torch.tensor([0.25])), torch.tensor(0.5 + 1.25))
    torch.testing.assert_close(loss.g_loss(torch.tensor([1.0, 3.0])), torch.tensor(-2.0))


def test_wasserstein_values():
    real, fake = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([-1.0, 0.5])
    torch.testing.assert_close(Wasserstein().d_loss(real, fake), torch.tensor(-0.25 - 2.0))
    torch.testing.assert_close(Wasserstein().g_loss(fake), torch.tensor(0.25))


def test_least_squares_values():
    loss = LeastSquares()  # a=0, b=1, c=1
    assert loss.d_loss(torch.ones(3), torch.zeros(3)).item() == 0.0
    assert loss.g_loss(torch.ones(3)).item() == 0.0
    torch.testing.assert_close(loss.d_loss(zeros(), zeros()), torch.tensor(0.5))  # ½(0-1)² + ½·0
    torch.testing.assert_close(loss.g_loss(torch.tensor([3.0])), torch.tensor(2.0))  # ½(3-1)²
    sym = LeastSquares(a=-1.0, b=1.0, c=0.0)
    torch.testing.assert_close(sym.d_loss(torch.tensor([0.0]), torch.tensor([1.0])), torch.tensor(0.5 + 2.0))
    torch.testing.assert_close(sym.g_loss(torch.tensor([2.0])), torch.tensor(2.0))


def test_matching_aware_weighting_is_stackgans():
    real, fake, wrong = torch.randn(5), torch.randn(5), torch.randn(4)
    bce = torch.nn.BCELoss()
    p = torch.sigmoid
    stackgan = bce(p(real), torch.ones(5)) + (bce(p(fake), torch.zeros(5)) + bce(p(wrong), torch.zeros(4))) * 0.5
    torch.testing.assert_close(MatchingAware().d_loss(real, fake, wrong), stackgan)
    torch.testing.assert_close(MatchingAware().d_loss(zeros(), zeros(), zeros(3)), torch.tensor(2 * LOG2))
    torch.testing.assert_close(MatchingAware().g_loss(fake), bce(p(fake), torch.ones(5)))
    with pytest.raises(TypeError, match=r"MatchingAware.*wrong_logits"):
        MatchingAware().d_loss(real, fake)


def test_wrong_pairs_shift_the_text_by_one():
    images, text = torch.arange(4.0).view(4, 1), torch.arange(10.0, 14.0).view(4, 1)
    img, txt = wrong_pairs(images, text)
    assert img.flatten().tolist() == [0, 1, 2] and txt.flatten().tolist() == [11, 12, 13]


def test_registered_roles():
    roles = {e.key: e.extra["role"] for e in LOSSES.entries()}
    assert {k for k, r in roles.items() if r == "adversarial"} == {
        "minimax", "non_saturating", "hinge", "wasserstein", "least_squares", "matching_aware"}
    assert {k for k, r in roles.items() if r == "auxiliary"} == {
        "ac_loss", "infogan_mi", "kl", "l1", "feature_matching"}


# ---- auxiliary -------------------------------------------------------------------------------------


def test_ac_loss_is_class_cross_entropy():
    logits, labels = torch.randn(4, 3), torch.tensor([0, 2, 1, 2])
    by_hand = -torch.stack([logits[i, labels[i]] - logits[i].exp().sum().log() for i in range(4)]).mean()
    torch.testing.assert_close(ACLoss()(logits, labels), by_hand)
    with pytest.raises(ValueError, match=r"ACLoss.*\[0, 3\)"):
        ACLoss()(logits, torch.tensor([0, 3, 1, 2]))
    with pytest.raises(TypeError, match=r"ACLoss.*int64"):
        ACLoss()(logits, labels.float())
    with pytest.raises(ShapeError, match="ACLoss"):
        ACLoss()(logits, labels[:3])


def test_infogan_mi_equals_hand_computed_ce_plus_nll():
    torch.manual_seed(0)
    cat = [torch.randn(3, 10), torch.randn(3, 4)]
    targets = [torch.tensor([1, 9, 0]), torch.tensor([3, 3, 2])]
    mu, logvar, c = torch.randn(3, 2), torch.randn(3, 2) * 0.5, torch.rand(3, 2) * 2 - 1
    ce = sum(-(torch.log_softmax(lg, 1)[torch.arange(3), t]).mean() for lg, t in zip(cat, targets, strict=True))
    var = logvar.exp()
    nll = (0.5 * torch.log(2 * math.pi * var) + (c - mu) ** 2 / (2 * var)).sum(1).mean()
    torch.testing.assert_close(InfoGANMI()(cat, targets, mu, logvar, c), ce + nll)
    torch.testing.assert_close(InfoGANMI(lambda_cat=1.0, lambda_cont=0.1)(cat, targets, mu, logvar, c),
                               ce + 0.1 * nll)
    # fixed unit variance (InfoGAN's fix_std) and the Normal log-density as an independent reference
    unit = -Normal(mu, torch.ones_like(mu)).log_prob(c).sum(1).mean()
    torch.testing.assert_close(InfoGANMI()([], [], mu, None, c), unit)
    torch.testing.assert_close(InfoGANMI()(cat, targets), ce)


def test_infogan_mi_errors_name_the_loss():
    with pytest.raises(ValueError, match="InfoGANMI"):
        InfoGANMI()([], [])
    with pytest.raises(ValueError, match="InfoGANMI"):
        InfoGANMI()([torch.randn(2, 3)], [])
    with pytest.raises(TypeError, match="InfoGANMI"):
        InfoGANMI()([], [], torch.randn(2, 2))
    with pytest.raises(ShapeError, match="InfoGANMI"):
        InfoGANMI()([], [], torch.randn(2, 2), None, torch.randn(2, 3))


def test_kl_closed_form():
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))  # (4, 3)
    torch.testing.assert_close(KLDivergence()(mu, logvar), ref.mean())  # StackGAN: mean over all
    torch.testing.assert_close(KLDivergence("sum")(mu, logvar), ref.sum(1).mean())
    assert KLDivergence()(torch.zeros(2, 3), torch.zeros(2, 3)).item() == 0.0
    with pytest.raises(ValueError, match="KLDivergence"):
        KLDivergence("none")


def test_l1_value_and_shape_error():
    fake, real = torch.tensor([[1.0, -1.0]]), torch.tensor([[0.0, 1.0]])
    torch.testing.assert_close(L1()(fake, real), torch.tensor(1.5))
    with pytest.raises(ShapeError, match="L1"):
        L1()(fake, real.T)


def test_feature_matching_sums_layers_and_averages_discriminators():
    f = [[torch.zeros(2, 3, 2, 2), torch.ones(2, 4)], [torch.full((2, 5), 3.0)]]
    r = [[torch.ones(2, 3, 2, 2), torch.ones(2, 4)], [torch.zeros(2, 5)]]
    torch.testing.assert_close(FeatureMatching()(f, r), torch.tensor(((1.0 + 0.0) + 3.0) / 2))
    torch.testing.assert_close(FeatureMatching("mean")(f, r), torch.tensor(((1.0 + 0.0) / 2 + 3.0) / 2))
    torch.testing.assert_close(FeatureMatching()(f[0], r[0]), torch.tensor(1.0))  # one discriminator


def test_feature_matching_detaches_real_features_and_checks_structure():
    fake = [[torch.randn(2, 3, requires_grad=True)]]
    real = [[torch.randn(2, 3, requires_grad=True)]]
    FeatureMatching()(fake, real).backward()
    assert fake[0][0].grad is not None and real[0][0].grad is None
    with pytest.raises(ValueError, match=r"FeatureMatching.*structure"):
        FeatureMatching()([[torch.randn(2, 3)], [torch.randn(2, 3)]], [[torch.randn(2, 3)]])
    with pytest.raises(ShapeError, match="FeatureMatching"):
        FeatureMatching()([[torch.randn(2, 3)]], [[torch.randn(2, 4)]])
