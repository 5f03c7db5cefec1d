"""Recipes written in Python: :class:`Net` and :class:`Recipe` produce the same data as a YAML recipe.

Everything downstream is unchanged (validation, ``show``, shape inference on meta, parameter counts,
checkpoints), because the builder only writes the recipe's data: ``Recipe.to_dict()`` is what the YAML file
would hold, ``Recipe.save()`` writes that file, and the YAML builds the same state_dict.

    >>> from assemble import Net, Recipe
    >>> G = Net(inputs={"z": "latent(64)"})
    >>> G.linear(name="fc", out_features=128)
    >>> G.relu()
    >>> with G.group("out") as out:
    ...     out.linear(name="fc", out_features=2)
    >>> D = Net(inputs={"x": "vector(2)"})
    >>> D.linear(name="fc", out_features=1)
    >>> gan = Recipe("toy", G, D, objective={"loss": "non_saturating"}).build()
    >>> sorted(gan.G.state_dict())[:2]
    ['fc.linear.bias', 'fc.linear.weight']

A step is added by calling the block's registry key on a :class:`Steps` (``G.conv(...)``, or
``G.add("conv", ...)``); the step options are keywords (``name``, ``from_``, ``into``, ``if_``, ``emit``,
and a route per consumed conditioning, e.g. ``y={"from": "ys", "index": 2}``). The block key, the argument
names and their types are checked when the step is added, so a mistake raises at the line that wrote it;
the problems found when the recipe is built (shapes, registers) name that line too.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

import blocks
from blocks.registry import UnknownKeyError

from .errors import Collector, Issue, RecipeError
from .validate import check_args

_HERE = __file__


def _plain(value: Any, where: str) -> Any:
    """A recipe value: None, bool, int, float, str, or lists and string-keyed mappings of them."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, where) for k, v in value.items()}
    raise TypeError(f"{where}: a recipe holds data (numbers, strings, lists, mappings), not "
                    f"{type(value).__name__}")


def _caller() -> str:
    """``file:line`` of the first frame outside this module (the user's line)."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_code.co_filename == _HERE:
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"


class _Flow(dict):
    """A step's arguments: written on one line (a YAML flow mapping)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True))


def _flow_steps(items: list[Any]) -> list[Any]:
    out = []
    for item in items:
        if isinstance(item, dict) and "do" in item:
            item = {**item, "do": _flow_steps(item["do"])}
        elif isinstance(item, dict) and len(item) == 1:
            key, body = next(iter(item.items()))
            if key == "residual":
                body = {k: _flow_steps(v) if k in ("body", "shortcut") else v for k, v in body.items()}
                item = {key: body}
            else:
                item = {key: _Flow(body)}
        out.append(item)
    return out


class Steps:
    """A list of steps being written in Python (a network's ``steps``, a group's, or a residual's body).

    Call a block's registry key to add it: ``steps.conv(out_channels=64, name="conv0")``. Step options:
    ``name``, ``from_`` (``from`` is a Python keyword), ``into``, ``if_``, ``emit`` and routes for the
    conditioning the block consumes. Returns nothing; the step's name is the one given, or the default (the
    block key, numbered from the second of its kind).
    """

    def __init__(self, net: Net | None, loc: str, path: str):
        self._net = net if net is not None else self  # type: ignore[assignment]
        self._loc, self._path = loc, path  # the place in the recipe's data, the module path in the network
        self._items: list[Any] = []

    def _sub(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    # ---- adding steps -----------------------------------------------------------------------------
    def add(self, key: str, /, *, name: Any = None, from_: Any = None, into: Any = None, if_: Any = None,
            emit: Any = None, **args: Any) -> None:
        """Add the block ``key`` with its arguments, options and routes (checked now)."""
        where = f"{self._loc}[{len(self._items)}]"
        self._net._sources[where] = _caller()
        try:
            entry = blocks.find_block(key)
        except UnknownKeyError as err:
            raise RecipeError(Issue(self._sub(key), str(err), where)) from None
        body: dict[str, Any] = {}
        for option, value in (("name", name), ("from", from_), ("into", into), ("if", if_), ("emit", emit)):
            if value is not None:
                body[option] = _plain(value, f"{self._sub(key)}.{option}")
        routes = {c: args.pop(c) for c in entry.consumes if c in args}
        issues = Collector()
        step_path = self._sub(str(name if name is not None else key))
        plain = {k: _plain(v, f"{step_path}.{k}") for k, v in args.items()}
        literal = {k: v for k, v in plain.items() if not (isinstance(v, str) and v.startswith("$"))}
        check_args(entry, literal, step_path, issues, where, reported=set(plain) - set(literal))
        issues.raise_if_any()
        body.update({k: _plain(v, f"{step_path}.{k}") for k, v in routes.items()})
        body.update(plain)
        self._items.append({key: body} if body else key)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            blocks.find_block(key)
        except UnknownKeyError as err:
            raise AttributeError(f"{type(self).__name__} has no block '{key}': {err}") from None

        def step(**kwargs: Any) -> None:
            self.add(key, **kwargs)

        step.__name__ = key
        step.__doc__ = blocks.describe(key)
        return step

    def __dir__(self) -> list[str]:  # tab completion offers every block key
        return sorted({*super().__dir__(), *blocks.list_blocks()})

    # ---- structure ----------------------------------------------------------------------------------
    @contextmanager
    def group(self, name: str, *, if_: Any = None) -> Iterator[Steps]:
        """A named group: ``with G.group("synthesis") as s: s.conv(...)`` (a container in the module tree)."""
        where = f"{self._loc}[{len(self._items)}]"
        self._net._sources[where] = _caller()
        inner = Steps(self._net, f"{where}.do", self._sub(name))
        item: dict[str, Any] = {"name": _plain(name, self._sub("name")), "do": inner._items}
        if if_ is not None:
            item["if"] = _plain(if_, f"{self._sub(name)}.if")
        self._items.append(item)
        yield inner

    @contextmanager
    def residual(self, *, name: str | None = None, scale: float = 1.0, shortcut: bool = False,
                 if_: Any = None, **routes: Any) -> Iterator[Residual]:
        """A :class:`blocks.Residual`: ``with G.residual(name="res", scale=0.7071) as r: r.body.conv(...)``;
        ``shortcut=True`` gives ``r.shortcut`` (otherwise the shortcut is the identity)."""
        where = f"{self._loc}[{len(self._items)}]"
        self._net._sources[where] = _caller()
        path = self._sub(name or "residual")
        res = Residual(self._net, f"{where}.residual", path, shortcut)
        body: dict[str, Any] = {"body": res.body._items}
        if res.shortcut is not None:
            body["shortcut"] = res.shortcut._items
        if scale != 1.0:
            body["scale"] = float(scale)
        if name is not None:
            body["name"] = name
        if if_ is not None:
            body["if"] = _plain(if_, f"{path}.if")
        body.update({k: _plain(v, f"{path}.{k}") for k, v in routes.items()})
        self._items.append({"residual": body})
        yield res

    def to_list(self) -> list[Any]:
        """The steps as recipe data."""
        return copy.deepcopy(self._items)


class Residual:
    """The two step lists of a residual being written: ``body`` and (when asked for) ``shortcut``."""

    def __init__(self, net: Net, loc: str, path: str, shortcut: bool):
        self.body = Steps(net, f"{loc}.body", f"{path}.body")
        self.shortcut = Steps(net, f"{loc}.shortcut", f"{path}.shortcut") if shortcut else None


class Net(Steps):
    """One network written in Python: the data of a recipe's ``generator`` or ``discriminator`` section.

    Args:
        inputs: the call signature, as in YAML: ``{"z": "latent(512)", "c": "class(10)"}``.
        output: the register(s) returned (``"_"``: the current tensor).
        styles: per-layer style registers (StyleGAN's ``["w"]``).
        stages: the number of stages of a progressive network.
        init: an initialiser key (``normal``, ``orthogonal``, ...).
        description: free text.
    """

    def __init__(self, inputs: Mapping[str, str], *, output: str | list[str] = "_", styles: list[str] = (),
                 stages: int | None = None, init: str | None = None, description: str | None = None):
        self._sources: dict[str, str] = {}
        super().__init__(None, "steps", "")
        self._section: dict[str, Any] = {"inputs": _plain(dict(inputs), "inputs")}
        for key, value in (("description", description), ("styles", list(styles) or None), ("stages", stages),
                           ("init", init)):
            if value is not None:
                self._section[key] = _plain(value, key)
        self.output = output

    def to_dict(self) -> dict[str, Any]:
        """The section's data: ``inputs``, ``steps``, ``output`` and the options given."""
        return {**copy.deepcopy(self._section), "steps": self.to_list(), "output": _plain(self.output, "output")}


class Recipe:
    """A whole recipe written in Python: two :class:`Net` s and the recipe's other sections (plain data).

    ``to_dict()`` is the recipe's data, ``to_yaml()``/``save()`` its YAML (``ganforge train FILE`` trains
    it), ``build()``/``plan()`` are :func:`assemble.build`/:func:`assemble.plan` on it.
    """

    def __init__(self, name: str, generator: Net, discriminator: Net, *, description: str = "", paper: str = "",
                 reference: str = "", vars: Mapping[str, Any] | None = None, objective: Mapping[str, Any] | None = None,
                 train: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None,
                 sample: Mapping[str, Any] | None = None):
        self.name, self.generator, self.discriminator = name, generator, discriminator
        self.meta = {k: v for k, v in (("description", description), ("paper", paper), ("reference", reference))
                     if v}
        self.sections = {k: _plain(dict(v), k) for k, v in (("vars", vars), ("objective", objective),
                                                             ("train", train), ("data", data), ("sample", sample))
                         if v is not None}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, **self.meta}
        if "vars" in self.sections:
            out["vars"] = copy.deepcopy(self.sections["vars"])
        out["generator"] = self.generator.to_dict()
        out["discriminator"] = self.discriminator.to_dict()
        out.update({k: copy.deepcopy(v) for k, v in self.sections.items() if k != "vars"})
        return out

    def to_yaml(self) -> str:
        """The recipe as YAML, one step per line as a hand-written recipe has them."""
        head = f"# written by assemble.Recipe ({self.name}); edit the Python that made it, or this file\n"
        data = self.to_dict()
        for section in ("generator", "discriminator"):
            data[section]["steps"] = _flow_steps(data[section]["steps"])
        return head + yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=110)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml())
        return path

    def _located(self, err: RecipeError) -> RecipeError:
        """The error with each problem's recipe location followed by the Python line that wrote it."""
        sources = {f"{section}.{loc}": src for section, net in (("generator", self.generator),
                                                                ("discriminator", self.discriminator))
                   for loc, src in net._sources.items()}
        issues = []
        for issue in err.issues:
            loc = issue.where.split(" (")[0]
            match = max((k for k in sources if loc == k or loc.startswith(k + ".")), key=len, default=None)
            where = f"{issue.where}, written at {sources[match]}" if match else issue.where
            issues.append(Issue(issue.path, issue.message, where))
        return RecipeError(issues, err.recipe)

    def plan(self, **kwargs: Any) -> Any:
        from .gan import plan

        try:
            return plan(self.to_dict(), **kwargs)
        except RecipeError as err:
            raise self._located(err) from None

    def build(self, **kwargs: Any) -> Any:
        from .gan import build

        try:
            return build(self.to_dict(), **kwargs)
        except RecipeError as err:
            raise self._located(err) from None

