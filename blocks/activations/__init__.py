"""Activations and the fused bias + activation (+ gain + clamp) of StyleGAN2."""

from .basic import *  # noqa: F403
from .basic import __all__ as _basic
from .bias_act import *  # noqa: F403
from .bias_act import __all__ as _bias_act

__all__ = [*_basic, *_bias_act]
