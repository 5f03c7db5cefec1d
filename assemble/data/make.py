"""``make_dataset(source, size=..., seed=..., **options)``: a built-in dataset by name, or a folder by path."""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import GanDataset
from .digits import digits, stacked_digits
from .folder import image_folder
from .shapes import shapes
from .toy import grid25, ring8, swiss_roll

BUILTINS: dict[str, Callable[..., GanDataset]] = {
    "ring8": ring8, "grid25": grid25, "swiss_roll": swiss_roll,
    "digits": digits, "stacked_digits": stacked_digits, "shapes": shapes,
}
_SIZELESS = ("ring8", "grid25", "swiss_roll")


def list_datasets() -> list[str]:
    """Names of the built-in datasets (any other source is a folder path)."""
    return sorted(BUILTINS)


def _options_of(fn: Callable[..., Any]) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p not in ("root", "size", "seed")]


def make_dataset(source: str | os.PathLike, *, size: int | tuple[int, int] | None = None, seed: int = 0,
                 **options: Any) -> GanDataset:
    """Build a dataset.

    Args:
        source: a built-in name (see :func:`list_datasets`) or the path of a folder of images (a built-in
            name wins over a folder of the same name in the working directory: write ``./digits`` for that).
        size: image size, an int or ``(H, W)``; None for each source's default. Toy 2-D data has none.
        seed: random seed (a non-negative int); the same seed gives the same data.
        **options: source-specific options, e.g. ``n`` (toy, stacked_digits, shapes), ``n_classes`` (shapes,
            label-map folders), ``crop`` and ``channels`` (folders).

    Returns:
        The :class:`GanDataset`.

    Raises:
        ValueError: for an unknown name (naming the closest), a missing folder, an unknown option (listing
            the accepted ones), a bad size or seed, and every error of the source itself.

    Example:
        >>> ds = make_dataset("ring8", n=1000, seed=1)
        >>> ds[0]["x"].shape
        torch.Size([2])
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, found {seed!r}")
    name = os.fspath(source)
    if name in BUILTINS:
        fn, args, what = BUILTINS[name], {}, f"dataset '{name}'"
        if name in _SIZELESS and size is not None:
            raise ValueError(f"{what} is 2-D points and has no image size, found size={size!r}; remove data.size")
        if name not in _SIZELESS:
            args["size"] = size
    else:
        path = Path(name).expanduser()
        if not path.exists():
            if os.sep in name or "/" in name or name.startswith((".", "~")):
                raise ValueError(f"folder {name} does not exist; give the path of a folder of images "
                                 f"or a built-in name ({', '.join(list_datasets())})")
            close = difflib.get_close_matches(name, list(BUILTINS), n=3, cutoff=0.4)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise ValueError(f"unknown dataset '{name}'; {hint}built-in datasets: {', '.join(list_datasets())}; "
                             f"or give the path of a folder of images")
        fn, args, what = image_folder, {"root": path, "size": size}, f"image folder {path}"
    accepted = _options_of(fn)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{what} does not take option(s) {', '.join(unknown)}; "
                         f"it takes: {', '.join(accepted) or 'none'}")
    return fn(**args, seed=seed, **options)
