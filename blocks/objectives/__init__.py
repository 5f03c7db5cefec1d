"""Objectives: adversarial and auxiliary losses (``LOSSES``) and regularizers (``REGULARIZERS``).

The interface the trainer uses is described in :mod:`blocks.objectives.base`.
"""

from . import auxiliary, base, losses, regularizers
from .auxiliary import *  # noqa: F403
from .base import *  # noqa: F403
from .losses import *  # noqa: F403
from .regularizers import *  # noqa: F403

__all__: list[str] = [*auxiliary.__all__, *base.__all__, *losses.__all__, *regularizers.__all__]
