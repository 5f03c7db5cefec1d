"""``--from biggan-pytorch``: ajbrock/BigGAN-PyTorch's weights folders into the ``biggan``, ``biggan_deep`` and
``sagan`` recipes (whose module trees are BigGAN.py's and BigGANdeep.py's). A G without ``shared.weight``
(G_shared=False, as launch_SAGAN_bs128x2_ema.sh trains it) is SA-GAN: its batch norms hold an embedding per class
(``bn1.gain.weight`` (n_classes, C), gain = 1 + embedding(y)), which become the ``sagan`` recipe's categorical
batch norms (``bn1.class_gain`` = 1 + the embedding, ``bn1.class_bias``), and z reaches the linear layer whole.

SRC is ``weights/<experiment>/`` as ``utils.save_weights`` writes it: ``G.pth``, ``D.pth``, ``G_ema.pth`` (when
EMA was on) and ``state_dict.pth`` (``G_optim.pth``/``D_optim.pth`` are not read). A file of the folder picks a
saved copy: ``G_best0.pth`` (or ``D_best0.pth``, ``state_dict_best0.pth``) converts the ``_best0`` set.

Read from the weights' shapes, and checked against the recipe (a ``--set`` that contradicts one is an error):
the architecture (BigGAN-deep's blocks have conv3/conv4; or ``--recipe``), resolution (the number of blocks),
ch (G_ch = D_ch), z_dim, shared_dim, n_classes, where the attention is (``attn``), and for BigGAN-deep depth,
the bottleneck ratio and the output conv's channels. The 32x32 (CIFAR) layouts, which the recipes' tables do
not hold, are given to them as variables (and BigGAN-deep's D pooling as a step override). ``state_dict.pth``
gives the counters (itr -> step) and the run's config, of which SN_eps and BN_eps (not in the weights) are
used and norm_style checked; without it the recipe's eps stand. BigGAN-PyTorch pickles ``nn.ReLU`` modules and
numpy floats into that file, which ``torch.load(weights_only=True)`` refuses, so it is read (after that has
failed) by :func:`read_plain`, which resolves no global of the file: containers and numbers come back,
anything else is an inert placeholder.

Keys: our layers hold their torch module one level down (``conv1.weight`` -> ``conv1.conv.parametrizations.
weight.original``, ``linear.bias`` -> ``linear.linear.bias``, ``shared.weight`` -> ``shared.embed.weight``,
D's ``linear``/``embed`` -> ``head.linear``/``head.embed``); ``stored_mean``/``stored_var`` are the running
statistics; the output ``layers.bn``'s ``gain`` is ``weight``; BigGAN-deep's G keeps every GBlock in a list of
its own (``blocks.{2k+d}.0``, attention ``blocks.{2k+1}.1``) where the recipe nests them (``blocks.k.d``,
``blocks.k.2``). ``num_batches_tracked`` is not stored by the reference and stays 0 (it is unused: momentum 0.1).
BigGANdeep.py's G reads ``cat([y, z])``, as the ``biggan_deep`` recipe joins them; a recipe that joins them in
another order is refused (its linear layer's columns would be another function).

Spectral norm: BigGAN-PyTorch keeps ``u0`` (1, out) and runs one power iteration on every forward, in eval
mode too (``v = n(u0 W)``, ``u = n(v Wᵀ)``, ``σ = v Wᵀ uᵀ``; u0 is written back only in training); the recipes
set ``spectral_norm: {order: v_first, eval_iterations: 1}``, which is the same iteration, so ``u0`` is copied
into ``_u`` unchanged and the first pass gives the reference's outputs, in eval and train. ``_v`` is never read
under that convention (v is recomputed from u first); it is set to ``n(Wᵀ u0)``, the v the reference computes
from u0 on its next forward, so the stored pair is consistent. ``sv0`` (the reference's logged σ) is derived,
and ``u1``/``sv1``.. (``num_svs`` > 1) do not change the outputs (only the first σ divides W): all are skipped.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import RecipeError
from ..gan import build
from . import converter
from .common import ConversionError, Converted, check_size, load_torch, rename
from .pickles import unpack_numpy_scalar

_FILE = re.compile(r"(G_ema|G_optim|D_optim|state_dict|G|D)(?:_(\w+))?\.pth")

# BigGAN.py / BigGANdeep.py G_arch and D_arch: channel multipliers of ch, by resolution.
_G_OUT = {32: [4, 4, 4], 64: [16, 8, 4, 2], 128: [16, 8, 4, 2, 1], 256: [16, 8, 8, 4, 2, 1],
          512: [16, 8, 8, 4, 2, 1, 1]}
_D_OUT = {32: [4, 4, 4, 4], 64: [1, 2, 4, 8, 16], 128: [1, 2, 4, 8, 16, 16], 256: [1, 2, 4, 8, 8, 16, 16],
          512: [1, 1, 2, 4, 8, 8, 16, 16]}
_DEEP_D_IN = {32: [4, 4, 4], 64: [1, 2, 4, 8], 128: [1, 2, 4, 8, 16], 256: [1, 2, 4, 8, 8, 16]}

# The 32x32 (CIFAR) layouts, which the recipes' tables do not hold: G keeps 4·ch throughout, D pools in its
# first two blocks only, and every D block is labelled 16 for attention (BigGAN.py's D_arch[32]).
_BIGGAN_32 = {"g_out": [4, 4, 4], "g_in": [4, 4, 4], "d_out": [4, 4, 4, 4], "d_down": [True, True, False, False],
              "d_res": [16, 16, 16, 16]}
_DEEP_32 = {"g_out": [4, 4, 4], "g_in": [4, 4, 4], "d_in": [4, 4, 4], "d_out": [4, 4, 4], "d_res": [16, 16, 16],
            "discriminator.steps[1].do[0].do[0].do[0].biggan_deep_d_block.downsample": "$d == 0 and k < 2"}


def _g_labels(res: int) -> list[int]:
    """G_arch's 'resolution' row: the label each G block's attention is placed by."""
    return [8 * 2 ** i for i in range(len(_G_OUT[res]))]


def _d_labels(res: int, deep: bool) -> list[int]:
    """D_arch's 'resolution' row (at 32 every block is labelled 16)."""
    n = len(_DEEP_D_IN[res]) if deep else len(_D_OUT[res])
    if res == 32:
        return [16] * n
    return [res // 2 ** (i + 1) for i in range(n)] if deep else [res // 2 ** min(i + 1, n - 1) for i in range(n)]


# ---- files ---------------------------------------------------------------------------------------------


def _files(src: Path) -> tuple[dict[str, Path], str | None]:
    """The files of one save (``G``, ``D``, optionally ``G_ema`` and ``state_dict``) and its suffix."""
    folder, suffix = src, None
    if src.is_file():
        m = _FILE.fullmatch(src.name)
        if not m:
            raise ConversionError(f"{src}: not a file BigGAN-PyTorch's save_weights writes (G.pth, D.pth, "
                                  "G_ema.pth, state_dict.pth, optionally with a suffix such as _best0)")
        folder, suffix = src.parent, m.group(2)
    name = "{}" + (f"_{suffix}" if suffix else "") + ".pth"
    found = {role: folder / name.format(role) for role in ("G", "D", "G_ema", "state_dict")}
    found = {role: p for role, p in found.items() if p.is_file()}
    missing = [name.format(role) for role in ("G", "D") if role not in found]
    if missing:
        others = sorted({m.group(2) for p in folder.iterdir() if (m := _FILE.fullmatch(p.name)) and m.group(2)})
        hint = f"; saved copies here: {', '.join(others)} (give e.g. G_{others[0]}.pth)" if others else ""
        raise ConversionError(f"{folder}: no {' and no '.join(missing)} (BigGAN-PyTorch's weights/<experiment>/ "
                              f"folder holds G.pth, D.pth, G_ema.pth and state_dict.pth){hint}")
    return found, suffix


class _Opaque:
    """Any object of a pickle that is not plain data: it records its name, arguments and state, runs nothing."""

    name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # what pickle does to a dict or list subclass
        self.__dict__.setdefault("items", []).append((key, value))

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("items", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("items", []).extend(values)

    def __repr__(self) -> str:
        return f"<{self.name}>"


class _NumpyDtype(_Opaque):
    name = "numpy.dtype"


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """A numpy scalar (best_IS, best_FID) decoded from its bytes; anything else stays opaque."""
    if isinstance(dtype, _NumpyDtype) and dtype.args:
        state = getattr(dtype, "state", None)
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else "<"
        value = unpack_numpy_scalar(dtype.args[0], order, data)
        if value is not None:
            return value
    return _Opaque(dtype, data)


def _bytes(text: Any, encoding: Any = None) -> Any:
    """Protocol 2's spelling of bytes (``_codecs.encode(str, 'latin1')``), decoded without calling codecs."""
    if isinstance(text, str) and encoding in ("latin1", "latin-1"):
        return text.encode("latin1")
    return _Opaque(text, encoding)


_PLAIN = {("_codecs", "encode"): _bytes, ("collections", "OrderedDict"): OrderedDict, ("builtins", "set"): set,
          ("builtins", "frozenset"): frozenset, ("numpy", "dtype"): _NumpyDtype,
          ("numpy.core.multiarray", "scalar"): _numpy_scalar, ("numpy._core.multiarray", "scalar"): _numpy_scalar}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module  # protocol 2's Python 2 name
        if (module, name) in _PLAIN:
            return _PLAIN[(module, name)]
        return type(name, (_Opaque,), {"name": f"{module}.{name}"})

    def persistent_load(self, pid: Any) -> Any:
        # The legacy format saves a module's class as ("module", class, file, source): the (inert) class; a
        # storage becomes an inert class too, since either may be built
        if isinstance(pid, tuple) and len(pid) > 1 and pid[0] == "module" and isinstance(pid[1], type):
            return pid[1]
        return type("persistent", (_Opaque,), {"name": "persistent"})


def read_plain(path: Path) -> Any:
    """A ``torch.save`` file's containers and numbers, without resolving any global it names.

    Every class or function the pickle refers to becomes an inert :class:`_Opaque` (numpy scalars are decoded
    from their bytes), tensors included, so nothing in the file runs. Both torch formats (zip, and the legacy
    one of torch < 1.6, which BigGAN-PyTorch's era wrote) are read.
    """
    check_size(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pkl = next(n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl"))
                return _PlainUnpickler(io.BytesIO(z.read(pkl))).load()
        with open(path, "rb") as f:  # legacy: magic number, protocol, sys info, then the object
            if _PlainUnpickler(f).load() != 0x1950A86A20F9469CFC6C:
                raise ValueError("not a torch.save file")
            _PlainUnpickler(f).load()
            _PlainUnpickler(f).load()
            return _PlainUnpickler(f).load()
    except Exception as err:  # a damaged or foreign file: say so, never a traceback
        raise ConversionError(f"{path}: cannot be read as a torch.save file: {str(err)[:200]}") from None


def _plain(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str)) or value is None


def _state(path: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``state_dict.pth``'s counters and the plain values of its ``config`` (empty without the file)."""
    if path is None:
        return {}, {}
    try:
        data = load_torch(path)
    except ConversionError:  # BigGAN-PyTorch's holds nn.ReLU modules and numpy floats
        data = read_plain(path)
    if not isinstance(data, Mapping):
        raise ConversionError(f"{path}: holds a {type(data).__name__}, not BigGAN-PyTorch's state dict")
    counters = {k: v for k, v in data.items() if k != "config" and _plain(v)}
    config = data.get("config")
    config = {k: v for k, v in config.items() if _plain(v)} if isinstance(config, Mapping) else {}
    return counters, config


# ---- configuration from the shapes ---------------------------------------------------------------------


def _indices(state: Mapping[str, Tensor], pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in state if (m := re.fullmatch(pattern, k))})


def _whole(what: str, total: int, part: int, where: str) -> int:
    if part <= 0 or total % part:
        raise ConversionError(f"{where}: {what} is {total}, not a multiple of BigGAN-PyTorch's {part}")
    return total // part


def _attention(g_at: list[int], d_at: list[int], g_labels: list[int], d_labels: list[int], where: str) -> int:
    """The one resolution ``attn`` whose blocks carry attention in G and in D, as the recipes place it."""
    for attn in sorted({g_labels[k] for k in g_at} | {d_labels[k] for k in d_at}) or [0]:
        if ([k for k, r in enumerate(g_labels) if r == attn] == g_at
                and [k for k, r in enumerate(d_labels) if r == attn] == d_at):
            return attn
    g_res = sorted({g_labels[k] for k in g_at})
    d_res = sorted({d_labels[k] for k in d_at})
    raise ConversionError(f"{where}: attention in G at {g_res or 'none'} and in D at {d_res or 'none'}; the recipe "
                          "places one attention resolution (attn) in both G and D")


def _config(g: Mapping[str, Tensor], d: Mapping[str, Tensor], deep: bool, where: str) -> dict[str, Any]:
    """Everything the recipe needs, read from the shapes of G's and D's state dicts."""
    kind = "BigGANdeep.py" if deep else "BigGAN.py"
    for net, state, keys in (("G", g, ("linear.weight", "output_layer.0.gain", "output_layer.2.weight",
                                       "blocks.0.0.conv1.weight", "blocks.0.0.bn1.gain.weight")),
                             ("D", d, ("linear.weight", "embed.weight", "blocks.0.0.conv1.weight",
                                       *(["input_conv.weight"] if deep else [])))):
        absent = [k for k in keys if k not in state]
        if absent:
            raise ConversionError(f"{where}: {net} is not a {kind} {net} state dict (no {', '.join(absent)})")
    if "linear.u0" not in g or "linear.u0" not in d:
        raise ConversionError(f"{where}: no u0 beside linear.weight: G_param/D_param is not 'SN', and the recipes "
                              "are spectrally normalised")
    unshared = "shared.weight" not in g  # G_shared=False: SA-GAN's per-class batch-norm gains and biases
    if unshared and deep:
        raise ConversionError(f"{where}: a BigGAN-deep G without shared.weight (G_shared=False), which no recipe "
                              "models")
    n_classes, shared_dim = (g["blocks.0.0.bn1.gain.weight"].shape[0], None) if unshared else g["shared.weight"].shape
    if d["embed.weight"].shape[0] != n_classes:
        source = "its batch norms" if unshared else "shared.weight"
        raise ConversionError(f"{where}: G has {n_classes} classes ({source}), D {d['embed.weight'].shape[0]} "
                              "(embed.weight)")
    g_blocks = _indices(g, r"blocks\.(\d+)\.0\.conv1\.weight")
    d_blocks = _indices(d, r"blocks\.(\d+)\.0\.conv1\.weight")
    linear_in = g["linear.weight"].shape[1]
    bn_in = g["blocks.0.0.bn1.gain.weight"].shape[1]
    values: dict[str, Any] = {}
    if deep:
        res = {3: 32, 4: 64, 5: 128, 6: 256}.get(len(d_blocks))
        if res is None:
            raise ConversionError(f"{where}: D has {len(d_blocks)} resolutions of blocks; BigGANdeep.py builds 3 "
                                  "(32x32) to 6 (256x256)")
        depth = len(_indices(d, r"blocks\.0\.(\d+)\.conv1\.weight"))
        if len(g_blocks) != depth * len(d_blocks):
            raise ConversionError(f"{where}: G has {len(g_blocks)} blocks, D {len(d_blocks)} resolutions of {depth} "
                                  f"(D_depth): the recipe has one depth, so G should have {depth * len(d_blocks)}")
        ch_g = _whole("G's last width (output_layer.0)", g["output_layer.0.gain"].numel(), _G_OUT[res][-1], where)
        ch_d = _whole("D's first width (input_conv)", d["input_conv.weight"].shape[0], _DEEP_D_IN[res][0], where)
        if bn_in != linear_in:
            raise ConversionError(f"{where}: G's batch norms read {bn_in} values and its linear layer {linear_in}: "
                                  "BigGAN-deep with hier=True gives both cat([z, shared(y)])")
        conv1 = g["blocks.0.0.conv1.weight"].shape
        values.update(z_dim=linear_in - shared_dim, depth=depth, ratio=conv1[1] // conv1[0],
                      out_conv_channels=g["output_layer.2.weight"].shape[0])
        g_at = [i // depth for i in _indices(g, r"blocks\.(\d+)\.1\.gamma")]
        d_at = _indices(d, rf"blocks\.(\d+)\.{depth}\.gamma")
    else:
        res = {3: 32, 4: 64, 5: 128, 6: 256, 7: 512}.get(len(g_blocks))
        if res is None or len(d_blocks) != len(_D_OUT[res]):
            raise ConversionError(f"{where}: G has {len(g_blocks)} blocks and D {len(d_blocks)}; BigGAN.py builds "
                                  "3 and 4 (32x32), 4 and 5 (64x64) .. 7 and 8 (512x512)")
        ch_g = _whole("G's last width (output_layer.0)", g["output_layer.0.gain"].numel(), _G_OUT[res][-1], where)
        ch_d = _whole("D's first width (blocks.0.0.conv1)", d["blocks.0.0.conv1.weight"].shape[0], _D_OUT[res][0],
                      where)
        if unshared:
            pass  # the batch norms read the class index; z goes to the linear layer whole (hier needs G_shared)
        elif bn_in != shared_dim + linear_in:
            raise ConversionError(f"{where}: G's batch norms read {bn_in} values, not shared_dim {shared_dim} + the "
                                  f"linear layer's z chunk {linear_in}: hier=False, which the biggan recipe (skip_z) "
                                  "does not model")
        # hier: one chunk for the linear layer and one per block
        values["z_dim"] = linear_in if unshared else linear_in * (len(g_blocks) + 1)
        g_at = _indices(g, r"blocks\.(\d+)\.1\.gamma")
        d_at = _indices(d, r"blocks\.(\d+)\.1\.gamma")
    if ch_g != ch_d:
        raise ConversionError(f"{where}: G_ch is {ch_g} and D_ch {ch_d}; the recipe has one ch for both")
    per_channel = g["linear.weight"].shape[0] / ((4 if res == 32 else 16) * ch_g)  # G_arch in_channels[0]
    if per_channel != 16:
        raise ConversionError(f"{where}: G's linear layer gives {g['linear.weight'].shape[0]} values, "
                              f"{per_channel:g} per channel: bottom_width is not 4, which the recipes assume")
    values.update(resolution=res, ch=ch_g, n_classes=n_classes,
                  attn=_attention(g_at, d_at, _g_labels(res), _d_labels(res, deep), where))
    if unshared:
        values["nc"] = g["output_layer.2.weight"].shape[0]
        if d["blocks.0.0.conv1.weight"].shape[1] != values["nc"]:
            raise ConversionError(f"{where}: G makes {values['nc']}-channel images, D reads "
                                  f"{d['blocks.0.0.conv1.weight'].shape[1]}; the recipe has one nc for both")
    else:
        values["shared_dim"] = shared_dim
    return values


# ---- tensors -------------------------------------------------------------------------------------------

_SKIP = re.compile(r".*\.(sv\d+|u[1-9]\d*)")  # logged σ, and the further singular vectors of num_svs > 1


def _ours(key: str, source: Mapping[str, Tensor], net: str, depth: int | None) -> str:
    """ganforge's name for the reference's ``key`` (``depth``: BigGAN-deep's G, whose blocks are a flat list)."""
    module, _, param = key.rpartition(".")
    sn = f"{module}.u0" in source
    if depth and net == "G" and (m := re.fullmatch(r"blocks\.(\d+)\.([01])(\..+)?", module)):
        i, j = int(m.group(1)), int(m.group(2))
        module = f"blocks.{i // depth}.{i % depth if j == 0 else depth}{m.group(3) or ''}"
    if net == "G":
        module = {"shared": "shared.embed", "linear": "linear.linear", "output_layer.2": "output_layer.2.conv"
                  }.get(module, module)
    else:
        module = {"linear": "head.linear", "embed": "head.embed", "input_conv": "input_conv.conv"}.get(module, module)
    module = re.sub(r"(\.conv[1-4]|\.conv_sc)$", r"\1.conv", module)
    if not sn and (m := re.fullmatch(r"(.*\.bn[12])\.(gain|bias)", module)) and param == "weight":
        return f"{m.group(1)}.class_{m.group(2)}"  # G_shared=False: ccbn's nn.Embedding (gain: + 1, see translate)
    if sn and param == "weight":
        param = "parametrizations.weight.original"
    param = {"u0": "parametrizations.weight.0._u", "stored_mean": "running_mean", "stored_var": "running_var",
             "gain": "weight"}.get(param, param)  # a `gain` parameter is layers.bn's (ccbn's gain is a module)
    return f"{module}.{param}"


@torch.no_grad()
def _fill_v(state: dict[str, Tensor], net: nn.Module) -> None:
    """``_v = n(Wᵀ u)``: the v BigGAN-PyTorch computes from u0 on its next forward (see the module's doc)."""
    for name, m in net.named_modules():
        if hasattr(m, "_u") and hasattr(m, "_v") and hasattr(m, "_reshape_weight_to_matrix"):
            original = name.rsplit(".", 1)[0] + ".original"  # <layer>.parametrizations.weight.{0 -> original}
            w = m._reshape_weight_to_matrix(state[original])  # (out, in·k·k)
            state[f"{name}._v"] = F.normalize(torch.mv(w.t(), state[f"{name}._u"]), dim=0, eps=m.eps)


def _check_join(recipe: dict[str, Any], where: str) -> None:
    """The BigGAN-deep recipe should join ``[y, z]``, as BigGANdeep.py's ``cat([y, z])``."""
    joins = [step["concat"].get("from") for step in recipe.get("generator", {}).get("steps", [])
             if isinstance(step, dict) and isinstance(step.get("concat"), dict)]
    if joins != [["y", "z"]]:
        raise ConversionError(f"{where}: the recipe {recipe.get('name')} should join the class embedding and z with "
                              f"one concat step from [y, z] (BigGANdeep.py's cat([y, z])), found {joins}")


def translate(source: Mapping[str, Tensor], target: nn.Module, net: str, what: str,
              depth: int | None = None) -> dict[str, Tensor]:
    """A complete state dict for ``target`` (a network of the recipe) from BigGAN-PyTorch's ``source``.

    Args:
        source: ``G.state_dict()`` or ``D.state_dict()`` as BigGAN-PyTorch saves it.
        target: the recipe's network it goes into.
        net: "G" or "D" (G_ema is "G").
        what: names the network and file in errors.
        depth: G_depth for BigGAN-deep's G (flat block list), else None.
    """
    source = {k: v.flatten() if k.endswith(".u0") and v.dim() == 2 and v.shape[0] == 1 else v
              for k, v in source.items()}
    rules = [(re.escape(k), _ours(k, source, net, depth)) for k in source if not _SKIP.fullmatch(k)]
    state = rename(source, target.state_dict(), rules, what,
                   derived=lambda k: k.endswith("._v") or k.endswith(".num_batches_tracked"),
                   skip=lambda k: bool(_SKIP.fullmatch(k)))
    for key, value in source.items():  # SA-GAN's ccbn: gain = 1 + embedding(y); ours stores the gain itself
        if re.fullmatch(r".*\.bn[12]\.gain\.weight", key) and f"{key[:-len('.weight')]}.u0" not in source:
            state[_ours(key, source, net, depth)] = value + 1
    _fill_v(state, target)
    return state


def _recipe(default: str, values: dict[str, Any], recipe: str | None, sets: list[str], where: str
            ) -> dict[str, Any]:
    from . import recipe_for

    try:
        return recipe_for(default, values, recipe, sets, where)
    except RecipeError as err:
        raise ConversionError(f"{where}: the recipe {recipe or default} cannot take this checkpoint's settings "
                              f"{values}: {err}") from None


def from_states(g: Mapping[str, Tensor], d: Mapping[str, Tensor], ema: Mapping[str, Tensor] | None = None, *,
                recipe: str | None = None, sets: list[str] | None = None, config: Mapping[str, Any] | None = None,
                where: str = "G.pth", what: Mapping[str, str] | None = None
                ) -> tuple[dict[str, Any], dict[str, dict[str, Tensor]], dict[str, Any]]:
    """The recipe, the networks' tensors and the settings read, from BigGAN-PyTorch's state dicts.

    Args:
        g, d, ema: the state dicts of G, D and G_ema (None: no EMA).
        recipe, sets: ``--recipe`` and ``--set``.
        config: the run's config from ``state_dict.pth`` (SN_eps, BN_eps), if any.
        where: names the checkpoint in errors; ``what`` names each network's file.
    """
    config, what = config or {}, {"G": f"G of {where}", "D": f"D of {where}", "G_ema": f"G_ema of {where}",
                                  **(what or {})}
    deep = any(re.fullmatch(r"blocks\.\d+\.0\.conv3\.weight", k) for k in g)
    default = "biggan_deep" if deep else "biggan" if "shared.weight" in g else "sagan"
    if recipe in ("biggan", "biggan_deep", "sagan") and recipe != default:
        kind = {"biggan_deep": "BigGAN-deep blocks (with conv3/conv4)", "biggan": "BigGAN blocks with a shared class "
                "embedding (G_shared)", "sagan": "SA-GAN's blocks: per-class batch norms, no shared embedding "
                "(G_shared=False)"}[default]
        raise ConversionError(f"{where}: holds {kind}; --recipe {recipe} does not take it, --recipe {default} does")
    if config.get("norm_style", "bn") != "bn":
        raise ConversionError(f"{where}: the run's norm_style is {config['norm_style']!r}; the recipes' conditional "
                              "batch norms are BigGAN-PyTorch's 'bn'")
    values = _config(g, d, deep, where)
    if values["resolution"] == 32:
        values.update(_DEEP_32 if deep else _BIGGAN_32)
    eps = {"sn_eps": config.get("SN_eps"), "bn_eps": config.get("BN_eps")}
    values.update({k: float(v) for k, v in eps.items() if isinstance(v, (int, float))})
    conv_recipe = _recipe(default, values, recipe, list(sets or []), where)
    gan = build(conv_recipe)
    depth = values.get("depth") if deep else None
    if deep:
        _check_join(conv_recipe, where)
    tensors = {"G": translate(g, gan.G, "G", what["G"], depth), "D": translate(d, gan.D, "D", what["D"])}
    if ema is not None:
        tensors["G_ema"] = translate(ema, gan.G, "G", what["G_ema"], depth)
    info = {"architecture": {"biggan_deep": "BigGAN-deep", "biggan": "BigGAN", "sagan": "SA-GAN"}[default],
            "config": {k: v for k, v in values.items() if "." not in k},
            "eps_from": "state_dict.pth" if any(v is not None for v in eps.values())
            else "the recipe (no SN_eps/BN_eps in a state_dict.pth)"}
    notes = []
    iterations = {k: config[k] for k in ("num_G_SV_itrs", "num_D_SV_itrs") if config.get(k, 1) != 1}
    if iterations:
        notes.append(f"{iterations}: the recipe runs one power iteration per training forward (eval is the same)")
    if config.get("cross_replica") or config.get("mybn"):
        notes.append("cross-replica batch norm (cross_replica/mybn) is a plain batch norm here")
    if notes:
        info["notes"] = notes
    return conv_recipe, tensors, info


@converter("biggan-pytorch")
def read(src: Path, recipe: str | None, sets: list[str]) -> Converted:
    found, suffix = _files(src)
    g, d = load_torch(found["G"]), load_torch(found["D"])  # fp16 runs' weights become float32
    ema = load_torch(found["G_ema"]) if "G_ema" in found else None
    counters, config = _state(found.get("state_dict"))
    what = {net: f"{net} of {found[net]}" for net in ("G", "D", "G_ema") if net in found}
    conv_recipe, tensors, info = from_states(g, d, ema, recipe=recipe, sets=sets, config=config,
                                             where=found["G"].name, what=what)
    step = int(counters.get("itr") or 0)
    per_step = [config.get(k) for k in ("batch_size", "num_D_accumulations")]
    images = step * per_step[0] * per_step[1] if all(isinstance(v, int) for v in per_step) else 0
    info.update(suffix=suffix, counters=counters)
    return Converted(conv_recipe, tensors, step=step, images=images, files=sorted(found.values()), info=info)
