"""Adversarial losses: minimax, non-saturating, hinge, Wasserstein, least squares, matching-aware.

Every loss takes raw discriminator logits (no sigmoid) and uses softplus forms for the logistic losses
(``-log σ(x) = softplus(-x)``, ``-log(1 - σ(x)) = softplus(x)``), never ``log(sigmoid(x))``. The interface
(``d_loss``, ``g_loss``, shapes, reductions) is described in :mod:`blocks.objectives.base`.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from ..core import Sizes
from ..registry import LOSSES
from .base import AdversarialLoss, ObjectiveExample

__all__ = [
    "Hinge", "LeastSquares", "MatchingAware", "Minimax", "NonSaturating", "Wasserstein",
    "bce_d_loss", "hinge_d_loss", "hinge_g_loss", "least_squares_d_loss", "least_squares_g_loss",
    "matching_aware_d_loss", "minimax_g_loss", "non_saturating_g_loss", "wasserstein_d_loss",
    "wasserstein_g_loss", "wrong_pairs",
]


# ---- functions -------------------------------------------------------------------------------------


def bce_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``-E[log D(x)] - E[log(1 - D(G(z)))]`` = ``E[softplus(-real)] + E[softplus(fake)]``.

    The discriminator side of Goodfellow et al. 2014, eq. 1 (shared by the minimax and non-saturating
    games); equals 2·log 2 when every logit is 0.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def minimax_g_loss(fake_logits: Tensor) -> Tensor:
    """``E[log(1 - D(G(z)))]`` = ``-E[softplus(fake)]`` (Goodfellow et al. 2014, eq. 1; saturates)."""
    return -F.softplus(fake_logits).mean()


def non_saturating_g_loss(fake_logits: Tensor) -> Tensor:
    """``-E[log D(G(z))]`` = ``E[softplus(-fake)]`` (Goodfellow et al. 2014, sec. 3)."""
    return F.softplus(-fake_logits).mean()


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]`` (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g_loss(fake_logits: Tensor) -> Tensor:
    """``-E[D(G(z))]`` (the generator side of the hinge game)."""
    return -fake_logits.mean()


def wasserstein_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``E[f(G(z))] - E[f(x)]``: the critic maximises the difference (Arjovsky et al. 2017, Algorithm 1)."""
    return fake_logits.mean() - real_logits.mean()


def wasserstein_g_loss(fake_logits: Tensor) -> Tensor:
    """``-E[f(G(z))]`` (Arjovsky et al. 2017, Algorithm 1)."""
    return -fake_logits.mean()


def least_squares_d_loss(real_logits: Tensor, fake_logits: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """``½E[(D(x) - b)²] + ½E[(D(G(z)) - a)²]`` (Mao et al. 2017, eq. 2)."""
    return 0.5 * (real_logits - b).square().mean() + 0.5 * (fake_logits - a).square().mean()


def least_squares_g_loss(fake_logits: Tensor, c: float = 1.0) -> Tensor:
    """``½E[(D(G(z)) - c)²]`` (Mao et al. 2017, eq. 2)."""
    return 0.5 * (fake_logits - c).square().mean()


def matching_aware_d_loss(real_logits: Tensor, fake_logits: Tensor, wrong_logits: Tensor) -> Tensor:
    """``-E[log s_r] - ½(E[log(1 - s_f)] + E[log(1 - s_w)])`` with softplus forms.

    s_r: real image with its text, s_f: fake image with its text, s_w: real image with mismatched text
    (Reed et al. 2016, Algorithm 1, GAN-CLS; StackGAN code: ``errD_real + (errD_fake + errD_wrong) * 0.5``).
    """
    return F.softplus(-real_logits).mean() + 0.5 * (
        F.softplus(fake_logits).mean() + F.softplus(wrong_logits).mean())


def wrong_pairs(real: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
    """StackGAN's mismatched pairs: ``(real[:-1], cond[1:])`` -- each image with the next sample's text.

    Feed them through the conditional discriminator to get the ``wrong_logits`` of
    :class:`MatchingAware` (B - 1 of them, as in StackGAN's ``compute_discriminator_loss``).
    """
    return real[:-1], cond[1:]


# ---- classes ---------------------------------------------------------------------------------------


@LOSSES.register("minimax", role="adversarial",
                 paper="Goodfellow et al. 2014, Generative Adversarial Nets, eq. 1 (minimax value function)")
class Minimax(AdversarialLoss):
    """The original, saturating minimax game: G minimises ``log(1 - D(G(z)))``.

    D: ``E[softplus(-real)] + E[softplus(fake)]``; G: ``-E[softplus(fake)]``. At logits 0 these are
    2·log 2 and -log 2. G's gradient vanishes when D rejects the fakes confidently (the reason for
    :class:`NonSaturating`).

    Shape:
        - real_logits, fake_logits: (B,), (B, 1) or (B, 1, H, W)
        - output: () -- a scalar
    """

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return bce_d_loss(self.logits(real_logits, "real_logits"), self.logits(fake_logits, "fake_logits"))

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return minimax_g_loss(self.logits(fake_logits, "fake_logits"))


@LOSSES.register("non_saturating", role="adversarial",
                 paper="Goodfellow et al. 2014, Generative Adversarial Nets, sec. 3 (G maximises log D(G(z)))")
class NonSaturating(AdversarialLoss):
    """The non-saturating game: D as in the minimax game, G maximises ``log D(G(z))``.

    D: ``E[softplus(-real)] + E[softplus(fake)]``; G: ``E[softplus(-fake)]`` (log 2 at logit 0). The loss
    of DCGAN, StyleGAN and StyleGAN2 (``softplus(-gen_logits)`` in NVlabs' loss.py).

    Shape:
        - real_logits, fake_logits: (B,), (B, 1) or (B, 1, H, W)
        - output: () -- a scalar
    """

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return bce_d_loss(self.logits(real_logits, "real_logits"), self.logits(fake_logits, "fake_logits"))

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return non_saturating_g_loss(self.logits(fake_logits, "fake_logits"))


@LOSSES.register("hinge", role="adversarial",
                 paper="Lim & Ye 2017, Geometric GAN; Miyato et al. 2018, SN-GAN, sec. 4 (hinge loss)")
class Hinge(AdversarialLoss):
    """Hinge loss (SN-GAN, SAGAN, BigGAN): D ``E[relu(1 - real)] + E[relu(1 + fake)]``, G ``-E[fake]``.

    D's loss is 0 once real logits are >= 1 and fake logits <= -1.

    Shape:
        - real_logits, fake_logits: (B,), (B, 1) or (B, 1, H, W)
        - output: () -- a scalar
    """

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return hinge_d_loss(self.logits(real_logits, "real_logits"), self.logits(fake_logits, "fake_logits"))

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return hinge_g_loss(self.logits(fake_logits, "fake_logits"))


@LOSSES.register("wasserstein", role="adversarial",
                 paper="Arjovsky et al. 2017, Wasserstein GAN, Algorithm 1; Gulrajani et al. 2017, WGAN-GP")
class Wasserstein(AdversarialLoss):
    """Wasserstein critic loss: critic ``E[f(fake)] - E[f(real)]``, generator ``-E[f(fake)]``.

    The critic must be kept (approximately) 1-Lipschitz: pair with ``weight_clip`` (WGAN) or
    ``gradient_penalty`` (WGAN-GP, with ``drift`` in ProGAN).

    Shape:
        - real_logits, fake_logits: (B,), (B, 1) or (B, 1, H, W)
        - output: () -- a scalar
    """

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return wasserstein_d_loss(self.logits(real_logits, "real_logits"),
                                  self.logits(fake_logits, "fake_logits"))

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return wasserstein_g_loss(self.logits(fake_logits, "fake_logits"))


@LOSSES.register("least_squares", role="adversarial",
                 paper="Mao et al. 2017, Least Squares GANs, eq. 2 (a-b-c coding) and sec. 3.2.3 (0-1 coding)")
class LeastSquares(AdversarialLoss):
    """LSGAN: D ``½E[(real - b)²] + ½E[(fake - a)²]``, G ``½E[(fake - c)²]`` on the raw D output.

    Defaults are the paper's 0-1 coding (a=0 fake label, b=1 real label, c=1 the value G wants D to
    believe); a=-1, b=1, c=0 is its eq. 8 choice (b - c = 1, b - a = 2).

    Deviation: the means follow the paper's expectations; the authors' TensorFlow code sums the squares
    over the batch (``tf.nn.l2_loss``), i.e. B times these values -- a rescaling Adam largely absorbs.

    Args:
        a: target for fake samples in D's loss.
        b: target for real samples in D's loss.
        c: target for fake samples in G's loss.

    Shape:
        - real_logits, fake_logits: (B,), (B, 1) or (B, 1, H, W)
        - output: () -- a scalar
    """

    _repr_fields = ("a", "b", "c")

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0):
        self.a, self.b, self.c = float(a), float(b), float(c)

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return least_squares_d_loss(self.logits(real_logits, "real_logits"),
                                    self.logits(fake_logits, "fake_logits"), self.a, self.b)

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return least_squares_g_loss(self.logits(fake_logits, "fake_logits"), self.c)


@LOSSES.register("matching_aware", role="adversarial",
                 paper="Reed et al. 2016, Generative Adversarial Text to Image Synthesis, Algorithm 1 (GAN-CLS); "
                       "Zhang et al. 2017, StackGAN (hanzhanggit/StackGAN-Pytorch compute_discriminator_loss)")
class MatchingAware(AdversarialLoss):
    """Matching-aware discriminator loss of GAN-INT-CLS and StackGAN, with a third, mismatched-text term.

    D: ``E[softplus(-real)] + ½·(E[softplus(fake)] + E[softplus(wrong)])`` where ``wrong`` are the logits
    of real images paired with the wrong text -- StackGAN's exact weighting (``errD_real + (errD_fake +
    errD_wrong) * 0.5``, BCE on sigmoid outputs there, softplus on logits here). StackGAN builds the wrong
    pairs as ``(real[:-1], text[1:])`` (see :func:`wrong_pairs`). G: non-saturating, ``E[softplus(-fake)]``
    (StackGAN's ``compute_generator_loss``). StackGAN's stage-I/II discriminators have no unconditional
    head, so its unconditional-logits branch (a 1/2, 1/3 averaging) is not implemented.

    Shape:
        - real_logits, fake_logits: (B,), (B, 1) or (B, 1, H, W)
        - wrong_logits: (B',) or (B', 1) -- B' = B - 1 in StackGAN
        - output: () -- a scalar
    """

    needs: ClassVar[tuple[str, ...]] = ("real_logits", "fake_logits", "wrong_logits")

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor, wrong_logits: Tensor | None = None) -> Tensor:
        if wrong_logits is None:
            raise TypeError("MatchingAware: d_loss needs wrong_logits, the logits of real images paired with "
                            "mismatched text (see blocks.wrong_pairs)")
        return matching_aware_d_loss(self.logits(real_logits, "real_logits"),
                                     self.logits(fake_logits, "fake_logits"),
                                     self.logits(wrong_logits, "wrong_logits"))

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return non_saturating_g_loss(self.logits(fake_logits, "fake_logits"))

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        return ObjectiveExample({}, (s.randn(s.B), s.randn(s.B, 1)), {"wrong_logits": s.randn(s.B - 1)})
