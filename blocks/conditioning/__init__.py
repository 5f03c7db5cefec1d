"""Conditioning injectors: concatenation, embeddings, heads, augmentation, skip-z, coordinates, noise."""

from . import augmentation as _augmentation
from . import concat as _concat
from . import coords as _coords
from . import embedding as _embedding
from . import heads as _heads
from . import hierarchical as _hierarchical
from . import one_hot as _one_hot
from .augmentation import *  # noqa: F403
from .concat import *  # noqa: F403
from .constant import *  # noqa: F403
from .constant import __all__ as _constant
from .coords import *  # noqa: F403
from .embedding import *  # noqa: F403
from .heads import *  # noqa: F403
from .hierarchical import *  # noqa: F403
from .noise import *  # noqa: F403
from .noise import __all__ as _noise
from .one_hot import *  # noqa: F403

__all__ = [
    *_augmentation.__all__, *_concat.__all__, *_coords.__all__, *_embedding.__all__, *_heads.__all__,
    *_hierarchical.__all__, *_one_hot.__all__, *_constant, *_noise,
]
