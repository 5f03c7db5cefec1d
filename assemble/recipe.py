"""Loading recipes: find by name or path, parse YAML safely, merge bases, apply overrides.

A recipe is data. It is read with ``yaml.safe_load`` (no tags, no object construction), blocks are named
by registry key only, and values are computed by the safe evaluator in :mod:`assemble.expr`.
"""

from __future__ import annotations

import copy
import difflib
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import Issue, RecipeError

TOP_KEYS = ("name", "description", "paper", "reference", "base", "vars", "tiny", "generator", "discriminator",
            "objective", "train", "data", "sample")


def recipes_dir() -> Path:
    """The folder of built-in recipes (shipped inside the wheel as the ``recipes`` package)."""
    import recipes

    if getattr(recipes, "__file__", None):
        return Path(recipes.__file__).parent
    return Path(str(resources.files("recipes")))


def list_recipes() -> list[str]:
    """Names of the built-in recipes."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def _locate(ref: str, relative_to: Path | None) -> Path:
    p = Path(ref)
    candidates = []
    if relative_to is not None and not p.is_absolute():
        candidates.append(relative_to / p)
        candidates.append(relative_to / f"{ref}.yaml")
    candidates += [p, recipes_dir() / f"{ref}.yaml"]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    close = difflib.get_close_matches(ref, list_recipes(), n=3, cutoff=0.0)
    hint = f" Closest built-in recipes: {', '.join(close)}." if close else ""
    raise RecipeError(Issue("", f"no recipe named or at '{ref}'.{hint} List them with `ganforge list recipes`."))


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """Parse recipe text; invalid YAML gives a RecipeError with the line and column."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError(Issue("", f"invalid YAML in {source}{where}: {err.problem or err.context}")) from None
    except yaml.YAMLError as err:
        raise RecipeError(Issue("", f"invalid YAML in {source}: {err}")) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(Issue("", f"{source} must hold a mapping at the top, found {type(data).__name__}"))
    return data


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``: mappings merge key by key, everything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _load_file(path: Path, chain: list[str]) -> dict[str, Any]:
    key = str(path)
    if key in chain:
        cycle = " -> ".join(Path(c).stem for c in [*chain, key])
        raise RecipeError(Issue("base", f"circular base: {cycle}"))
    data = parse_yaml(path.read_text(), path.name)
    data.setdefault("name", path.stem)
    base_ref = data.pop("base", None)
    if base_ref is None:
        return data
    if not isinstance(base_ref, str):
        raise RecipeError(Issue("base", f"base must be a recipe name or path, found {base_ref!r}"))
    base = _load_file(_locate(base_ref, path.parent), [*chain, key])
    merged = deep_merge(base, data)
    merged["name"] = data["name"]
    return merged


_SEG = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def _split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for name, idx in _SEG.findall(path):
        parts.append(int(idx) if idx else name)
    return parts


def apply_set(recipe: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` (a variable name, or a dotted path like ``generator.init``) to ``value`` in place."""
    variables = recipe.setdefault("vars", {})
    if "." not in key and "[" not in key:
        if key not in variables:
            close = difflib.get_close_matches(key, list(variables), n=3, cutoff=0.0)
            hint = f" Closest: {', '.join(close)}." if close else ""
            raise RecipeError(Issue(f"vars.{key}", f"unknown variable '{key}' in an override.{hint} "
                                    "Use a dotted path (e.g. generator.init=normal) to set other keys."))
        variables[key] = value
        return
    parts = _split_path(key)
    node: Any = recipe
    for i, part in enumerate(parts[:-1]):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            where = ".".join(str(p) for p in parts[: i + 1])
            raise RecipeError(Issue(key, f"override path does not exist at '{where}'")) from None
    last = parts[-1]
    if isinstance(node, list) and not isinstance(last, int):
        raise RecipeError(Issue(key, "override path indexes a list with a name"))
    try:
        node[last] = value
    except (IndexError, TypeError):
        raise RecipeError(Issue(key, "override path does not exist")) from None


def parse_set(item: str) -> tuple[str, Any]:
    """``"key=value"`` from the command line; the value is read as a YAML scalar (1024, 0.5, true, [1, 2])."""
    if "=" not in item:
        raise RecipeError(Issue("", f"--set takes key=value, got '{item}'"))
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load(
    source: str | Path | dict[str, Any],
    sets: list[str] | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load, merge and override a recipe; returns a self-contained dict (no ``base``).

    Args:
        source: a built-in recipe name, a path to a YAML file, an already-parsed dict, or an
            :class:`assemble.Recipe` written in Python.
        sets: ``["resolution=1024", "generator.init=normal"]`` or the same as a dict.
        overrides: variable overrides, e.g. ``{"resolution": 1024}``.
    """
    if hasattr(source, "to_dict"):  # a recipe written in Python (assemble.Recipe)
        source = source.to_dict()
    if isinstance(source, dict):
        recipe = copy.deepcopy(source)
        base_ref = recipe.pop("base", None)
        if base_ref is not None:
            recipe = deep_merge(_load_file(_locate(base_ref, None), []), recipe)
        recipe.setdefault("name", "recipe")
    else:
        recipe = _load_file(_locate(str(source), None), [])
    unknown = [k for k in recipe if k not in TOP_KEYS]
    if unknown:
        issues = []
        for k in unknown:
            if k == "macros":
                from .expand import REMOVED

                issues.append(Issue(k, REMOVED[k]))
                continue
            close = difflib.get_close_matches(str(k), TOP_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            issues.append(Issue(str(k), f"unknown top-level key{hint}; allowed: {', '.join(TOP_KEYS)}"))
        raise RecipeError(issues, recipe.get("name", ""))
    if not isinstance(recipe.get("vars", {}), dict):
        raise RecipeError(Issue("vars", "vars must be a mapping of names to values"), recipe["name"])
    items = list(sets.items()) if isinstance(sets, dict) else [parse_set(s) for s in (sets or [])]
    items += list((overrides or {}).items())
    for key, value in items:
        apply_set(recipe, key, value)
    return recipe
