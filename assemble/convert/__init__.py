"""``ganforge convert SRC --from FORMAT --out DIR``: the authors' checkpoints as ganforge runs.

A converter reads a checkpoint without executing anything in it (``torch.load(weights_only=True)``, or a
restricted unpickler for NVlabs' pickles), reads the configuration from the tensors (resolution, channels,
mapping depth, classes), loads the matching recipe with those values, renames every tensor to the recipe's
module tree with a full account (every key used, every key filled, shapes equal), and writes a normal run
folder: ``ganforge sample``, ``assemble.load_generator`` and ``ganforge train --resume`` work on it (a
resumed converted run starts its optimisers fresh: the authors' files carry no optimiser state we read).

Formats register with :func:`converter`; each is ``read(src, recipe, sets) -> Converted``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import save_checkpoint
from ..gan import build
from ..recipe import load, parse_set
from .common import ConversionError, Converted, agree, sha256

FORMATS: dict[str, Callable[[Path, str | None, list[str]], Converted]] = {}

__all__ = ["FORMATS", "ConversionError", "Converted", "convert", "converter", "recipe_for"]


def converter(name: str) -> Callable[[Callable], Callable]:
    """Register a format reader under ``name`` (``--from NAME``)."""

    def deco(fn: Callable) -> Callable:
        if name in FORMATS:
            raise ValueError(f"format {name!r} is already registered")
        FORMATS[name] = fn
        return fn

    return deco


def recipe_for(default: str, values: dict[str, Any], recipe: str | None, sets: list[str], source: str
               ) -> dict[str, Any]:
    """The recipe to convert into: ``recipe`` (or the format's ``default``) with ``values`` read from the
    checkpoint; a ``--set`` of one of those values to something else is an error naming both."""
    asked = dict(parse_set(s) for s in sets)
    for name, value in values.items():
        agree(name, value, asked.pop(name, None), source)
    return load(recipe or default, sets=[f"{k}={v}" for k, v in asked.items()] or None, overrides=values)


def convert(src: str | Path, fmt: str, out: str | Path, *, recipe: str | None = None,
            sets: list[str] | None = None) -> dict[str, Any]:
    """Convert ``src`` (a file or folder in format ``fmt``) into the run folder ``out``; returns a summary.

    Raises:
        ConversionError: the checkpoint does not fit the recipe (which key, which shape, which setting).
    """
    from . import biggan, dcgan, spade, stylegan2  # noqa: F401  (they register their formats)

    if fmt not in FORMATS:
        raise ConversionError(f"unknown format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    src = Path(src)
    if not src.exists():
        raise ConversionError(f"{src}: no such file or folder")
    conv = FORMATS[fmt](src, recipe, list(sets or []))
    gan = build(conv.recipe)
    nets = {"G": gan.G, "D": gan.D, "G_ema": gan.G}
    tensors: dict[str, torch.Tensor] = {}
    for name, state in conv.tensors.items():
        nets[name].load_state_dict(state, strict=True)  # the recipe's network takes them as they are
        tensors.update({f"{name}.{k}": v for k, v in state.items()})
    record = {
        "from": fmt, "source": str(src), "files": [{"path": str(p), "sha256": sha256(p)} for p in conv.files],
        "networks": sorted(conv.tensors), **conv.info,
    }
    state = {"step": conv.step, "images": conv.images, "stage": None, "recipe": conv.recipe,
             "weights_only": True, "converted": record}
    path = save_checkpoint(Path(out), conv.step, tensors, state)
    return {"checkpoint": str(path), "recipe": conv.recipe.get("name"), "step": conv.step, **record}
