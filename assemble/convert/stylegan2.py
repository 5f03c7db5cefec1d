"""``--from stylegan2-ada`` and ``--from rosinality``: StyleGAN2 checkpoints into the ``stylegan2`` recipe.

**stylegan2-ada**: NVlabs/stylegan2-ada-pytorch's network pickles (``network-snapshot-<kimg>.pkl``, or the
run folder: the highest kimg is taken), a pickled dict of ``G``, ``D``, ``G_ema``, ``augment_pipe`` and
``training_set_kwargs``. They are read with :mod:`.pickles` (nothing in them runs). The configuration comes
from the networks' pickled constructor kwargs (``z_dim``, ``c_dim``, ``w_dim``, ``img_resolution``,
``img_channels``, ``mapping_kwargs``, ``synthesis_kwargs``: ``channel_base``, ``channel_max``, ``num_fp16_res``,
``conv_clamp``, ``architecture``; D's ``architecture``, ``cmap_dim``, ``mapping_kwargs``, ``epilogue_kwargs``),
with NVlabs' defaults where a kwarg is absent; a kwarg the recipe cannot express is an error that names it.
The recipe's module tree is NVlabs', so three rules rename the tensors: inside a synthesis layer the
modulated conv is ``conv`` (``conv0.weight`` -> ``conv0.conv.weight``, ``affine``, ``resample_filter``) and the
noise is ``noise`` (``noise_strength`` -> ``noise.strength``, ``noise_const`` -> ``noise.noise_const``).

**rosinality**: rosinality/stylegan2-pytorch's ``torch.save`` checkpoints (``checkpoint/<iter>.pt`` from
train.py: ``g``, ``d``, ``g_ema``, ``g_optim``, ``d_optim``, ``args``; or convert_weight.py's ``g_ema`` with
``latent_avg``; or the folder: the highest iteration). Read with ``torch.load(weights_only=True)``, allowing
``argparse.Namespace`` for ``args`` (a plain attribute holder). Resolution, style_dim, n_mlp and the channel
table are read from the shapes (and checked against ``args`` when present); the rest is rosinality's fixed
architecture: a skip generator and a residual discriminator, lr_mlp 0.01, minibatch stddev group 4 with one
feature, 3 image channels, [1, 3, 3, 1] blur kernels (checked). Renamed: ``style.<i>`` -> ``mapping.fc<i-1>``,
``input.input`` -> ``synthesis.b4.const``, ``conv1``/``to_rgb1`` -> ``synthesis.b4.conv1``/``torgb``,
``convs.<2k>``/``convs.<2k+1>``/``to_rgbs.<k>`` -> ``synthesis.b<2^(k+3)>.conv0``/``conv1``/``torgb``
(``modulation`` -> ``affine``, ``activate.bias`` -> ``bias``, ``noise.weight`` -> ``noise.strength``),
``noises.noise_<i>`` -> the i-th layer's ``noise.noise_const``; D's ``convs.0`` -> ``b<res>.fromrgb``,
``convs.<k>`` (ResBlock) -> ``b<res / 2^(k-1)>`` (``conv1`` -> ``conv0``, ``conv2`` -> ``conv1``, ``skip``),
``final_conv`` -> ``b4.conv``, ``final_linear.0/1`` -> ``b4.fc``/``b4.out``. Singleton dims go (the weight
(1, O, I, k, k) is (O, I, k, k), the noise weight (1,) a scalar, the const (1, C, 4, 4) is (C, 4, 4)). The
equivalences: rosinality's EqualLinear/EqualConv2d scales are NVlabs' weight gains, ``FusedLeakyReLU`` is
bias + leaky ReLU(0.2) · √2, its ToRGB's Upsample of the skip image is the block's image upsampling, and
ResBlock's ``(out + skip) / √2`` is NVlabs' √½ gains. rosinality stores no w average: ``mapping.w_avg`` is
``latent_avg`` when the file has it, else the mean of 4096 mapped latents drawn with seed 0 (as rosinality's
generate.py, ``mean_latent(4096)``, which draws from the global RNG).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..gan import build
from . import converter
from .common import ConversionError, Converted, load_torch, rename
from .pickles import PersistentObject, plain, read_pickle

# ---- stylegan2-ada: NVlabs' pickles ------------------------------------------------------------------------

_SNAPSHOT = re.compile(r"network-snapshot-(\d+)\.pkl")
ADA_G_RULES = [  # NVlabs' SynthesisLayer/ToRGBLayer attributes -> our layer's `conv` and `noise` sub-modules
    (r"(synthesis\.b\d+\.(?:conv0|conv1|torgb))\.(affine\.weight|affine\.bias|weight|resample_filter)",
     r"\1.conv.\2"),
    (r"(synthesis\.b\d+\.conv[01])\.noise_strength", r"\1.noise.strength"),
    (r"(synthesis\.b\d+\.conv[01])\.noise_const", r"\1.noise.noise_const"),
]
# Constructor argument order (for positional init args) and the defaults of training/networks.py.
G_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")
D_ARGS = ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max", "num_fp16_res",
          "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs")
MAPPING = {"num_layers": 8, "embed_features": None, "layer_features": None, "activation": "lrelu",
           "lr_multiplier": 0.01, "w_avg_beta": 0.995}
SYNTHESIS = {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 0, "architecture": "skip",
             "conv_clamp": None, "resample_filter": [1, 3, 3, 1], "use_noise": True, "activation": "lrelu",
             "fp16_channels_last": False, "channels_last": False}
D_TOP = {"architecture": "resnet", "channel_base": 32768, "channel_max": 512, "num_fp16_res": 0, "conv_clamp": None,
         "cmap_dim": None, "block_kwargs": {}, "mapping_kwargs": {}, "epilogue_kwargs": {}}
D_BLOCK = {"activation": "lrelu", "resample_filter": [1, 3, 3, 1], "fp16_channels_last": False, "freeze_layers": 0}
EPILOGUE = {"mbstd_group_size": 4, "mbstd_num_channels": 1, "activation": "lrelu"}
# Settings that change neither the function nor the tensors (memory format; Freeze-D's training-time freezing).
IGNORED = ("fp16_channels_last", "channels_last", "freeze_layers")


def _snapshot_file(src: Path) -> Path:
    if src.is_dir():
        found = sorted((int(m.group(1)), p) for p in src.iterdir() if (m := _SNAPSHOT.fullmatch(p.name)))
        if not found:
            raise ConversionError(f"{src}: no network-snapshot-*.pkl (a stylegan2-ada-pytorch run folder)")
        return found[-1][1]
    return src


def _bound(obj: PersistentObject, order: tuple[str, ...], what: str) -> dict[str, Any]:
    """The constructor's arguments by name: positional init args bound in ``order``, then the kwargs."""
    if len(obj.init_args) > len(order):
        raise ConversionError(f"{what}: {len(obj.init_args)} positional constructor arguments, NVlabs' "
                              f"{obj.class_name} takes at most {len(order)}")
    kwargs = plain(obj.init_kwargs)
    return {**dict(zip(order, plain(list(obj.init_args)), strict=False)), **kwargs}


class _Settings:
    """Reads NVlabs kwargs against their defaults, gathering every problem for one error."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def options(self, given: Any, defaults: dict[str, Any], where: str) -> dict[str, Any]:
        if not isinstance(given, dict):
            self.problems.append(f"{where} is a {type(given).__name__}, not a dict of kwargs")
            return dict(defaults)
        unknown = sorted(k for k in given if k not in defaults)
        if unknown:
            self.problems.append(f"{where}: unknown kwarg(s) {', '.join(unknown)}")
        return {**defaults, **given}

    def fixed(self, value: Any, allowed: tuple[Any, ...], where: str) -> None:
        """``value`` must be one of ``allowed`` (what the recipe builds)."""
        if not any(_same(value, a) for a in allowed):
            self.problems.append(f"{where}={value!r}: the stylegan2 recipe builds "
                                 f"{' or '.join(repr(a) for a in allowed)}")

    def number(self, value: Any, where: str) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            self.problems.append(f"{where}={value!r}: expected a positive number")
            return 1.0
        return float(value)

    def integer(self, value: Any, where: str, low: int = 0) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            self.problems.append(f"{where}={value!r}: expected an integer >= {low}")
            return low
        return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def ada_config(nets: dict[str, PersistentObject], source: str) -> dict[str, Any]:
    """The ``stylegan2`` recipe's variables for NVlabs' networks, from their pickled constructor kwargs."""
    s = _Settings()
    gname = "G_ema" if "G_ema" in nets else "G"
    g = _bound(nets[gname], G_ARGS, f"{source} {gname}")
    if "G" in nets and "G_ema" in nets and _bound(nets["G"], G_ARGS, source) != g:
        raise ConversionError(f"{source}: G and G_ema were built with different kwargs; "
                              f"G {_bound(nets['G'], G_ARGS, source)}, G_ema {g}")
    for key in G_ARGS[:5]:
        if key not in g:
            s.problems.append(f"{gname} has no {key} in its constructor kwargs")
    # StyleGAN3's networks_stylegan2.Generator takes the synthesis kwargs flat (**synthesis_kwargs).
    flat = {k: g.pop(k) for k in list(g) if k in SYNTHESIS}
    unknown = sorted(k for k in g if k not in G_ARGS)
    if unknown:
        s.problems.append(f"{gname}: unknown kwarg(s) {', '.join(unknown)}")
    mapping = s.options(g.get("mapping_kwargs", {}), MAPPING, f"{gname}.mapping_kwargs")
    synthesis = s.options({**g.get("synthesis_kwargs", {}), **flat}, SYNTHESIS, f"{gname}.synthesis_kwargs")
    w_dim = s.integer(g.get("w_dim"), f"{gname}.w_dim", 1)
    values: dict[str, Any] = {
        "resolution": s.integer(g.get("img_resolution"), f"{gname}.img_resolution", 4),
        "z_dim": s.integer(g.get("z_dim"), f"{gname}.z_dim"), "w_dim": w_dim,
        "c_dim": s.integer(g.get("c_dim"), f"{gname}.c_dim"),
        "img_channels": s.integer(g.get("img_channels"), f"{gname}.img_channels", 1),
        "mapping_layers": s.integer(mapping["num_layers"], f"{gname}.mapping_kwargs.num_layers", 1),
        "mapping_lr_mul": s.number(mapping["lr_multiplier"], f"{gname}.mapping_kwargs.lr_multiplier"),
        "channel_base": s.integer(synthesis["channel_base"], f"{gname}.synthesis_kwargs.channel_base", 1),
        "channel_max": s.integer(synthesis["channel_max"], f"{gname}.synthesis_kwargs.channel_max", 1),
        "g_architecture": synthesis["architecture"],
        "num_fp16_res": s.integer(synthesis["num_fp16_res"], f"{gname}.synthesis_kwargs.num_fp16_res"),
        "conv_clamp": synthesis["conv_clamp"],
    }
    s.fixed(synthesis["architecture"], ("orig", "skip", "resnet"), f"{gname}.synthesis_kwargs.architecture")
    for key in ("embed_features", "layer_features"):
        s.fixed(mapping[key], (None, w_dim), f"{gname}.mapping_kwargs.{key}")
    s.fixed(mapping["activation"], ("lrelu",), f"{gname}.mapping_kwargs.activation")
    s.fixed(mapping["w_avg_beta"], (0.995,), f"{gname}.mapping_kwargs.w_avg_beta")
    for key in ("resample_filter", "use_noise", "activation"):
        s.fixed(synthesis[key], (SYNTHESIS[key],), f"{gname}.synthesis_kwargs.{key}")
    if "D" in nets:
        values.update(_ada_d_config(_bound(nets["D"], D_ARGS, source), values, s))
    if s.problems:
        raise ConversionError(f"{source}: the stylegan2 recipe cannot express these networks:"
                              + "".join(f"\n  - {p}" for p in s.problems))
    return values


def _ada_d_config(given: dict[str, Any], g: dict[str, Any], s: _Settings) -> dict[str, Any]:
    for key in ("c_dim", "img_resolution", "img_channels"):
        if key not in given:
            s.problems.append(f"D has no {key} in its constructor kwargs")
    d = s.options({k: v for k, v in given.items() if k not in ("c_dim", "img_resolution", "img_channels")},
                  D_TOP, "D")
    # The recipe shares these between G and D (NVlabs' train.py sets them alike).
    for key, theirs in (("c_dim", "c_dim"), ("img_resolution", "resolution"), ("img_channels", "img_channels"),
                        ("channel_base", "channel_base"), ("channel_max", "channel_max"),
                        ("num_fp16_res", "num_fp16_res"), ("conv_clamp", "conv_clamp")):
        value = given.get(key) if key in ("c_dim", "img_resolution", "img_channels") else d[key]
        if value != g[theirs]:
            s.problems.append(f"D.{key}={value!r} but G's is {g[theirs]!r} (the recipe shares {theirs})")
    block = s.options(d["block_kwargs"], D_BLOCK, "D.block_kwargs")
    epilogue = s.options(d["epilogue_kwargs"], EPILOGUE, "D.epilogue_kwargs")
    s.fixed(d["architecture"], ("orig", "skip", "resnet"), "D.architecture")
    for key in ("activation", "resample_filter"):
        s.fixed(block[key], (D_BLOCK[key],), f"D.block_kwargs.{key}")
    s.fixed(epilogue["activation"], ("lrelu",), "D.epilogue_kwargs.activation")
    group = epilogue["mbstd_group_size"]
    values = {"d_architecture": d["architecture"],
              "mbstd_group": None if group is None else s.integer(group, "D.epilogue_kwargs.mbstd_group_size", 1),
              "mbstd_channels": s.integer(epilogue["mbstd_num_channels"], "D.epilogue_kwargs.mbstd_num_channels")}
    if g["c_dim"] > 0:
        mapping = s.options(d["mapping_kwargs"], MAPPING, "D.mapping_kwargs")
        cmap = d["cmap_dim"] if d["cmap_dim"] is not None else min(g["channel_base"] // 4, g["channel_max"])
        values.update(cmap_dim=s.integer(cmap, "D.cmap_dim", 1),
                      d_mapping_layers=s.integer(mapping["num_layers"], "D.mapping_kwargs.num_layers", 1),
                      d_mapping_lr_mul=s.number(mapping["lr_multiplier"], "D.mapping_kwargs.lr_multiplier"))
        for key in ("embed_features", "layer_features"):
            s.fixed(mapping[key], (None, cmap), f"D.mapping_kwargs.{key}")
        s.fixed(mapping["activation"], ("lrelu",), "D.mapping_kwargs.activation")
    return values


def ada_tensors(states: dict[str, dict[str, Tensor]], gan: Any, source: str) -> dict[str, dict[str, Tensor]]:
    """NVlabs' state_dicts (G, D, G_ema) under the recipe's names, with a full account of every key."""
    out = {}
    for name, state in states.items():
        net = gan.D if name == "D" else gan.G
        out[name] = rename(state, net.state_dict(), ADA_G_RULES if name != "D" else [], f"{name} of {source}",
                           derived=lambda k: k.endswith(".torgb.conv.resample_filter"))  # NVlabs' ToRGB has none
    return out


@converter("stylegan2-ada")
def read_ada(src: Path, recipe: str | None, sets: list[str]) -> Converted:
    from . import recipe_for

    path = _snapshot_file(src)
    data = read_pickle(path)
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: holds a {type(data).__name__}, not stylegan2-ada-pytorch's snapshot dict "
                              "(G, D, G_ema, augment_pipe, training_set_kwargs)")
    nets = {k: data[k] for k in ("G", "D", "G_ema") if isinstance(data.get(k), PersistentObject)}
    for name, want in (("G", "Generator"), ("G_ema", "Generator"), ("D", "Discriminator")):
        if name in nets and nets[name].class_name != want:
            raise ConversionError(f"{path}: {name} is a {nets[name].class_name}, not NVlabs' {want}")
    if "G" not in nets and "G_ema" not in nets:
        raise ConversionError(f"{path}: no G or G_ema network (found keys: {', '.join(map(str, data)) or 'none'})")
    values = ada_config(nets, path.name)
    conv_recipe = recipe_for("stylegan2", values, recipe, sets, path.name)
    if values["c_dim"] > 0:  # the label is an input of both networks (see recipes/stylegan2.yaml)
        for section in ("generator", "discriminator"):
            conv_recipe[section]["inputs"].setdefault("c", "class(c_dim)")
    gan = build(conv_recipe)
    tensors = ada_tensors({k: v.state_dict() for k, v in nets.items()}, gan, str(path))
    m = _SNAPSHOT.fullmatch(path.name)
    info: dict[str, Any] = {
        "config": values, "kimg": int(m.group(1)) if m else None,
        "classes": {k: v.class_name for k, v in nets.items()},
        "module_src_sha256": {k: v.source_sha256 for k, v in nets.items()},
    }
    pipe = data.get("augment_pipe")
    if isinstance(pipe, PersistentObject) and isinstance(pipe.buffers.get("p"), Tensor):
        info["augment_p"] = float(pipe.buffers["p"].reshape(-1)[0])
    kwargs = data.get("training_set_kwargs")
    if isinstance(kwargs, dict):
        info["training_set_kwargs"] = {str(k): v for k, v in plain(kwargs).items()
                                       if v is None or isinstance(v, bool | int | float | str)}
    return Converted(conv_recipe, tensors, images=1000 * info["kimg"] if m else 0, files=[path], info=info)


# ---- rosinality: torch.save checkpoints ---------------------------------------------------------------------

_ITERATION = re.compile(r"(\d+)\.pt")
_STYLED = {"conv.weight": "conv.weight", "conv.modulation.weight": "conv.affine.weight",
           "conv.modulation.bias": "conv.affine.bias", "noise.weight": "noise.strength", "activate.bias": "bias"}
_TO_RGB = {"conv.weight": "torgb.conv.weight", "conv.modulation.weight": "torgb.conv.affine.weight",
           "conv.modulation.bias": "torgb.conv.affine.bias", "bias": "torgb.bias"}
_FROM_RGB = {"convs.0.0.weight": "fromrgb.weight", "convs.0.1.bias": "fromrgb.bias"}
_RES_BLOCK = {"conv1.0.weight": "conv0.weight", "conv1.1.bias": "conv0.bias", "conv2.1.weight": "conv1.weight",
              "conv2.2.bias": "conv1.bias", "skip.1.weight": "skip.weight"}
_EPILOGUE = {"final_conv.0.weight": "b4.conv.weight", "final_conv.1.bias": "b4.conv.bias",
             "final_linear.0.weight": "b4.fc.weight", "final_linear.0.bias": "b4.fc.bias",
             "final_linear.1.weight": "b4.out.weight", "final_linear.1.bias": "b4.out.bias"}
G_KERNEL = re.compile(r"convs\.\d+\.conv\.blur\.kernel|to_rgbs\.\d+\.upsample\.kernel")  # make_kernel · 4
D_KERNEL = re.compile(r"convs\.\d+\.(?:conv2|skip)\.0\.kernel")  # make_kernel
N_MEAN_LATENT = 4096


def _styled_layer(j: int) -> str:
    """rosinality's ``convs.<j>``: the first (upsampling) or second conv of the block at 2^(3 + j // 2)."""
    return f"synthesis.b{2 ** (3 + j // 2)}.conv{j % 2}"


def rosinality_g_name(key: str) -> str | None:
    """Our name for a key of rosinality's Generator state_dict (None: not one of its tensors)."""
    if m := re.fullmatch(r"style\.(\d+)\.(weight|bias)", key):
        return f"mapping.fc{int(m.group(1)) - 1}.{m.group(2)}"  # style.0 is the PixelNorm
    if key == "input.input":
        return "synthesis.b4.const"
    if m := re.fullmatch(r"(?:conv1|convs\.(\d+))\.(.+)", key):
        layer = "synthesis.b4.conv1" if m.group(1) is None else _styled_layer(int(m.group(1)))
        return f"{layer}.{_STYLED[m.group(2)]}" if m.group(2) in _STYLED else None
    if m := re.fullmatch(r"(?:to_rgb1|to_rgbs\.(\d+))\.(.+)", key):
        block = "synthesis.b4" if m.group(1) is None else f"synthesis.b{2 ** (3 + int(m.group(1)))}"
        return f"{block}.{_TO_RGB[m.group(2)]}" if m.group(2) in _TO_RGB else None
    if m := re.fullmatch(r"noises\.noise_(\d+)", key):
        i = int(m.group(1))
        return f"{'synthesis.b4.conv1' if i == 0 else _styled_layer(i - 1)}.noise.noise_const"
    return None


def rosinality_d_name(key: str, resolution: int) -> str | None:
    """Our name for a key of rosinality's Discriminator state_dict at ``resolution``."""
    if key in _FROM_RGB:  # convs.0: ConvLayer(3, ch, 1) = EqualConv2d (no bias) + FusedLeakyReLU (the bias)
        return f"b{resolution}.{_FROM_RGB[key]}"
    if (m := re.fullmatch(r"convs\.(\d+)\.(.+)", key)) and int(m.group(1)) > 0 and m.group(2) in _RES_BLOCK:
        return f"b{resolution >> (int(m.group(1)) - 1)}.{_RES_BLOCK[m.group(2)]}"
    return _EPILOGUE.get(key)


def _squeezed(key: str, value: Tensor) -> Tensor:
    """rosinality's singleton dims dropped: weight (1, O, I, k, k), const (1, C, 4, 4), noise weight (1,),
    ToRGB bias (1, C, 1, 1), noise buffers (1, 1, H, W). Other shapes stay (a mismatch is then reported)."""
    if key == "input.input" and value.dim() == 4 and value.shape[0] == 1:
        return value[0]
    if key.endswith("conv.weight") and value.dim() == 5 and value.shape[0] == 1:
        return value[0]
    if key.endswith("noise.weight") and value.shape == (1,):
        return value.reshape(())
    if re.fullmatch(r"to_rgb(?:1|s\.\d+)\.bias", key) and value.dim() == 4 and value.shape[::2] == (1, 1):
        return value.flatten()
    if key.startswith("noises.") and value.dim() == 4 and value.shape[:2] == (1, 1):
        return value[0, 0]
    return value


def _check_kernels(state: dict[str, Tensor], pattern: re.Pattern, gain: float, what: str) -> None:
    """rosinality keeps its blur kernels in the state_dict; the recipe's filter is [1, 3, 3, 1]."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    want = torch.outer(taps, taps) / 64 * gain
    for key, value in state.items():
        if pattern.fullmatch(key) and (value.shape != want.shape or not torch.allclose(value.float(), want)):
            raise ConversionError(f"{what}: {key} is not the [1, 3, 3, 1] blur kernel (x{gain:g}) the recipe "
                                  f"uses; found {value.tolist()}")


def _checkpoint_file(src: Path) -> Path:
    if src.is_dir():
        found = sorted((int(m.group(1)), p) for p in src.iterdir() if (m := _ITERATION.fullmatch(p.name)))
        if not found:
            raise ConversionError(f"{src}: no <iteration>.pt checkpoint (rosinality's train.py writes checkpoint/"
                                  "000000.pt, ...)")
        return found[-1][1]
    return src


def _read_rosinality(path: Path) -> dict[str, Any]:
    with torch.serialization.safe_globals([argparse.Namespace]):  # train.py saves its argparse args
        data = load_torch(path)
    nets = {ours: data[theirs] for theirs, ours in (("g", "G"), ("d", "D"), ("g_ema", "G_ema")) if theirs in data}
    if "G" not in nets and "G_ema" not in nets:
        raise ConversionError(f"{path}: not a rosinality/stylegan2-pytorch checkpoint (no g or g_ema; found "
                              f"{', '.join(map(str, data)) or 'nothing'})")
    for name, state in nets.items():
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ConversionError(f"{path}: {name} is not a state_dict of tensors")
    return data


def _count(state: dict[str, Tensor], pattern: str) -> int:
    return len({m.group(1) for k in state if (m := re.fullmatch(pattern, k))})


def _shape(state: dict[str, Tensor], key: str, what: str) -> tuple[int, ...]:
    if key not in state:
        raise ConversionError(f"{what}: no {key} (not rosinality's Generator/Discriminator)")
    return tuple(state[key].shape)


def rosinality_config(nets: dict[str, dict[str, Tensor]], args: Any, source: str) -> dict[str, Any]:
    """The ``stylegan2`` recipe's variables for rosinality's networks, from the shapes (and ``args``)."""
    gname = "G_ema" if "G_ema" in nets else "G"
    g, what = nets[gname], f"{gname} of {source}"
    style_dim = _shape(g, "style.1.weight", what)[1]
    n_mlp = _count(g, r"style\.(\d+)\.weight")
    blocks = _count(g, r"to_rgbs\.(\d+)\.conv\.weight")  # one per resolution above 4
    resolution = 4 * 2 ** blocks
    ch = {4: _shape(g, "input.input", what)[1]}
    img_channels = _shape(g, "to_rgb1.conv.weight", what)[1]
    for k in range(blocks):
        ch[8 * 2 ** k] = _shape(g, f"convs.{2 * k}.conv.weight", what)[1]
    given = vars(args) if isinstance(args, argparse.Namespace) else {}
    for key, value in (("size", resolution), ("latent", style_dim), ("n_mlp", n_mlp)):
        if key in given and given[key] != value:
            raise ConversionError(f"{source}: args.{key} is {given[key]!r} but the weights give {value}")
    # rosinality's table is 512 up to 32x32, then 16384 · channel_multiplier / r: the recipe's formula with
    # channel_base = 16384 · multiplier. Read from the first resolution below the maximum; with none (every
    # block at the maximum) any base that large fits: args' when given, else the smallest.
    channel_max = max(ch.values())
    below = {r: c for r, c in ch.items() if c < channel_max}
    from_args = int(16384 * given["channel_multiplier"]) if "channel_multiplier" in given else None
    if below:
        channel_base = below[min(below)] * min(below)
        if from_args is not None and from_args != channel_base:
            raise ConversionError(f"{source}: args.channel_multiplier is {given['channel_multiplier']!r} but the "
                                  f"weights' channels {ch} give {channel_base / 16384:g}")
    else:
        channel_base = from_args if from_args is not None else channel_max * resolution
    if any(min(channel_base // r, channel_max) != c for r, c in ch.items()):
        raise ConversionError(f"{source}: the channels {ch} (per resolution) do not follow the recipe's "
                              f"min(channel_base // r, channel_max) with channel_base={channel_base}, "
                              f"channel_max={channel_max}")
    return {"resolution": resolution, "z_dim": style_dim, "w_dim": style_dim, "c_dim": 0,
            "img_channels": img_channels, "mapping_layers": n_mlp, "mapping_lr_mul": 0.01,
            "channel_base": channel_base, "channel_max": channel_max, "g_architecture": "skip",
            "d_architecture": "resnet", "mbstd_group": 4, "mbstd_channels": 1, "num_fp16_res": 0, "conv_clamp": None}


def rosinality_tensors(nets: dict[str, dict[str, Tensor]], gan: Any, resolution: int, source: str
                       ) -> dict[str, dict[str, Tensor]]:
    """rosinality's state_dicts under the recipe's names (``mapping.w_avg`` left as the recipe's: see
    :func:`mean_w`), with a full account of every key."""
    out = {}
    for name, state in nets.items():
        what = f"{name} of {source}"
        is_d = name == "D"
        _check_kernels(state, D_KERNEL if is_d else G_KERNEL, 1.0 if is_d else 4.0, what)
        rules = []
        for key in state:
            new = rosinality_d_name(key, resolution) if is_d else rosinality_g_name(key)
            if new is not None:
                rules.append((re.escape(key), new))
        kernel = D_KERNEL if is_d else G_KERNEL
        out[name] = rename({k: _squeezed(k, v) for k, v in state.items()}, (gan.D if is_d else gan.G).state_dict(),
                           rules, what, derived=lambda k: k.endswith("resample_filter") or k == "mapping.w_avg",
                           skip=lambda k, kernel=kernel: kernel.fullmatch(k) is not None)
    return out


@torch.no_grad()
def mean_w(G: torch.nn.Module, state: dict[str, Tensor], n: int = N_MEAN_LATENT, seed: int = 0) -> Tensor:
    """The mean of ``n`` mapped latents (seed ``seed``): rosinality's ``mean_latent(n)`` as w_avg."""
    G.load_state_dict(state)
    mapping = G.get_submodule("mapping").eval()
    z = torch.randn(n, mapping.z_dim, generator=torch.Generator().manual_seed(seed))
    w = mapping(z.to(state["mapping.w_avg"].dtype))  # (n, num_ws, w_dim): every layer the same w
    return (w[:, 0] if w.dim() == 3 else w).mean(dim=0)


@converter("rosinality")
def read_rosinality(src: Path, recipe: str | None, sets: list[str]) -> Converted:
    from . import recipe_for

    path = _checkpoint_file(src)
    data = _read_rosinality(path)
    nets = {ours: data[theirs] for theirs, ours in (("g", "G"), ("d", "D"), ("g_ema", "G_ema")) if theirs in data}
    values = rosinality_config(nets, data.get("args"), path.name)
    conv_recipe = recipe_for("stylegan2", values, recipe, sets, path.name)
    gan = build(conv_recipe)
    tensors = rosinality_tensors(nets, gan, values["resolution"], str(path))
    latent_avg = data.get("latent_avg")
    info: dict[str, Any] = {"config": values, "w_avg": {}}
    for name in tensors:
        if name == "D":
            continue
        if isinstance(latent_avg, Tensor) and name == "G_ema":  # convert_weight.py: the TF model's dlatent_avg
            if latent_avg.numel() != values["w_dim"]:
                raise ConversionError(f"{path}: latent_avg has shape {tuple(latent_avg.shape)}, expected "
                                      f"({values['w_dim']},)")
            tensors[name]["mapping.w_avg"] = latent_avg.reshape(-1).to(tensors[name]["mapping.w_avg"].dtype)
            info["w_avg"][name] = "latent_avg of the checkpoint"
        else:
            tensors[name]["mapping.w_avg"] = mean_w(gan.G, tensors[name])
            info["w_avg"][name] = f"mean of mapping(z) over {N_MEAN_LATENT} z ~ N(0, I), seed 0"
    m = _ITERATION.fullmatch(path.name)
    args = data.get("args")
    if isinstance(args, argparse.Namespace):
        info["args"] = {k: v for k, v in vars(args).items() if v is None or isinstance(v, bool | int | float | str)}
    return Converted(conv_recipe, tensors, step=int(m.group(1)) if m else 0, files=[path], info=info)
