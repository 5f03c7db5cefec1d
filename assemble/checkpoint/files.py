"""Safe, atomic, resumable checkpoints: tensors in safetensors, everything else in JSON, nothing pickled.

A checkpoint at step N is a pair of files in the run directory::

    ckpt-00000200.safetensors   every tensor (weights, buffers, optimizer moments, RNG states)
    ckpt-00000200.json          the commit record: format version, step, the tensors file's byte size and
                                sha256, and the caller's JSON state (resolved recipe, trainer state, ...)

The tensors file is written first and the JSON last, each to a ``*.tmp`` file that is flushed, fsynced and
renamed into place, so a crash at any moment leaves either a complete checkpoint or one that
:func:`latest_checkpoint` ignores. Loading reads the tensors file once, checks its size and sha256 against
the record, and only then parses the same bytes: nothing is unpickled and nothing is executed.

    >>> tensors = {**module_tensors("G", G), **generator_state("gen", g)}    # doctest: +SKIP
    >>> t, opt_json = optimizer_state("opt_G", opt_G); tensors.update(t)     # doctest: +SKIP
    >>> t, rng_json = rng_state(); tensors.update(t)                         # doctest: +SKIP
    >>> state = {"step": step, "opt_G": opt_json, "rng": rng_json}           # doctest: +SKIP
    >>> save_checkpoint(run_dir, step, tensors, state)                       # doctest: +SKIP
    >>> tensors, state = load_checkpoint(run_dir)     # the newest that verifies  # doctest: +SKIP
    >>> load_module_tensors("G", G, tensors)                                 # doctest: +SKIP
    >>> load_optimizer_state("opt_G", opt_G, tensors, state["opt_G"])        # doctest: +SKIP
    >>> set_rng_state(tensors, state["rng"]); set_generator_state("gen", g, tensors)  # doctest: +SKIP

Names: a ``prefix`` is joined to its keys with a dot (``"G"`` and ``"G."`` both give ``G.conv.weight``);
prefixes of different objects must not nest (``G`` and ``G.ema`` would; use ``G`` and ``G_ema``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as _parse_safetensors
from safetensors.torch import save_file as _write_safetensors
from torch import Tensor

FORMAT = "ganforge.checkpoint"
FORMAT_VERSION = 1

_NAME = re.compile(r"^ckpt-(\d{8,})\.json$")
_FILE_OF_STEP = re.compile(r"^ckpt-(\d{8,})\.(?:safetensors|json)(?:\.tmp)?$")
# Tags for what plain JSON cannot spell: in optimizer JSON a tensor held in the tensors file and a tuple
# (Adam's betas); in any state a dict with non-str keys.
_TENSOR_TAG = "__tensor__"
_TUPLE_TAG = "__tuple__"
_ITEMS_TAG = "__dict_items__"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, tampered with, or does not fit what it is loaded into."""


def _json_path(run_dir: Path, step: int) -> Path:
    return run_dir / f"ckpt-{step:08d}.json"


def _tensors_path(run_dir: Path, step: int) -> Path:
    return run_dir / f"ckpt-{step:08d}.safetensors"


def _join(prefix: str, key: str) -> str:
    prefix = prefix.rstrip(".")
    return f"{prefix}.{key}" if prefix else key


# ---------------------------------------------------------------------------------------------------- writing


def _state_to_json(value: Any, path: str, active: set[int]) -> Any:
    """``value`` as plain JSON, or a TypeError naming the first key path that JSON cannot hold.

    A dict with a non-str key (``{4: 16, 8: 16}``, as YAML gives for a per-resolution schedule) becomes
    ``{"__dict_items__": [[4, 16], [8, 16]]}``, since json would silently turn the keys into "4" and "8".
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (dict, list, tuple)):
        if id(value) in active:
            raise ValueError(f"{path} contains itself (a circular reference), which JSON cannot hold")
        active.add(id(value))
        if isinstance(value, dict):
            for key in value:
                if not (key is None or isinstance(key, (str, bool, int, float))):
                    raise TypeError(f"{path} has the key {key!r} of type {type(key).__name__}: JSON keys must be "
                                    f"str, int, float, bool or None; convert the key, e.g. with str()")
            items = {key: _state_to_json(item, f"{path}.{key}", active) for key, item in value.items()}
            out = (items if all(isinstance(k, str) for k in items)
                   else {_ITEMS_TAG: [[k, v] for k, v in items.items()]})
        else:
            out = [_state_to_json(item, f"{path}[{i}]", active) for i, item in enumerate(value)]
        active.discard(id(value))
        return out
    if isinstance(value, Tensor):
        hint = "put tensors in the `tensors` dict, or convert a one-element tensor with .item()"
    elif isinstance(value, np.generic):
        hint = "convert numpy scalars with .item()"
    else:
        hint = "convert it to str, int, float, bool, None, a list or a dict"
    raise TypeError(f"{path} is a {type(value).__module__}.{type(value).__qualname__}, which JSON cannot hold: "
                    f"{hint}")


def _state_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ITEMS_TAG}:
            return {k: _state_from_json(v) for k, v in value[_ITEMS_TAG]}
        return {k: _state_from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_state_from_json(v) for v in value]
    return value


def _prepare_tensors(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Detached, dense, contiguous CPU tensors, no two sharing storage (safetensors refuses shared ones)."""
    if not isinstance(tensors, dict):
        raise TypeError(f"tensors must be a dict[str, Tensor], found {type(tensors).__name__}")
    out: dict[str, Tensor] = {}
    seen: set[int] = set()
    for key, t in tensors.items():
        if not isinstance(key, str):
            raise TypeError(f"tensor keys must be str, found {key!r} ({type(key).__name__}); convert it with str()")
        if not isinstance(t, Tensor):
            raise TypeError(f"tensors[{key!r}] is a {type(t).__name__}, expected a torch.Tensor; "
                            f"put non-tensor values in `state`")
        if t.layout != torch.strided:
            raise TypeError(f"tensors[{key!r}] has layout {t.layout}; only dense tensors can be saved: "
                            f"call .to_dense() first")
        if t.device.type == "meta":
            raise TypeError(f"tensors[{key!r}] is a meta tensor and holds no data; materialise the module first")
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            t = t.clone()  # tied weights or views of one another: store each as its own copy
        seen.add(ptr)
        out[key] = t
    return out


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable. Windows cannot open a directory for fsync; its renames are journaled.
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        f.flush()
        os.fsync(f.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(run_dir: str | os.PathLike, step: int, tensors: dict[str, Tensor], state: dict,
                    keep: int = 3) -> Path:
    """Write the checkpoint for ``step`` atomically and keep only the newest ``keep`` checkpoints.

    Args:
        run_dir: directory of the run (created if missing).
        step: training step, a non-negative int; it names the files (``ckpt-{step:08d}.*``).
        tensors: every tensor to store, by name. They are detached, moved to CPU and made contiguous;
            tensors that share storage (tied weights) are stored as separate copies. Any dtype safetensors
            knows works (float32/16, bfloat16, int*, uint8/32, bool).
        state: everything else, JSON-serialisable: dicts (keys str, int, float, bool or None; non-str keys
            are kept, not turned into strings), lists (tuples come back as lists), str, int, float, bool, None.
        keep: how many checkpoints to keep, counting this one. Older pairs (and crash leftovers of older
            steps) are deleted after this one is committed; checkpoints of later steps are left alone.

    Returns:
        The path of the JSON record, which commits the checkpoint.

    Raises:
        TypeError: a tensor is not a dense tensor with data, or ``state`` holds something JSON cannot (the
            message names its key path, such as ``state.optim.G.lr``). Nothing is written in that case.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, found {step!r}")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an int >= 1 (the checkpoint just written counts), found {keep!r}")
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, found {type(state).__name__}")
    encoded = _state_to_json(state, "state", set())
    prepared = _prepare_tensors(tensors)

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    json_path, tensors_path = _json_path(run_dir, step), _tensors_path(run_dir, step)
    if json_path.exists():
        # Re-saving a step: un-commit the old record first, so a crash below cannot leave it pointing at
        # a tensors file it does not describe.
        json_path.unlink()
        _fsync_dir(run_dir)

    tmp = tensors_path.with_name(tensors_path.name + ".tmp")
    _write_safetensors(prepared, tmp, metadata={"format": FORMAT, "step": str(step)})
    _fsync_file(tmp)
    size, sha = tmp.stat().st_size, _sha256(tmp)
    os.replace(tmp, tensors_path)
    _fsync_dir(run_dir)

    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": step,
        "tensors": {"file": tensors_path.name, "bytes": size, "sha256": sha},
        "state": encoded,
    }
    tmp = json_path.with_name(json_path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, json_path)
    _fsync_dir(run_dir)

    _prune(run_dir, step, keep)
    return json_path


def _prune(run_dir: Path, step: int, keep: int) -> None:
    """Delete checkpoints older than ``step`` beyond the newest ``keep`` (this one included), records first."""
    committed = sorted((s for s, _ in _committed(run_dir) if s <= step), reverse=True)
    kept = set(committed[:keep])  # this step is committed, so it heads the list
    files: dict[int, list[Path]] = {}
    for p in run_dir.iterdir():
        m = _FILE_OF_STEP.match(p.name)
        if m and int(m.group(1)) < step and int(m.group(1)) not in kept:
            files.setdefault(int(m.group(1)), []).append(p)
    for paths in files.values():
        # The record goes first, so an interrupted prune never leaves a record without its tensors.
        for p in sorted(paths, key=lambda p: not p.name.endswith(".json")):
            p.unlink(missing_ok=True)
    if files:
        _fsync_dir(run_dir)


# ---------------------------------------------------------------------------------------------------- reading


def _committed(run_dir: Path) -> Iterator[tuple[int, Path]]:
    for p in run_dir.iterdir():
        m = _NAME.match(p.name)
        if m:
            yield int(m.group(1)), p


def _read_record(json_path: Path) -> dict:
    """Parse and check a JSON record; CheckpointError saying what is wrong otherwise."""
    name = json_path.name
    try:
        text = json_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{name} does not exist in {json_path.parent}: expected the checkpoint's JSON record "
                              f"(if only the .safetensors file is there, the write was interrupted before it "
                              f"was committed; load the run directory to get the latest complete one)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{name} cannot be read as UTF-8 text ({e}): the record is corrupted") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{name} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}; "
                              f"{len(text)} characters): the record is truncated or corrupted") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise CheckpointError(f"{name} is not a ganforge checkpoint record: expected format {FORMAT!r}, "
                              f"found {found!r}")
    version = record.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{name} has format version {version!r}; this ganforge reads versions up to "
                              f"{FORMAT_VERSION}: upgrade ganforge to load it")
    entry = record.get("tensors")
    ok = (isinstance(entry, dict) and isinstance(entry.get("file"), str) and isinstance(entry.get("bytes"), int)
          and isinstance(entry.get("sha256"), str) and isinstance(record.get("step"), int)
          and isinstance(record.get("state"), dict))
    if not ok:
        raise CheckpointError(f"{name} lacks the fields a record has (step, state, tensors.file, tensors.bytes, "
                              f"tensors.sha256): found keys {sorted(record)}; the record is corrupted")
    file = entry["file"]
    # The record may only point at a sibling file: never at another directory.
    if Path(file).name != file or not file.endswith(".safetensors"):
        raise CheckpointError(f"{name} names the tensors file {file!r}; expected a bare file name ending in "
                              f".safetensors beside the record")
    return record


def _size_problem(json_path: Path, record: dict) -> str | None:
    """Why the record's tensors file is missing or of the wrong size, or None if it looks right."""
    entry = record["tensors"]
    path = json_path.parent / entry["file"]
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return (f"{entry['file']} is missing from {json_path.parent}: {json_path.name} records it with "
                f"{entry['bytes']} bytes; the file was deleted or moved")
    if size != entry["bytes"]:
        return (f"{entry['file']} is {size} bytes, the record says {entry['bytes']}: the file is truncated "
                f"or was replaced")
    return None


def _load_verified(json_path: Path) -> tuple[dict[str, Tensor], dict]:
    record = _read_record(json_path)
    problem = _size_problem(json_path, record)
    if problem:
        raise CheckpointError(problem)
    entry = record["tensors"]
    # Hash and parse the very same bytes, so nothing can change between verification and use.
    data = (json_path.parent / entry["file"]).read_bytes()
    if len(data) != entry["bytes"]:
        raise CheckpointError(f"{entry['file']} is {len(data)} bytes, the record says {entry['bytes']}: the file "
                              f"is truncated or was replaced")
    sha = hashlib.sha256(data).hexdigest()
    if sha != entry["sha256"]:
        raise CheckpointError(f"{entry['file']} has sha256 {sha}, the record {json_path.name} says "
                              f"{entry['sha256']}: the file was modified or corrupted after it was written")
    try:
        tensors = _parse_safetensors(data)
    except (SafetensorError, KeyError, ValueError) as e:
        raise CheckpointError(f"{entry['file']} matches its record but is not a valid safetensors file ({e}): "
                              f"it was not written by save_checkpoint") from None
    return tensors, _state_from_json(record["state"])


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The JSON record of the newest checkpoint that parses and whose tensors file has the recorded size.

    ``*.tmp`` leftovers and tensors files without a record (interrupted writes) are ignored; a record that
    exists but does not check out is skipped with a warning. The full sha256 check happens in
    :func:`load_checkpoint`.

    Args:
        run_dir: the run directory; a directory that does not exist has no checkpoint.

    Returns:
        The path of the record, or None if there is no complete checkpoint.
    """
    for json_path in _candidates(Path(run_dir)):
        try:
            record = _read_record(json_path)
        except CheckpointError as e:
            warnings.warn(f"skipping checkpoint: {e}")
            continue
        problem = _size_problem(json_path, record)
        if problem is None:
            return json_path
        warnings.warn(f"skipping checkpoint {json_path.name}: {problem}")
    return None


def _candidates(run_dir: Path) -> list[Path]:
    if not run_dir.exists():
        return []
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is a file; expected a run directory holding ckpt-*.json records")
    return [p for _, p in sorted(_committed(run_dir), reverse=True)]


def load_checkpoint(path_or_run_dir: str | os.PathLike) -> tuple[dict[str, Tensor], dict]:
    """Load and verify a checkpoint: its tensors (on CPU) and the ``state`` it was saved with.

    Args:
        path_or_run_dir: a ``ckpt-*.json`` record, its ``ckpt-*.safetensors`` file, or a run directory. For a
            run directory the newest checkpoint that verifies is loaded; newer ones that fail are skipped
            with a warning.

    Returns:
        ``(tensors, state)``: the dict of tensors and the JSON state exactly as given to
        :func:`save_checkpoint`.

    Raises:
        CheckpointError: a file is missing, truncated, fails its sha256, or is not what its name says; the
            message names the file, what was expected and what was found.
    """
    path = Path(path_or_run_dir)
    if path.is_dir():
        problems = []
        for json_path in _candidates(path):
            try:
                return _load_verified(json_path)
            except CheckpointError as e:
                warnings.warn(f"skipping checkpoint {json_path.name}: {e}")
                problems.append(f"  - {json_path.name}: {e}")
        if problems:
            raise CheckpointError(f"no checkpoint in {path} verifies:\n" + "\n".join(problems))
        raise CheckpointError(f"no checkpoint in {path}: expected records named like ckpt-00000200.json "
                              f"(written by save_checkpoint)")
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    elif path.suffix != ".json":
        found = "it does not exist" if not path.exists() else "found another kind of file"
        raise CheckpointError(f"{path} is not a checkpoint: expected a ckpt-*.json record, its .safetensors "
                              f"file, or a run directory; {found}")
    return _load_verified(path)


