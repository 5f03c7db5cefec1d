"""StackGAN's conditioning augmentation: a reparameterised Gaussian sample of the text conditioning."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..registry import CONDITIONING

__all__ = ["ConditioningAugmentation", "conditioning_augmentation", "kl_divergence"]


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), averaged over every element, as StackGAN computes it.

    StackGAN-Pytorch ``KL_loss``: ``-0.5 · mean(1 + logvar - mu² - exp(logvar))`` -- the mean over batch and
    dimensions (not the per-sample sum of the closed form; the loss weight λ = 1 or 2 is tuned for this).

    Shape:
        - mu, logvar: (B, D).
        - output: () scalar.
    """
    return -0.5 * torch.mean(1 + logvar - mu.square() - logvar.exp())


def conditioning_augmentation(
    text: Tensor, weight: Tensor, bias: Tensor | None, c_dim: int, noise: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``c = mu + eps · exp(logvar / 2)`` with ``[mu, logvar] = relu(fc(text))``.

    Zhang et al. 2017, "StackGAN", sec. 3.2 (ĉ = μ0 + σ0 ⊙ ε, ε ~ N(0, I)), as StackGAN-v1's CA_NET
    computes it.

    Args:
        text: the text embedding φ_t.
        weight: fc weight, (2·c_dim, text_dim).
        bias: fc bias, (2·c_dim,) or None.
        c_dim: width of the conditioning code.
        noise: ε, (B, c_dim); drawn from N(0, I) with the global generator when None.

    Shape:
        - text: (B, D).
        - output: c, mu, logvar, each (B, c_dim).
    """
    x = F.relu(F.linear(text, weight, bias))  # (B, 2·c_dim)
    mu, logvar = x[:, :c_dim], x[:, c_dim:]
    eps = torch.randn_like(mu) if noise is None else noise
    return mu + eps * torch.exp(0.5 * logvar), mu, logvar


@CONDITIONING.register(
    "conditioning_augmentation", emits=("kl",),
    paper="Zhang et al. 2017, StackGAN, sec. 3.2 (conditioning augmentation, eq. 3 KL term)",
)
class ConditioningAugmentation(Block):
    """Conditioning augmentation (StackGAN-v1 CA_NET): sample the conditioning code from N(mu(φ_t), σ(φ_t)).

    One fully connected layer text_dim -> 2·c_dim with bias, followed by a ReLU (StackGAN-v1's code applies
    the ReLU before splitting, so mu and logvar are both >= 0; StackGAN++ uses a GLU instead -- this block
    follows v1), split into mu and logvar, then ``c = mu + eps · exp(logvar / 2)``, ε ~ N(0, I) from the
    global generator. As in the reference it samples in eval mode too (it has no deterministic switch).
    Returns ``(c, {"kl": KL})`` with KL = ``kl_divergence(mu, logvar)``, a scalar averaged over all elements
    exactly as the reference's ``KL_loss``; the objective weights it (StackGAN: λ = 1 for stage I, 2 for II).
    Weights keep torch's initialisation (StackGAN re-initialises Linear weights N(0, 0.02), bias 0).

    Args:
        text_dim: width of the text embedding (StackGAN: 1024, char-CNN-RNN).
        c_dim: width of the conditioning code (StackGAN: 128).

    Shape:
        - text: (B, text_dim).
        - output: c (B, c_dim), and the side output {"kl": ()}.
    """

    def __init__(self, text_dim: int = 1024, c_dim: int = 128):
        super().__init__()
        self.text_dim, self.c_dim = text_dim, c_dim
        self.fc = nn.Linear(text_dim, 2 * c_dim)

    def encode(self, text: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of the conditioning distribution, each (B, c_dim)."""
        self.check(text, "B D", "text", D=self.text_dim)
        x = F.relu(self.fc(text))
        return x[:, : self.c_dim], x[:, self.c_dim :]

    def forward(self, text: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        self.check(text, "B D", "text", D=self.text_dim)
        c, mu, logvar = conditioning_augmentation(text, self.fc.weight, self.fc.bias, self.c_dim)
        return c, {"kl": kl_divergence(mu, logvar)}

    def call_function(self, text: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        c, mu, logvar = conditioning_augmentation(text, self.fc.weight, self.fc.bias, self.c_dim)
        return c, {"kl": kl_divergence(mu, logvar)}

    def out_shape(self, text: Shape) -> Shape:
        return (text[0], self.c_dim)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"text_dim": s.D, "c_dim": s.C}, (s.randn(s.B, s.D),))

    def extra_repr(self) -> str:
        return f"text_dim={self.text_dim}, c_dim={self.c_dim}"
