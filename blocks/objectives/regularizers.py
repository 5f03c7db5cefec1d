"""Regularizers: gradient penalty, R1, path length, orthogonal (full and off-diagonal), weight clip, drift.

Each is a function that does the maths and a small ``nn.Module`` registered in ``REGULARIZERS`` with
``weight``, ``interval``, ``network`` and ``needs`` (the contract is in :mod:`blocks.objectives.base`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..core import Sizes
from ..registry import REGULARIZERS
from ..shapes import ShapeError, check_shape
from .base import ObjectiveExample, Regularizer, input_grad

__all__ = [
    "Drift", "GradientPenalty", "OffDiagOrthogonal", "Orthogonal", "PathLength", "R1", "WeightClip",
    "clip_weights_", "drift_penalty", "gradient_penalty", "orthogonal_penalty", "orthogonal_weights",
    "path_length_penalty", "r1_penalty",
]

Critic = Callable[..., Tensor]


# ---- functions -------------------------------------------------------------------------------------


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor, weight: float = 10.0, target: float = 1.0,
                     **cond: Tensor) -> Tensor:
    """``λ / t² · E[(‖∇_x̂ D(x̂)‖₂ - t)²]`` at ``x̂ = real + α(fake - real)``, α ~ U[0, 1] per sample.

    Gulrajani et al. 2017, eq. 3 and Algorithm 1 (λ = 10, t = 1); ProGAN's ``D_wgangp_acgan`` generalises
    the target t (``wgan_target``) and scales by 1/t². The norm is over all of a sample's dims.
    """
    real, fake = real.detach(), fake.detach()
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), dtype=real.dtype, device=real.device)
    mixed = (real + (fake - real) * alpha).requires_grad_(True)
    grad = input_grad(critic(mixed, **cond), mixed)
    norms = torch.linalg.vector_norm(grad.flatten(1).float(), dim=1)  # (B,)
    return weight / target**2 * (norms - target).square().mean()


def r1_penalty(real_logits: Tensor, real: Tensor, gamma: float = 10.0) -> Tensor:
    """``γ/2 · E[‖∇_x D(x)‖²]`` on real samples (Mescheder et al. 2018, eq. 9).

    ``real`` must require grad and ``real_logits`` be computed from it, so the penalty can share the
    forward pass of the discriminator's main loss (as NVlabs' StyleGAN2 does when not lazy).
    """
    grad = input_grad(real_logits, real)
    return gamma / 2 * grad.float().square().flatten(1).sum(dim=1).mean()


def path_length_penalty(images: Tensor, ws: Tensor, pl_mean: Tensor, decay: float = 0.01
                        ) -> tuple[Tensor, Tensor]:
    """StyleGAN2's path length penalty ``E[(‖J_wᵀ y‖₂ - a)²]`` with ``y ~ N(0, I) / √(HW)``.

    Karras et al. 2020, sec. 3.2, eq. 4, as NVlabs' loss.py: the lengths are the per-layer norms of the
    gradient of ``Σ images · y`` w.r.t. ws, averaged over the layers; ``a`` is their running mean,
    ``pl_mean.lerp(mean length, decay)``, updated before the penalty is taken (and, as there, left in the
    graph).

    Returns:
        the penalty (a scalar, unweighted) and the updated running mean (to store, detached).
    """
    H, W = images.shape[2], images.shape[3]
    noise = torch.randn_like(images) / math.sqrt(H * W)
    grad = input_grad(images * noise, ws)  # (B, ..., D)
    lengths = grad.float().square().sum(dim=-1)
    lengths = lengths.flatten(1).mean(dim=1).sqrt() if lengths.dim() > 1 else lengths.sqrt()  # (B,)
    new_mean = pl_mean.lerp(lengths.mean(), decay)
    return (lengths - new_mean).square().mean(), new_mean


def orthogonal_weights(module: nn.Module, skip: Sequence[str] = ()) -> list[Tensor]:
    """The parameters BigGAN's ``utils.ortho`` regularises: every one with 2+ dims, minus ``skip``.

    ``skip`` holds parameter or submodule names (BigGAN skips the generator's shared class embedding,
    ``skip=("shared",)``). Conv weights count as (out, in·kh·kw) matrices.
    """
    def skipped(name: str) -> bool:
        return any(name == s or name.startswith(s + ".") for s in skip)

    return [p for name, p in module.named_parameters() if p.dim() >= 2 and not skipped(name)]


def orthogonal_penalty(weights: Iterable[Tensor], offdiag: bool = True) -> Tensor:
    """``Σ_W ½‖W Wᵀ ⊙ (1 - I)‖²_F`` (off-diagonal) or ``Σ_W ½‖W Wᵀ - I‖²_F`` (full), W as (out, -1).

    The ½ makes the gradient exactly the one BigGAN-PyTorch's ``utils.ortho`` (``default_ortho``) adds to
    ``param.grad``: ``2 (W Wᵀ ⊙ (1 - I)) W`` (``2 (W Wᵀ - I) W``). Brock et al. 2019, sec. 3.1.
    """
    total = None
    for w in weights:
        w = w.reshape(w.shape[0], -1)
        gram = w @ w.t()  # (out, out): the rows (filters) of W
        eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
        residual = gram * (1 - eye) if offdiag else gram - eye
        term = 0.5 * residual.square().sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("orthogonal_penalty: no weight with 2 or more dims to regularise")
    return total


@torch.no_grad()
def clip_weights_(module: nn.Module, clip: float = 0.01) -> None:
    """Clamp every parameter of ``module`` to [-clip, clip], in place (Arjovsky et al. 2017, Algorithm 1)."""
    for p in module.parameters():
        p.clamp_(-clip, clip)


def drift_penalty(real_logits: Tensor, weight: float = 0.001) -> Tensor:
    """``ε · E[D(x)²]``, keeping the critic's output near 0 (Karras et al. 2018, ProGAN, appendix A.1)."""
    return weight * real_logits.float().square().mean()


# ---- modules ---------------------------------------------------------------------------------------


def _critic_example(s: Sizes) -> tuple[nn.Module, Tensor, Tensor]:
    critic = nn.Sequential(nn.Flatten(), nn.Linear(s.C * s.H * s.W, 4), nn.Tanh(), nn.Linear(4, 1))
    with torch.no_grad():  # from the sizes' generator, so examples are reproducible
        for p in critic.parameters():
            p.copy_(s.randn(*p.shape))
    return critic, s.randn(s.B, s.C, s.H, s.W), s.randn(s.B, s.C, s.H, s.W)


@REGULARIZERS.register("gradient_penalty",
                       paper="Gulrajani et al. 2017, Improved Training of Wasserstein GANs, eq. 3, Algorithm 1")
class GradientPenalty(Regularizer):
    """WGAN-GP's two-sided gradient penalty on random interpolates of real and fake samples.

    ``λ / t² · E[(‖∇D(x̂)‖ - t)²]``, ``x̂ = real + α (fake - real)``, α ~ U[0, 1] per sample; λ = 10, t = 1
    (Gulrajani et al.; ProGAN uses the same with ``drift``). Real and fake are detached: the term trains
    the critic only. Conditioning keywords are passed to the critic (the real samples' labels).

    Args:
        weight: λ.
        target: t, the gradient norm aimed at (ProGAN's ``wgan_target``).
        interval: steps between evaluations.

    Shape:
        - critic: a callable (B, ...) -> (B,) or (B, 1)
        - real, fake: (B, ...) of the same shape
        - output: () -- a scalar
    """

    needs: ClassVar[tuple[str, ...]] = ("critic", "real", "fake")
    network = "D"

    def __init__(self, weight: float = 10.0, target: float = 1.0, interval: int = 1):
        super().__init__(weight, interval)
        self.target = float(target)

    def forward(self, critic: Critic, real: Tensor, fake: Tensor, **cond: Tensor) -> Tensor:
        check_shape(real, "B _ ...", block=self, name="real")
        if fake.shape != real.shape:
            raise ShapeError(type(self).__name__, "fake", str(tuple(real.shape)), tuple(fake.shape),
                             "real and fake must have the same shape to be interpolated")
        return gradient_penalty(critic, real, fake, self.weight, self.target, **cond)

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        # Random interpolates: repeating the batch draws new α, so the value is not batch-repeat invariant.
        return ObjectiveExample({}, _critic_example(s), batch_mean=False)


@REGULARIZERS.register("r1",
                       paper="Mescheder et al. 2018, Which Training Methods for GANs do actually Converge?, eq. 9; "
                             "Karras et al. 2020, StyleGAN2, sec. 3.1 (lazy, every 16 minibatches)")
class R1(Regularizer):
    """R1: ``γ/2 · E[‖∇_x D(x)‖²]`` on real samples; ``weight = γ/2``.

    Defaults γ = 10 and lazy evaluation every 16 D steps (StyleGAN2; the trainer multiplies the term by
    ``interval`` when it runs, as NVlabs' ``gain``). The forward runs the critic on a detached copy of the
    reals that requires grad; :func:`r1_penalty` takes logits already computed from reals that require grad
    (the non-lazy, shared-forward form).

    Args:
        gamma: γ.
        interval: D steps between evaluations.

    Shape:
        - critic: a callable (B, ...) -> (B,) or (B, 1)
        - real: (B, ...)
        - output: () -- a scalar
    """

    needs: ClassVar[tuple[str, ...]] = ("critic", "real")
    network = "D"

    def __init__(self, gamma: float = 10.0, interval: int = 16):
        super().__init__(gamma / 2, interval)
        self.gamma = float(gamma)

    def forward(self, critic: Critic, real: Tensor, **cond: Tensor) -> Tensor:
        check_shape(real, "B _ ...", block=self, name="real")
        real = real.detach().requires_grad_(True)
        return r1_penalty(critic(real, **cond), real, self.gamma)

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        critic, real, _ = _critic_example(s)
        return ObjectiveExample({}, (critic, real))


@REGULARIZERS.register("path_length",
                       paper="Karras et al. 2020, Analyzing and Improving the Image Quality of StyleGAN, sec. 3.2, "
                             "eq. 4 (path length regularisation)")
class PathLength(Regularizer):
    """StyleGAN2's path length regulariser, with the running mean ``a`` kept in the ``pl_mean`` buffer.

    ``weight · E[(‖J_wᵀ y‖ - a)²]``, y ~ N(0, I)/√(HW); a ← a + decay·(E‖J_wᵀ y‖ - a) before the penalty.
    Defaults as NVlabs' StyleGAN2: weight 2, decay 0.01, lazy every 4 G steps. NVlabs also runs it on half
    the batch (``pl_batch_shrink=2``): the trainer's business, like multiplying by ``interval``.

    Args:
        weight: pl_weight.
        decay: pl_decay, the running mean's update rate.
        interval: G steps between evaluations.

    Shape:
        - images: (B, C, H, W) -- computed from ws with a graph
        - ws: (B, N, D) per-layer styles (or (B, D)), requiring grad
        - output: () -- a scalar
    """

    needs: ClassVar[tuple[str, ...]] = ("images", "ws")
    network = "G"

    def __init__(self, weight: float = 2.0, decay: float = 0.01, interval: int = 4):
        super().__init__(weight, interval)
        self.decay = float(decay)
        self.register_buffer("pl_mean", torch.zeros(()))

    def forward(self, images: Tensor, ws: Tensor) -> Tensor:
        dims = check_shape(images, "B C H W", block=self, name="images")
        check_shape(ws, "B ...", block=self, name="ws", B=dims.get("B"))
        if not ws.requires_grad or images.grad_fn is None:
            raise self.fail("images must be computed from ws with a graph (ws.requires_grad and images not "
                            "detached)")
        penalty, new_mean = path_length_penalty(images, ws, self.pl_mean, self.decay)
        self.pl_mean.copy_(new_mean.detach())
        return self.weight * penalty

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, decay={self.decay:g}"

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        ws = s.randn(s.B, s.N, s.D).requires_grad_(True)
        synth = (s.randn(s.N * s.D, s.C * s.H * s.W) * 0.3).requires_grad_(True)
        images = torch.tanh(ws.flatten(1) @ synth).view(s.B, s.C, s.H, s.W)
        # Fresh noise y for every sample: repeating the batch changes the value.
        return ObjectiveExample({}, (images, ws), batch_mean=False)


class _OrthogonalBase(Regularizer):
    offdiag: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = ("module",)

    def __init__(self, weight: float = 1e-4, skip: Sequence[str] = (), network: str = "G", interval: int = 1):
        super().__init__(weight, interval)
        if network not in ("G", "D"):
            raise ValueError(f"{type(self).__name__}: network must be 'G' or 'D', got {network!r}")
        self.skip = tuple(skip)
        self.network = network

    def forward(self, module: nn.Module) -> Tensor:
        if not isinstance(module, nn.Module):
            raise self.fail(f"module should be an nn.Module, got {type(module).__name__}", TypeError)
        weights = orthogonal_weights(module, self.skip)
        if not weights:
            raise self.fail(f"{type(module).__name__} has no parameter with 2+ dims outside skip={self.skip}")
        return self.weight * orthogonal_penalty(weights, self.offdiag)

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        module = nn.Sequential(nn.Linear(s.D, s.N + 1), nn.Conv2d(s.C, 3, 3), nn.Embedding(4, s.D))
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(s.randn(*p.shape))
        return ObjectiveExample({"skip": ("2",)}, (module,), batch_mean=False)


@REGULARIZERS.register("orthogonal",
                       paper="Brock et al. 2017, Neural Photo Editing, sec. 3 (orthogonal regularisation); "
                             "Brock et al. 2019, BigGAN, sec. 3.1 (full form)")
class Orthogonal(_OrthogonalBase):
    """Full orthogonal regularisation: ``β · Σ_W ½‖W Wᵀ - I‖²_F`` over a network's 2+-D weights.

    W is each weight as an (out, -1) matrix (rows = filters), the layout of BigGAN-PyTorch's
    ``default_ortho``; the ½ makes the gradient equal to what that function adds, ``2β (W Wᵀ - I) W``
    (the paper writes the norm without ½). 1-D parameters and the names in ``skip`` are left out.

    Args:
        weight: β.
        skip: parameter or submodule names to leave out (BigGAN: the shared embedding, ``("shared",)``).
        network: the network it regularises, ``"G"`` or ``"D"``.
        interval: steps between evaluations.

    Shape:
        - module: an nn.Module
        - output: () -- a scalar
    """

    offdiag = False


@REGULARIZERS.register("orthogonal_offdiag",
                       paper="Brock et al. 2019, Large Scale GAN Training (BigGAN), sec. 3.1 (off-diagonal "
                             "orthogonal regularisation, β = 1e-4)")
class OffDiagOrthogonal(_OrthogonalBase):
    """BigGAN's orthogonal regularisation: ``β · Σ_W ½‖W Wᵀ ⊙ (1 - I)‖²_F``, β = 1e-4.

    Only the off-diagonal entries of the Gram matrix are penalised, so filter norms are free. As BigGAN's
    ``utils.ortho``: every parameter with 2+ dims as an (out, -1) matrix, 1-D parameters skipped, and the
    generator's shared embedding skipped through ``skip=("shared",)``; the ½ makes the gradient exactly
    the ``2β (W Wᵀ ⊙ (1 - I)) W`` that function adds to ``param.grad`` (the paper writes the norm without
    ½).

    Args:
        weight: β.
        skip: parameter or submodule names to leave out.
        network: the network it regularises, ``"G"`` (BigGAN's ``G_ortho``) or ``"D"``.
        interval: steps between evaluations.

    Shape:
        - module: an nn.Module
        - output: () -- a scalar
    """

    offdiag = True


@REGULARIZERS.register("weight_clip", paper="Arjovsky et al. 2017, Wasserstein GAN, Algorithm 1 (c = 0.01)")
class WeightClip(Regularizer):
    """WGAN's weight clipping: clamp every critic parameter to [-c, c] in place; returns None.

    It adds no loss term (``weight`` is 0). The reference (martinarjovsky/WassersteinGAN) clamps at the
    start of every critic iteration, before the critic's forward pass; the trainer calls it there.

    Args:
        clip: c.

    Shape:
        - module: an nn.Module (the critic)
        - output: None
    """

    needs: ClassVar[tuple[str, ...]] = ("module",)
    network = "D"

    def __init__(self, clip: float = 0.01):
        super().__init__(0.0, 1)
        if clip <= 0:
            raise ValueError(f"WeightClip: clip must be > 0, got {clip}")
        self.clip = float(clip)

    def forward(self, module: nn.Module) -> None:
        if not isinstance(module, nn.Module):
            raise self.fail(f"module should be an nn.Module, got {type(module).__name__}", TypeError)
        clip_weights_(module, self.clip)

    def extra_repr(self) -> str:
        return f"clip={self.clip:g}"

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        critic, _, _ = _critic_example(s)
        return ObjectiveExample({}, (critic,), batch_mean=False)


@REGULARIZERS.register("drift", paper="Karras et al. 2018, Progressive Growing of GANs, appendix A.1 (ε_drift)")
class Drift(Regularizer):
    """ProGAN's drift penalty ``ε · E[D(x)²]`` on real logits, ε = 0.001 (with WGAN-GP).

    Args:
        weight: ε.
        interval: steps between evaluations.

    Shape:
        - real_logits: (B,) or (B, 1)
        - output: () -- a scalar
    """

    needs: ClassVar[tuple[str, ...]] = ("real_logits",)
    network = "D"

    def __init__(self, weight: float = 0.001, interval: int = 1):
        super().__init__(weight, interval)

    def forward(self, real_logits: Tensor) -> Tensor:
        check_shape(real_logits, "B ...", block=self, name="real_logits")
        if real_logits.dim() > 2 or (real_logits.dim() == 2 and real_logits.shape[1] != 1):
            raise ShapeError(type(self).__name__, "real_logits", "(B,) or (B, 1)", tuple(real_logits.shape),
                             "one score per sample")
        return drift_penalty(real_logits, self.weight)

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        return ObjectiveExample({}, (s.randn(s.B, 1),))
