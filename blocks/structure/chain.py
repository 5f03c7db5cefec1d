"""A sequence of named blocks that passes each the conditioning it consumes (a residual's body)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import chain as chained

from torch import Tensor, nn

from ..core import Block, Shape

__all__ = ["Chain"]


class Chain(Block):
    """Named blocks run in order, each given the conditioning its ``consumes`` names.

    ``nn.Sequential`` cannot pass conditioning; this can: ``Chain({"bn": ConditionalBatchNorm(...),
    "relu": ReLU(), "conv": Conv2dLayer(...)})(x, y=y)`` gives ``y`` to the batch norm only. The children keep
    their names (``body.conv.weight``), so a :class:`~blocks.Residual` built from chains reads like the
    reference's module tree. The recipe construct ``residual`` builds one from its ``body`` and ``shortcut``
    steps. ``consumes`` is the union of the children's.

    Args:
        modules: the children, as a mapping name -> module (in order) or a sequence (named 0, 1, ...).

    Shape:
        - x: whatever the first child takes.
        - output: whatever the last child returns (x itself for an empty chain).
    """

    def __init__(self, modules: Mapping[str, nn.Module] | Iterable[nn.Module] = ()):
        super().__init__()
        items = modules.items() if isinstance(modules, Mapping) else ((str(i), m) for i, m in enumerate(modules))
        for name, module in items:
            self.add_module(name, module)
        self.consumes = tuple(dict.fromkeys(chained.from_iterable(
            getattr(m, "consumes", ()) for m in self.children())))

    def forward(self, x: Tensor, **cond: Tensor) -> Tensor:
        unknown = sorted(set(cond) - set(self.consumes))
        if unknown:
            raise TypeError(f"{type(self).__name__}: got conditioning {unknown} that no child consumes "
                            f"(they consume {self.consumes})")
        for module in self.children():
            x = module(x, **{k: cond[k] for k in getattr(module, "consumes", ()) if k in cond})
        return x

    def out_shape(self, x: Shape, **cond: Shape) -> Shape:
        for module in self.children():
            if not isinstance(module, Block):
                raise NotImplementedError(f"{type(module).__name__} declares no shape law")
            x = module.out_shape(x, **{k: cond[k] for k in getattr(module, "consumes", ()) if k in cond})
        return tuple(x)

    def __len__(self) -> int:
        return len(self._modules)
