"""Convolutions and linear layers: plain (with optional spectral norm), equalized, modulated, styled."""

from . import basic
from .basic import *  # noqa: F403
from .equalized import *  # noqa: F403
from .equalized import __all__ as _equalized
from .maxout import *  # noqa: F403
from .maxout import __all__ as _maxout
from .modulated import *  # noqa: F403
from .modulated import __all__ as _modulated
from .styled import *  # noqa: F403
from .styled import __all__ as _styled

__all__ = [*basic.__all__, *_equalized, *_maxout, *_modulated, *_styled]
