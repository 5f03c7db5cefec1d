"""NVlabs' network pickles read as data: a restricted unpickler that rebuilds tensors and containers, runs nothing.

stylegan2-ada-pytorch pickles its networks with ``torch_utils/persistence.py``: every network object reduces to
``_reconstruct_persistent_obj(meta)`` with ``meta = {type: 'class', version, module_src, class_name, state}``,
``state`` being the module's ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, ``_init_args``,
``_init_kwargs``, plain attributes), and NVlabs' loader *executes* ``module_src`` -- the source code stored in
the pickle -- to rebuild the class. :class:`RestrictedUnpickler` resolves globals from a fixed list instead:

- ``torch_utils.persistence._reconstruct_persistent_obj`` is intercepted by its name (never imported, never
  run): it gives a :class:`PersistentObject` record (class name, init args and kwargs, parameters, buffers and
  sub-module records); of ``module_src`` only its SHA-256 is kept;
- tensors: ``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter`` (a parameter becomes its tensor) and
  ``torch.storage._load_from_bytes``, whose bytes (a ``torch.save`` of one storage) are read with
  ``torch.load(weights_only=True)``; torch dtypes and ``torch.Size``;
- containers: ``collections.OrderedDict``, ``set``, ``frozenset``. ``dnnlib.EasyDict`` (NVlabs' kwargs, and
  ``.pkl`` files of kwargs) is refused as a class and kept as data: :class:`EasyDictData`, a plain dict
  holding the same items (attribute state, if any, merged in as items);
- NumPy scalars (NVlabs keeps gains such as ``np.sqrt(2)`` as attributes): ``numpy.dtype`` and
  ``numpy.core.multiarray.scalar`` are decoded from their bytes with ``struct``; numpy is not imported.

Every other global (``os.system``, ``builtins.exec``, ``subprocess.Popen``, a class of the training code, a
NumPy array) is refused with a :class:`ConversionError` naming it, before anything it would call exists.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .common import ConversionError, check_size

__all__ = ["EasyDictData", "PersistentObject", "RestrictedUnpickler", "plain", "read_pickle",
           "unpack_numpy_scalar"]


@dataclass
class PersistentObject:
    """What a pickled NVlabs persistent object holds, as data.

    ``parameters``/``buffers`` are the module's own tensors (a parameter as its tensor), ``modules`` its
    sub-modules (records too), ``attributes`` the other plain values of its state (``z_dim``, ...).
    """

    class_name: str
    version: Any
    source_sha256: str
    init_args: tuple
    init_kwargs: dict[str, Any]
    parameters: dict[str, Tensor | None]
    buffers: dict[str, Tensor | None]
    modules: dict[str, PersistentObject | None]
    non_persistent: set[str] = field(default_factory=set)
    attributes: dict[str, Any] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Tensor]:
        """The flat state_dict torch would give for the module: parameters, persistent buffers, then each
        sub-module's, under dotted names."""
        out: dict[str, Tensor] = {}
        self._collect("", out)
        return out

    def _collect(self, prefix: str, out: dict[str, Tensor]) -> None:
        for name, value in self.parameters.items():
            if value is not None:
                out[prefix + name] = value
        for name, value in self.buffers.items():
            if value is not None and name not in self.non_persistent:
                out[prefix + name] = value
        for name, module in self.modules.items():
            if module is not None:
                module._collect(f"{prefix}{name}.", out)


class EasyDictData(dict):
    """The items of a pickled ``dnnlib.EasyDict``; the class itself is never imported."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


def _refuse(what: str) -> ConversionError:
    return ConversionError(f"{what}; an NVlabs network pickle is read as tensors, containers and persistent-object "
                           "records only, and nothing in it is run")


def _tensors_of(state: Any, key: str, class_name: str) -> dict[str, Any]:
    value = state.get(key) or {}
    if not isinstance(value, dict):
        raise _refuse(f"persistent object {class_name}: {key} is a {type(value).__name__}, not a dict")
    for name, item in value.items():
        want = PersistentObject if key == "_modules" else Tensor
        if item is not None and not isinstance(item, want):
            raise _refuse(f"persistent object {class_name}: {key}[{name!r}] is a {type(item).__name__}, "
                          f"not a {want.__name__}")
    return dict(value)


def _persistent_object(meta: Any) -> PersistentObject:
    """Stands in for ``torch_utils.persistence._reconstruct_persistent_obj``: the record, nothing executed."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise _refuse("a persistent object whose meta is not NVlabs' {type: 'class', class_name, state, ...}")
    name, state = meta["class_name"], meta.get("state")
    if not isinstance(state, dict):
        raise _refuse(f"persistent object {name}: its state is a {type(state).__name__}, not a dict")
    source = meta.get("module_src")
    kwargs = state.get("_init_kwargs") or {}
    args = state.get("_init_args") or ()
    if not isinstance(kwargs, dict) or not isinstance(args, tuple | list):
        raise _refuse(f"persistent object {name}: _init_args/_init_kwargs are not a tuple and a dict")
    skipped = {"_parameters", "_buffers", "_modules", "_init_args", "_init_kwargs", "_non_persistent_buffers_set"}
    attributes = {k: v for k, v in state.items() if k not in skipped and not k.startswith("_")
                  and (v is None or isinstance(v, bool | int | float | str))}
    return PersistentObject(
        class_name=name, version=meta.get("version"),
        source_sha256=hashlib.sha256(source.encode()).hexdigest() if isinstance(source, str) else "",
        init_args=tuple(args), init_kwargs=dict(kwargs), parameters=_tensors_of(state, "_parameters", name),
        buffers=_tensors_of(state, "_buffers", name), modules=_tensors_of(state, "_modules", name),
        non_persistent=set(state.get("_non_persistent_buffers_set") or ()), attributes=attributes)


def _storage_from_bytes(data: Any) -> Any:
    """Stands in for ``torch.storage._load_from_bytes``: the same bytes, read with ``weights_only=True``."""
    if not isinstance(data, bytes | bytearray):
        raise _refuse(f"torch.storage._load_from_bytes called with a {type(data).__name__}, not bytes")
    try:
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        raise _refuse(f"a tensor's storage cannot be read as data (torch.load(weights_only=True)): "
                      f"{str(err).splitlines()[0][:200]}") from None
    if not isinstance(storage, torch.TypedStorage | torch.UntypedStorage):
        raise _refuse(f"a tensor's storage bytes hold a {type(storage).__name__}, not a storage")
    return storage


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> Tensor:
    """Stands in for ``torch._utils._rebuild_tensor_v2``; requires_grad, hooks and metadata are dropped."""
    ints = isinstance(offset, int) and all(isinstance(v, int) for v in (*size, *stride))
    if not isinstance(storage, torch.TypedStorage | torch.UntypedStorage) or not ints:
        raise _refuse("_rebuild_tensor_v2 called with something other than (storage, offset, size, stride)")
    return torch._utils._rebuild_tensor_v2(storage, offset, tuple(size), tuple(stride), False,
                                           collections.OrderedDict())


def _rebuild_parameter(data: Any, *_: Any) -> Tensor:
    """Stands in for ``torch._utils._rebuild_parameter(_with_state)``: the parameter's tensor, state dropped."""
    if not isinstance(data, Tensor):
        raise _refuse(f"_rebuild_parameter called with a {type(data).__name__}, not a tensor")
    return data


class _NumpyDType:
    """A ``numpy.dtype`` as far as a scalar's bytes need it: its name (``'f8'``) and byte order."""

    def __init__(self, name: Any, align: Any = False, copy: Any = False):
        if not isinstance(name, str):
            raise _refuse(f"numpy.dtype({name!r})")
        self.name, self.order = name, "<"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.order = state[1]


_NUMPY_FORMATS = {"f2": "e", "f4": "f", "f8": "d", "i1": "b", "i2": "h", "i4": "i", "i8": "q", "u1": "B",
                  "u2": "H", "u4": "I", "u8": "Q", "b1": "?"}


def unpack_numpy_scalar(code: Any, order: Any, data: Any) -> bool | int | float | None:
    """The Python number a pickled NumPy scalar's bytes hold (dtype ``code`` such as ``'f8'``, byte ``order``),
    decoded with ``struct`` (numpy is not imported); None when it is not a number or boolean of that size."""
    fmt = _NUMPY_FORMATS.get(code) if isinstance(code, str) else None
    if fmt is None or not isinstance(data, bytes):
        return None
    try:
        return struct.unpack((">" if order == ">" else "<") + fmt, data)[0]
    except struct.error:
        return None


def _numpy_scalar(dtype: Any, data: Any = None) -> bool | int | float:
    """Stands in for ``numpy.core.multiarray.scalar``: the Python number its bytes hold."""
    value = unpack_numpy_scalar(dtype.name, dtype.order, data) if isinstance(dtype, _NumpyDType) else None
    if value is None:
        raise _refuse(f"a NumPy scalar of dtype {getattr(dtype, 'name', dtype)!r} (only numbers and booleans) "
                      f"with {len(data) if isinstance(data, bytes) else 'no'} bytes")
    return value


ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_object,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch", "Size"): torch.Size,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("dnnlib.util", "EasyDict"): EasyDictData,
    ("dnnlib", "EasyDict"): EasyDictData,
    ("numpy", "dtype"): _NumpyDType,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in :data:`ALLOWED` (and torch dtypes); see the module doc."""

    def find_class(self, module: str, name: str) -> Any:
        target = ALLOWED.get((module, name))
        if target is not None:
            return target
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        hint = ""
        if module.startswith("dnnlib.tflib"):
            hint = " (a TensorFlow StyleGAN pickle: only stylegan2-ada-pytorch's PyTorch pickles are read)"
        raise _refuse(f"refused the global {module}.{name}{hint}")

    def persistent_load(self, pid: Any) -> Any:
        raise _refuse(f"refused a persistent id ({type(pid).__name__}): NVlabs' pickles use none (a torch.save "
                      "file is not a network pickle)")


def read_pickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (its size bounded by ``check_size``).

    Raises:
        ConversionError: naming the file and the refused global, or why it is no pickle.
    """
    check_size(path)
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's TypedStorage deprecation, from the storages' own format
            return RestrictedUnpickler(f).load()
    except ConversionError as err:
        raise ConversionError(f"{path}: {err}") from None
    except Exception as err:
        raise ConversionError(f"{path}: not a readable pickle ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None


def plain(value: Any) -> Any:
    """Containers as plain JSON-like data: dicts (EasyDictData, OrderedDict) to dict, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
