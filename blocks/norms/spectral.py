"""Spectral normalisation (Miyato et al. 2018): divide a weight by its largest singular value."""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

from ..core import Block, Example, Shape, Sizes
from ..registry import NORMS

__all__ = ["SN_ORDERS", "SpectralNorm", "configure_spectral_norm", "spectral_norm"]

M = TypeVar("M", bound=nn.Module)

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, *_TRANSPOSED)


SN_ORDERS = ("u_first", "v_first")


def spectral_norm(module: M, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12) -> M:
    """Reparametrise ``module.<name>`` as W / σ(W), σ estimated by power iteration.

    Miyato et al. 2018, "Spectral Normalization for GANs", Algorithm 1: one power iteration per training
    forward pass, with the vector u persisted between calls. This is torch's parametrization (the same
    state-dict layout: ``parametrizations.weight.original`` and the vectors ``0._u``, ``0._v``), which
    costs the same as the older hook (see benchmarks) and works with ``torch.compile`` and DDP, with the
    two conventions in which reference codes differ as settings (:func:`configure_spectral_norm`).

    Args:
        module: a module with a weight of 2 or more dims (conv weights are reshaped to (out, -1)).
        name: the parameter to normalise.
        n_power_iterations: power-iteration steps per training forward (paper: 1).
        eps: added to norms in the power iteration (torch: 1e-12; BigGAN-PyTorch's ImageNet launch scripts
            pass 1e-6, its CIFAR script 1e-8).
    """
    dim = 1 if isinstance(module, _TRANSPOSED) else 0
    weight = getattr(module, name)
    parametrize.register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module


def configure_spectral_norm(module: nn.Module, order: str | None = None, eval_iterations: int | None = None) -> int:
    """Set the power-iteration conventions of every spectral norm inside ``module``; returns how many.

    The references differ in two ways, and reproducing a reference checkpoint needs its convention:

    - ``order``: ``"u_first"`` (torch's parametrization: ``u = n(W v)``, then ``v = n(Wᵀ u)``) or
      ``"v_first"`` (torch's older ``torch.nn.utils.spectral_norm`` hook, which SPADE uses, and
      BigGAN-PyTorch's ``layers.SN``: ``v = n(Wᵀ u)``, then ``u = n(W v)``);
    - ``eval_iterations``: power iterations in eval mode, not stored (0: torch and SPADE; 1:
      BigGAN-PyTorch, which iterates from its stored u on every forward and writes u back only in training).

    σ is ``uᵀ W v`` in every case.
    """
    if order is not None and order not in SN_ORDERS:
        raise ValueError(f"spectral norm order must be one of {SN_ORDERS}, got {order!r}")
    if eval_iterations is not None and (not isinstance(eval_iterations, int) or eval_iterations < 0):
        raise ValueError(f"eval_iterations must be a non-negative integer, got {eval_iterations!r}")
    n = 0
    for m in module.modules():
        if isinstance(m, _SpectralNorm):
            if order is not None:
                m.order = order
            if eval_iterations is not None:
                m.eval_iterations = eval_iterations
            n += 1
    return n


class _SpectralNorm(parametrizations._SpectralNorm):
    """torch's spectral-norm parametrization with the references' conventions (see
    :func:`configure_spectral_norm`), and on a ``meta`` weight without power iterations: they have nothing
    to estimate there and cost ~50 ms per layer through the meta decompositions -- seconds for a recipe
    that builds every block on meta to count its parameters (BigGAN has 100+ normalised layers)."""

    order: str = "u_first"  # class defaults: torch runs the 15 warm-up iterations inside __init__
    eval_iterations: int = 0

    def _iterate(self, weight_mat: Tensor, u: Tensor, v: Tensor, n: int, out: bool) -> tuple[Tensor, Tensor]:
        for _ in range(n):
            if self.order == "u_first":
                u = F.normalize(torch.mv(weight_mat, v), dim=0, eps=self.eps, out=u if out else None)
                v = F.normalize(torch.mv(weight_mat.H, u), dim=0, eps=self.eps, out=v if out else None)
            else:
                v = F.normalize(torch.mv(weight_mat.H, u), dim=0, eps=self.eps, out=v if out else None)
                u = F.normalize(torch.mv(weight_mat, v), dim=0, eps=self.eps, out=u if out else None)
        return u, v

    @torch.autograd.no_grad()
    def _power_method(self, weight_mat: Tensor, n_power_iterations: int) -> None:
        if not weight_mat.is_meta:  # in place, as torch does (DataParallel replicas share the buffers)
            self._iterate(weight_mat, self._u, self._v, n_power_iterations, out=True)

    def forward(self, weight: Tensor) -> Tensor:
        if weight.ndim == 1:
            return F.normalize(weight, dim=0, eps=self.eps)
        weight_mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            self._power_method(weight_mat, self.n_power_iterations)
        u = self._u.clone(memory_format=torch.contiguous_format)
        v = self._v.clone(memory_format=torch.contiguous_format)
        if not self.training and self.eval_iterations:
            # BigGAN-PyTorch's eval: iterate from the stored u, store nothing. On the detached weight rather than
            # under no_grad: the same values, and torch.export sees no grad-mode switch (one per layer made it
            # re-inline the graph per switch: minutes for BigGAN-deep's ~250 layers).
            u, v = self._iterate(weight_mat.detach(), u, v, self.eval_iterations, out=False)
        sigma = torch.vdot(u, torch.mv(weight_mat, v))
        return weight / sigma


@NORMS.register("spectral_norm", paper="Miyato et al. 2018, Spectral Normalization for GANs, Algorithm 1")
class SpectralNorm(Block):
    """Wrap a module so that its weight is divided by its spectral norm σ(W) on every forward.

    W is viewed as a matrix (out, -1) -- (out_channels, in_channels·k·k) for a conv, (out, in) for a
    linear, (n_classes, D) for an embedding -- and σ is estimated by power iteration with a persistent
    vector u: ``n_power_iterations`` steps per forward in training mode, none in eval mode (Miyato et al.
    2018, Algorithm 1). torch's parametrization also runs 15 warm-up iterations when it is attached, so σ
    is already accurate on the first forward (the paper and BigGAN-PyTorch start from a random u).

    The given module is deep-copied before it is parametrised, so the caller's module is left unchanged
    and wrapping the same module twice never stacks two normalisations. Inputs are checked for the torch
    conv, linear and embedding layers; any other module checks its own inputs.

    Args:
        module: the module to wrap; it must hold a parameter ``name`` with 2 or more dims.
        n_power_iterations: power-iteration steps per training forward (paper: 1).
        eps: added to the vector norms in the power iteration (torch: 1e-12).
        name: the parameter to normalise.

    Attributes:
        sigma: the current estimate uᵀ W v of σ(W) (the one the last forward divided by).

    Shape:
        - x: whatever ``module`` takes, e.g. (B, C, H, W) for a conv, (B, ..., D) for a linear.
        - output: whatever ``module`` returns.
    """

    def __init__(self, module: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12,
                 name: str = "weight"):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise self.fail(f"module should be an nn.Module, got {type(module).__name__}", TypeError)
        weight = getattr(module, name, None)
        if not isinstance(weight, Tensor) or weight.dim() < 2:
            found = "nothing" if weight is None else f"shape {tuple(getattr(weight, 'shape', ()))}"
            raise self.fail(f"{type(module).__name__}.{name} should be a weight of 2 or more dims, "
                            f"found {found}")
        if parametrize.is_parametrized(module, name):
            raise self.fail(f"{type(module).__name__}.{name} is already parametrized (spectral norm "
                            "applied twice?)")
        if n_power_iterations < 1:
            raise self.fail(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        self.name, self.n_power_iterations, self.eps = name, n_power_iterations, eps
        self.module = spectral_norm(copy.deepcopy(module), name, n_power_iterations, eps)

    @property
    def sigma(self) -> Tensor:
        """uᵀ W v from the stored power-iteration vectors (no iteration is run)."""
        sn = getattr(self.module.parametrizations, self.name)
        w = sn.original.detach()
        w_mat = w.movedim(sn[0].dim, 0).flatten(1)  # (out, in·k·k)
        return torch.vdot(sn[0]._u, torch.mv(w_mat, sn[0]._v))

    def forward(self, x: Tensor) -> Tensor:
        m = self.module
        if isinstance(m, _CONVS):
            spatial = len(m.kernel_size)
            self.check(x, " ".join(["B", "C", *("_" * spatial)]), C=m.in_channels)
        elif isinstance(m, nn.Linear):
            self.check(x, "B ... D", D=m.in_features)
        elif isinstance(m, nn.Embedding):
            self.check(x, "B ...")
            if x.is_floating_point() or x.is_complex():
                raise self.fail(f"x should hold indices (an integer dtype), got {x.dtype}", TypeError)
        return m(x)

    def out_shape(self, x: Shape) -> Shape:
        # The wrapped module's own shape law, found by running a meta copy of it.
        meta = copy.deepcopy(self.module).to("meta")
        dtype = next((p.dtype for p in meta.parameters() if p.is_floating_point()), torch.float32)
        if isinstance(meta, nn.Embedding):
            dtype = torch.long
        return tuple(meta(torch.empty(x, dtype=dtype, device="meta")).shape)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        conv = nn.Conv2d(s.C, s.D, 3, padding=1)
        with torch.no_grad():
            # Weights from the drawn generator, so two examples of the same sizes are the same block. A
            # dominant rank-1 part (σ1/σ2 > 10) makes the warm-up iterations converge, so σ no longer moves
            # between training forwards and two calls on the same input agree.
            u, v = F.normalize(s.randn(s.D), dim=0), F.normalize(s.randn(s.C * 9), dim=0)
            conv.weight.copy_(3 * torch.outer(u, v).view_as(conv.weight) + 0.02 * s.randn(*conv.weight.shape))
            conv.bias.copy_(s.randn(s.D))
        return Example({"module": conv}, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, n_power_iterations={self.n_power_iterations}, eps={self.eps}"
