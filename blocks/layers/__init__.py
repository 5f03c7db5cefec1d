"""Convolutions and linear layers: plain (with optional spectral norm), equalized, modulated, styled."""

from . import basic
from .basic import *  # noqa: F403

__all__ = [*basic.__all__]
