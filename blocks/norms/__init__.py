"""Normalisations: batch/instance/layer/group, pixel norm, AdaIN, conditional BN, SPADE, spectral norm."""

from .pixel import PixelNorm, pixel_norm
from .spectral import spectral_norm

__all__ = ["PixelNorm", "pixel_norm", "spectral_norm"]
