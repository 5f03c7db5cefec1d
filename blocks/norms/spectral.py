"""Spectral normalisation (Miyato et al. 2018): divide a weight by its largest singular value."""

from __future__ import annotations

from typing import TypeVar

from torch import nn
from torch.nn.utils import parametrizations

M = TypeVar("M", bound=nn.Module)


def spectral_norm(module: M, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12) -> M:
    """Reparametrise ``module.<name>`` as W / σ(W), σ estimated by power iteration.

    Miyato et al. 2018, "Spectral Normalization for GANs", Algorithm 1: one power iteration per training
    forward pass, with the vector u persisted between calls. This uses torch's parametrization, which
    costs the same as the older hook (see benchmarks) and works with ``torch.compile`` and DDP.

    Args:
        module: a module with a weight of 2 or more dims (conv weights are reshaped to (out, -1)).
        name: the parameter to normalise.
        n_power_iterations: power-iteration steps per training forward (paper: 1).
        eps: added to norms in the power iteration (torch: 1e-12; BigGAN-PyTorch uses 1e-8 in G, D).
    """
    dim = 1 if isinstance(module, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d) else 0
    return parametrizations.spectral_norm(module, name, n_power_iterations=n_power_iterations, eps=eps,
                                          dim=dim)
