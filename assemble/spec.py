"""What a network is after expansion: a tree of named nodes over registers.

A recipe's ``steps`` expand into nodes. Every node has a ``name`` (its ``nn.Module`` name in its container)
and so a ``path`` (``G.synthesis.b8``): the same path names it in ``show``, in the state_dict
(``synthesis.b8.conv0.weight``), in ``print(G)`` and in every error. ``where`` is the node's location in
the recipe text (``generator.steps[1].do[0]``, with loop variables), for errors.

- :class:`BlockNode` runs one registered block.
- :class:`GroupNode` is a named container of nodes (a named group or one iteration of a named loop); it
  runs its children in order over the same registers.
- :class:`ResidualNode` is one :class:`blocks.Residual` module around a body (and a shortcut) of blocks.

A node reads the current tensor (register ``_``) unless ``src`` names registers (positional, a tuple, or
by keyword, a mapping) and writes the current tensor unless ``dst`` names registers. A runtime condition
(an ``if`` that mentions ``stage``) makes the node run only at the stages where it holds.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from blocks.registry import Entry

from .expr import evaluate
from .inputs import InputSpec

CURRENT = "_"


@dataclass(frozen=True)
class Condition:
    """A runtime condition: an expression over ``stage``, with the static names it mentions frozen where
    it was written (loop variables, recipe variables)."""

    text: str
    tree: ast.expr
    env: Mapping[str, Any]

    def __call__(self, runtime: Mapping[str, Any]) -> bool:
        return bool(evaluate(self.tree, {**self.env, **runtime}))


@dataclass(frozen=True)
class Route:
    """Where a consumed conditioning comes from: a register and, for a per-layer register (``styles``),
    the first layer and the number of layers (``count`` None: one layer, given as (B, D)).

    ``index`` is None for the whole register, an int, or ``AUTO`` before shape inference numbers the
    consumers of a per-layer register in order."""

    register: str
    index: int | str | None = None
    count: int | None = None

    def describe(self, name: str) -> str:
        """``w[5]``, ``w[1:4]``, ``y=ys[2]``, ``seg``."""
        reg = self.register if self.register == name else f"{name}={self.register}"
        if self.index is None or self.index == AUTO:
            return reg
        if self.count is None:
            return f"{reg}[{self.index}]"
        return f"{reg}[{self.index}:{self.index + self.count}]"


AUTO = "auto"

Registers = tuple[str, ...] | dict[str, str] | None


@dataclass
class Node:
    name: str
    path: str  # "G.synthesis.b8"
    where: str  # "generator.steps[1].do[0] (r=8)"
    conds: tuple[Condition, ...] = ()
    src: Registers = None  # None: the current tensor; a tuple: positional registers; a dict: by keyword
    dst: tuple[str, ...] | None = None

    @property
    def module_path(self) -> str:
        """The path inside the network (the state_dict prefix): ``synthesis.b8``."""
        return self.path.split(".", 1)[1]

    def reads(self) -> list[str]:
        if self.src is None:
            return [CURRENT]
        return list(self.src.values()) if isinstance(self.src, dict) else list(self.src)

    def writes(self) -> list[str]:
        return [CURRENT] if self.dst is None else list(self.dst)


@dataclass
class BlockNode(Node):
    key: str = ""
    entry: Entry | None = None
    args: dict[str, Any] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    emit: dict[str, str] = field(default_factory=dict)

    def writes(self) -> list[str]:
        side = [self.emit.get(k, k) for k in (self.entry.emits if self.entry else ())]
        return [*super().writes(), *side]


@dataclass
class GroupNode(Node):
    children: list[Node] = field(default_factory=list)

    def writes(self) -> list[str]:
        return list(dict.fromkeys(w for c in self.children for w in c.writes()))

    def reads(self) -> list[str]:
        return list(dict.fromkeys(r for c in self.children for r in c.reads()))


@dataclass
class ResidualNode(Node):
    body: list[BlockNode] = field(default_factory=list)
    shortcut: list[BlockNode] | None = None
    scale: float = 1.0
    routes: dict[str, Route] = field(default_factory=dict)


def walk(nodes: list[Node]) -> Iterator[Node]:
    """Every node, depth first, in recipe order (groups, then their children; residuals, then theirs)."""
    for node in nodes:
        yield node
        if isinstance(node, GroupNode):
            yield from walk(node.children)
        elif isinstance(node, ResidualNode):
            yield from walk(list(node.body))
            if node.shortcut:
                yield from walk(list(node.shortcut))


@dataclass
class NetworkSpec:
    """One network after expansion: its inputs, its tree of nodes, outputs, per-layer style registers."""

    name: str  # "G" or "D"
    section: str  # "generator" or "discriminator"
    inputs: dict[str, InputSpec]
    nodes: list[Node]
    output: tuple[str, ...]
    styles: tuple[str, ...] = ()
    stages: int | None = None
    init: str | None = None
    spectral_norm: dict[str, Any] = field(default_factory=dict)  # blocks.configure_spectral_norm's settings

    @property
    def parts(self) -> list[str]:
        """The names of the top-level nodes, in order (``run(parts=...)`` runs a subset)."""
        return [n.name for n in self.nodes]

    def registers(self) -> list[str]:
        """Every register some node writes (side outputs included), in order."""
        return list(dict.fromkeys(w for n in self.nodes for w in n.writes() if w != CURRENT))
