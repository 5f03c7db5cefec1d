"""Expansion: a network's recipe steps -> a flat list of nodes, with every argument evaluated and bound.

Step forms (each is one list item of a program):

- ``relu`` or ``{conv: {out_channels: 64, kernel_size: 3}}`` -- a block by registry key, with its
  constructor arguments and these step options: ``from`` (register(s) read instead of the current
  tensor), ``into`` (register(s) written instead of the current tensor), ``when`` (a runtime condition,
  e.g. ``stage >= 3``), ``if`` (a static condition: the step exists only if true), ``emit`` (renames of
  side outputs, e.g. ``{kl: kl_stage1}``), and one routing entry per conditioning the block consumes
  (``w: ws``, ``y: {from: ys, index: "$k"}``, ``w: {index: next}``).
- ``{for: {r: [8, 16, 32]}, do: [...]}`` -- a loop; several variables are zipped.
- ``{residual: {body: [...], shortcut: [...], scale: 0.7071}}`` -- ``(body(x) + shortcut(x)) * scale``;
  an absent shortcut is the identity.
- ``{stop: "stage == 2"}`` -- ends the program when the runtime condition holds.
- ``{my_macro: {param: value}}`` -- a macro from the recipe's ``macros`` section, expanded in place.

Everything is collected into :class:`~assemble.errors.Collector` so all problems are reported together.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import blocks
from blocks.registry import Entry, UnknownKeyError

from .errors import Collector
from .expr import ExprError, evaluate, is_expr, names_in, parse
from .validate import check_args

STEP_OPTIONS = ("from", "into", "when", "if", "emit")
CONSTRUCTS = ("for", "residual", "stop")


# ---- nodes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """A runtime condition: an expression evaluated with the network's ``stage`` and the static names
    (loop variables, macro parameters, recipe variables) bound where it was written."""

    text: str
    tree: ast.expr
    env: Mapping[str, Any]

    def __call__(self, runtime: Mapping[str, Any]) -> bool:
        return bool(evaluate(self.tree, {**self.env, **runtime}))


@dataclass(frozen=True)
class Route:
    """Where a consumed conditioning comes from: a register and, for per-layer registers, a layer."""

    register: str
    index: int | None = None


@dataclass
class Node:
    path: str
    context: str
    src: tuple[str, ...] | None = None
    dst: tuple[str, ...] | None = None
    when: tuple[Condition, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.path} ({self.context})" if self.context else self.path


@dataclass
class BlockNode(Node):
    key: str = ""
    entry: Entry | None = None
    args: dict[str, Any] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    emit: dict[str, str] = field(default_factory=dict)


@dataclass
class ResidualNode(Node):
    body: list[Node] = field(default_factory=list)
    shortcut: list[Node] | None = None
    scale: float = 1.0


@dataclass
class StopNode(Node):
    pass


# ---- scopes ----------------------------------------------------------------------------------------


class Variables(Mapping[str, Any]):
    """The recipe's ``vars``, evaluated lazily in dependency order (a cycle is an error)."""

    def __init__(self, raw: Mapping[str, Any]):
        self.raw = dict(raw)
        self.done: dict[str, Any] = {}
        self.active: list[str] = []

    def __getitem__(self, name: str) -> Any:
        if name in self.done:
            return self.done[name]
        if name not in self.raw:
            raise KeyError(name)
        if name in self.active:
            raise ExprError(f"variables refer to each other in a cycle: {' -> '.join([*self.active, name])}")
        self.active.append(name)
        try:
            value = resolve(self.raw[name], self)
        finally:
            self.active.pop()
        self.done[name] = value
        return value

    def __iter__(self):
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


def resolve(value: Any, env: Mapping[str, Any]) -> Any:
    """Evaluate every ``$expression`` inside ``value`` (recursively through lists and mappings)."""
    if isinstance(value, str):
        if is_expr(value):
            return evaluate(value[1:], env)
        return value[1:] if value.startswith("$$") else value
    if isinstance(value, list):
        return [resolve(v, env) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, env) for k, v in value.items()}
    return value


# ---- expansion -------------------------------------------------------------------------------------


class Expander:
    """Expands one network's programs; keeps per-register style-slot counters across programs."""

    def __init__(self, macros: Mapping[str, Any], variables: Mapping[str, Any], styles: tuple[str, ...],
                 issues: Collector):
        self.macros = dict(macros)
        self.vars = variables
        self.styles = styles
        self.issues = issues
        self.slots: dict[str, int] = dict.fromkeys(styles, 0)
        self.slot_peeks: dict[str, int] = dict.fromkeys(styles, 0)
        self.depth = 0

    # helpers
    def _eval(self, value: Any, env: Mapping[str, Any], path: str, ctx: str) -> Any:
        try:
            return resolve(value, env)
        except ExprError as err:
            self.issues.add(path, f"{err}{f' ({ctx})' if ctx else ''}")
            return _FAILED

    def _registers(self, value: Any, path: str, ctx: str) -> tuple[str, ...] | None:
        if value is None:
            return None
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list | tuple) or not names or not all(
                isinstance(n, str) and re.match(r"^[A-Za-z_]\w*$", n) for n in names):
            self.issues.add(path, f"register names must be identifiers (or a list of them), found {value!r}")
            return None
        return tuple(names)

    def _condition(self, text: Any, env: Mapping[str, Any], path: str, ctx: str) -> Condition | None:
        if isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str):
            self.issues.add(path, f"a condition must be an expression string, found {text!r}")
            return None
        src = text[1:] if text.startswith("$") else text
        try:
            tree = parse(src)
            frozen = {n: env[n] for n in names_in(src) if n in env}
        except ExprError as err:
            self.issues.add(path, str(err))
            return None
        unknown = names_in(src) - set(frozen) - {"stage"}
        if unknown:
            self.issues.add(path, f"condition '{src}' uses undefined name(s) {', '.join(sorted(unknown))}"
                            f" (runtime conditions may use 'stage'){f' ({ctx})' if ctx else ''}")
            return None
        return Condition(src, tree, frozen)

    def _step_key(self, item: Any, path: str) -> tuple[str, Any] | None:
        if isinstance(item, str):
            return item, {}
        if isinstance(item, dict) and item:
            if "for" in item:
                return "for", item
            keys = list(item)
            if len(keys) == 1:
                return keys[0], item[keys[0]]
            self.issues.add(path, f"a step has exactly one block, macro or construct key, found {keys}")
            return None
        self.issues.add(path, f"a step must be a block key or a mapping {{key: {{args}}}}, found {item!r}")
        return None

    # entry point
    def expand(self, items: Any, env: Mapping[str, Any], path: str, ctx: str = "",
               when: tuple[Condition, ...] = ()) -> list[Node]:
        if not isinstance(items, list):
            self.issues.add(path, f"a program is a list of steps, found {type(items).__name__}")
            return []
        nodes: list[Node] = []
        for i, item in enumerate(items):
            nodes += self._step(item, env, f"{path}[{i}]", ctx, when)
        return nodes

    def _step(self, item: Any, env: Mapping[str, Any], path: str, ctx: str,
              when: tuple[Condition, ...]) -> list[Node]:
        kv = self._step_key(item, path)
        if kv is None:
            return []
        key, body = kv
        if key == "for":
            return self._for(body, env, path, ctx, when)
        if key == "stop":
            cond = self._condition(body, env, f"{path}.stop", ctx)
            return [StopNode(path, ctx, when=(*when, cond))] if cond else []
        if body is None:
            body = {}
        if not isinstance(body, dict):
            self.issues.add(f"{path}.{key}", f"arguments must be a mapping, found {body!r}")
            return []
        body = dict(body)
        if "if" in body:
            cond = self._eval(body.pop("if"), env, f"{path}.{key}.if", ctx)
            if cond is _FAILED or not cond:
                return []
        step_when = when
        if "when" in body:
            c = self._condition(body.pop("when"), env, f"{path}.{key}.when", ctx)
            step_when = (*when, c) if c else when
        src = self._registers(self._eval(body.pop("from", None), env, f"{path}.{key}.from", ctx),
                              f"{path}.{key}.from", ctx)
        dst = self._registers(self._eval(body.pop("into", None), env, f"{path}.{key}.into", ctx),
                              f"{path}.{key}.into", ctx)
        if key == "residual":
            return self._residual(body, env, f"{path}.residual", ctx, step_when, src, dst)
        if key in self.macros:
            return self._macro(key, body, env, path, ctx, step_when, src, dst)
        try:
            entry = blocks.find_block(key)
        except UnknownKeyError as err:
            known = [*blocks.list_blocks(), *self.macros, *CONSTRUCTS]
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.0)
            self.issues.add(f"{path}.{key}", f"unknown block '{key}'. Closest: {', '.join(close)}. "
                            f"List them all with `ganforge list`." if close else str(err))
            return []
        return [self._block(entry, body, env, f"{path}.{key}", ctx, step_when, src, dst)]

    def _block(self, entry: Entry, body: dict[str, Any], env: Mapping[str, Any], path: str, ctx: str,
               when: tuple[Condition, ...], src, dst) -> BlockNode:
        emit_raw = self._eval(body.pop("emit", {}), env, f"{path}.emit", ctx)
        emit: dict[str, str] = {}
        if isinstance(emit_raw, dict):
            for k, v in emit_raw.items():
                if k not in entry.emits:
                    self.issues.add(f"{path}.emit.{k}", f"'{entry.key}' emits {list(entry.emits) or 'nothing'}")
                elif isinstance(v, str):
                    emit[k] = v
        elif emit_raw is not _FAILED:
            self.issues.add(f"{path}.emit", f"emit maps side outputs to register names, found {emit_raw!r}")
        routes: dict[str, Route] = {}
        for name in entry.consumes:
            routes[name] = self._route(name, body.pop(name, None), env, f"{path}.{name}", ctx)
        args: dict[str, Any] = {}
        failed: set[str] = set()
        for name, raw in body.items():
            value = self._eval(raw, env, f"{path}.{name}", ctx)
            if value is _FAILED:
                failed.add(name)
            else:
                args[name] = value
        args = check_args(entry, args, path, self.issues, ctx, reported=failed)
        return BlockNode(path, ctx, src, dst, when, key=entry.key, entry=entry, args=args, routes=routes,
                         emit=emit)

    def _route(self, name: str, raw: Any, env: Mapping[str, Any], path: str, ctx: str) -> Route:
        register, index = name, "auto"
        value = self._eval(raw, env, path, ctx)
        if isinstance(value, str):
            register = value
        elif isinstance(value, dict):
            extra = set(value) - {"from", "index"}
            if extra:
                self.issues.add(path, f"a conditioning route takes 'from' and 'index', found {sorted(extra)}")
            register = value.get("from", name)
            index = value.get("index", "auto")
        elif value is not None and value is not _FAILED:
            self.issues.add(path, f"route '{name}' with a register name or {{from: reg, index: i}}, "
                            f"found {value!r}")
        if not isinstance(register, str):
            self.issues.add(path, f"register name must be a string, found {register!r}")
            register = name
        if index == "auto":
            if register not in self.slots:
                return Route(register, None)
            slot = self.slots[register]
            self.slots[register] += 1
            return Route(register, slot)
        if index == "next":
            if register not in self.slots:
                self.issues.add(path, f"index 'next' needs '{register}' listed in the network's styles")
                return Route(register, None)
            self.slot_peeks[register] = max(self.slot_peeks[register], self.slots[register] + 1)
            return Route(register, self.slots[register])
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            self.issues.add(path, f"layer index must be a non-negative integer, 'auto' or 'next', found {index!r}")
            return Route(register, None)
        return Route(register, index)

    def _for(self, body: dict[str, Any], env: Mapping[str, Any], path: str, ctx: str,
             when: tuple[Condition, ...]) -> list[Node]:
        extra = set(body) - {"for", "do", "when", "if"}
        if extra:
            self.issues.add(path, f"a loop has keys for, do (and when, if); found also {sorted(extra)}")
        if "if" in body:
            cond = self._eval(body["if"], env, f"{path}.if", ctx)
            if cond is _FAILED or not cond:
                return []
        if "when" in body:
            c = self._condition(body["when"], env, f"{path}.when", ctx)
            when = (*when, c) if c else when
        spec = body.get("for")
        if not isinstance(spec, dict) or not spec:
            self.issues.add(f"{path}.for", f"loop variables must be a mapping like {{r: [8, 16]}}, found {spec!r}")
            return []
        if "do" not in body:
            self.issues.add(path, "a loop needs a 'do' list of steps")
            return []
        values: dict[str, list[Any]] = {}
        for var, raw in spec.items():
            v = self._eval(raw, env, f"{path}.for.{var}", ctx)
            if v is _FAILED:
                return []
            if isinstance(v, range | tuple):
                v = list(v)
            if not isinstance(v, list):
                self.issues.add(f"{path}.for.{var}", f"a loop runs over a list, found {v!r}")
                return []
            if not v:
                self.issues.add(f"{path}.for.{var}", "loop over nothing: the list is empty")
                return []
            values[var] = v
        lengths = {len(v) for v in values.values()}
        if len(lengths) > 1:
            self.issues.add(f"{path}.for", f"zipped loop variables have different lengths: "
                            f"{ {k: len(v) for k, v in values.items()} }")
            return []
        nodes: list[Node] = []
        for i in range(lengths.pop()):
            binding = {k: v[i] for k, v in values.items()}
            label = ", ".join(f"{k}={v!r}" for k, v in binding.items())
            nodes += self.expand(body["do"], _Scope(env, binding), f"{path}.do",
                                 f"{ctx}, {label}" if ctx else label, when)
        return nodes

    def _residual(self, body: dict[str, Any], env: Mapping[str, Any], path: str, ctx: str,
                  when: tuple[Condition, ...], src, dst) -> list[Node]:
        extra = set(body) - {"body", "shortcut", "scale"}
        if extra:
            self.issues.add(path, f"residual takes body, shortcut, scale (and step options); found {sorted(extra)}")
        if "body" not in body:
            self.issues.add(path, "residual needs a 'body' list of steps")
            return []
        scale = self._eval(body.get("scale", 1.0), env, f"{path}.scale", ctx)
        if scale is not _FAILED and (not isinstance(scale, int | float) or isinstance(scale, bool)):
            self.issues.add(f"{path}.scale", f"expects a number, found {scale!r}")
            scale = 1.0
        inner = self.expand(body["body"], env, f"{path}.body", ctx)
        short = body.get("shortcut")
        shortcut = None if short is None else self.expand(short, env, f"{path}.shortcut", ctx)
        return [ResidualNode(path, ctx, src, dst, when, body=inner, shortcut=shortcut,
                             scale=float(scale) if scale is not _FAILED else 1.0)]

    def _macro(self, name: str, body: dict[str, Any], env: Mapping[str, Any], path: str, ctx: str,
               when: tuple[Condition, ...], src, dst) -> list[Node]:
        spec = self.macros[name]
        params = list(spec.get("params", []))
        defaults = dict(spec.get("defaults", {}) or {})
        call_path = f"{path}.{name}"
        missing = [p for p in params if p not in body and p not in defaults]
        if missing:
            self.issues.add(call_path, f"macro '{name}' called without parameter(s) {', '.join(missing)}")
            return []
        unknown = [k for k in body if k not in params and k not in defaults]
        if unknown:
            self.issues.add(call_path, f"macro '{name}' has no parameter(s) {', '.join(unknown)}; "
                            f"it takes {', '.join(params + [d for d in defaults if d not in params])}")
            return []
        binding = {}
        for k in {*params, *defaults}:
            raw = body[k] if k in body else defaults[k]
            value = self._eval(raw, env if k in body else _Scope(env, binding), f"{call_path}.{k}", ctx)
            if value is _FAILED:
                return []
            binding[k] = value
        if self.depth >= 16:
            self.issues.add(call_path, f"macros nested more than 16 deep (is '{name}' recursive?)")
            return []
        self.depth += 1
        try:
            label = f"macro {name} at {path}{', ' + ctx if ctx else ''}"
            nodes = self.expand(spec.get("steps", []), _Scope(self.vars, binding), f"macros.{name}.steps",
                                label, when)
        finally:
            self.depth -= 1
        if (src or dst) and nodes:
            # from/into on a macro call: read before the first step, write after the last.
            nodes[0].src = nodes[0].src or src
            nodes[-1].dst = nodes[-1].dst or dst
        return nodes


class _Scope(Mapping[str, Any]):
    """Names visible at one point: inner bindings first, then the enclosing scope."""

    def __init__(self, parent: Mapping[str, Any], inner: Mapping[str, Any]):
        self.parent, self.inner = parent, inner

    def __getitem__(self, k: str) -> Any:
        return self.inner[k] if k in self.inner else self.parent[k]

    def __iter__(self):
        return iter({*self.inner, *self.parent})

    def __len__(self) -> int:
        return len({*self.inner, *self.parent})

    def __contains__(self, k: object) -> bool:
        return k in self.inner or k in self.parent


class _Failed:
    def __repr__(self) -> str:
        return "<failed>"


_FAILED = _Failed()


def check_macros(macros: Any, issues: Collector) -> dict[str, Any]:
    """Validate the ``macros`` section's form; returns the usable macros."""
    if macros is None:
        return {}
    if not isinstance(macros, dict):
        issues.add("macros", f"macros must be a mapping of name -> {{params, defaults, steps}}, found {macros!r}")
        return {}
    good = {}
    for name, spec in macros.items():
        path = f"macros.{name}"
        if name in CONSTRUCTS or name in STEP_OPTIONS:
            issues.add(path, f"'{name}' is reserved")
            continue
        try:
            blocks.find_block(name)
            issues.add(path, f"macro name '{name}' shadows the registered block '{name}'; rename the macro")
            continue
        except UnknownKeyError:
            pass
        if not isinstance(spec, dict) or "steps" not in spec:
            issues.add(path, "a macro is {params: [names], defaults: {name: value}, steps: [...]}")
            continue
        extra = set(spec) - {"params", "defaults", "steps", "description"}
        if extra:
            issues.add(path, f"unknown macro keys {sorted(extra)}")
        if not isinstance(spec.get("params", []), list) or not isinstance(spec.get("defaults", {}) or {}, dict):
            issues.add(path, "params must be a list of names and defaults a mapping")
            continue
        good[name] = spec
    return good
