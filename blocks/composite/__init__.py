"""Composite blocks: the repeated units of published architectures, with their papers' defaults.

Each is a plain ``nn.Module`` whose sub-modules carry the names of the authors' code (StyleGAN2's
``conv0``/``conv1``/``torgb``, BigGAN's ``conv1``/``bn1``/``conv_sc``, SPADE's ``norm_0``/``conv_0``), so a
recipe built from them has the reference's module tree, and a reader of the paper's code finds the same
parts. The low-level blocks they are made of stay available for new designs.
"""

from . import biggan, progan, spade, stylegan2
from .biggan import *  # noqa: F403
from .progan import *  # noqa: F403
from .spade import *  # noqa: F403
from .stylegan2 import *  # noqa: F403

__all__: list[str] = [*biggan.__all__, *progan.__all__, *spade.__all__, *stylegan2.__all__]
