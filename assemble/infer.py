"""Shape inference on ``meta`` tensors: every block's constructor arguments, routes and report rows.

The interpreter walks the network with meta inputs. The first time it reaches a step, the block is built
on ``meta`` with the arguments the recipe gives plus those inferred from the tensors that reach it
(``in_channels``, ``in_features``, ``<name>_dim`` of a consumed vector, ``seg_channels``), and the
consumers of a per-layer register (StyleGAN's ``w``) are numbered in order. Nothing is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from blocks import Chain, Residual, ShapeError

from .errors import Collector, RecipeError
from .expr import ExprError
from .interpret import StepFailure, execute, routed
from .spec import AUTO, CURRENT, BlockNode, NetworkSpec, Node, ResidualNode, Route, walk


@dataclass
class StepReport:
    """One row of ``ganforge show``."""

    path: str
    block: str
    reads: list[str]
    writes: list[str]
    shape: str
    params: int
    flops: int
    consumes: list[str]
    where: str = ""
    nested: bool = False  # a step inside a residual: its parameters and FLOPs are in the residual's row


@dataclass
class Plan:
    """The result of shape inference."""

    args: dict[str, dict[str, Any]] = field(default_factory=dict)  # module path -> constructor arguments
    routes: dict[str, dict[str, Route]] = field(default_factory=dict)  # module path -> resolved routes
    rows: list[StepReport] = field(default_factory=list)
    output_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    params: int | None = None  # every block's, also those a progressive network does not run at the stage shown
    styles: dict[str, int] = field(default_factory=dict)  # per-layer register -> layers its consumers use


def infer_args(node: BlockNode, x: Any, cond: dict[str, Any]) -> dict[str, Any]:
    """The node's arguments plus those inferred from its input ``x`` and its conditioning."""
    assert node.entry is not None
    params = node.entry.signature().parameters
    args = dict(node.args)
    if "in_channels" in params and "in_channels" not in args:
        if not isinstance(x, Tensor) or x.dim() < 2:
            raise StepFailure(node, f"cannot infer in_channels from an input of shape "
                                    f"{tuple(x.shape) if isinstance(x, Tensor) else x!r}; give in_channels")
        args["in_channels"] = int(x.shape[1])
    if "in_features" in params and "in_features" not in args:
        if not isinstance(x, Tensor) or x.dim() < 2:
            raise StepFailure(node, "cannot infer in_features from a non-vector input; give in_features")
        args["in_features"] = int(x.shape[-1])
    if "seg_channels" in params and "seg_channels" not in args and isinstance(cond.get("seg"), Tensor):
        args["seg_channels"] = int(cond["seg"].shape[1])
    for name, t in cond.items():
        key = f"{name}_dim"
        if key in params and key not in args and isinstance(t, Tensor) and t.is_floating_point() and t.dim() >= 2:
            args[key] = int(t.shape[-1])
    return args


def describe_error(err: Exception) -> str:
    plain = (ShapeError, TypeError, ValueError, RuntimeError)
    return str(err) if isinstance(err, plain) else f"{type(err).__name__}: {err}"


def shape_str(out: Any) -> str:
    if isinstance(out, Tensor):
        return "(" + ", ".join(str(s) for s in out.shape[1:]) + ")"
    if isinstance(out, tuple | list):
        return " ".join(shape_str(o) for o in out if not isinstance(o, dict))
    return "-"


def _flops_and_run(module: nn.Module, args: list[Any], kwargs: dict[str, Any], count: bool) -> tuple[Any, int]:
    if not count:
        return module(*args, **kwargs), 0
    with FlopCounterMode(display=False) as counter:
        out = module(*args, **kwargs)
    return out, counter.get_total_flops()


class _Inference:
    """The interpreter's ``call`` during inference: builds each step on meta when first reached."""

    def __init__(self, spec: NetworkSpec):
        self.spec = spec
        self.report = False
        self.stage: int | None = None
        self.regs: dict[str, Any] = {}
        self.modules: dict[str, nn.Module] = {}
        self.plan = Plan()
        self.slots = dict.fromkeys(spec.styles, 0)
        self.used = dict.fromkeys(spec.styles, 0)
        self.nested_rows: dict[str, list[StepReport]] = {}
        self.writer: dict[str, str] = {}  # register -> path of the step that last wrote it

    # ---- routes -----------------------------------------------------------------------------------
    def _cond_for_args(self, routes: dict[str, Route]) -> dict[str, Any]:
        cond = {}
        for name, route in routes.items():
            if route.register in self.regs:
                first = Route(route.register, 0 if route.index == AUTO else route.index)
                cond[name] = routed(self.regs, self._node, name, first, self.spec.styles)
        return cond

    def _resolve(self, routes: dict[str, Route], module: nn.Module) -> dict[str, Route]:
        count = getattr(module, "style_layers", None)
        advance = getattr(module, "style_advance", None)
        advance = advance if advance is not None else (count or 1)
        out = {}
        for name, route in routes.items():
            if route.index == AUTO:
                slot = self.slots[route.register]
                self.slots[route.register] += advance
                route = Route(route.register, slot, count)
            elif route.index is not None and count is not None:
                route = Route(route.register, route.index, count)
            if route.register in self.used and route.index is not None:
                self.used[route.register] = max(self.used[route.register], route.index + (route.count or 1))
            out[name] = route
        return out

    def _conditioning(self, node: Node, module: nn.Module, routes: dict[str, Route]) -> dict[str, Any]:
        cond = {}
        for name in getattr(module, "consumes", ()):
            route = routes.get(name, Route(name))
            if route.register not in self.regs:
                raise StepFailure(node, f"'{getattr(node, 'key', 'residual')}' consumes '{name}' but no input or "
                                        f"earlier step provides register '{route.register}'; declare it in the "
                                        f"network's inputs (e.g. {name}: class(10)) or route it ({name}: <register>)")
            cond[name] = routed(self.regs, node, name, route, self.spec.styles)
        return cond

    # ---- building ---------------------------------------------------------------------------------
    def _build_block(self, node: BlockNode, x: Any, cond: dict[str, Any]) -> nn.Module:
        args = infer_args(node, x, cond)
        try:
            with torch.device("meta"):
                module = node.entry.obj(**args)  # type: ignore[union-attr]
        except Exception as err:  # a recipe value the block rejects, in whatever way, is a recipe error
            raise StepFailure(node, f"'{node.key}' cannot be built with {args}: {describe_error(err)}") from None
        module.eval()
        if self.stage is not None and hasattr(module, "set_stage"):
            module.set_stage(self.stage)
        self.plan.args[node.module_path] = args
        return module

    def _build_residual(self, node: ResidualNode, x: Any) -> nn.Module:
        cond_all = self._cond_for_args(node.routes)
        chains = []
        outs = []
        for children in (node.body, node.shortcut):
            if children is None:
                chains.append(None)
                outs.append(x)
                continue
            h, built, rows = x, {}, []
            for child in children:
                cond = {c: cond_all[c] for c in child.entry.consumes if c in cond_all}  # type: ignore[union-attr]
                module = self._build_block(child, h, cond)
                self._node = child
                try:
                    h, flops = _flops_and_run(module, [h], {c: v for c, v in cond.items()
                                                           if c in getattr(module, "consumes", ())}, True)
                except Exception as err:
                    raise StepFailure(child, describe_error(err)) from None
                built[child.name] = module
                rows.append(StepReport(child.path, child.key, [], [], shape_str(h),
                                       sum(p.numel() for p in module.parameters()), flops, [], child.where, True))
            chains.append(Chain(built))
            outs.append(h)
            self.nested_rows.setdefault(node.module_path, []).extend(rows)
        body, short = outs
        if isinstance(body, Tensor) and isinstance(short, Tensor) and body.shape != short.shape:
            raise StepFailure(node, f"body gives shape {tuple(body.shape)} but shortcut gives {tuple(short.shape)}; "
                                    "they must match to be added")
        module = Residual(chains[0], chains[1], node.scale)
        module.eval()
        return module

    def __call__(self, node: Node, args: list[Any], kwargs: dict[str, Any], container: Any,
                 regs: dict[str, Any]) -> Any:
        self._node = node
        path = node.module_path
        module = self.modules.get(path)
        x = kwargs.get("x") if kwargs else (args[0] if args else None)
        routes = node.routes  # type: ignore[attr-defined]
        if module is None:
            if isinstance(node, ResidualNode):
                if kwargs or len(args) != 1:
                    raise StepFailure(node, f"a residual reads one register, got {len(args) + len(kwargs)}")
                module = self._build_residual(node, x)
            else:
                assert isinstance(node, BlockNode)
                module = self._build_block(node, x, self._cond_for_args(routes))
            self.modules[path] = module
            self.plan.routes[path] = self._resolve(routes, module)
        routes = self.plan.routes[path]
        cond = self._conditioning(node, module, routes)
        clash = set(cond) & set(kwargs)
        if clash:
            raise StepFailure(node, f"{sorted(clash)} is both read by `from` and routed as conditioning")
        try:
            out, flops = _flops_and_run(module, args, {**kwargs, **cond}, self.report)
        except Exception as err:  # shapes that reach the block in the wrong form: name it and its producers
            raise StepFailure(node, f"{describe_error(err)}{self._producers(node, args, kwargs)}") from None
        if self.report:
            params = sum(p.numel() for p in module.parameters())
            block = node.key if isinstance(node, BlockNode) else "residual"
            self.plan.rows.append(StepReport(node.path, block, node.reads(), node.writes(), shape_str(out), params,
                                             flops, [routes[c].describe(c) for c in cond], node.where))
            self.plan.rows += self.nested_rows.get(path, [])
        for name in node.writes():
            self.writer[name] = node.path
        return out

    def _producers(self, node: Node, args: list[Any], kwargs: dict[str, Any]) -> str:
        if isinstance(node.src, dict):
            pairs = [(reg, kwargs.get(k)) for k, reg in node.src.items()]
        else:
            pairs = list(zip(node.src or (CURRENT,), args))
        parts = []
        for name, x in pairs:
            if isinstance(x, Tensor):
                origin = self.writer.get(name, "an input")
                label = "the current tensor" if name == CURRENT else f"register '{name}'"
                parts.append(f"{label} has shape {tuple(x.shape)} and comes from {origin}")
        return f" [{'; '.join(parts)}]" if parts else ""


def _run(spec: NetworkSpec, inference: _Inference, stage: int | None, batch: int) -> dict[str, Any]:
    regs: dict[str, Any] = {name: inp.meta(batch, stage) for name, inp in spec.inputs.items()}
    regs[CURRENT] = next(iter(regs.values())) if regs else None
    inference.regs, inference.stage, inference.writer = regs, stage, {}
    for module in inference.modules.values():
        if stage is not None and hasattr(module, "set_stage"):
            module.set_stage(stage)
    execute(spec.nodes, regs, {"stage": stage} if stage is not None else {}, inference)
    return regs


def infer(spec: NetworkSpec, stage: int | None = None, batch: int = 1) -> Plan:
    """Shape inference on meta tensors: every block's arguments, routes, and the report rows.

    Progressive networks are walked at every stage, the last first (so the consumers of a per-layer
    register are numbered in recipe order); the report rows are those of ``stage`` (default: the last).
    """
    stages = list(range(spec.stages))[::-1] if spec.stages else [None]
    report_stage = stage if stage is not None else stages[0]
    if spec.stages and report_stage is not None and not 0 <= report_stage < spec.stages:
        raise RecipeError(f"{spec.name}: stage {report_stage} is out of range 0..{spec.stages - 1}")
    inference = _Inference(spec)
    issues = Collector()
    final: dict[str, Any] = {}
    last: dict[str, Any] = {}
    try:
        for s in stages:
            inference.report = s == report_stage
            regs = _run(spec, inference, s, batch)
            if s == report_stage:
                final = regs
            if s == stages[0]:
                last = regs
    except StepFailure as err:
        issues.add(err.node.path, err.message, err.node.where)
        raise RecipeError(issues.issues) from None
    except ExprError as err:
        raise RecipeError(f"{spec.name}: a runtime condition failed: {err}") from None
    for node in walk(spec.nodes):
        if isinstance(node, BlockNode | ResidualNode) and node.module_path not in inference.modules and not any(
                node.module_path.startswith(p + ".") for p in inference.modules):
            issues.add(node.path, "this step never runs (its `if` is false at every stage)", node.where)
    for reg, used in inference.used.items():
        t = last.get(reg)
        if isinstance(t, Tensor) and t.dim() == 3 and t.shape[1] != used:
            issues.add(f"{spec.name}.styles", f"register '{reg}' has {t.shape[1]} layers but its consumers use "
                                              f"{used}; set the producer's layer count to {used}")
    for name in spec.output:
        if name not in final:
            issues.add(f"{spec.name}.output", f"output register '{name}' is never written")
    issues.raise_if_any()
    plan = inference.plan
    plan.output_shapes = {n: tuple(final[n].shape[1:]) for n in spec.output if isinstance(final[n], Tensor)}
    plan.params = sum(p.numel() for m in inference.modules.values() for p in m.parameters())
    plan.styles = dict(inference.used)
    return plan
