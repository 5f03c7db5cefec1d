"""Networks built from recipes: an interpreter over named tensors (registers), shape inference on
``meta`` tensors, and the ``nn.Module`` that holds the blocks.

One interpreter (:func:`execute`) runs a network's nodes both for shape inference (building each block on
``meta`` from the shapes that reach it) and at run time (calling the real blocks), so the two can never
disagree about control flow, routing or side outputs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

import blocks
from blocks import ShapeError

from .errors import Collector, RecipeError
from .expr import ExprError
from .inputs import InputSpec
from .program import BlockNode, Node, ResidualNode, StopNode

CURRENT = "_"


class _Stopped(Exception):
    """Raised by a ``stop`` node whose condition holds: the network's computation ends there."""


class StepFailure(Exception):
    """A node failed during shape inference; carries the node for the error's recipe path."""

    def __init__(self, node: Node, message: str):
        self.node, self.message = node, message
        super().__init__(message)


@dataclass
class NetworkSpec:
    """One network after expansion: its inputs, programs of nodes, outputs, per-layer style registers."""

    name: str
    inputs: dict[str, InputSpec]
    programs: dict[str, list[Node]]
    output: tuple[str, ...]
    styles: dict[str, int]  # register -> number of layer slots its consumers use
    stages: int | None = None
    init: str | None = None
    section: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepReport:
    """One row of ``ganforge show``."""

    path: str
    context: str
    block: str
    shape: str
    params: int
    flops: int
    consumes: tuple[str, ...]


# ---- the interpreter --------------------------------------------------------------------------------


def walk(nodes: list[Node], prefix: str) -> list[tuple[str, Node]]:
    """(module path, node) for every node, depth first, in construction order."""
    out: list[tuple[str, Node]] = []
    for i, node in enumerate(nodes):
        path = f"{prefix}.{i}"
        out.append((path, node))
        if isinstance(node, ResidualNode):
            out += walk(node.body, f"{path}.body")
            if node.shortcut is not None:
                out += walk(node.shortcut, f"{path}.shortcut")
    return out


def _read(regs: dict[str, Any], name: str, node: Node) -> Any:
    try:
        return regs[name]
    except KeyError:
        known = ", ".join(sorted(k for k in regs if k != CURRENT and not k.startswith("__"))) or "none"
        raise StepFailure(node, f"reads register '{name}', which no input or earlier step writes "
                                f"(registers here: {known})") from None


def _route(regs: dict[str, Any], node: BlockNode, name: str, styles: Mapping[str, int]) -> Tensor:
    route = node.routes[name]
    t = _read(regs, route.register, node)
    if route.index is None or not isinstance(t, Tensor):
        return t
    if t.dim() == 3:
        if route.index >= t.shape[1]:
            raise StepFailure(node, f"asks for layer {route.index} of '{route.register}', which has "
                                    f"{t.shape[1]} layers (shape {tuple(t.shape)})")
        return t[:, route.index]
    if route.register in styles and t.dim() == 2:
        return t  # one style vector broadcast to every layer
    raise StepFailure(node, f"asks for layer {route.index} of '{route.register}', but that register has "
                            f"shape {tuple(t.shape)} (per-layer registers are (B, layers, D))")


def execute(nodes: list[Node], regs: dict[str, Any], runtime: Mapping[str, Any],
            call: Callable[[BlockNode, list[Any], dict[str, Any]], Any], styles: Mapping[str, int]) -> None:
    """Run ``nodes`` over the register file ``regs`` (the current tensor is ``regs["_"]``)."""
    for node in nodes:
        if node.when and not all(c(runtime) for c in node.when):
            continue
        if isinstance(node, StopNode):
            raise _Stopped
        xs = [_read(regs, s, node) for s in node.src] if node.src else [regs[CURRENT]]
        if isinstance(node, BlockNode):
            out = call(node, xs, regs)
            if node.entry is not None and node.entry.emits and isinstance(out, tuple) and len(out) == 2 \
                    and isinstance(out[1], dict):
                out, side = out
                for k, v in side.items():
                    regs[node.emit.get(k, k)] = v
        else:
            assert isinstance(node, ResidualNode)
            if len(xs) != 1:
                raise StepFailure(node, f"a residual reads one register, got {len(xs)}")
            out = _residual(node, xs[0], regs, runtime, call, styles)
        _write(regs, node, out)


def _residual(node: ResidualNode, x: Tensor, regs: dict[str, Any], runtime: Mapping[str, Any],
              call: Callable, styles: Mapping[str, int]) -> Tensor:
    saved = regs[CURRENT]
    regs[CURRENT] = x
    execute(node.body, regs, runtime, call, styles)
    body = regs[CURRENT]
    short = x
    if node.shortcut is not None:
        regs[CURRENT] = x
        execute(node.shortcut, regs, runtime, call, styles)
        short = regs[CURRENT]
    regs[CURRENT] = saved
    if body.shape != short.shape:
        raise StepFailure(node, f"body gives shape {tuple(body.shape)} but shortcut gives "
                                f"{tuple(short.shape)}; they must match to be added")
    out = body + short
    return out * node.scale if node.scale != 1.0 else out


def _write(regs: dict[str, Any], node: Node, out: Any) -> None:
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


def _shape_str(out: Any) -> str:
    if isinstance(out, Tensor):
        return "(" + ", ".join(str(s) for s in out.shape[1:]) + ")"
    if isinstance(out, tuple | list):
        return " ".join(_shape_str(o) for o in out if not isinstance(o, dict))
    return "-"


# ---- shape inference ----------------------------------------------------------------------------------


@dataclass
class Plan:
    """The result of shape inference: each block's final constructor arguments, and the report rows."""

    args: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[StepReport] = field(default_factory=list)
    output_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # every block's parameters: more than the rows hold for a progressive network shown at one stage
    params: int | None = None


def _infer_args(node: BlockNode, xs: list[Any], cond: dict[str, Any]) -> dict[str, Any]:
    assert node.entry is not None
    params = node.entry.signature().parameters
    args = dict(node.args)
    x = xs[0] if xs else None
    if "in_channels" in params and "in_channels" not in args:
        if not isinstance(x, Tensor) or x.dim() < 2:
            raise StepFailure(node, f"cannot infer in_channels from an input of shape "
                                    f"{tuple(x.shape) if isinstance(x, Tensor) else x!r}")
        args["in_channels"] = int(x.shape[1])
    if "in_features" in params and "in_features" not in args:
        if not isinstance(x, Tensor) or x.dim() < 2:
            raise StepFailure(node, "cannot infer in_features from a non-vector input")
        args["in_features"] = int(x.shape[-1])
    if "seg_channels" in params and "seg_channels" not in args and isinstance(cond.get("seg"), Tensor):
        args["seg_channels"] = int(cond["seg"].shape[1])
    for name, t in cond.items():
        key = f"{name}_dim"
        if key in params and key not in args and isinstance(t, Tensor) and t.is_floating_point() and t.dim() >= 2:
            args[key] = int(t.shape[-1])
    return args


class _Inference:
    """Builds each block on ``meta`` when the interpreter first reaches it, then runs it."""

    def __init__(self, spec: NetworkSpec, report: bool):
        self.spec = spec
        self.report = report
        self.modules: dict[int, nn.Module] = {}
        self.plan = Plan()
        self.paths = {id(n): p for prog, nodes in spec.programs.items() for p, n in walk(nodes, prog)}

    def __call__(self, node: BlockNode, xs: list[Any], regs: dict[str, Any]) -> Any:
        assert node.entry is not None
        cond = {}
        for name, route in node.routes.items():
            if route.register in regs:
                cond[name] = _route(regs, node, name, self.spec.styles)
        module = self.modules.get(id(node))
        if module is None:
            args = _infer_args(node, xs, cond)
            try:
                with torch.device("meta"):
                    module = node.entry.obj(**args)
            except Exception as err:  # a recipe value the block rejects, in whatever way, is a recipe error
                raise StepFailure(node, f"'{node.key}' cannot be built with {args}: "
                                        f"{_describe_error(err)}") from None
            module.eval()
            self.modules[id(node)] = module
            self.plan.args[self.paths[id(node)]] = args
        consumes = tuple(getattr(module, "consumes", ()))
        for name in consumes:
            if name not in cond:
                reg = node.routes[name].register if name in node.routes else name
                raise StepFailure(node, f"'{node.key}' consumes '{name}' but no input or earlier step provides "
                                        f"register '{reg}'; declare it in the network's inputs (e.g. "
                                        f"{name}: class(10)) or route it ({name}: <register>)")
        kwargs = {k: v for k, v in cond.items() if k in consumes}
        try:
            if self.report:
                with FlopCounterMode(display=False) as counter:
                    out = module(*xs, **kwargs)
                flops = counter.get_total_flops()
            else:
                out = module(*xs, **kwargs)
                flops = 0
        except Exception as err:  # shapes that reach the block in the wrong form: name it and its producers
            raise StepFailure(node, f"{_describe_error(err)}{self._producers(xs, regs, node)}") from None
        if self.report:
            params = sum(p.numel() for p in module.parameters())
            self.plan.rows.append(StepReport(node.path, node.context, node.key, _shape_str(out), params, flops,
                                             tuple(kwargs)))
        return out

    def _producers(self, xs: list[Any], regs: dict[str, Any], node: BlockNode) -> str:
        names = node.src or (CURRENT,)
        parts = []
        for name, x in zip(names, xs):
            if isinstance(x, Tensor):
                origin = regs.get(f"__from_{name}", "an input")
                label = "the current tensor" if name == CURRENT else f"register '{name}'"
                parts.append(f"{label} has shape {tuple(x.shape)} and comes from {origin}")
        return f" [{'; '.join(parts)}]" if parts else ""


def _describe_error(err: Exception) -> str:
    plain = (ShapeError, TypeError, ValueError, RuntimeError)
    return str(err) if isinstance(err, plain) else f"{type(err).__name__}: {err}"


class _Tracking(dict):
    """A register file that remembers which step wrote each register (for error messages)."""

    node_where: str = "an input"

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if not key.startswith("__from_"):
            super().__setitem__(f"__from_{key}", self.node_where)


def _run_spec(spec: NetworkSpec, infer: _Inference, stage: int | None, batch: int) -> dict[str, Any]:
    regs = _Tracking()
    for name, inp in spec.inputs.items():
        regs[name] = inp.meta(batch, stage)
    regs[CURRENT] = next(iter(regs.values())) if spec.inputs else None

    call = infer

    def tracked(node: BlockNode, xs: list[Any], r: dict[str, Any]) -> Any:
        out = call(node, xs, r)
        regs.node_where = node.where
        return out

    runtime = {"stage": stage} if stage is not None else {}
    try:
        for nodes in spec.programs.values():
            execute(nodes, regs, runtime, tracked, spec.styles)
    except _Stopped:
        pass
    return regs


def infer(spec: NetworkSpec, stage: int | None = None, batch: int = 1) -> Plan:
    """Shape inference on meta tensors: builds every block's arguments and the report rows.

    Progressive networks are walked at every stage (so blocks that only run at early stages are built
    too); the report rows come from ``stage`` (default: the last).
    """
    issues = Collector()
    where = f"{spec.name}"
    stages = list(range(spec.stages)) if spec.stages else [None]
    report_stage = stage if stage is not None else stages[-1]
    if spec.stages and report_stage is not None and not 0 <= report_stage < spec.stages:
        raise RecipeError(f"{where}: stage {report_stage} is out of range 0..{spec.stages - 1}")
    infer_ = _Inference(spec, report=False)
    regs: dict[str, Any] = {}
    try:
        for s in stages:
            infer_.report = s == report_stage
            regs = _run_spec(spec, infer_, s, batch)
            if s == report_stage:
                final = regs
    except StepFailure as err:
        issues.add(err.node.path, f"{err.message}{f' ({err.node.context})' if err.node.context else ''}")
        raise RecipeError(issues.issues) from None
    except ExprError as err:
        raise RecipeError(f"{where}: a runtime condition failed: {err}") from None
    for prog, nodes in spec.programs.items():
        for _, node in walk(nodes, prog):
            if isinstance(node, BlockNode) and id(node) not in infer_.modules:
                issues.add(node.path, f"this step never runs (its 'when' is false at every stage, or a "
                                      f"'stop' always comes first){f' ({node.context})' if node.context else ''}")
    for reg, used in spec.styles.items():
        t = final.get(reg)
        if isinstance(t, Tensor) and t.dim() == 3 and t.shape[1] != used:
            issues.add(f"{spec.name}.styles", f"register '{reg}' has {t.shape[1]} layers but its consumers "
                                              f"use {used}; set the producer's layer count to {used}")
    for name in spec.output:
        if name not in final:
            issues.add(f"{spec.name}.output", f"output register '{name}' is never written")
    issues.raise_if_any()
    infer_.plan.output_shapes = {n: tuple(final[n].shape[1:]) for n in spec.output
                                 if isinstance(final[n], Tensor)}
    infer_.plan.params = sum(p.numel() for m in infer_.modules.values() for p in m.parameters())
    return infer_.plan


# ---- the built network -----------------------------------------------------------------------------


class Network(nn.Module):
    """A network assembled from a recipe: call it with its declared inputs, e.g. ``G(z, c=None)``.

    ``run`` returns every register (side outputs included), ``set_stage``/``set_alpha`` drive progressive
    growing, ``style_layers`` gives the number of per-layer style slots (for mixing and truncation).
    """

    def __init__(self, spec: NetworkSpec, plan: Plan, device: torch.device | str = "cpu"):
        super().__init__()
        self.spec = spec
        self.plan = plan
        self.input_specs = dict(spec.inputs)
        self.output_names = spec.output
        self.style_layers = dict(spec.styles)
        self.num_stages = spec.stages
        self.stage = (spec.stages - 1) if spec.stages else None
        self._by_node: dict[str, nn.Module] = {}
        for prog, nodes in spec.programs.items():
            container = nn.ModuleDict()
            self.add_module(prog, container)
            self._build(nodes, container, prog, device)
        required = [n for n, s in spec.inputs.items() if not s.optional]
        optional = [n for n, s in spec.inputs.items() if s.optional]
        self._signature = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in required]
            + [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for n in optional])

    def _build(self, nodes: list[Node], container: nn.ModuleDict, prefix: str, device: Any) -> None:
        for i, node in enumerate(nodes):
            path = f"{prefix}.{i}"
            if isinstance(node, BlockNode):
                assert node.entry is not None
                with torch.device(device):
                    module = node.entry.obj(**self.plan.args[path])
                container[str(i)] = module
                self._by_node[path] = module
                node.module_path = path  # type: ignore[attr-defined]
            elif isinstance(node, ResidualNode):
                sub = nn.ModuleDict({"body": nn.ModuleDict()})
                self._build(node.body, sub["body"], f"{path}.body", device)
                if node.shortcut is not None:
                    sub["shortcut"] = nn.ModuleDict()
                    self._build(node.shortcut, sub["shortcut"], f"{path}.shortcut", device)
                container[str(i)] = sub

    @property
    def __signature__(self) -> inspect.Signature:  # what inspect.signature(G) shows
        return self._signature

    # ---- running -------------------------------------------------------------------------------------
    def _call(self, node: BlockNode, xs: list[Any], regs: dict[str, Any]) -> Any:
        module = self._by_node[node.module_path]  # type: ignore[attr-defined]
        kwargs = {name: _route(regs, node, name, self.style_layers)
                  for name in getattr(module, "consumes", ())}
        return module(*xs, **kwargs)

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
            if not isinstance(value, Tensor):
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

    def run(self, *args: Any, registers: Mapping[str, Any] | None = None, programs: list[str] | None = None,
            **kwargs: Any) -> dict[str, Any]:
        """Run and return every register: inputs, named registers, side outputs, ``"_"`` (current).

        Args:
            registers: registers to set before running (e.g. mixed styles ``{"w": ws}``).
            programs: run only these programs (e.g. ``["synthesis"]`` with ``registers={"w": ws}``).
        """
        if programs is not None:
            unknown = set(programs) - set(self.spec.programs)
            if unknown:
                raise ValueError(f"{self.spec.name}: unknown program(s) {sorted(unknown)}; "
                                 f"this network has {list(self.spec.programs)}")
            regs = {k: v for k, v in kwargs.items() if v is not None}
        else:
            regs = {k: v for k, v in self._bind(args, kwargs).items() if v is not None}
        regs[CURRENT] = next(iter(regs.values())) if regs else None
        if registers:
            regs.update(registers)
            regs[CURRENT] = regs.get(CURRENT) if regs.get(CURRENT) is not None else next(iter(registers.values()))
        runtime = {"stage": self.stage} if self.stage is not None else {}
        try:
            for name, nodes in self.spec.programs.items():
                if programs is None or name in programs:
                    execute(nodes, regs, runtime, self._call, self.style_layers)
        except _Stopped:
            pass
        except StepFailure as err:
            raise ValueError(f"{self.spec.name}: {err.node.where}: {err.message}") from None
        return regs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        regs = self.run(*args, **kwargs)
        outs = tuple(regs[n] for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    # ---- progressive growing ------------------------------------------------------------------------
    def set_stage(self, stage: int) -> None:
        if not self.num_stages:
            raise ValueError(f"{self.spec.name} is not progressive (the recipe declares no stages)")
        if not 0 <= stage < self.num_stages:
            raise ValueError(f"{self.spec.name}: stage must be in 0..{self.num_stages - 1}, got {stage}")
        self.stage = stage

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
        return f"name={self.spec.name!r}, inputs=({ins}), output={', '.join(self.output_names)}"
