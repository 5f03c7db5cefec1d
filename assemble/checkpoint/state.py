"""Module, optimizer and RNG state as (tensors, JSON) pairs for :mod:`assemble.checkpoint`."""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .files import _TENSOR_TAG, _TUPLE_TAG, CheckpointError, _join

# ---------------------------------------------------------------------------------------------------- modules


def module_tensors(prefix: str, module: nn.Module) -> dict[str, Tensor]:
    """The module's ``state_dict`` (parameters and persistent buffers) with keys under ``prefix``.

    Args:
        prefix: name of the module in the checkpoint, e.g. ``"G"`` gives keys like ``G.conv.weight``.
        module: the module to store.

    Returns:
        A dict of detached tensors, ready for :func:`save_checkpoint`.
    """
    out = {}
    for key, value in module.state_dict().items():
        if not isinstance(value, Tensor):
            raise TypeError(f"{type(module).__name__}.state_dict()[{key!r}] is a {type(value).__name__}, "
                            f"not a tensor (extra state); checkpoints store it only through the JSON state")
        out[_join(prefix, key)] = value
    return out


def load_module_tensors(prefix: str, module: nn.Module, tensors: dict[str, Tensor],
                        strict: bool = True) -> nn.modules.module._IncompatibleKeys:
    """Load the tensors under ``prefix`` into ``module`` (the inverse of :func:`module_tensors`).

    Args:
        prefix: the prefix the module was stored under.
        module: the module to fill, built with the same architecture.
        tensors: the checkpoint's tensors (other prefixes are ignored).
        strict: if True, every key of the module must be present and none extra under the prefix.

    Returns:
        The missing and unexpected keys (both empty when ``strict``).

    Raises:
        CheckpointError: listing the missing and unexpected keys (when ``strict``) and every shape mismatch.
    """
    head = _join(prefix, "")
    loaded = {k[len(head):]: v for k, v in tensors.items() if k.startswith(head)}
    own = module.state_dict()
    missing = [k for k in own if k not in loaded]
    unexpected = [k for k in loaded if k not in own]
    shapes = [f"{head}{k}: checkpoint {tuple(v.shape)}, module {tuple(own[k].shape)}"
              for k, v in loaded.items() if k in own and v.shape != own[k].shape]
    problems = []
    if strict and missing:
        problems.append(f"missing from the checkpoint ({len(missing)}): " + ", ".join(head + k for k in missing))
    if strict and unexpected:
        problems.append(f"in the checkpoint but not in the module ({len(unexpected)}): "
                        + ", ".join(head + k for k in unexpected))
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): " + "; ".join(shapes))
    if problems:
        found = sorted({k.split(".", 1)[0] for k in tensors})
        raise CheckpointError(
            f"cannot load {type(module).__name__} from the tensors under {head!r}:\n  - " + "\n  - ".join(problems)
            + f"\nThe checkpoint's top-level prefixes are {found}: check the prefix and that the module was built "
              f"from the same recipe (pass strict=False to load a partial match)")
    return module.load_state_dict(loaded, strict=strict)


# ---------------------------------------------------------------------------------------------------- optimizers


def _encode(value: Any, key: str, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """JSON for ``value``: a tensor goes to ``tensors`` under ``prefix.key`` and leaves ``key`` as a reference
    (relative, so the prefix given at load decides where it is looked up); tuples are tagged."""
    if isinstance(value, Tensor):
        tensors[_join(prefix, key)] = value.detach()
        return {_TENSOR_TAG: key}
    if isinstance(value, tuple):
        return {_TUPLE_TAG: [_encode(v, f"{key}.{i}", prefix, tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}.{i}", prefix, tensors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _encode(v, f"{key}.{k}", prefix, tensors) for k, v in value.items()}
    return value


def _decode(value: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TENSOR_TAG}:
            key = _join(prefix, value[_TENSOR_TAG])
            if key not in tensors:
                raise CheckpointError(f"the optimizer state refers to the tensor {key!r}, which is not among the "
                                      f"checkpoint's tensors: pass the prefix given to optimizer_state() and the "
                                      f"tensors of the same checkpoint")
            return tensors[key]
        if set(value) == {_TUPLE_TAG}:
            return tuple(_decode(v, prefix, tensors) for v in value[_TUPLE_TAG])
        return {k: _decode(v, prefix, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, prefix, tensors) for v in value]
    return value


def optimizer_state(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """Split ``opt.state_dict()`` into tensors and JSON.

    Per-parameter state tensors (Adam's ``exp_avg``, ``exp_avg_sq`` and ``step``, SGD's ``momentum_buffer``)
    and tensor-valued hyperparameters go to the tensors, as ``{prefix}.state.{param}.{name}`` and
    ``{prefix}.param_groups.{group}.{name}``; everything else (hyperparameters, non-tensor state) to JSON.

    Args:
        prefix: name of the optimizer in the checkpoint, e.g. ``"opt_G"``.
        opt: the optimizer.

    Returns:
        ``(tensors, json_state)``; store the tensors in the checkpoint and ``json_state`` in its state.
    """
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    state = {str(pid): _encode(s, f"state.{pid}", prefix, tensors) for pid, s in sd["state"].items()}
    groups = [_encode(g, f"param_groups.{i}", prefix, tensors) for i, g in enumerate(sd["param_groups"])]
    return tensors, {"state": state, "param_groups": groups}


def load_optimizer_state(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, Tensor],
                         state_json: dict) -> None:
    """Restore ``opt`` from :func:`optimizer_state`'s output, so that ``opt.state_dict()`` equals the saved one.

    Args:
        prefix: the prefix the optimizer's tensors were stored under.
        opt: an optimizer over the same parameters, in the same groups and order.
        tensors: the checkpoint's tensors.
        state_json: the JSON part returned by :func:`optimizer_state`.

    Raises:
        CheckpointError: ``state_json`` is not an optimizer state, a tensor it names is absent, or the parameter
            groups do not match the optimizer's.
    """
    if not isinstance(state_json, dict) or set(state_json) != {"state", "param_groups"}:
        found = sorted(state_json) if isinstance(state_json, dict) else type(state_json).__name__
        raise CheckpointError(f"expected the JSON returned by optimizer_state() (keys ['param_groups', 'state']), "
                              f"found {found}")
    groups = _decode(state_json["param_groups"], prefix, tensors)
    ours = opt.param_groups
    sizes, expected = [len(g["params"]) for g in groups], [len(g["params"]) for g in ours]
    if sizes != expected:
        raise CheckpointError(f"{type(opt).__name__} under {prefix!r}: the checkpoint has parameter groups of sizes "
                              f"{sizes}, the optimizer has {expected}; build it over the same parameters, in the "
                              f"same groups and order")
    state = {int(pid): _decode(s, prefix, tensors) for pid, s in state_json["state"].items()}
    opt.load_state_dict({"state": state, "param_groups": groups})


# ---------------------------------------------------------------------------------------------------- RNG


def rng_state() -> tuple[dict[str, Tensor], dict]:
    """Capture the global RNGs: torch CPU (and every CUDA device's when CUDA is available), numpy, python.

    Returns:
        ``(tensors, json_state)``: tensors ``rng.torch``, ``rng.cuda.{i}`` and ``rng.numpy`` (uint32 key), and
        the JSON rest (numpy's position and cached Gaussian, python's ``random`` state).
    """
    tensors = {"rng.torch": torch.get_rng_state()}
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(cuda)})
    kind, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    tensors["rng.numpy"] = torch.from_numpy(np.array(key, dtype=np.uint32))
    version, internal, gauss_next = random.getstate()
    state = {
        "cuda_devices": len(cuda),
        "numpy": {"bit_generator": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }
    return tensors, state


def _need(tensors: dict[str, Tensor], key: str, what: str) -> Tensor:
    if key not in tensors:
        raise CheckpointError(f"the checkpoint has no tensor {key!r} ({what}); it was saved without it, or a "
                              f"different tensors dict was passed")
    return tensors[key]


def set_rng_state(tensors: dict[str, Tensor], state: dict) -> None:
    """Restore the global RNGs captured by :func:`rng_state`.

    CUDA states are restored for the devices present now; a mismatch in device count only warns, since a run
    may resume on different hardware.

    Args:
        tensors: the checkpoint's tensors (holding ``rng.*``).
        state: the JSON part returned by :func:`rng_state`.
    """
    if not isinstance(state, dict) or not {"cuda_devices", "numpy", "python"} <= set(state):
        raise CheckpointError(f"expected the JSON returned by rng_state() (keys cuda_devices, numpy, python), "
                              f"found {sorted(state) if isinstance(state, dict) else type(state).__name__}")
    torch.set_rng_state(_need(tensors, "rng.torch", "torch's CPU RNG"))
    saved = state["cuda_devices"]
    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if saved != here:
        warnings.warn(f"the checkpoint holds CUDA RNG states for {saved} device(s), this machine has {here}: "
                      f"restoring {min(saved, here)}; CUDA random streams will differ from the original run")
    for i in range(min(saved, here)):
        torch.cuda.set_rng_state(_need(tensors, f"rng.cuda.{i}", f"CUDA device {i}'s RNG"), device=i)
    n, p = state["numpy"], state["python"]
    key = _need(tensors, "rng.numpy", "numpy's MT19937 key").numpy()
    np.random.set_state((n["bit_generator"], key, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def generator_state(prefix: str, g: torch.Generator) -> dict[str, Tensor]:
    """Capture an explicit ``torch.Generator`` (CPU or CUDA) as ``{f"{prefix}.state": state}``."""
    return {_join(prefix, "state"): g.get_state()}


def set_generator_state(prefix: str, g: torch.Generator, tensors: dict[str, Tensor]) -> None:
    """Restore a generator captured by :func:`generator_state` into ``g``.

    Args:
        prefix: the prefix it was stored under.
        g: a generator of the same kind (a CPU state cannot go into a CUDA generator, nor the reverse).
        tensors: the checkpoint's tensors.
    """
    saved = _need(tensors, _join(prefix, "state"), f"generator {prefix!r}")
    expected = g.get_state().numel()
    if saved.numel() != expected:
        raise CheckpointError(f"generator {prefix!r}: the checkpoint holds a {saved.numel()}-byte state, a "
                              f"{g.device.type} generator's is {expected} bytes; it was saved from a generator "
                              f"on another kind of device: create it with that device")
    g.set_state(saved)
