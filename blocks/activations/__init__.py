"""Activations and the fused bias + activation (+ gain + clamp) of StyleGAN2."""

from .basic import *  # noqa: F403
from .basic import __all__ as _basic
from .fused import *  # noqa: F403
from .fused import __all__ as _fused

__all__ = [*_basic, *_fused]
