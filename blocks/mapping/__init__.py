"""Mapping networks (StyleGAN)."""

from .stylegan import *  # noqa: F403
from .stylegan import __all__ as _stylegan

__all__ = [*_stylegan]
