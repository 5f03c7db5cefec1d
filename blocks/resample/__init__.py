"""Resampling: nearest/bilinear/transposed/pixel-shuffle/FIR up, avg-pool/strided/FIR/unshuffle down."""

from .basic import *  # noqa: F403
from .basic import __all__ as _basic
from .conv_resample import *  # noqa: F403
from .conv_resample import __all__ as _conv_resample
from .fir import *  # noqa: F403
from .fir import __all__ as _fir
from .learned import *  # noqa: F403
from .learned import __all__ as _learned

__all__ = [*_basic, *_conv_resample, *_fir, *_learned]
