"""Networks built from recipes: an ``nn.Module`` whose module tree is the recipe's tree of named parts.

``G.synthesis.b8.conv0`` is the step named ``conv0`` in the block ``b8`` of the group ``synthesis``; the
state_dict key of its weight is ``synthesis.b8.conv0.weight``, ``ganforge show`` prints the row
``G.synthesis.b8``, and an error about it says ``G.synthesis.b8``. The network runs its parts with the
interpreter of :mod:`assemble.interpret` over registers (named tensors).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

import blocks
from blocks import Chain, Residual

from .infer import Plan
from .interpret import StepFailure, execute, routed
from .spec import CURRENT, BlockNode, NetworkSpec, Node, ResidualNode


class Group(nn.ModuleDict):
    """A named group of steps (a container in the module tree); the network runs its children in order."""


def _make(node: Node, plan: Plan, device: Any) -> nn.Module:
    if isinstance(node, BlockNode):
        with torch.device(device):
            return node.entry.obj(**plan.args[node.module_path])  # type: ignore[union-attr]
    if isinstance(node, ResidualNode):
        body = Chain({c.name: _make(c, plan, device) for c in node.body})
        short = Chain({c.name: _make(c, plan, device) for c in node.shortcut}) if node.shortcut is not None else None
        return Residual(body, short, node.scale)
    group = Group()
    for child in node.children:  # type: ignore[attr-defined]
        group[child.name] = _make(child, plan, device)
    return group


class Network(nn.Module):
    """A network assembled from a recipe: call it with its declared inputs, e.g. ``G(z, c=None)``.

    Its children are the recipe's top-level parts, by name (``G.mapping``, ``G.synthesis``). ``run``
    returns every register (side outputs included) and can run some parts only (``parts``);
    ``set_stage``/``set_alpha`` drive progressive growing; ``style_layers`` gives the number of per-layer
    style slots of each per-layer register (for mixing and truncation).
    """

    def __init__(self, spec: NetworkSpec, plan: Plan, device: torch.device | str = "cpu"):
        super().__init__()
        self.spec = spec
        self.plan = plan
        self.input_specs = dict(spec.inputs)
        self.output_names = spec.output
        self.style_layers = dict(plan.styles)
        self.num_stages = spec.stages
        for node in spec.nodes:
            self.add_module(node.name, _make(node, plan, device))
        self.stage: int | None = None
        if spec.stages:
            self.set_stage(spec.stages - 1)
        required = [n for n, s in spec.inputs.items() if not s.optional]
        optional = [n for n, s in spec.inputs.items() if s.optional]
        self._signature = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in required]
            + [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for n in optional])

    @property
    def __signature__(self) -> inspect.Signature:  # what inspect.signature(G) shows
        return self._signature

    @property
    def parts(self) -> list[str]:
        """The names of the top-level parts, in order."""
        return self.spec.parts

    def registers(self) -> list[str]:
        """Every register some step writes (side outputs included)."""
        return self.spec.registers()

    def parts_after(self, *registers: str) -> list[str]:
        """The parts after the last one that writes any of ``registers`` (all parts if none writes them):
        what to run with those registers set by hand, e.g. ``G.run(parts=G.parts_after("w"),
        registers={"w": ws})`` runs StyleGAN's synthesis from mixed styles."""
        last = max((i for i, n in enumerate(self.spec.nodes) if set(registers) & set(n.writes())), default=-1)
        return self.parts[last + 1:]

    def parts_through(self, *registers: str) -> list[str]:
        """The parts up to and including the last one that writes any of ``registers``."""
        return self.parts[:len(self.parts) - len(self.parts_after(*registers))]

    # ---- running -------------------------------------------------------------------------------------
    def _call(self, node: Node, args: list[Any], kwargs: dict[str, Any], container: Any,
              regs: dict[str, Any]) -> Any:
        module = container._modules[node.name]
        routes = self.plan.routes[node.module_path]
        for name in module.consumes if isinstance(module, blocks.Block) else ():
            kwargs[name] = routed(regs, node, name, routes[name], self.spec.styles)
        return module(*args, **kwargs)

    def _bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as err:
            decl = ", ".join(f"{n}: {s.describe()}" for n, s in self.input_specs.items())
            raise TypeError(f"{self.spec.name}: {err}; inputs are {decl}") from None
        bound.apply_defaults()
        values = dict(bound.arguments)
        for name, value in values.items():
            if value is None:
                continue
            spec = self.input_specs[name]
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{self.spec.name}: input '{name}' should be a tensor, got {type(value).__name__}")
            shape = spec.shape_at(self.stage)
            if spec.is_index:
                blocks.check_shape(value, "B", block=self.spec.name, name=name)
            elif spec.kind in ("image", "label_map"):
                # a size that follows the stage is checked whole; otherwise only the channels
                sizes = dict(zip("CHW", shape)) if spec.stage_shapes else {"C": shape[0]}
                blocks.check_shape(value, "B C H W", block=self.spec.name, name=name, **sizes)
            else:
                letters = ("D",) if len(shape) == 1 else ("N", "D")
                blocks.check_shape(value, "B " + " ".join(letters), block=self.spec.name, name=name,
                                   **dict(zip(letters, shape)))
        return values

    def run(self, *args: Any, registers: Mapping[str, Any] | None = None, parts: list[str] | None = None,
            **kwargs: Any) -> dict[str, Any]:
        """Run and return every register: inputs, named registers, side outputs, ``"_"`` (current).

        Args:
            registers: registers to set before running (e.g. mixed styles ``{"w": ws}``).
            parts: run only these top-level parts (e.g. ``G.parts_after("w")``); inputs are then taken by
                keyword as given.
        """
        if parts is not None:
            unknown = [p for p in parts if p not in self._modules]
            if unknown:
                raise ValueError(f"{self.spec.name}: unknown part(s) {unknown}; this network has {self.parts}")
            regs = {k: v for k, v in kwargs.items() if v is not None}
        else:
            regs = {k: v for k, v in self._bind(args, kwargs).items() if v is not None}
        regs[CURRENT] = next(iter(regs.values())) if regs else None
        if registers:
            regs.update(registers)
            if regs[CURRENT] is None:
                regs[CURRENT] = next(iter(registers.values()))
        nodes = self.spec.nodes if parts is None else [n for n in self.spec.nodes if n.name in parts]
        runtime = {"stage": self.stage} if self.stage is not None else {}
        try:
            execute(nodes, regs, runtime, self._call, self)
        except StepFailure as err:
            raise ValueError(f"{err.node.path}: {err.message}") from None
        return regs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        regs = self.run(*args, **kwargs)
        outs = tuple(regs[n] for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    # ---- progressive growing ------------------------------------------------------------------------
    def set_stage(self, stage: int) -> None:
        """Run at ``stage`` from now on; every block with a ``set_stage`` (ProGAN's) learns it too."""
        if not self.num_stages:
            raise ValueError(f"{self.spec.name} is not progressive (the recipe declares no stages)")
        if not 0 <= stage < self.num_stages:
            raise ValueError(f"{self.spec.name}: stage must be in 0..{self.num_stages - 1}, got {stage}")
        self.stage = stage
        for m in self.modules():
            if m is not self and hasattr(m, "set_stage"):
                m.set_stage(stage)

    def set_alpha(self, alpha: float) -> None:
        """Set the fade-in α of every fade block (the one at the current stage is the one that runs)."""
        found = False
        for m in self.modules():
            if m is not self and hasattr(m, "set_alpha"):
                m.set_alpha(alpha)
                found = True
        if not found:
            raise ValueError(f"{self.spec.name} has no fade-in blocks")

    def extra_repr(self) -> str:
        ins = ", ".join(f"{n}: {s.describe()}" for n, s in self.input_specs.items())
        return f"{self.spec.name}: inputs=({ins}), output={', '.join(self.output_names)}"
