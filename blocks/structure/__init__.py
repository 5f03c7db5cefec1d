"""Structure: residual, chains of blocks, fade-in, ProGAN toRGB/fromRGB, minibatch statistics, register combinators."""

from . import chain, combine, fade, minibatch, residual
from .chain import *  # noqa: F403
from .combine import *  # noqa: F403
from .fade import *  # noqa: F403
from .minibatch import *  # noqa: F403
from .residual import *  # noqa: F403
from .rgb import *  # noqa: F403
from .rgb import __all__ as _rgb

__all__: list[str] = [*chain.__all__, *combine.__all__, *fade.__all__, *minibatch.__all__, *residual.__all__, *_rgb]
