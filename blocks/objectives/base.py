"""The objective interface: adversarial losses, auxiliary losses and regularizers.

The trainer uses exactly these entry points (every registered objective is one of the three):

**Adversarial losses** (``LOSSES``, ``role="adversarial"``): ``loss.d_loss(real_logits, fake_logits)`` and
``loss.g_loss(fake_logits, real_logits=None)``, each a scalar: the sum of the per-term batch means (real and
fake terms are averaged separately, so their batch sizes may differ). Logits are raw discriminator outputs
(no sigmoid) of shape (B,), (B, 1) or a PatchGAN map (B, 1, H, W), averaged over every element. Losses are
computed in float32 whatever the logits' dtype. ``matching_aware`` also takes ``wrong_logits``.

**Auxiliary losses** (``LOSSES``, ``role="auxiliary"``): ``loss(*inputs)`` -> scalar; ``needs`` names the
positional inputs in order (for example ``("logits", "labels")``). Their recipe weight (pix2pix's λ=100 for
``l1``) is applied by the trainer, except where the weight is part of the term's definition (InfoGAN's λs).

**Regularizers** (``REGULARIZERS``): ``nn.Module``s with

- ``weight``: the multiplier already applied to the returned term (λ, γ/2, ...);
- ``interval``: run every ``interval`` steps (1: every step). A lazy regularizer's term is multiplied by
  ``interval`` by the trainer when it runs (StyleGAN2 lazy regularisation, Karras et al. 2020, sec. 3.1);
- ``network``: ``"D"`` or ``"G"``, whose loss the term joins;
- ``needs``: the positional inputs of ``forward`` in order (``("critic", "real", "fake")``,
  ``("real_logits",)``, ``("module",)``, ...); conditioning the critic consumes goes as keywords.

``forward`` returns the weighted term (a scalar) to add to that network's loss, or ``None`` for
``weight_clip``, which acts in place on the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..core import Sizes
from ..shapes import ShapeError

__all__ = ["AdversarialLoss", "AuxiliaryLoss", "ObjectiveExample", "Regularizer"]


@dataclass
class ObjectiveExample:
    """A tiny valid construction and call of an objective, for the registry-wide tests.

    Attributes:
        kwargs: constructor arguments.
        args: positional call arguments (adversarial losses: ``(real_logits, fake_logits)``).
        cond: keyword call arguments.
        batch_mean: the value is a mean over the batch: repeating every batch tensor twice along dim 0
            leaves it unchanged (False for stochastic or parameter-only terms).
    """

    kwargs: dict[str, Any]
    args: tuple[Any, ...]
    cond: dict[str, Any] = field(default_factory=dict)
    batch_mean: bool = True


def _describe(obj: Any, names: tuple[str, ...]) -> str:
    args = ", ".join(f"{n}={getattr(obj, n)!r}" for n in names)
    return f"{type(obj).__name__}({args})"


class AdversarialLoss:
    """Base of the adversarial losses: ``d_loss`` and ``g_loss`` on raw discriminator logits."""

    role: ClassVar[str] = "adversarial"
    needs: ClassVar[tuple[str, ...]] = ("real_logits", "fake_logits")
    _repr_fields: ClassVar[tuple[str, ...]] = ()

    def logits(self, x: Any, name: str) -> Tensor:
        """Check a logit tensor ((B,), (B, 1) or (B, 1, H, W)) and return it in float32."""
        who = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{who}: {name} should be a torch.Tensor of logits, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{who}: {name} should be floating point logits, got {x.dtype}")
        ok = x.dim() == 1 or (x.dim() in (2, 4) and x.shape[1] == 1)
        if not ok or x.shape[0] == 0:
            raise ShapeError(who, name, "(B,) or (B, 1) or (B, 1, H, W)", tuple(x.shape),
                             "one logit per sample (or a PatchGAN map with one channel)")
        return x.float()

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Discriminator loss (a scalar to minimise)."""
        raise NotImplementedError

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        """Generator loss (a scalar to minimise)."""
        raise NotImplementedError

    @classmethod
    def example(cls, s: Sizes) -> ObjectiveExample:
        # Mixed (B,) and (B, 1) logits: both layouts must be accepted.
        return ObjectiveExample({}, (s.randn(s.B), s.randn(s.B, 1)))

    def __repr__(self) -> str:
        return _describe(self, self._repr_fields)


class AuxiliaryLoss:
    """Base of the auxiliary losses: ``loss(*inputs)`` -> scalar, inputs named by ``needs``."""

    role: ClassVar[str] = "auxiliary"
    needs: ClassVar[tuple[str, ...]] = ()
    _repr_fields: ClassVar[tuple[str, ...]] = ()

    def fail(self, message: str, exc: type[Exception] = ValueError) -> Exception:
        return exc(f"{type(self).__name__}: {message}")

    def __repr__(self) -> str:
        return _describe(self, self._repr_fields)


class Regularizer(nn.Module):
    """Base of the regularizers (see the module docstring for the contract)."""

    needs: ClassVar[tuple[str, ...]] = ()
    network: str = "D"

    def __init__(self, weight: float, interval: int):
        super().__init__()
        if int(interval) != interval or interval < 1:
            raise ValueError(f"{type(self).__name__}: interval must be an integer >= 1, got {interval}")
        self.weight = float(weight)
        self.interval = int(interval)

    def fail(self, message: str, exc: type[Exception] = ValueError) -> Exception:
        return exc(f"{type(self).__name__}: {message}")

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, interval={self.interval}, network={self.network!r}"


def input_grad(outputs: Tensor, inputs: Tensor) -> Tensor:
    """d(sum of outputs)/d(inputs), keeping the graph so the penalty can be differentiated again."""
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return grad
