"""The block registry: one small ``Registry`` per kind of block.

A registry is a plain dict behind a decorator (the timm pattern). Keys are snake_case; a duplicate key
raises; an unknown key raises :class:`UnknownKeyError`, which names the kind, the key, the three closest
keys and how to list them all.

Each entry carries metadata the assembler and the tests need: its kind, the conditioning it consumes
(``("w",)`` for a style-modulated block, ``("y",)`` for conditional batch norm, ``("seg",)`` for SPADE),
the side outputs it emits, whether it is batch-coupled (its output for one sample depends on the other
samples, as in batch norm or minibatch stddev) and the paper it comes from. The decorator also writes
these onto the class, so an instance knows what it consumes without the registry.

Example:
    >>> from blocks import NORMS
    >>> NORMS.list("pixel*")
    ['pixel_norm']
    >>> NORMS.create("pixel_norm").eps
    1e-08
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownKeyError(KeyError):
    """An unknown registry key; the message names the kind, the key and the closest keys."""

    def __init__(self, kind: str, key: str, known: list[str]):
        self.kind, self.key = kind, key
        self.suggestions = difflib.get_close_matches(key, known, n=3, cutoff=0.0)
        hint = f" Closest: {', '.join(self.suggestions)}." if self.suggestions else ""
        how = "blocks.list_blocks() or `ganforge list`" if kind in ("block", "kind") else (
            f"blocks.list_blocks('{kind}') or `ganforge list {kind}`")
        self.message = f"unknown {kind} '{key}'.{hint} List them all with {how}."
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Entry:
    """One registered block: its constructor and its metadata."""

    key: str
    kind: str
    obj: Callable[..., Any]
    paper: str = ""
    consumes: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    batch_coupled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def qualname(self) -> str:
        return f"{self.obj.__module__}.{self.obj.__qualname__}"

    def signature(self) -> inspect.Signature:
        """The constructor's signature, with annotations resolved to real types where possible."""
        try:
            return inspect.signature(self.obj, eval_str=True)
        except (NameError, TypeError, SyntaxError):
            return inspect.signature(self.obj)


class Registry:
    """Blocks of one kind, keyed by snake_case name.

    Args:
        kind: the kind's name, used in messages (``"norm"``, ``"attention"``, ...).
        modules: whether entries are ``nn.Module`` classes placed in networks (as opposed to losses,
            regularizers and initialisers, which the objective and the layers refer to).
    """

    def __init__(self, kind: str, *, modules: bool = True):
        self.kind = kind
        self.modules = modules
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        key: str,
        *,
        paper: str = "",
        consumes: tuple[str, ...] = (),
        emits: tuple[str, ...] = (),
        batch_coupled: bool = False,
        **extra: Any,
    ) -> Callable[[T], T]:
        """Decorator that registers a class or function under ``key``."""
        if not _KEY.match(key):
            raise ValueError(f"{self.kind} key '{key}' is not snake_case")
        if key in self._entries:
            prev = self._entries[key].qualname
            raise ValueError(f"{self.kind} '{key}' is already registered (by {prev})")

        def deco(obj: T) -> T:
            entry = Entry(key, self.kind, obj, paper, tuple(consumes), tuple(emits), batch_coupled, extra)
            self._entries[key] = entry
            if inspect.isclass(obj):
                obj.registry_key = key  # type: ignore[attr-defined]
                obj.kind = self.kind  # type: ignore[attr-defined]
                obj.paper = paper  # type: ignore[attr-defined]
                obj.consumes = tuple(consumes)  # type: ignore[attr-defined]
                obj.emits = tuple(emits)  # type: ignore[attr-defined]
                obj.batch_coupled = batch_coupled  # type: ignore[attr-defined]
            return obj

        return deco

    def entry(self, key: str) -> Entry:
        try:
            return self._entries[key]
        except KeyError:
            raise UnknownKeyError(self.kind, key, list(self._entries)) from None

    def get(self, key: str) -> Callable[..., Any]:
        """The constructor (class or function) registered under ``key``."""
        return self.entry(key).obj

    def create(self, key: str, **kwargs: Any) -> Any:
        """An instance: ``get(key)(**kwargs)``."""
        return self.get(key)(**kwargs)

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted keys matching a shell-style wildcard pattern."""
        return sorted(k for k in self._entries if fnmatch.fnmatchcase(k, pattern))

    def describe(self, key: str) -> str:
        """Signature, metadata and docstring of one entry, as text."""
        e = self.entry(key)
        lines = [f"{e.key}  ({e.kind}: {e.qualname})", f"  signature: {e.obj.__name__}{e.signature()}"]
        if e.paper:
            lines.append(f"  paper:     {e.paper}")
        if self.modules:
            lines.append(f"  consumes:  {', '.join(e.consumes) or '-'}")
            if e.emits:
                lines.append(f"  emits:     {', '.join(e.emits)}")
            lines.append(f"  batch-coupled: {'yes' if e.batch_coupled else 'no'}")
        doc = inspect.getdoc(e.obj) or ""
        if doc:
            lines += ["", doc]
        return "\n".join(lines)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[k] for k in sorted(self._entries)]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"


NORMS = Registry("norm")
ATTENTION = Registry("attention")
RESAMPLE = Registry("resample")
MAPPING = Registry("mapping")
CONDITIONING = Registry("conditioning")
LAYERS = Registry("layer")
ACTIVATIONS = Registry("activation")
STRUCTURE = Registry("structure")
COMPOSITE = Registry("composite")
LOSSES = Registry("loss", modules=False)
REGULARIZERS = Registry("regularizer", modules=False)
INITS = Registry("init", modules=False)

KINDS: dict[str, Registry] = {
    r.kind: r
    for r in (
        NORMS, ATTENTION, RESAMPLE, MAPPING, CONDITIONING, LAYERS, ACTIVATIONS, STRUCTURE, COMPOSITE,
        LOSSES, REGULARIZERS, INITS,
    )
}
MODULE_KINDS: tuple[Registry, ...] = tuple(r for r in KINDS.values() if r.modules)


def kind(name: str) -> Registry:
    """The registry of one kind, by name (``"norm"``, ``"loss"``, ...)."""
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKeyError("kind", name, list(KINDS)) from None


def find_block(key: str) -> Entry:
    """The network block ``key`` in whichever module kind holds it (keys are unique across them)."""
    for reg in MODULE_KINDS:
        if key in reg:
            return reg.entry(key)
    known = [k for reg in MODULE_KINDS for k in reg]
    raise UnknownKeyError("block", key, known)


def list_blocks(kind_name: str | None = None, pattern: str = "*") -> list[str]:
    """Keys of one kind (or of every network-block kind) matching ``pattern``."""
    regs = [kind(kind_name)] if kind_name else list(MODULE_KINDS)
    return sorted(k for reg in regs for k in reg.list(pattern))


def describe(key: str) -> str:
    """Describe a key of any kind (network blocks first)."""
    for reg in KINDS.values():
        if key in reg:
            return reg.describe(key)
    raise UnknownKeyError("block", key, [k for reg in KINDS.values() for k in reg])
