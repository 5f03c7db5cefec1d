"""Expansion: a network's recipe section -> a :class:`~assemble.spec.NetworkSpec`, every value evaluated,
every argument bound, every part named. All problems go to one :class:`~assemble.errors.Collector`.

The step forms (docs/recipes.md has the grammar):

- ``relu`` or ``{conv: {out_channels: 64, name: conv0}}``: a block by registry key, with its constructor
  arguments and the step options ``name``, ``from``, ``into``, ``if``, ``emit`` and one route per
  conditioning it consumes (``w: ws``, ``y: {from: ys, index: 2}``);
- ``{for: {r: [8, 16]}, do: [...]}``: a loop (several variables are zipped); with ``name`` each iteration
  is a named group, without, its steps join the enclosing container;
- ``{do: [...]}``: a sequence; with ``name`` a named group (a container in the module tree);
- ``{residual: {body: [...], shortcut: [...], scale: 0.7071}}``: a :class:`blocks.Residual`.

``if`` is the only conditional: ``true``/``false`` or an expression (``"$r == 64"``), decided when the
recipe is built unless it mentions ``stage``, in which case it is checked at every run. A step without a
name is named after its block key, numbered from the second of that key in its container (``conv``,
``conv_1``, ...), so adding a step of another kind renames nothing.
"""

from __future__ import annotations

import difflib
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

import blocks
from blocks.registry import Entry, UnknownKeyError

from .errors import Collector
from .expr import ExprError, evaluate, is_expr, names_in, parse
from .inputs import parse_input
from .spec import AUTO, CURRENT, BlockNode, Condition, GroupNode, NetworkSpec, Node, Registers, ResidualNode, Route
from .validate import check_args

NETWORKS = {"generator": "G", "discriminator": "D"}
NETWORK_KEYS = ("description", "inputs", "steps", "output", "styles", "stages", "init", "spectral_norm")
STEP_OPTIONS = ("name", "from", "into", "if", "emit")
MAX_NODES = 20_000  # expanded steps per network: a recipe that needs more is a mistake (or an attack)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_REGISTER = re.compile(r"^[A-Za-z_]\w*$")
# names a part cannot take: attributes of the containers, and at the top those of the network
_RESERVED = set(dir(nn.ModuleDict))
_NETWORK_ATTRIBUTES = {"spec", "plan", "stage", "num_stages", "input_specs", "output_names", "style_layers"}


def _reserved(name: str, top: bool) -> bool:
    if name in _RESERVED:
        return True
    if top:
        from .network import Network  # imported here: network.py builds on this module's output

        return name in _NETWORK_ATTRIBUTES or hasattr(Network, name)
    return False
REMOVED = {
    "when": "'when' was removed: `if` is the one conditional; an `if` that mentions stage is checked at run "
            "time, e.g. if: \"$stage >= 2\"",
    "stop": "'stop' was removed: give the steps that follow `if: \"$stage >= s\"`, or use a progressive "
            "composite block (ganforge list composite)",
    "programs": "'programs' was removed: a network has one `steps` list; what was a program is a named group "
                "{name: synthesis, do: [...]}, and G.run(parts=[...]) runs some of them",
    "macros": "macros were removed: a repeated unit is a composite block (ganforge list composite), a loop "
              "(`for`) or a function in the Python builder (assemble.Net)",
}


class _Failed:
    def __repr__(self) -> str:
        return "<failed>"


FAILED = _Failed()


class Scope(Mapping[str, Any]):
    """Names visible at one point: inner bindings (loop variables) first, then the enclosing scope."""

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


class Variables(Mapping[str, Any]):
    """The recipe's ``vars``, evaluated lazily in dependency order (a cycle is an error). A variable that
    fails is evaluated once: later uses get the same error."""

    def __init__(self, raw: Mapping[str, Any]):
        self.raw = dict(raw)
        self.done: dict[str, Any] = {}
        self.failed: dict[str, ExprError] = {}
        self.active: list[str] = []

    def __getitem__(self, name: str) -> Any:
        if name in self.done:
            return self.done[name]
        if name in self.failed:
            raise ExprError(f"variable '{name}' failed: {self.failed[name]}")
        if name not in self.raw:
            raise KeyError(name)
        if name in self.active:
            raise ExprError(f"variables refer to each other in a cycle: {' -> '.join([*self.active, name])}")
        self.active.append(name)
        try:
            value = resolve(self.raw[name], self)
        except ExprError as err:
            self.failed[name] = err
            raise
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


@dataclass
class _Container:
    """The names already given in one container (the network, a group, a residual's body)."""

    path: str
    names: dict[str, str] = field(default_factory=dict)  # name -> where it was given
    counters: dict[str, int] = field(default_factory=dict)

    def default(self, key: str) -> str:
        k = self.counters.get(key, 0)
        while True:
            name = key if k == 0 else f"{key}_{k}"
            k += 1
            if name not in self.names:
                break
        self.counters[key] = k
        return name


class Expander:
    """Expands one network's steps into named nodes."""

    def __init__(self, net: str, variables: Mapping[str, Any], styles: tuple[str, ...], stages: int | None,
                 issues: Collector):
        self.net, self.vars, self.styles, self.stages, self.issues = net, variables, styles, stages, issues
        self.count = 0

    # ---- values -----------------------------------------------------------------------------------
    def _eval(self, value: Any, env: Mapping[str, Any], path: str, where: str) -> Any:
        try:
            return resolve(value, env)
        except ExprError as err:
            message = str(err)
            if "'stage'" in message and "stage" not in env:
                message = "'stage' is known only at run time: use it in an `if`, not in a value"
            self.issues.add(path, message, where)
            return FAILED

    def _condition(self, raw: Any, env: Mapping[str, Any], path: str, where: str) -> tuple[bool, Condition | None]:
        """(keep the step, runtime condition or None) for an ``if`` value."""
        if isinstance(raw, bool):
            return raw, None
        if not is_expr(raw):
            found = f"the plain string {raw!r} (write '${raw}')" if isinstance(raw, str) else repr(raw)
            self.issues.add(path, f"a condition is true, false or an expression starting with '$'; found {found}",
                            where)
            return False, None
        text = raw[1:]
        try:
            tree, names = parse(text), names_in(text)
        except ExprError as err:
            self.issues.add(path, str(err), where)
            return False, None
        if "stage" in names and "stage" not in env:
            if not self.stages:
                self.issues.add(path, f"'{raw}' uses stage, but the network declares no stages", where)
                return False, None
            frozen = {n: env[n] for n in names if n in env}
            unknown = names - set(frozen) - {"stage"}
            if unknown:
                self.issues.add(path, f"'{raw}' uses undefined name(s) {', '.join(sorted(unknown))}", where)
                return False, None
            return True, Condition(text, tree, frozen)
        value = self._eval(raw, env, path, where)
        if value is FAILED:
            return False, None
        if not isinstance(value, bool | int):
            self.issues.add(path, f"'{raw}' gives {value!r}; a condition must give true or false", where)
            return False, None
        return bool(value), None

    def _registers(self, raw: Any, env: Mapping[str, Any], path: str, where: str, keyword_ok: bool) -> Registers:
        value = self._eval(raw, env, path, where)
        if value is None or value is FAILED:
            return None
        if isinstance(value, str):
            value = [value]
        if keyword_ok and isinstance(value, dict):
            if all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) for k in value) and all(
                    isinstance(v, str) and _REGISTER.match(v) for v in value.values()):
                return dict(value)
        elif isinstance(value, list) and (value or keyword_ok) and all(
                isinstance(v, str) and _REGISTER.match(v) for v in value):
            return tuple(value)
        what = ("a register name, a list of them (positional inputs) or a mapping input -> register"
                if keyword_ok else "a register name or a non-empty list of them")
        self.issues.add(path, f"expects {what}; found {value!r}", where)
        return None

    def _name(self, raw: Any, env: Mapping[str, Any], path: str, where: str, top: bool) -> str | None:
        value = self._eval(raw, env, path, where)
        if value is FAILED:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not _NAME.match(value):
            self.issues.add(path, "a name is letters, digits and _, not starting with _ (it becomes a module "
                            f"name); found {value!r}", where)
            return None
        if _reserved(value, top):
            self.issues.add(path, f"'{value}' is reserved (an attribute of the network's modules); choose "
                            "another name", where)
            return None
        return value

    def _claim(self, name: str, container: _Container, where: str) -> bool:
        if name in container.names:
            self.issues.add(f"{container.path}.{name}", f"two parts are named '{name}' (the other is at "
                            f"{container.names[name]}); names in one container must differ", where)
            return False
        container.names[name] = where
        return True

    # ---- steps ------------------------------------------------------------------------------------
    def expand(self, items: Any, env: Mapping[str, Any], loc: str, ctx: str, container: _Container,
               conds: tuple[Condition, ...] = ()) -> list[Node]:
        if not isinstance(items, list):
            self.issues.add(container.path, f"steps are a list, found {type(items).__name__}", loc)
            return []
        nodes: list[Node] = []
        for i, item in enumerate(items):
            if self.count > MAX_NODES:
                self.issues.add(container.path, f"the network expands to more than {MAX_NODES:,} steps", loc)
                break
            nodes += self._item(item, env, f"{loc}[{i}]", ctx, container, conds)
        return nodes

    def _item(self, item: Any, env: Mapping[str, Any], loc: str, ctx: str, container: _Container,
              conds: tuple[Condition, ...]) -> list[Node]:
        where = f"{loc} ({ctx})" if ctx else loc
        top = container.path == self.net
        if isinstance(item, dict) and ("for" in item or "do" in item):
            return self._sequence(item, env, loc, ctx, container, conds)
        if isinstance(item, str):
            key, body = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            key, body = next(iter(item.items()))
        else:
            found = list(item) if isinstance(item, dict) else repr(item)
            self.issues.add(container.path, "a step is a block key, {key: {arguments and options}}, a loop "
                            f"{{for: ..., do: [...]}} or a sequence {{do: [...]}}; found {found}", where)
            return []
        if not isinstance(key, str):
            self.issues.add(container.path, f"a step's key is a block name, found {key!r}", where)
            return []
        if key in REMOVED:
            self.issues.add(f"{container.path}.{key}", REMOVED[key], where)
            return []
        if key in STEP_OPTIONS:
            self.issues.add(container.path, f"'{key}' is a step option, not a block: a named group is {{name: g, "
                            "do: [steps]}, a named step {conv: {name: c, ...}}", where)
            return []
        if body is None:
            body = {}
        if not isinstance(body, dict):
            self.issues.add(f"{container.path}.{key}", f"arguments are a mapping, found {body!r}", where)
            return []
        body = dict(body)
        if "when" in body:
            body.pop("when")
            self.issues.add(f"{container.path}.{key}.when", REMOVED["when"], where)
        keep, cond = self._condition(body.pop("if"), env, f"{container.path}.{key}.if", where) \
            if "if" in body else (True, None)
        if not keep:
            return []
        step_conds = (*conds, cond) if cond else conds
        if key == "residual":
            entry = None
        else:
            try:
                entry = blocks.find_block(key)
            except UnknownKeyError:
                known = [*blocks.list_blocks(), "residual", "for", "do"]
                close = difflib.get_close_matches(key, known, n=3, cutoff=0.0)
                self.issues.add(f"{container.path}.{key}", f"unknown block '{key}'. Closest: {', '.join(close)}. "
                                "List them all with `ganforge list`.", where)
                return []
        name = self._name(body.pop("name"), env, f"{container.path}.{key}.name", where, top) \
            if "name" in body else container.default(key)
        if name is None or not self._claim(name, container, where):
            return []
        path = f"{container.path}.{name}"
        src = self._registers(body.pop("from", None), env, f"{path}.from", where, keyword_ok=True)
        dst = self._registers(body.pop("into", None), env, f"{path}.into", where, keyword_ok=False)
        self.count += 1
        if entry is None:
            return [self._residual(name, path, body, env, loc, ctx, step_conds, src, dst)]
        return [self._block(entry, name, path, body, env, where, step_conds, src, dst)]

    def _block(self, entry: Entry, name: str, path: str, body: dict[str, Any], env: Mapping[str, Any],
               where: str, conds: tuple[Condition, ...], src: Registers, dst: tuple[str, ...] | None) -> BlockNode:
        emit: dict[str, str] = {}
        if "emit" in body:
            raw = self._eval(body.pop("emit"), env, f"{path}.emit", where)
            if isinstance(raw, dict):
                for k, v in raw.items():
                    if k not in entry.emits:
                        self.issues.add(f"{path}.emit.{k}", f"'{entry.key}' emits {list(entry.emits) or 'nothing'}",
                                        where)
                    elif not isinstance(v, str) or not _REGISTER.match(v):
                        self.issues.add(f"{path}.emit.{k}", f"expects a register name, found {v!r}", where)
                    else:
                        emit[k] = v
            elif raw is not FAILED:
                self.issues.add(f"{path}.emit", f"emit maps side outputs to register names, found {raw!r}", where)
        routes = {c: self._route(c, body.pop(c, None), env, f"{path}.{c}", where) for c in entry.consumes}
        args: dict[str, Any] = {}
        failed: set[str] = set()
        for arg, raw in body.items():
            if not isinstance(arg, str):
                self.issues.add(path, f"an argument name must be a string, found {arg!r}", where)
                continue
            value = self._eval(raw, env, f"{path}.{arg}", where)
            if value is FAILED:
                failed.add(arg)
            else:
                args[arg] = value
        args = check_args(entry, args, path, self.issues, where, reported=failed)
        return BlockNode(name, path, where, conds, src, dst, key=entry.key, entry=entry, args=args, routes=routes,
                         emit=emit)

    def _route(self, name: str, raw: Any, env: Mapping[str, Any], path: str, where: str) -> Route:
        register: Any = name
        index: Any = AUTO
        value = self._eval(raw, env, path, where)
        if isinstance(value, str):
            register = value
        elif isinstance(value, dict):
            extra = set(value) - {"from", "index"}
            if extra:
                self.issues.add(path, f"a route takes 'from' and 'index', found {sorted(extra)}", where)
            register = value.get("from", name)
            index = value.get("index", AUTO)
        elif value is not None and value is not FAILED:
            self.issues.add(path, f"route '{name}' with a register name or {{from: register, index: i}}, "
                            f"found {value!r}", where)
        if not isinstance(register, str) or not _REGISTER.match(register):
            self.issues.add(path, f"expects a register name, found {register!r}", where)
            register = name
        if index == "next":
            self.issues.add(path, "index 'next' was removed: a block that shares a layer of w with the next one is "
                            "a composite (stylegan2_synthesis_block); otherwise give the index", where)
            index = AUTO
        if index == AUTO:
            return Route(register, AUTO if register in self.styles else None)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            self.issues.add(path, f"a layer index is a non-negative integer, found {index!r}", where)
            return Route(register, None)
        return Route(register, index)

    def _sequence(self, item: dict[str, Any], env: Mapping[str, Any], loc: str, ctx: str, container: _Container,
                  conds: tuple[Condition, ...]) -> list[Node]:
        """``{for: ..., do: [...]}`` and ``{do: [...]}``, each with an optional ``name`` and ``if``."""
        where = f"{loc} ({ctx})" if ctx else loc
        allowed = {"for", "do", "name", "if"}
        extra = [k for k in item if k not in allowed]
        for k in extra:
            self.issues.add(f"{container.path}.{k}", REMOVED.get(k, f"a loop or sequence takes for, do, name and "
                            f"if; found '{k}'"), where)
        if "do" not in item:
            self.issues.add(container.path, "a loop needs a 'do' list of steps", where)
            return []
        keep, cond = self._condition(item["if"], env, f"{container.path}.if", where) if "if" in item else (True, None)
        if not keep:
            return []
        if cond:
            conds = (*conds, cond)
        bindings: list[dict[str, Any]] = [{}]
        if "for" in item:
            bindings = self._bindings(item["for"], env, f"{container.path}.for", where)
        nodes: list[Node] = []
        for binding in bindings:
            label = ", ".join(f"{k}={v!r}" for k, v in binding.items())
            inner_ctx = f"{ctx}, {label}" if ctx and label else (label or ctx)
            scope = Scope(env, binding) if binding else env
            if "name" not in item:
                nodes += self.expand(item["do"], scope, f"{loc}.do", inner_ctx, container, conds)
                continue
            inner_where = f"{loc} ({inner_ctx})" if inner_ctx else loc
            name = self._name(item["name"], scope, f"{container.path}.name", inner_where, container.path == self.net)
            if name is None or not self._claim(name, container, inner_where):
                continue
            group = _Container(f"{container.path}.{name}")
            children = self.expand(item["do"], scope, f"{loc}.do", inner_ctx, group)
            self.count += 1
            nodes.append(GroupNode(name, group.path, inner_where, conds, children=children))
        return nodes

    def _bindings(self, spec: Any, env: Mapping[str, Any], path: str, where: str) -> list[dict[str, Any]]:
        if not isinstance(spec, dict) or not spec:
            self.issues.add(path, f"loop variables are a mapping like {{r: [8, 16]}}, found {spec!r}", where)
            return []
        values: dict[str, list[Any]] = {}
        for var, raw in spec.items():
            if not isinstance(var, str) or not var.isidentifier() or keyword.iskeyword(var) or var == "stage":
                self.issues.add(path, f"a loop variable is an identifier (and not 'stage'), found {var!r}", where)
                return []
            v = self._eval(raw, env, f"{path}.{var}", where)
            if v is FAILED:
                return []
            if isinstance(v, range | tuple):
                v = list(v)
            if not isinstance(v, list):
                self.issues.add(f"{path}.{var}", f"a loop runs over a list, found {v!r}", where)
                return []
            if not v:
                self.issues.add(f"{path}.{var}", "loop over nothing: the list is empty", where)
                return []
            values[var] = v
        lengths = {len(v) for v in values.values()}
        if len(lengths) > 1:
            self.issues.add(path, "zipped loop variables have different lengths: "
                            f"{ {k: len(v) for k, v in values.items()} }", where)
            return []
        n = lengths.pop()
        if n > MAX_NODES:
            self.issues.add(path, f"a loop of {n:,} iterations (more than {MAX_NODES:,})", where)
            return []
        return [{k: v[i] for k, v in values.items()} for i in range(n)]

    def _residual(self, name: str, path: str, body: dict[str, Any], env: Mapping[str, Any], loc: str, ctx: str,
                  conds: tuple[Condition, ...], src: Registers, dst: tuple[str, ...] | None) -> ResidualNode:
        where = f"{loc} ({ctx})" if ctx else loc
        parts = {}
        for part in ("body", "shortcut"):
            if part not in body:
                continue
            container = _Container(f"{path}.{part}")
            nodes = self.expand(body.pop(part), env, f"{loc}.residual.{part}", ctx, container)
            for n in nodes:
                if not isinstance(n, BlockNode):
                    self.issues.add(n.path, "a residual's body and shortcut hold blocks (no loops with names, "
                                    "groups or residuals inside)", n.where)
                elif n.src is not None or n.dst is not None or n.conds or n.emit:
                    self.issues.add(n.path, "inside a residual, steps run in sequence on one tensor: no from, "
                                    "into, emit or runtime if (give them to the residual step)", n.where)
                elif any(r.register != c or r.index not in (None, AUTO) for c, r in n.routes.items()):
                    self.issues.add(n.path, "inside a residual, conditioning is passed by name: route it on the "
                                    "residual step (e.g. residual: {y: {from: ys, index: 2}, body: ...})", n.where)
            parts[part] = [n for n in nodes if isinstance(n, BlockNode)]
        if "body" not in parts:
            self.issues.add(path, "a residual needs a 'body' list of steps", where)
        scale = self._eval(body.pop("scale", 1.0), env, f"{path}.scale", where)
        if scale is not FAILED and (not isinstance(scale, int | float) or isinstance(scale, bool)):
            self.issues.add(f"{path}.scale", f"expects a number, found {scale!r}", where)
            scale = FAILED
        consumed = {c for n in (*parts.get("body", []), *parts.get("shortcut", [])) for c in n.entry.consumes}
        routes = {}
        for key in list(body):
            if key in consumed:
                routes[key] = self._route(key, body.pop(key), env, f"{path}.{key}", where)
            else:
                self.issues.add(f"{path}.{key}", "a residual takes body, shortcut, scale, the step options and routes "
                                f"for what its steps consume ({', '.join(sorted(consumed)) or 'nothing'})", where)
        for c in sorted(consumed - set(routes)):
            routes[c] = Route(c, AUTO if c in self.styles else None)
        return ResidualNode(name, path, where, conds, src, dst, body=parts.get("body", []),
                            shortcut=parts.get("shortcut"), scale=float(scale) if scale is not FAILED else 1.0,
                            routes=routes)


# ---- networks ---------------------------------------------------------------------------------------


def expand_network(section_name: str, section: Any, variables: Mapping[str, Any], issues: Collector
                   ) -> NetworkSpec | None:
    """One network section (``generator`` or ``discriminator``) -> its spec; problems go to ``issues``."""
    net = NETWORKS[section_name]
    if not isinstance(section, dict):
        issues.add(net, f"a network is a mapping with inputs, steps and output; found {section!r}", section_name)
        return None
    for k in section:
        if k in REMOVED:
            issues.add(f"{net}.{k}", REMOVED[k], f"{section_name}.{k}")
        elif k not in NETWORK_KEYS:
            issues.add(f"{net}.{k}", f"unknown network key; allowed: {', '.join(NETWORK_KEYS)}", f"{section_name}.{k}")
    stages = None
    if section.get("stages") is not None:
        try:
            stages = resolve(section["stages"], variables)
        except ExprError as err:
            issues.add(f"{net}.stages", str(err))
        if stages is not None and (not isinstance(stages, int) or isinstance(stages, bool) or not 1 <= stages <= 64):
            issues.add(f"{net}.stages", f"stages must be an integer from 1 to 64, found {stages!r}")
            stages = None
    inputs = {}
    raw_inputs = section.get("inputs") or {}
    if not isinstance(raw_inputs, dict) or not raw_inputs:
        issues.add(f"{net}.inputs", "declare at least one input, e.g. {z: latent(128)}")
        raw_inputs = {}
    for k, decl in raw_inputs.items():
        if not isinstance(k, str) or not k.isidentifier() or keyword.iskeyword(k) or k == CURRENT:
            issues.add(f"{net}.inputs.{k}", "input names are identifiers (they become the network's call "
                                            "arguments), not Python keywords and not '_'")
            continue
        try:
            inputs[k] = parse_input(k, decl, variables, stages)
        except ValueError as err:
            issues.add(f"{net}.inputs.{k}", str(err))
    styles = section.get("styles", []) or []
    if isinstance(styles, str):
        styles = [styles]
    if not isinstance(styles, list) or not all(isinstance(s, str) and _REGISTER.match(s) for s in styles):
        issues.add(f"{net}.styles", f"styles is a list of per-layer register names, found {styles!r}")
        styles = []
    init = section.get("init")
    if init is not None:
        try:
            blocks.INITS.entry(init)
        except (UnknownKeyError, TypeError) as err:
            issues.add(f"{net}.init", str(err))
    sn = _spectral_norm(section.get("spectral_norm"), variables, net, issues)
    if "steps" not in section:
        issues.add(f"{net}.steps", "a network needs steps")
    expander = Expander(net, variables, tuple(styles), stages, issues)
    nodes = expander.expand(section.get("steps", []), variables, f"{section_name}.steps", "", _Container(net))
    output = section.get("output", CURRENT)
    output = (output,) if isinstance(output, str) else output
    if not isinstance(output, list | tuple) or not output or not all(isinstance(o, str) for o in output):
        issues.add(f"{net}.output", f"output is a register name or a list of them, found {output!r}")
        output = (CURRENT,)
    return NetworkSpec(net, section_name, inputs, nodes, tuple(output), tuple(styles), stages, init, sn)


def _spectral_norm(raw: Any, variables: Mapping[str, Any], net: str, issues: Collector) -> dict[str, Any]:
    """The network's spectral-norm conventions (blocks.configure_spectral_norm): order, eval_iterations."""
    if raw is None:
        return {}
    try:
        value = resolve(raw, variables)
    except ExprError as err:
        issues.add(f"{net}.spectral_norm", str(err))
        return {}
    if not isinstance(value, dict) or set(value) - {"order", "eval_iterations"}:
        issues.add(f"{net}.spectral_norm", f"spectral_norm takes order ({' or '.join(blocks.SN_ORDERS)}) and "
                                           f"eval_iterations (an integer >= 0); found {value!r}")
        return {}
    if "order" in value and value["order"] not in blocks.SN_ORDERS:
        issues.add(f"{net}.spectral_norm.order", f"expects one of {blocks.SN_ORDERS}, found {value['order']!r}")
        return {}
    n = value.get("eval_iterations", 0)
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 100:
        issues.add(f"{net}.spectral_norm.eval_iterations", f"expects an integer from 0 to 100, found {n!r}")
        return {}
    return dict(value)
