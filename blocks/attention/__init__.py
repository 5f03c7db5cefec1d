"""Attention: SAGAN/BigGAN self-attention and cross-attention to a token sequence."""

from . import cross_attention as _cross_attention
from . import kernels as _kernels
from . import self_attention as _self_attention
from .cross_attention import *  # noqa: F403
from .kernels import *  # noqa: F403
from .self_attention import *  # noqa: F403

__all__ = [*_kernels.__all__, *_self_attention.__all__, *_cross_attention.__all__]
