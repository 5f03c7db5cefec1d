"""ganforge's layer library: plain ``nn.Module`` blocks and the registry that names them.

``import blocks`` registers every block eagerly. A borrower can take one layer with no framework
attached, e.g. ``from blocks import PixelNorm``; an architect finds them by key, e.g.
``blocks.NORMS.create("pixel_norm")``.
"""

from . import (
    activations,
    attention,
    composite,
    conditioning,
    init,
    layers,
    mapping,
    norms,
    objectives,
    resample,
    structure,
)
from .activations import *  # noqa: F403
from .attention import *  # noqa: F403
from .composite import *  # noqa: F403
from .conditioning import *  # noqa: F403
from .core import Block, Example, Sizes, clear_impl_cache, set_impl
from .init import *  # noqa: F403
from .layers import *  # noqa: F403
from .mapping import *  # noqa: F403
from .norms import *  # noqa: F403
from .objectives import *  # noqa: F403
from .registry import (
    ACTIVATIONS,
    ATTENTION,
    COMPOSITE,
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
from .resample import *  # noqa: F403
from .shapes import ShapeError, check_shape, set_shape_checks, shape_checks
from .structure import *  # noqa: F403

__all__ = [
    "ACTIVATIONS", "ATTENTION", "COMPOSITE", "CONDITIONING", "INITS", "KINDS", "LAYERS", "LOSSES", "MAPPING",
    "MODULE_KINDS", "NORMS", "REGULARIZERS", "RESAMPLE", "STRUCTURE",
    "Block", "Entry", "Example", "Registry", "ShapeError", "Sizes", "UnknownKeyError",
    "check_shape", "clear_impl_cache", "set_impl", "describe", "find_block", "kind", "list_blocks",
    "set_shape_checks", "shape_checks",
    *activations.__all__, *attention.__all__, *composite.__all__, *conditioning.__all__, *init.__all__, *layers.__all__,
    *mapping.__all__, *norms.__all__, *objectives.__all__, *resample.__all__, *structure.__all__,
]
