"""Plain element-wise activations, each a tiny shape-preserving block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..registry import ACTIVATIONS

__all__ = ["GELU", "Identity", "LeakyReLU", "ReLU", "SiLU", "Sigmoid", "Tanh"]


class _Elementwise(Block):
    """Shared checks, shape law and example of the element-wise activations (input of rank >= 2)."""

    def __init__(self) -> None:
        super().__init__()

    def _checked(self, x: Tensor) -> Tensor:
        self.check(x, "B C ...")
        return x

    def out_shape(self, x: Shape) -> Shape:
        return tuple(x)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({}, (s.randn(s.B, s.C, s.H, s.W),))


@ACTIVATIONS.register("relu", paper="Nair & Hinton 2010, Rectified Linear Units Improve Restricted Boltzmann "
                      "Machines; DCGAN (Radford et al. 2016) generator, sec. 3")
class ReLU(_Elementwise):
    """``max(x, 0)``. The DCGAN generator's hidden activation.

    Shape:
        - x: (B, C, ...) -- rank >= 2.
        - output: same as x.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self._checked(x))


@ACTIVATIONS.register("leaky_relu", paper="Maas et al. 2013, Rectifier Nonlinearities Improve Neural Network "
                      "Acoustic Models; slope 0.2 from DCGAN (Radford et al. 2016), sec. 3, and ProGAN")
class LeakyReLU(_Elementwise):
    """``x`` for ``x >= 0``, ``negative_slope · x`` otherwise.

    Args:
        negative_slope: the slope for negative inputs; 0.2 as in the DCGAN discriminator and ProGAN.

    Shape:
        - x: (B, C, ...) -- rank >= 2.
        - output: same as x.
    """

    def __init__(self, negative_slope: float = 0.2):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self._checked(x), self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


@ACTIVATIONS.register("tanh", paper="DCGAN (Radford et al. 2016), sec. 3: tanh on the generator output")
class Tanh(_Elementwise):
    """Hyperbolic tangent, maps to (-1, 1): the image output of DCGAN-style generators.

    Shape:
        - x: (B, C, ...) -- rank >= 2.
        - output: same as x.
    """

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self._checked(x))


@ACTIVATIONS.register("sigmoid", paper="Goodfellow et al. 2014, Generative Adversarial Nets, sec. 3 "
                      "(D(x) a probability)")
class Sigmoid(_Elementwise):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, maps to (0, 1): a discriminator's probability output.

    Shape:
        - x: (B, C, ...) -- rank >= 2.
        - output: same as x.
    """

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self._checked(x))


@ACTIVATIONS.register("gelu", paper="Hendrycks & Gimpel 2016, Gaussian Error Linear Units (GELUs), eq. 1")
class GELU(_Elementwise):
    """``x · Φ(x)`` with Φ the standard normal CDF (exact, not the tanh approximation).

    Shape:
        - x: (B, C, ...) -- rank >= 2.
        - output: same as x.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self._checked(x))


@ACTIVATIONS.register("silu", paper="Elfwing et al. 2018, Sigmoid-Weighted Linear Units; Ramachandran et al. "
                      "2017 (Swish, beta = 1)")
class SiLU(_Elementwise):
    """``x · sigmoid(x)`` (Swish with β = 1).

    Shape:
        - x: (B, C, ...) -- rank >= 2.
        - output: same as x.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(self._checked(x))


@ACTIVATIONS.register("identity", paper="no activation: the linear output layer of a GAN critic (WGAN, "
                      "Arjovsky et al. 2017, sec. 3)")
class Identity(_Elementwise):
    """Returns its input unchanged (a placeholder where a recipe wants no activation).

    Shape:
        - x: (B, C, ...) -- rank >= 2.
        - output: same as x.
    """

    def forward(self, x: Tensor) -> Tensor:
        return self._checked(x)
