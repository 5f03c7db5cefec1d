"""What every converter shares: reading files without executing them, renaming keys with a full account
(every source key used, every target key filled, shapes equal), and checking the configuration read from a
checkpoint against what the user asked for."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

MAX_BYTES = 8 * 2**30  # a checkpoint larger than this is refused before reading (BigGAN-deep 512 is ~1 GB)


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; the message says which file, which key and why."""


@dataclass
class Converted:
    """What a format reader returns: the recipe and every network's tensors under ganforge's names.

    ``tensors`` maps "G", "D" and (when the checkpoint has it) "G_ema" to complete state_dicts of the
    networks the recipe builds; ``step`` and ``images`` are the source's training counters when it has them.
    """

    recipe: dict[str, Any]
    tensors: dict[str, dict[str, Tensor]]
    step: int = 0
    images: int = 0
    files: list[Path] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def check_size(path: Path) -> None:
    if not path.is_file():
        raise ConversionError(f"{path}: not a file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ConversionError(f"{path}: {size / 2**30:.1f} GiB is more than any checkpoint this reads "
                              f"({MAX_BYTES / 2**30:.0f} GiB)")


def load_torch(path: Path) -> dict[str, Any]:
    """A ``torch.save`` file read with ``weights_only=True``: tensors and plain containers, nothing run."""
    check_size(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's unpickler refuses anything that is not data, and says what
        raise ConversionError(f"{path}: cannot be read as tensors only (torch.load(weights_only=True)): "
                              f"{str(err).splitlines()[0][:300]}") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: holds a {type(data).__name__}, not a dict of tensors")
    return data


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


Rule = tuple[str, str]  # (regex on the source key, replacement giving the target key)


def rename(source: Mapping[str, Tensor], target: Mapping[str, Tensor], rules: Iterable[Rule], what: str,
           derived: Callable[[str], bool] = lambda key: False, skip: Callable[[str], bool] = lambda key: False
           ) -> dict[str, Tensor]:
    """Map ``source`` onto ``target``'s keys; account for all of it.

    A key takes the first rule that matches it and gives a key of ``target``; if none does, its own name.

    Args:
        source: the checkpoint's tensors (the authors' names).
        target: the state_dict of the network built from the recipe (ganforge's names).
        rules: ``(pattern, replacement)`` pairs (``re.fullmatch``), tried in order.
        what: names the network in errors ("G of netG_epoch_24.pth").
        derived: target keys that no source key needs to fill (constant buffers such as FIR filters, or
            state the reference does not store); they keep the target's value.
        skip: source keys that are read but deliberately unused (a reference's bookkeeping, e.g. ``sv0``).

    Returns:
        A complete state_dict for ``target``.

    Raises:
        ConversionError: listing every source key left over, every target key not filled, every shape that
            differs and every two source keys that land on one target key.
    """
    compiled = [(re.compile(p), r) for p, r in rules]
    out: dict[str, Tensor] = {}
    where: dict[str, str] = {}
    unused, clashes, shapes = [], [], []
    for key, value in source.items():
        if skip(key):
            continue
        candidates = [pattern.sub(replacement, key) for pattern, replacement in compiled if pattern.fullmatch(key)]
        new = next((c for c in [*candidates, key] if c in target), candidates[0] if candidates else key)
        if new not in target:
            unused.append(f"{key} (-> {new})" if new != key else key)
            continue
        if new in out:
            clashes.append(f"{where[new]} and {key} -> {new}")
            continue
        if tuple(value.shape) != tuple(target[new].shape):
            shapes.append(f"{key} {tuple(value.shape)} -> {new} {tuple(target[new].shape)}")
            where[new] = key  # reported as a shape, not as missing
            continue
        out[new], where[new] = value.to(target[new].dtype), key
    missing = [k for k in target if k not in out and k not in where and not derived(k)]
    problems = []
    if unused:
        problems.append(f"{len(unused)} key(s) of the checkpoint have no place in the recipe: {', '.join(unused[:12])}")
    if missing:
        problems.append(f"{len(missing)} key(s) of the recipe are not in the checkpoint: {', '.join(missing[:12])}")
    if shapes:
        problems.append(f"{len(shapes)} shape(s) differ: {'; '.join(shapes[:12])}")
    if clashes:
        problems.append(f"{len(clashes)} key(s) land twice: {'; '.join(clashes[:12])}")
    if problems:
        raise ConversionError(f"{what} does not fit the recipe:" + "".join(f"\n  - {p}" for p in problems))
    for key in target:
        if key not in out:
            out[key] = target[key].detach().clone()
    return out


def agree(name: str, from_checkpoint: Any, asked: Any, source: str) -> Any:
    """The checkpoint's value of a setting, refusing a different one asked for with --set or --recipe."""
    if asked is not None and asked != from_checkpoint:
        raise ConversionError(f"{name}: the checkpoint {source} has {from_checkpoint!r}, the recipe asks for "
                              f"{asked!r}; drop the --set (the converter reads {name} from the checkpoint)")
    return from_checkpoint
