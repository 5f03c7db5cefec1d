"""Auxiliary losses: AC-GAN's class term, InfoGAN's mutual-information term, KL, L1 and feature matching.

Each is a function and a small class registered in ``LOSSES`` with ``role="auxiliary"``; the class is
called with the inputs named by its ``needs`` and returns a scalar (see :mod:`blocks.objectives.base`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import Sizes
from ..registry import LOSSES
from ..shapes import ShapeError, check_shape
from .base import AuxiliaryLoss, ObjectiveExample

__all__ = [
    "ACLoss", "FeatureMatching", "InfoGANMI", "KLDivergence", "L1",
    "ac_loss", "feature_matching_loss", "gaussian_nll", "infogan_mi_loss", "kl_normal", "l1_loss",
]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


# ---- functions -------------------------------------------------------------------------------------


def ac_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of class logits (B, K) against class indices (B,), mean over the batch."""
    return F.cross_entropy(logits.float(), labels)


def gaussian_nll(x: Tensor, mu: Tensor, logvar: Tensor | None = None) -> Tensor:
    """Negative log-likelihood of x under N(mu, exp(logvar)), summed over the last dim: (B, D) -> (B,).

    ``logvar=None`` fixes the variance to 1 (InfoGAN's ``fix_std=True``, used for its MNIST codes).
    """
    sq = (x - mu).square()
    if logvar is None:
        return (_HALF_LOG_2PI + 0.5 * sq).sum(dim=-1)
    return (_HALF_LOG_2PI + 0.5 * logvar + 0.5 * sq * torch.exp(-logvar)).sum(dim=-1)


def infogan_mi_loss(
    cat_logits: Sequence[Tensor],
    cat_targets: Sequence[Tensor],
    mu: Tensor | None = None,
    logvar: Tensor | None = None,
    cont_targets: Tensor | None = None,
    lambda_cat: float = 1.0,
    lambda_cont: float = 1.0,
) -> Tensor:
    """``λ_cat · Σ_i CE(cat_logits_i, cat_targets_i) + λ_cont · E[-log N(cont_targets; mu, exp(logvar))]``.

    The negative of InfoGAN's variational lower bound L_I (Chen et al. 2016, sec. 5, lemma 5.1) without the
    prior entropy H(c), a constant; each term is a batch mean of a per-sample log-likelihood summed over
    the code's dimensions, as ``logli`` in openai/InfoGAN's distributions.py.
    """
    if not cat_logits and mu is None:
        raise ValueError("infogan_mi_loss: needs at least one categorical code or the continuous codes (mu)")
    total = torch.zeros((), device=(cat_logits[0] if cat_logits else mu).device)
    for logits, target in zip(cat_logits, cat_targets, strict=True):
        total = total + lambda_cat * F.cross_entropy(logits.float(), target)
    if mu is not None:
        lv = None if logvar is None else logvar.float()
        total = total + lambda_cont * gaussian_nll(cont_targets.float(), mu.float(), lv).mean()
    return total


def kl_normal(mu: Tensor, logvar: Tensor, reduction: str = "mean") -> Tensor:
    """KL(N(mu, exp(logvar)) ‖ N(0, I)) = -½ Σ (1 + logvar - mu² - exp(logvar)).

    ``reduction="mean"`` averages over batch and dimensions (StackGAN's ``KL_loss``); ``"sum"`` sums over
    dimensions and averages over the batch (the per-sample KL in nats, Kingma & Welling 2014, appendix B).
    """
    element = 1.0 + logvar.float() - mu.float().square() - logvar.float().exp()  # (B, D)
    if reduction == "mean":
        return -0.5 * element.mean()
    if reduction == "sum":
        return -0.5 * element.sum(dim=1).mean()
    raise ValueError(f"kl_normal: reduction must be 'mean' or 'sum', got {reduction!r}")


def l1_loss(fake: Tensor, real: Tensor) -> Tensor:
    """Mean absolute difference over every element (pix2pix's ``L_L1``, eq. 3)."""
    return F.l1_loss(fake.float(), real.float())


def feature_matching_loss(
    fake_features: Sequence[Sequence[Tensor]],
    real_features: Sequence[Sequence[Tensor]],
    layer_reduction: str = "sum",
) -> Tensor:
    """L1 between discriminator features of fake and real samples, per discriminator and layer.

    ``features[k][i]`` is layer i of discriminator k (intermediate features only, not the final logits).
    Each layer contributes the mean absolute difference (with the real features detached); layers are
    summed (``"sum"``, SPADE's ``GAN_Feat_loss``) or averaged (``"mean"``), discriminators averaged.
    """
    total = torch.zeros((), device=fake_features[0][0].device)
    for fake_layers, real_layers in zip(fake_features, real_features, strict=True):
        per_d = sum(F.l1_loss(f.float(), r.detach().float()) for f, r in zip(fake_layers, real_layers,
                                                                            strict=True))
        if layer_reduction == "mean":
            per_d = per_d / len(fake_layers)
        total = total + per_d
    return total / len(fake_features)


# ---- classes ---------------------------------------------------------------------------------------


@LOSSES.register("ac_loss", role="auxiliary",
                 paper="Odena et al. 2017, Conditional Image Synthesis with Auxiliary Classifier GANs, sec. 3 "
                       "(the class log-likelihood L_C)")
class ACLoss(AuxiliaryLoss):
    """AC-GAN's class term: cross-entropy of D's class logits against the labels (batch mean).

    The trainer adds it for real and fake samples to D's loss, and for fake samples to G's loss (D
    maximises L_S + L_C, G maximises L_C - L_S). Label range is checked on CPU only (a check on CUDA would
    synchronise every step; CUDA's own device assert fires there).

    Shape:
        - logits: (B, K) -- K classes
        - labels: (B,) -- int64 class indices in [0, K)
        - output: () -- a scalar
    """

    needs: ClassVar[tuple[str, ...]] = ("logits", "labels")

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        dims = check_shape(logits, "B D", block=self, name="logits")
        check_shape(labels, "B", block=self, name="labels", B=dims.get("B"))
        if labels.dtype != torch.long:
            raise self.fail(f"labels should be int64 class indices, got {labels.dtype}", TypeError)
        if labels.device.type == "cpu" and labels.numel():
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= logits.shape[1]:
                raise self.fail(f"labels should be in [0, {logits.shape[1]}), got values in [{lo}, {hi}]")
        return ac_loss(logits, labels)

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        return ObjectiveExample({}, (s.randn(s.B, s.N + 1), s.randint(s.N + 1, s.B)))


@LOSSES.register("infogan_mi", role="auxiliary",
                 paper="Chen et al. 2016, InfoGAN, sec. 5 (variational lower bound L_I) and sec. 6 (λ)")
class InfoGANMI(AuxiliaryLoss):
    """InfoGAN's mutual-information term: CE for each categorical code, Gaussian NLL for continuous codes.

    Value: ``λ_cat · Σ_i CE(logits_i, target_i) + λ_cont · mean_B Σ_d NLL(c_d; mu_d, exp(logvar_d))``, the
    negative lower bound on I(c; G(z, c)) up to the constant prior entropy H(c) (which openai/InfoGAN
    subtracts for logging; it has no gradient). Added to both D's (Q shares D's body) and G's loss.

    Defaults: λ_cat = 1 (the paper); λ_cont = 1 as openai/InfoGAN's MNIST launcher (``info_reg_coeff=1.0``
    for both code types; the paper notes a smaller λ is typical for continuous codes). ``logvar=None``
    fixes the variance to 1, as that launcher's ``fix_std=True`` codes. Deviation: the reference adds
    1e-8 inside its logs of probabilities and standard deviations; this uses log-softmax and logvar
    directly (numerically stable, no epsilon).

    Q's parameters come either in parts (``cat_logits``, ``mu``, ``logvar``) or as ``q``, the one tensor
    ``q_head`` writes, laid out ``[logits of each categorical code, mu, logvar]`` and split here; a recipe
    then names one register: ``inputs: {q: D_fake.q, cat_targets: [G.c], cont_targets: G.c_cont}``. The
    split's sizes are ``cat_dims`` and ``cont_dim`` (the head's), by default read from the targets: the
    continuous codes' width, and the rest of ``q`` for a single categorical code.

    Args:
        lambda_cat: weight of the categorical codes' cross-entropies.
        lambda_cont: weight of the continuous codes' negative log-likelihood.
        cat_dims: categories of each categorical code in ``q`` (None: inferred; needed for several codes).
        cont_dim: continuous codes in ``q`` (None: the width of ``cont_targets``, 0 without them).

    Shape:
        - cat_logits: list of (B, K_i) -- Q's logits for each categorical code
        - cat_targets: list of (B,) -- the int64 codes fed to G
        - mu, logvar: (B, D) or None -- Q's Gaussian for the D continuous codes (logvar None: unit variance)
        - cont_targets: (B, D) or None -- the continuous codes fed to G
        - q: (B, sum(cat_dims) + 2·cont_dim) or None -- instead of cat_logits, mu and logvar
        - output: () -- a scalar
    """

    needs: ClassVar[tuple[str, ...]] = ("cat_logits", "cat_targets", "mu", "logvar", "cont_targets", "q")
    _repr_fields = ("lambda_cat", "lambda_cont", "cat_dims", "cont_dim")

    def __init__(self, lambda_cat: float = 1.0, lambda_cont: float = 1.0, cat_dims: Sequence[int] | None = None,
                 cont_dim: int | None = None):
        self.lambda_cat, self.lambda_cont = float(lambda_cat), float(lambda_cont)
        self.cat_dims = None if cat_dims is None else tuple(int(d) for d in cat_dims)
        self.cont_dim = None if cont_dim is None else int(cont_dim)

    def __call__(self, cat_logits: Sequence[Tensor] = (), cat_targets: Sequence[Tensor] = (),
                 mu: Tensor | None = None, logvar: Tensor | None = None, cont_targets: Tensor | None = None,
                 q: Tensor | None = None) -> Tensor:
        if q is not None:
            if len(cat_logits) or mu is not None or logvar is not None:
                raise self.fail("give q or its parts (cat_logits, mu, logvar), not both", TypeError)
            cont_dim = self.cont_dim
            if cont_dim is None:
                cont_dim = 0 if cont_targets is None else int(cont_targets.shape[-1])
            cat_dims = self.cat_dims
            if cat_dims is None:
                if len(cat_targets) > 1:
                    raise self.fail("several categorical codes in q: give cat_dims (the size of each)")
                cat_dims = (int(q.shape[-1]) - 2 * cont_dim,) if len(cat_targets) else ()
            check_shape(q, "B D", block=self, name="q", D=sum(cat_dims) + 2 * cont_dim)
            *cat_logits, mu, logvar = q.split([*cat_dims, cont_dim, cont_dim], dim=1)
            if not cont_dim:
                mu = logvar = None
        cat_logits, cat_targets = list(cat_logits), list(cat_targets)
        if len(cat_logits) != len(cat_targets):
            raise self.fail(f"{len(cat_logits)} categorical logits but {len(cat_targets)} targets")
        if not cat_logits and mu is None:
            raise self.fail("needs at least one categorical code or the continuous codes (mu)")
        B = None
        for i, (logits, target) in enumerate(zip(cat_logits, cat_targets, strict=True)):
            B = check_shape(logits, "B D", block=self, name=f"cat_logits[{i}]", B=B).get("B", B)
            check_shape(target, "B", block=self, name=f"cat_targets[{i}]", B=B)
            if target.dtype != torch.long:
                raise self.fail(f"cat_targets[{i}] should be int64 code indices, got {target.dtype}", TypeError)
        if mu is not None:
            if cont_targets is None:
                raise self.fail("mu was given without cont_targets", TypeError)
            dims = check_shape(mu, "B D", block=self, name="mu", B=B)
            check_shape(cont_targets, "B D", block=self, name="cont_targets", **dims)
            if logvar is not None:
                check_shape(logvar, "B D", block=self, name="logvar", **dims)
        return infogan_mi_loss(cat_logits, cat_targets, mu, logvar, cont_targets, self.lambda_cat,
                               self.lambda_cont)

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        K = s.N + 1
        cat = [s.randn(s.B, K), s.randn(s.B, 2)]
        targets = [s.randint(K, s.B), s.randint(2, s.B)]
        return ObjectiveExample({}, (cat, targets, s.randn(s.B, s.D), s.randn(s.B, s.D), s.rand(s.B, s.D)))


@LOSSES.register("kl", role="auxiliary",
                 paper="Kingma & Welling 2014, Auto-Encoding Variational Bayes, appendix B; Zhang et al. 2017, "
                       "StackGAN, sec. 3.1 (conditioning augmentation KL term)")
class KLDivergence(AuxiliaryLoss):
    """KL divergence of N(mu, exp(logvar)) from the standard normal N(0, I), in closed form.

    ``reduction="mean"`` is StackGAN's ``KL_loss`` (mean over batch and dimensions; its recipe weight is
    ``TRAIN.COEFF.KL``); ``"sum"`` sums over dimensions and averages over the batch.

    Args:
        reduction: ``"mean"`` or ``"sum"`` over the D dimensions (the batch is always averaged).

    Shape:
        - mu: (B, D)
        - logvar: (B, D)
        - output: () -- a scalar
    """

    needs: ClassVar[tuple[str, ...]] = ("mu", "logvar")
    _repr_fields = ("reduction",)

    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"KLDivergence: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def __call__(self, mu: Tensor, logvar: Tensor) -> Tensor:
        dims = check_shape(mu, "B D", block=self, name="mu")
        check_shape(logvar, "B D", block=self, name="logvar", **dims)
        return kl_normal(mu, logvar, self.reduction)

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        return ObjectiveExample({}, (s.randn(s.B, s.D), s.randn(s.B, s.D)))


@LOSSES.register("l1", role="auxiliary", paper="Isola et al. 2017, pix2pix, eq. 3 (L1 reconstruction term)")
class L1(AuxiliaryLoss):
    """Mean absolute error between generated and target images (pix2pix; its λ=100 is the recipe's weight).

    Shape:
        - fake: (B, ...)
        - real: same shape as fake
        - output: () -- a scalar
    """

    needs: ClassVar[tuple[str, ...]] = ("fake", "real")

    def __call__(self, fake: Tensor, real: Tensor) -> Tensor:
        check_shape(fake, "B ...", block=self, name="fake")
        check_shape(real, "B ...", block=self, name="real")
        if fake.shape != real.shape:
            raise ShapeError(type(self).__name__, "real", str(tuple(fake.shape)), tuple(real.shape),
                             "real must have the shape of fake")
        return l1_loss(fake, real)

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        return ObjectiveExample({}, (s.randn(s.B, s.C, s.H, s.W), s.randn(s.B, s.C, s.H, s.W)))


@LOSSES.register("feature_matching", role="auxiliary",
                 paper="Wang et al. 2018, pix2pixHD, eq. 4 (discriminator feature matching); Park et al. 2019, "
                       "SPADE (NVlabs/SPADE GAN_Feat_loss)")
class FeatureMatching(AuxiliaryLoss):
    """L1 feature matching between D's intermediate features of fake and real samples.

    For every discriminator k and layer i: the mean absolute difference of the features, real side
    detached. Layers are summed and discriminators averaged by default: SPADE's ``GAN_Feat_loss`` exactly
    (``Σ_i L1 / num_D``), and pix2pixHD's (weights ``4 / (n_layers_D + 1)`` per layer, 1 at its default of 4
    feature layers, and ``1 / num_D``). ``layer_reduction="mean"`` averages the layers instead. The λ_feat
    = 10 of both papers is the recipe's weight.

    Args:
        layer_reduction: ``"sum"`` (the references) or ``"mean"`` over layers.

    Shape:
        - fake_features: list over discriminators of lists over layers of (B, ...) tensors (a flat list of
          tensors is one discriminator); final logits excluded
        - real_features: the same structure and shapes
        - output: () -- a scalar
    """

    needs: ClassVar[tuple[str, ...]] = ("fake_features", "real_features")
    _repr_fields = ("layer_reduction",)

    def __init__(self, layer_reduction: str = "sum"):
        if layer_reduction not in ("sum", "mean"):
            raise ValueError(f"FeatureMatching: layer_reduction must be 'sum' or 'mean', got {layer_reduction!r}")
        self.layer_reduction = layer_reduction

    def _nested(self, feats: Sequence, name: str) -> list[list[Tensor]]:
        if isinstance(feats, Tensor) or not len(feats):
            raise self.fail(f"{name} should be a non-empty list (per discriminator) of lists of tensors",
                            TypeError)
        nested = [list(feats)] if isinstance(feats[0], Tensor) else [list(f) for f in feats]
        for k, layers in enumerate(nested):
            if not layers or not all(isinstance(t, Tensor) for t in layers):
                raise self.fail(f"{name}[{k}] should be a non-empty list of tensors", TypeError)
        return nested

    def __call__(self, fake_features: Sequence, real_features: Sequence) -> Tensor:
        fake, real = self._nested(fake_features, "fake_features"), self._nested(real_features, "real_features")
        if [len(f) for f in fake] != [len(r) for r in real]:
            raise self.fail(f"fake and real features differ in structure: layers per discriminator "
                            f"{[len(f) for f in fake]} vs {[len(r) for r in real]}")
        for k, (fl, rl) in enumerate(zip(fake, real, strict=True)):
            for i, (f, r) in enumerate(zip(fl, rl, strict=True)):
                if f.shape != r.shape:
                    raise ShapeError(type(self).__name__, f"real_features[{k}][{i}]", str(tuple(f.shape)),
                                     tuple(r.shape), "must match the fake features' shape")
        return feature_matching_loss(fake, real, self.layer_reduction)

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        def feats() -> list[list[Tensor]]:
            return [[s.randn(s.B, s.C, s.H, s.W), s.randn(s.B, s.N, 2, 2)], [s.randn(s.B, s.C, 2, 2)]]

        return ObjectiveExample({}, (feats(), feats()))
