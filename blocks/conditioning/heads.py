"""Discriminator heads that use or predict conditioning: projection, auxiliary classifier, InfoGAN's Q."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..norms.spectral import spectral_norm
from ..registry import CONDITIONING

__all__ = ["ACHead", "ProjectionHead", "QHead", "projection_logits", "split_q_output"]


def projection_logits(h: Tensor, weight: Tensor, bias: Tensor | None, embedded: Tensor) -> Tensor:
    """``ψ(h) + <embedded, h>``: the projection discriminator's output.

    Miyato & Koyama 2018, "cGANs with Projection Discriminator", eq. 3: f(x, y) = yᵀ V φ(x) + ψ(φ(x)),
    with ψ a linear map to one logit and ``embedded`` = yᵀ V (the class's embedding row).

    Args:
        h: pooled features φ(x).
        weight: ψ's weight, (1, C).
        bias: ψ's bias, (1,), or None.
        embedded: the conditioning's embedding, same shape as h.

    Shape:
        - h: (B, C); embedded: (B, C).
        - output: (B, 1).
    """
    return F.linear(h, weight, bias) + (embedded * h).sum(dim=1, keepdim=True)


@CONDITIONING.register(
    "projection_head", consumes=("y",),
    paper="Miyato & Koyama 2018, cGANs with Projection Discriminator, eq. 3 / sec. 3; as in SNGAN-projection "
          "and BigGAN's discriminator",
)
class ProjectionHead(Block):
    """Projection discriminator output: ``linear(h) + <embed(y), h>`` on globally pooled features h.

    Reference layout (pfnet-research/sngan_projection ``SNResNetProjectionDiscriminator``, BigGAN-PyTorch
    ``Discriminator``): ``linear`` C -> 1 with bias and ``embed`` an n_classes x C embedding without bias,
    both spectrally normalised. The global pooling (a sum over H, W in both references, after a ReLU) is
    the recipe's step before this head. Weights keep torch's initialisation (the references use Glorot /
    orthogonal init, applied by the recipe's initialiser).

    Args:
        in_features: C, the width of the pooled features.
        n_classes: number of classes.
        sn: spectral normalisation on ``linear`` and ``embed`` (SNGAN, BigGAN: on).
        sn_eps: power-iteration epsilon.
        sn_iters: power iterations per training forward.
        bias: give ``linear`` a bias (BigGAN: yes; SN-GAN's ``l5 = SNLinear(ch, 1, nobias=True)``: no).

    Shape:
        - h: (B, C); y: (B,) integer class indices.
        - output: (B, 1).
    """

    def __init__(self, in_features: int, n_classes: int = 1000, sn: bool = True, sn_eps: float = 1e-12,
                 sn_iters: int = 1, bias: bool = True):
        super().__init__()
        self.in_features, self.n_classes, self.sn = in_features, n_classes, sn
        self.linear = nn.Linear(in_features, 1, bias=bias)
        self.embed = nn.Embedding(n_classes, in_features)
        if sn:
            spectral_norm(self.linear, n_power_iterations=sn_iters, eps=sn_eps)
            spectral_norm(self.embed, n_power_iterations=sn_iters, eps=sn_eps)

    def _check(self, h: Tensor, y: Tensor) -> None:
        dims = self.check(h, "B D", "h", D=self.in_features)
        b = self.check_indices(y, self.n_classes)
        if dims and b != dims["B"]:
            raise self.fail(f"y has batch {b}, expected {dims['B']} (the batch of h)")

    def forward(self, h: Tensor, y: Tensor) -> Tensor:
        self._check(h, y)
        # Each weight read runs one power iteration in training mode: read each once.
        return projection_logits(h, self.linear.weight, self.linear.bias, F.embedding(y, self.embed.weight))

    def call_function(self, h: Tensor, y: Tensor) -> Tensor:
        return projection_logits(h, self.linear.weight, self.linear.bias, self.embed.weight[y])

    def out_shape(self, h: Shape, y: Shape | None = None) -> Shape:
        return (h[0], 1)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        # Spectral norm off: the generic tests call twice and compare, and each training-mode call advances
        # the power iteration. tests/lib/test_conditioning.py checks the normalised head in eval mode.
        return Example({"in_features": s.D, "n_classes": s.N + 1, "sn": False}, (s.randn(s.B, s.D),),
                       {"y": s.randint(s.N + 1, s.B)})

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, n_classes={self.n_classes}, sn={self.sn}"


@CONDITIONING.register("ac_head", paper="Odena et al. 2017, Conditional Image Synthesis with Auxiliary "
                                        "Classifier GANs (AC-GAN), sec. 3")
class ACHead(Block):
    """AC-GAN's auxiliary classifier: a linear map from D's features to class logits.

    AC-GAN's discriminator outputs P(S | X) and P(C | X); this is the class branch, a fully connected layer
    C -> n_classes (with bias). It returns logits: the class term L_C is the cross-entropy of these logits
    (softmax inside the loss). Optional spectral norm for SN-style discriminators (off in AC-GAN).

    Args:
        in_features: C, the width of the (flattened or pooled) features.
        n_classes: number of classes (AC-GAN ImageNet: 1000; CIFAR-10: 10).
        sn: spectral normalisation on the linear layer.
        sn_eps: power-iteration epsilon.
        sn_iters: power iterations per training forward.

    Shape:
        - h: (B, C).
        - output: (B, n_classes) logits.
    """

    def __init__(self, in_features: int, n_classes: int = 10, sn: bool = False, sn_eps: float = 1e-12,
                 sn_iters: int = 1):
        super().__init__()
        self.in_features, self.n_classes, self.sn = in_features, n_classes, sn
        self.linear = nn.Linear(in_features, n_classes)
        if sn:
            spectral_norm(self.linear, n_power_iterations=sn_iters, eps=sn_eps)

    def forward(self, h: Tensor) -> Tensor:
        self.check(h, "B D", "h", D=self.in_features)
        return F.linear(h, self.linear.weight, self.linear.bias)

    def out_shape(self, h: Shape) -> Shape:
        return (h[0], self.n_classes)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_features": s.D, "n_classes": s.N + 1}, (s.randn(s.B, s.D),))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, n_classes={self.n_classes}, sn={self.sn}"


def split_q_output(q: Tensor, cat_dims: Sequence[int], cont_dim: int) -> tuple[list[Tensor], Tensor, Tensor]:
    """Split a Q-head output into (logits of each categorical code, mean, log-variance).

    Layout along dim 1: ``[logits_0 (cat_dims[0]), ..., logits_k, mu (cont_dim), logvar (cont_dim)]``.

    Shape:
        - q: (B, sum(cat_dims) + 2·cont_dim).
        - output: [(B, cat_dims[i]) ...], (B, cont_dim), (B, cont_dim).
    """
    parts = q.split([*cat_dims, cont_dim, cont_dim], dim=1)
    return list(parts[: len(cat_dims)]), parts[-2], parts[-1]


@CONDITIONING.register(
    "q_head", batch_coupled=True,
    paper="Chen et al. 2016, InfoGAN, sec. 5 and appendix C.1 (MNIST Q network)",
)
class QHead(Block):
    """InfoGAN's Q head on the discriminator's shared features: FC -> BN -> leaky ReLU -> FC.

    Appendix C.1 (MNIST): Q shares D's layers up to the 1024-d features, then FC 128 - BN - lReLU - FC to
    the code distribution's parameters. The output is one tensor laid out as ``[logits of each categorical
    code ..., mean of the continuous codes, log-variance of the continuous codes]`` (``split`` takes it
    apart); the InfoGAN code (openai/InfoGAN ``Gaussian.activate_dist``) reads the second half as log σ² too.
    With ``fixed_std`` (InfoGAN's MNIST choice, ``Uniform(1, fix_std=True)``) σ = 1: the log-variance
    part of the output is 0. The last FC still produces 2·cont_dim outputs for the continuous codes, as
    the reference's does (its parameter count includes the unused half).

    Deviations, both documented: the reference interleaves each distribution's parameters (cat logits,
    then mean and log-variance of code 1, then of code 2); this head groups all means, then all
    log-variances -- a fixed permutation of the last layer's rows, same parameters. The paper's leaky
    ReLU slope is 0.1 (appendix C.1; the code's ``leaky_rectify`` default is 0.01).
    Batch norm: eps 1e-5, momentum 0.1 (the reference's EMA decay 0.9). Linear layers have biases.

    Args:
        in_features: C, the width of D's shared features (InfoGAN MNIST: 1024).
        cat_dims: number of categories of each categorical code (MNIST: one code of 10).
        cont_dim: number of continuous codes (MNIST: 2).
        hidden: width of the hidden layer (128).
        negative_slope: leaky ReLU slope (paper: 0.1).
        fixed_std: the continuous codes' σ is fixed to 1 (log-variance output 0).

    Shape:
        - h: (B, C).
        - output: (B, sum(cat_dims) + 2·cont_dim).
    """

    def __init__(self, in_features: int = 1024, cat_dims: Sequence[int] = (10,), cont_dim: int = 2,
                 hidden: int = 128, negative_slope: float = 0.1, fixed_std: bool = True):
        super().__init__()
        cat_dims = tuple(int(d) for d in cat_dims)
        if any(d < 1 for d in cat_dims) or cont_dim < 0 or not (cat_dims or cont_dim):
            raise ValueError(f"QHead: need at least one code; categorical sizes must be >= 1 and cont_dim "
                             f">= 0, got cat_dims={cat_dims}, cont_dim={cont_dim}")
        self.in_features, self.cat_dims, self.cont_dim = in_features, cat_dims, cont_dim
        self.negative_slope, self.fixed_std = negative_slope, fixed_std
        self.out_features = sum(cat_dims) + 2 * cont_dim
        self.fc1 = nn.Linear(in_features, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, self.out_features)

    def forward(self, h: Tensor) -> Tensor:
        self.check(h, "B D", "h", D=self.in_features)
        q = self.fc2(F.leaky_relu(self.bn(self.fc1(h)), self.negative_slope))
        if self.fixed_std and self.cont_dim:
            n = sum(self.cat_dims) + self.cont_dim
            q = torch.cat([q[:, :n], torch.zeros_like(q[:, n:])], dim=1)  # log σ² = 0
        return q

    def split(self, q: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
        """(list of categorical logits (B, k_i), mu (B, cont_dim), logvar (B, cont_dim))."""
        self.check(q, "B D", "q", D=self.out_features)
        return split_q_output(q, self.cat_dims, self.cont_dim)

    def out_shape(self, h: Shape) -> Shape:
        return (h[0], self.out_features)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_features": s.D, "cat_dims": (s.N + 1, 2), "cont_dim": s.C, "hidden": 8},
                       (s.randn(s.B, s.D),))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, cat_dims={self.cat_dims}, cont_dim={self.cont_dim}, "
                f"fixed_std={self.fixed_std}")
