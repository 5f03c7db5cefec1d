"""Normalisations: batch/instance/layer/group, pixel norm, AdaIN, conditional BN, SPADE, spectral norm."""

# Modules under private names: ``adain`` and ``spade`` are also the names of their functions.
from . import adain as _adain
from . import batch as _batch
from . import conditional_bn as _conditional_bn
from . import spade as _spade
from . import spectral as _spectral
from .adain import *  # noqa: F403
from .batch import *  # noqa: F403
from .conditional_bn import *  # noqa: F403
from .pixel import PixelNorm, pixel_norm
from .spade import *  # noqa: F403
from .spectral import *  # noqa: F403

__all__ = [
    "PixelNorm", "pixel_norm",
    *_adain.__all__, *_batch.__all__, *_conditional_bn.__all__, *_spade.__all__, *_spectral.__all__,
]
