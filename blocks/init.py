"""Weight initialisers: DCGAN's normal(0, 0.02), BigGAN's orthogonal, xavier (Glorot), kaiming (He) and
SPADE's xavier-normal with gain 0.02.

Each scheme is a registered function ``fn(module) -> module`` that re-initialises, in place, the weight of
every convolution, transposed convolution, linear and embedding layer inside ``module`` (the ``original``
tensor when the weight is spectrally normalised), as BigGAN-PyTorch's ``init_weights`` walks
``self.modules()``. What it leaves alone:

- tensors on the ``meta`` device (nothing to fill: the assembler counts parameters that way);
- every module that declares its own runtime weight scaling with ``equalized = True`` (equalized-lr layers,
  AdaIN's style affine), and everything inside it: their N(0, 1) storage is part of the method;
- parameters that are not a layer's ``weight``/``bias`` (e.g. conditional BN's per-class gains, SPADE's
  ``param_free_norm`` has none).

Only ``normal`` and ``spade_xavier`` touch biases and norm layers, as DCGAN's ``weights_init`` and SPADE's
``init_weights`` do; the others keep torch's default biases, as BigGAN does. After re-initialising a
spectrally-normalised weight its power-iteration vectors are re-estimated with the 15 warm-up iterations
torch runs when it attaches spectral norm: without that they would belong to the old weight, and eval
mode, which divides by the stored estimate without iterating, could divide by a σ near 0 or below it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = apply_init(nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2)), "orthogonal")
    >>> w = net[0].weight
    >>> torch.allclose(w @ w.T, torch.eye(4), atol=1e-5)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

from .norms.batch import BatchNorm, GroupNorm, InstanceNorm, LayerNorm
from .registry import INITS

__all__ = ["apply_init", "init_kaiming", "init_normal", "init_orthogonal", "init_spade_xavier", "init_xavier"]

M = TypeVar("M", bound=nn.Module)

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
           nn.Linear, nn.Embedding)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d,
          nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm,
          BatchNorm, InstanceNorm, LayerNorm, GroupNorm)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, BatchNorm)


def _modules(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` and its descendants, pruning the subtree of every module with ``equalized = True``."""
    if getattr(module, "equalized", False):
        return
    yield module
    for child in module.children():
        yield from _modules(child)


def _weight(m: nn.Module) -> Tensor | None:
    """The stored weight: the ``original`` under a parametrization (spectral norm), else ``m.weight``."""
    if parametrize.is_parametrized(m, "weight"):
        return m.parametrizations.weight.original
    w = getattr(m, "weight", None)
    return w if isinstance(w, Tensor) else None


def _live(t: Tensor | None) -> bool:
    return t is not None and not t.is_meta


def _resync(m: nn.Module) -> None:
    """After ``m``'s weight was refilled: re-run spectral norm's warm-up power iterations (as on attach)."""
    if parametrize.is_parametrized(m, "weight"):
        for p in m.parametrizations.weight:
            if isinstance(p, parametrizations._SpectralNorm) and hasattr(p, "_u"):
                p._power_method(p._reshape_weight_to_matrix(m.parametrizations.weight.original), 15)


def _init_layers(module: M, fill: Callable[[Tensor], object]) -> M:
    with torch.no_grad():
        for m in _modules(module):
            if isinstance(m, _LAYERS) and _live(w := _weight(m)):
                fill(w)
                _resync(m)
    return module


@INITS.register("normal", paper="Radford et al. 2016, DCGAN, sec. 4; pytorch/examples dcgan weights_init")
def init_normal(module: M) -> M:
    """DCGAN: conv/linear/embedding weights ~ N(0, 0.02), their biases 0; norm weights ~ N(1, 0.02), norm
    biases 0 ("All weights were initialized from a zero-centered Normal distribution with standard
    deviation 0.02", DCGAN sec. 4; the norm rule is pytorch/examples' ``weights_init``)."""
    return _init_with_norms(module, lambda w: w.normal_(0.0, 0.02), _NORMS)


def _init_with_norms(module: M, layer_fn: Callable[[Tensor], Any], norms: tuple[type, ...]) -> M:
    """``layer_fn`` on every layer weight, N(1, 0.02) on the weights of ``norms``, zero biases for both."""
    with torch.no_grad():
        for m in _modules(module):
            bias = getattr(m, "bias", None)
            if isinstance(m, _LAYERS) and _live(w := _weight(m)):
                layer_fn(w)
                _resync(m)
            elif isinstance(m, norms) and _live(w := getattr(m, "weight", None)):
                w.normal_(1.0, 0.02)
            else:
                continue
            if isinstance(bias, Tensor) and _live(bias):
                bias.zero_()
    return module


@INITS.register("orthogonal", paper="Saxe et al. 2014, Exact solutions to the nonlinear dynamics of learning "
                "(orthogonal init); as in Brock et al. 2019, BigGAN, sec. 3 / BigGAN-PyTorch init_weights")
def init_orthogonal(module: M) -> M:
    """BigGAN: every conv/linear/embedding weight, viewed as (dim 0, rest), becomes a (semi-)orthogonal
    matrix (``nn.init.orthogonal_``, gain 1): WWᵀ = I if it is wide, WᵀW = I if it is tall. Biases keep
    torch's default."""
    return _init_layers(module, nn.init.orthogonal_)


@INITS.register("xavier", paper="Glorot & Bengio 2010, Understanding the difficulty of training deep "
                "feedforward networks, eq. 16 (normalized init)")
def init_xavier(module: M) -> M:
    """Glorot: weights ~ U(-a, a) with a = √(6 / (fan_in + fan_out)) (``nn.init.xavier_uniform_``, gain 1;
    BigGAN's "glorot"/"xavier" option). Biases keep torch's default."""
    return _init_layers(module, nn.init.xavier_uniform_)


@INITS.register("kaiming", paper="He et al. 2015, Delving Deep into Rectifiers, sec. 2.2 eq. 10")
def init_kaiming(module: M) -> M:
    """He: weights ~ N(0, 2 / fan_in) (``nn.init.kaiming_normal_``, mode fan_in, ReLU gain √2); fan_in of
    a conv is in_channels·k·k. Biases keep torch's default."""
    return _init_layers(module, lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"))


@INITS.register("spade_xavier", paper="Park et al. 2019, SPADE; NVlabs/SPADE BaseNetwork.init_weights with its "
                "defaults --init_type xavier --init_variance 0.02")
def init_spade_xavier(module: M) -> M:
    """SPADE: conv/linear/embedding weights ~ ``nn.init.xavier_normal_`` with gain 0.02, i.e.
    N(0, 0.02² · 2 / (fan_in + fan_out)), their biases 0; batch-norm weights ~ N(1, 0.02), biases 0 (the
    reference's ``BatchNorm2d`` rule; its affine-free norms have nothing to set)."""
    return _init_with_norms(module, lambda w: nn.init.xavier_normal_(w, gain=0.02), _BATCH_NORMS)


def apply_init(module: M, scheme: str) -> M:
    """Re-initialise ``module`` in place with the registered scheme ``scheme`` (``blocks.INITS``).

    Raises:
        UnknownKeyError: ``scheme`` is not registered (the message names the closest schemes).
    """
    return INITS.get(scheme)(module)
