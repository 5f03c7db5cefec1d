"""The interpreter: runs a network's nodes over a register file.

One interpreter serves shape inference (where ``call`` builds each block on ``meta`` the first time it is
reached) and the built network (where ``call`` runs the real module), so the two can never disagree about
control flow, routing or side outputs. The register file is a dict; the current tensor is ``regs["_"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from .spec import AUTO, CURRENT, BlockNode, GroupNode, Node, Route

# call(node, positional inputs, keyword inputs, container, registers) -> output
Call = Callable[[Node, list[Any], dict[str, Any], Any, dict[str, Any]], Any]


class StepFailure(Exception):
    """A node failed; carries the node for the error's path."""

    def __init__(self, node: Node, message: str):
        self.node, self.message = node, message
        super().__init__(message)


def read(regs: Mapping[str, Any], name: str, node: Node) -> Any:
    try:
        return regs[name]
    except KeyError:
        known = ", ".join(sorted(k for k in regs if k != CURRENT and not k.startswith("__"))) or "none"
        raise StepFailure(node, f"reads register '{name}', which no input or earlier step writes "
                                f"(registers here: {known})") from None


def routed(regs: Mapping[str, Any], node: Node, name: str, route: Route, styles: tuple[str, ...]) -> Any:
    """The conditioning ``name`` as ``route`` selects it: a whole register, one layer (B, D) or several
    consecutive layers (B, n, D) of a per-layer register. A per-layer register held as (B, D) (one style for
    every layer) is broadcast."""
    t = read(regs, route.register, node)
    index = route.index
    if index is None or index == AUTO or not isinstance(t, Tensor):
        return t
    count = route.count
    if t.dim() == 3:
        last = index + (count or 1)
        if last > t.shape[1]:
            want = f"layer {index}" if count is None else f"layers {index}..{last - 1}"
            raise StepFailure(node, f"asks for {want} of '{route.register}', which has {t.shape[1]} layers "
                                    f"(shape {tuple(t.shape)})")
        return t[:, index] if count is None else t[:, index:last]
    if route.register in styles and t.dim() == 2:
        return t if count is None else t[:, None].expand(-1, count, -1)  # one style for every layer
    raise StepFailure(node, f"asks for layer {index} of '{route.register}', but that register has shape "
                            f"{tuple(t.shape)} (per-layer registers are (B, layers, D))")


def execute(nodes: list[Node], regs: dict[str, Any], runtime: Mapping[str, Any], call: Call,
            container: Any = None) -> None:
    """Run ``nodes`` in order over ``regs``. ``container`` is handed to ``call`` (the built network passes
    the module holding the nodes' modules, so a lookup is one dict access)."""
    for node in nodes:
        if node.conds and not all(c(runtime) for c in node.conds):
            continue
        if isinstance(node, GroupNode):
            execute(node.children, regs, runtime, call, None if container is None else container._modules[node.name])
            continue
        if node.src is None:
            args, kwargs = [regs[CURRENT]], {}
        elif isinstance(node.src, dict):
            args, kwargs = [], {k: read(regs, r, node) for k, r in node.src.items()}
        else:
            args, kwargs = [read(regs, r, node) for r in node.src], {}
        out = call(node, args, kwargs, container, regs)
        if isinstance(node, BlockNode) and node.entry is not None and node.entry.emits and isinstance(out, tuple) \
                and len(out) == 2 and isinstance(out[1], dict):
            out, side = out
            for k, v in side.items():
                regs[node.emit.get(k, k)] = v
        write(regs, node, out)


def write(regs: dict[str, Any], node: Node, out: Any) -> None:
    if node.dst is None:
        if isinstance(out, tuple | list):
            raise StepFailure(node, f"returns {len(out)} outputs; name them with into: [a, b, ...]")
        regs[CURRENT] = out
        return
    if len(node.dst) == 1:
        if isinstance(out, tuple | list):
            raise StepFailure(node, f"returns {len(out)} outputs but into names one register")
        regs[node.dst[0]] = out
        return
    if not isinstance(out, tuple | list) or len(out) != len(node.dst):
        n = len(out) if isinstance(out, tuple | list) else 1
        raise StepFailure(node, f"into names {len(node.dst)} registers but the block returns {n} output(s)")
    for name, o in zip(node.dst, out):
        regs[name] = o
