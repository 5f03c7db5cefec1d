"""ganforge's layer library: plain ``nn.Module`` blocks and the registry that names them.

``import blocks`` registers every block eagerly. A borrower can take one layer with no framework
attached, e.g. ``from blocks import PixelNorm``; an architect finds them by key, e.g.
``blocks.NORMS.create("pixel_norm")``.
"""

from .core import Block, Example, Sizes, clear_impl_cache
from .norms import *  # noqa: F403
from .norms import __all__ as _norms
from .registry import (
    ACTIVATIONS,
    ATTENTION,
    CONDITIONING,
    INITS,
    KINDS,
    LAYERS,
    LOSSES,
    MAPPING,
    MODULE_KINDS,
    NORMS,
    REGULARIZERS,
    RESAMPLE,
    STRUCTURE,
    Entry,
    Registry,
    UnknownKeyError,
    describe,
    find_block,
    kind,
    list_blocks,
)
from .shapes import ShapeError, check_shape, set_shape_checks, shape_checks

__all__ = [
    "ACTIVATIONS", "ATTENTION", "CONDITIONING", "INITS", "KINDS", "LAYERS", "LOSSES", "MAPPING",
    "MODULE_KINDS", "NORMS", "REGULARIZERS", "RESAMPLE", "STRUCTURE",
    "Block", "Entry", "Example", "Registry", "ShapeError", "Sizes", "UnknownKeyError",
    "check_shape", "clear_impl_cache", "describe", "find_block", "kind", "list_blocks",
    "set_shape_checks", "shape_checks",
    *_norms,
]
