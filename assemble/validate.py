"""Binding a step's arguments to its block's constructor: unknown, missing, ill-typed and non-positive values.

Every problem is added to a :class:`~assemble.errors.Collector` with its recipe path, so a recipe's
mistakes are all reported at once, before anything is built.
"""

from __future__ import annotations

import collections.abc as cabc
import difflib
import inspect
import re
import types
import typing
from typing import Any, Union

from torch import nn

from blocks.registry import Entry

from .errors import Collector

INFERRED = ("in_channels", "in_features", "seg_channels")
_SIZE_NAME = re.compile(r"(^|_)(channels|features|classes|kernel_size|layers|heads|chunks|groups)$|^n_")
_DIM_NAME = re.compile(r"(^|_)dim$")  # widths where 0 means "none" (c_dim=0, as in NVlabs' code)
# in_channels=0 is NVlabs' "first block" (a synthesis block that starts from its constant, a discriminator
# block that reads the image); blocks that do not support it reject it in their constructor.


def _hints(entry: Entry) -> dict[str, Any]:
    try:
        return typing.get_type_hints(entry.obj.__init__)
    except Exception:  # unresolvable annotations: skip type checks rather than fail the recipe
        return {}


def conforms(value: Any, ann: Any) -> bool:
    """Whether a recipe value fits a constructor annotation (unknown annotations accept anything)."""
    if ann is Any or ann is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(ann)
    if origin in (Union, types.UnionType):
        return any(conforms(value, a) for a in typing.get_args(ann))
    if ann is type(None):
        return value is None
    if ann is bool:
        return isinstance(value, bool)
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if ann is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if ann is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in typing.get_args(ann)
    if origin in (tuple, list, cabc.Sequence) or ann in (tuple, list):
        if not isinstance(value, list | tuple):
            return False
        args = typing.get_args(ann)
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(args) == len(value) and all(conforms(v, a) for v, a in zip(value, args))
        return all(conforms(v, args[0]) for v in value)
    if origin in (dict, cabc.Mapping) or ann is dict:
        return isinstance(value, dict)
    return not (isinstance(ann, type) and issubclass(ann, nn.Module))  # recipes cannot pass modules


def coerce(value: Any, ann: Any) -> Any:
    """YAML lists become tuples where the constructor asks for a tuple."""
    if isinstance(value, list):
        origin = typing.get_origin(ann)
        options = typing.get_args(ann) if origin in (Union, types.UnionType) else (ann,)
        if any(typing.get_origin(a) is tuple or a is tuple for a in options):
            return tuple(value)
    return value


def _type_name(ann: Any) -> str:
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


def check_args(entry: Entry, args: dict[str, Any], path: str, issues: Collector, where: str = "",
               reported: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    """Bind ``args`` to the block's constructor: unknown, missing, ill-typed and non-positive values.

    ``path`` is the step's module path (issues go to ``path.argument``), ``where`` its place in the recipe
    text, ``reported`` the arguments whose values already failed to evaluate."""
    params = entry.signature().parameters
    hints = _hints(entry)
    inferable = set(INFERRED) | {f"{c}_dim" for c in entry.consumes}
    out: dict[str, Any] = {}
    for name, value in args.items():
        if name not in params:
            close = difflib.get_close_matches(name, list(params), n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]}?" if close else ""
            issues.add(f"{path}.{name}", f"unknown argument for '{entry.key}'.{hint} It takes: "
                       f"{', '.join(params)}", where)
            continue
        ann = hints.get(name, params[name].annotation)
        if not conforms(value, ann):
            issues.add(f"{path}.{name}", f"expects {_type_name(ann)}, found {type(value).__name__} "
                       f"{_short(value)}", where)
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            if _SIZE_NAME.search(name) and value <= 0 and not (name == "in_channels" and value == 0):
                issues.add(f"{path}.{name}", f"must be a positive size, found {value}", where)
                continue
            if _DIM_NAME.search(name) and value < 0:
                issues.add(f"{path}.{name}", f"must be a non-negative width, found {value}", where)
                continue
        out[name] = coerce(value, ann)
    for name, p in params.items():
        if p.default is p.empty and name not in args and name not in inferable and name not in reported:
            issues.add(f"{path}.{name}", f"missing required argument of '{entry.key}'", where)
    return out


def _short(value: Any) -> str:
    big = isinstance(value, int) and abs(value) >= 10**30
    text = f"<an integer of {value.bit_length()} bits>" if big else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
