"""``ganforge convert --from stylegan2-ada`` and ``--from rosinality``.

stylegan2-ada: a pickle with NVlabs' structure (persistent objects reduced to
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, EasyDict kwargs, NumPy gains) is built here from
the fixtures' weights -- the authors' modules exist only while it is dumped, and their reconstruct function and
module source raise if ever run -- and converted; the run reproduces every stored output of the authors'
networks. Pickles that call ``os.system``, ``exec`` or ``Popen`` are refused before anything runs.
rosinality: a tiny random checkpoint in rosinality's layout, converted and compared with a forward of
rosinality's architecture written out below (model.py: EqualLinear/EqualConv2d scales, fused ModulatedConv2d,
FusedLeakyReLU, ToRGB's own upsampling of the skip image, ResBlock, the stddev layer). Both formats: the
authors' full-size key lists (256 and 1024) map completely, with values landing where they should.
"""

from __future__ import annotations

import argparse
import builtins
import collections
import contextlib
import json
import math
import os
import pickle
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import assemble
from assemble import checkpoint as ckpt
from assemble.convert import ConversionError, convert, recipe_for
from assemble.convert.stylegan2 import ada_tensors, rosinality_config, rosinality_tensors
from assemble.sample import generate, set_noise_mode
from blocks.composite.stylegan2 import force_fp32

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "converters"
KEYS = FIXTURES / "keys"
SQRT2 = math.sqrt(2)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def key_list(name: str) -> dict[str, tuple[int, ...]]:
    """A full-size key list of the authors' state_dict: name -> shape."""
    out = {}
    for line in (KEYS / name).read_text().splitlines():
        key, shape = line.split("\t")
        out[key] = tuple(int(d) for d in re.findall(r"\d+", shape))
    return out


# ---- NVlabs' pickles, built as torch_utils/persistence.py writes them ----------------------------------------

BUFFERS = ("resample_filter", "noise_const", "w_avg", "p")  # NVlabs' registered buffers; the rest are parameters
MODULE_SRC = "raise RuntimeError('the module source stored in the pickle was executed')"


def _reconstruct_persistent_obj(meta):  # the authors' function, as the pickle names it: it must never run
    raise AssertionError("torch_utils.persistence._reconstruct_persistent_obj was called")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


class EasyDict(dict):  # dnnlib.util.EasyDict, as the pickle names it
    pass


EasyDict.__module__ = "dnnlib.util"


@contextlib.contextmanager
def authors_modules():
    """``torch_utils.persistence`` and ``dnnlib.util`` in sys.modules, for pickle.dump only."""
    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = EasyDict
    fake = {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
            "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}
    saved = {k: sys.modules.get(k) for k in fake}
    sys.modules.update(fake)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class Persistent:
    """Pickles as a persistent_class instance does: ``(_reconstruct_persistent_obj, (meta,), None)``."""

    def __init__(self, class_name: str, state: dict):
        self.class_name, self.state = class_name, state

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=MODULE_SRC, class_name=self.class_name, state=self.state)
        return (_reconstruct_persistent_obj, (meta,), None)


def nvlabs_module(class_name: str, tensors: dict, children: dict, kwargs: dict | None = None) -> Persistent:
    """A module's ``__dict__`` as torch.nn.Module holds it, with NVlabs' init kwargs and NumPy gains."""
    od = collections.OrderedDict
    state = {"training": False,
             "_parameters": od((k, torch.nn.Parameter(v, requires_grad=False)) for k, v in tensors.items()
                               if k not in BUFFERS),
             "_buffers": od((k, v) for k, v in tensors.items() if k in BUFFERS), "_non_persistent_buffers_set": set(),
             "_backward_hooks": od(), "_forward_hooks": od(), "_forward_pre_hooks": od(), "_state_dict_hooks": od(),
             "_load_state_dict_pre_hooks": od(), "_modules": od(children), "_init_args": (),
             "_init_kwargs": kwargs or {}, "act_gain": np.float64(SQRT2), "weight_gain": np.float32(0.125),
             "activation": "lrelu", "conv_clamp": None}
    return Persistent(class_name, state)


CLASS = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork", "torgb": "ToRGBLayer", "mbstd": "MinibatchStd"}


def nvlabs_tree(state: dict, path: str = "") -> Persistent:
    here = {k[len(path):]: v for k, v in state.items() if k.startswith(path)}
    children = list(dict.fromkeys(k.split(".")[0] for k in here if "." in k))  # in state_dict order
    name = path.rstrip(".").split(".")[-1]
    return nvlabs_module(CLASS.get(name, "FullyConnectedLayer" if name.startswith("fc") else "Layer"),
                         {k: v for k, v in here.items() if "." not in k},
                         {c: nvlabs_tree(state, f"{path}{c}.") for c in children})


def easy(value):
    return EasyDict({k: easy(v) for k, v in value.items()}) if isinstance(value, dict) else value


def nvlabs_snapshot(fixture: str, out: Path, protocol: int | None = None, edit=None, extra: dict | None = None) -> Path:
    """stylegan2-ada-pytorch's training_loop snapshot: {G, D, G_ema, augment_pipe, training_set_kwargs}."""
    config = json.loads((FIXTURES / fixture / "config.json").read_text())
    weights = load_file(FIXTURES / fixture / "weights.safetensors")
    data = {}
    for name, cls in (("G", "Generator"), ("D", "Discriminator"), ("G_ema", "Generator")):
        if name in config["constructors"]:
            kwargs = easy(dict(config["constructors"][name]["kwargs"]))
            kwargs = edit(name, kwargs) if edit else kwargs
            net = nvlabs_tree({k[len(name) + 1:]: v for k, v in weights.items() if k.startswith(name + ".")})
            data[name] = Persistent(cls, {**net.state, "_init_kwargs": dict(kwargs)})
    data["augment_pipe"] = nvlabs_module("AugmentPipe", {"p": torch.tensor(0.25)}, {}, {"xflip": 1})
    data["training_set_kwargs"] = dict(class_name="training.dataset.ImageFolderDataset", path="/data/x.zip",
                                       use_labels=True, max_size=10, xflip=False, resolution=32)
    data.update(extra or {})
    with authors_modules(), open(out, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    return out


def network(state: dict, net: str, tensors: dict):
    gan = assemble.build(state["recipe"])
    module = gan.D if net == "D" else gan.G
    ckpt.load_module_tensors(f"{net}.", module, tensors)
    module.eval()
    set_noise_mode(module, "const")
    return module


@pytest.mark.parametrize("fixture, protocol", [("stylegan2_ada_32", 3), ("stylegan2_ada_32_cond", None)])
def test_stylegan2_ada_pickle_gives_the_authors_outputs(fixture, protocol, tmp_path):
    pkl = nvlabs_snapshot(fixture, tmp_path / "network-snapshot-000120.pkl", protocol)
    summary = convert(pkl, "stylegan2-ada", tmp_path / "run")
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules  # nothing of the authors' imported
    cond = fixture.endswith("cond")
    assert summary["kimg"] == 120 and summary["augment_p"] == 0.25
    assert summary["config"]["c_dim"] == (4 if cond else 0) and summary["config"]["mbstd_group"] == 2
    assert summary["networks"] == (["D", "G"] if cond else ["D", "G", "G_ema"])
    tensors, state = ckpt.load_checkpoint(tmp_path / "run")
    io = load_file(FIXTURES / fixture / "io.safetensors")
    inputs = {"z": io["input.z"], **({"c": io["input.c"].argmax(1)} if cond else {})}  # one-hot -> class index
    measured = {}
    with torch.no_grad():
        for net in ("G", "G_ema") if not cond else ("G",):
            G = network(state, net, tensors)
            ws = G.run(parts=G.parts_through("w"), **inputs)["w"]
            measured[f"{net}.eval.mapping_ws_psi1"] = ws
            measured[f"{net}.eval.img_psi1"] = generate(G, inputs)
            if net == "G":
                measured["G.eval.mapping_ws_psi0.5"] = G.get_submodule("mapping").truncate(ws, 0.5)
                measured["G.eval.img_psi0.5"] = generate(G, inputs, psi=0.5)
                measured["G.eval.synthesis_img_from_ws"] = G.run(parts=G.parts_after("w"),
                                                                 registers={"w": io["input.ws"]})["img"]
        D = network(state, "D", tensors)
        c = (inputs["c"],) if cond else ()
        measured["D.eval.out"] = D(io["input.x"], *c)
        measured["D.eval.out_on_G_img"] = D(io["G.eval.img_psi1"], *c)
    outputs = [k for k in io if not k.startswith("input.")]
    assert sorted(measured) == sorted(outputs)  # every stored output is compared
    for key in outputs:
        assert rel(measured[key], io[key]) <= 1e-5, f"{key}: {rel(measured[key], io[key]):.3g}"
    if not cond:  # load_generator takes G_ema (its own weights, not G's); generate() clamps to [-1, 1]
        images = assemble.load_generator(tmp_path / "run").generate(z=io["input.z"])
        assert rel(images, io["G_ema.eval.img_psi1"].clamp(-1, 1)) <= 1e-5
        assert rel(images, io["G.eval.img_psi1"].clamp(-1, 1)) > 1e-3


def test_stylegan2_ada_mixed_precision_and_clamp_are_read(tmp_path):
    def fp16(name, kwargs):
        if name == "D":
            return EasyDict(kwargs, num_fp16_res=2, conv_clamp=256)
        return EasyDict(kwargs, synthesis_kwargs=EasyDict(kwargs["synthesis_kwargs"], num_fp16_res=2, conv_clamp=256))

    pkl = nvlabs_snapshot("stylegan2_ada_32", tmp_path / "network-snapshot-000004.pkl", edit=fp16)
    summary = convert(pkl, "stylegan2-ada", tmp_path / "run")
    assert (summary["config"]["num_fp16_res"], summary["config"]["conv_clamp"]) == (2, 256)
    tensors, state = ckpt.load_checkpoint(tmp_path / "run")
    G, D = network(state, "G", tensors), network(state, "D", tensors)
    # NVlabs: fp16 from max(2 ** (log2(32) + 1 - 2), 8) = 16 up, in G and D; every conv clamped.
    assert {n: m.use_fp16 for n, m in G.named_modules() if re.fullmatch(r"synthesis\.b\d+", n)} == {
        "synthesis.b4": False, "synthesis.b8": False, "synthesis.b16": True, "synthesis.b32": True}
    assert [n for n, m in D.named_modules() if getattr(m, "use_fp16", False)] == ["b32", "b16"]
    assert {m.conv_clamp for n, m in G.named_modules() if n.endswith(("conv0", "conv1", "torgb"))} == {256}
    io = load_file(FIXTURES / "stylegan2_ada_32" / "io.safetensors")
    with torch.no_grad():
        img, logit = generate(G, {"z": io["input.z"]}), D(io["input.x"])
    assert img.dtype == torch.float32 and 1e-4 < rel(img, io["G.eval.img_psi1"]) < 5e-2  # bfloat16 blocks
    assert 1e-5 < rel(logit, io["D.eval.out"]) < 5e-2
    # NVlabs' force_fp32: the same weights in float32, the clamp still on, give the float32 function
    assert force_fp32(G) == 2 and force_fp32(D) == 2
    with torch.no_grad():
        assert rel(generate(G, {"z": io["input.z"]}), io["G.eval.img_psi1"]) <= 1e-5
        assert rel(D(io["input.x"]), io["D.eval.out"]) <= 1e-5
        assert force_fp32(G, False) == 2 and torch.equal(generate(G, {"z": io["input.z"]}), img)  # bfloat16 again


def test_stylegan2_ada_settings_and_files_are_checked(tmp_path):
    pkl = nvlabs_snapshot("stylegan2_ada_32", tmp_path / "network-snapshot-000012.pkl")
    with pytest.raises(ConversionError, match=r"conv_clamp: the checkpoint network-snapshot-000012.pkl has None, "
                                              r"the recipe asks for 256"):
        convert(pkl, "stylegan2-ada", tmp_path / "a", sets=["conv_clamp=256"])
    with pytest.raises(ConversionError, match=r"resolution: the checkpoint network-snapshot-000012.pkl has 32"):
        convert(tmp_path, "stylegan2-ada", tmp_path / "b", sets=["resolution=64"])  # the run folder

    def odd(name, kwargs):
        if name == "D":
            return EasyDict(kwargs, channel_max=64)
        return EasyDict(kwargs, mapping_kwargs=EasyDict(activation="linear"),
                        synthesis_kwargs=EasyDict(kwargs["synthesis_kwargs"], use_noise=False, fancy=1))

    bad = nvlabs_snapshot("stylegan2_ada_32", tmp_path / "odd.pkl", edit=odd)
    with pytest.raises(ConversionError) as info:
        convert(bad, "stylegan2-ada", tmp_path / "c")
    message = str(info.value)
    assert message.startswith("odd.pkl: the stylegan2 recipe cannot express these networks:")
    for part in ("G_ema.synthesis_kwargs: unknown kwarg(s) fancy", "G_ema.mapping_kwargs.activation='linear'",
                 "G_ema.synthesis_kwargs.use_noise=False", "D.channel_max=64 but G's is 32"):
        assert part in message

    torch.save({"g_ema": {}}, tmp_path / "model.pt")  # not a pickle of NVlabs' (a torch.save zip)
    with pytest.raises(ConversionError, match=r"model.pt: not a readable pickle \(UnpicklingError"):
        convert(tmp_path / "model.pt", "stylegan2-ada", tmp_path / "d")
    with open(tmp_path / "kwargs.pkl", "wb") as f, authors_modules():  # a pickle of EasyDict kwargs: data, no nets
        pickle.dump(EasyDict(z_dim=512, G_kwargs=EasyDict(class_name="training.networks.Generator")), f)
    with pytest.raises(ConversionError, match=r"kwargs.pkl: no G or G_ema network \(found keys: z_dim, G_kwargs\)"):
        convert(tmp_path / "kwargs.pkl", "stylegan2-ada", tmp_path / "e")
    with pytest.raises(ConversionError, match=r"rosinality.pt: cannot be read as tensors only"):  # the other way
        convert(pkl.rename(tmp_path / "rosinality.pt"), "rosinality", tmp_path / "f")


class Payload:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


@pytest.mark.parametrize("make, refused", [
    (lambda m: Payload(os.system, f"touch {m}"), f"{os.system.__module__}.system"),
    (lambda m: Payload(builtins.exec, f"open({str(m)!r}, 'w').close()"), "builtins.exec"),
    (lambda m: Payload(subprocess.Popen, ["touch", str(m)]), "subprocess.Popen"),
])
def test_code_in_a_pickle_is_refused_and_never_runs(make, refused, tmp_path):
    marker = tmp_path / "marker"
    top = tmp_path / "top.pkl"
    with open(top, "wb") as f:
        pickle.dump({"G": make(marker)}, f)
    nested = tmp_path / "nested.pkl"  # deep inside a network's buffers
    with authors_modules(), open(nested, "wb") as f:
        net = nvlabs_module("Generator", {}, {"synthesis": nvlabs_module("SynthesisNetwork", {}, {})})
        net.state["_modules"]["synthesis"].state["_buffers"]["w_avg"] = make(marker)
        pickle.dump({"G": net}, f)
    for path in (top, nested):
        with pytest.raises(ConversionError, match=rf"{path.name}: refused the global {re.escape(refused)}; an NVlabs "
                                                  r"network pickle is read as tensors, containers and"):
            convert(path, "stylegan2-ada", tmp_path / "run")
    assert not marker.exists()


def _nvlabs_name(key: str) -> str:
    """tests/lib/test_composite_stylegan2.py's three rules, written again: NVlabs' layer internals -> ours."""
    key = re.sub(r"\.(conv0|conv1|torgb)\.(affine\.weight|affine\.bias|weight|resample_filter)$", r".\1.conv.\2", key)
    return re.sub(r"\.noise_(strength|const)$", lambda m: ".noise." + ("strength" if m[1] == "strength" else
                                                                        "noise_const"), key)


@pytest.mark.parametrize("res", [256, 1024])
def test_the_full_size_nvlabs_key_lists_map(res):
    gan = assemble.build("stylegan2", resolution=res)  # config F: the lists' networks
    states = {net: {k: torch.full(s, float(i)) for i, (k, s) in enumerate(key_list(f"stylegan2_ada_{net}{res}.txt")
                                                                         .items())} for net in "GD"}
    out = ada_tensors(states, gan, "keys")
    for net in "GD":
        assert set(out[net]) == set((gan.G if net == "G" else gan.D).state_dict())
        for i, key in enumerate(states[net]):  # every value where the authors' layer would use it
            ours = _nvlabs_name(key) if net == "G" else key  # D's layers keep NVlabs' names
            assert float(out[net][ours].flatten()[0]) == i, key


def make_kernel(gain: float) -> torch.Tensor:
    taps = torch.tensor([1.0, 3, 3, 1])
    return torch.outer(taps, taps) / 64 * gain


@pytest.mark.parametrize("res", [256, 1024])
def test_the_full_size_rosinality_key_lists_map(res):
    states = {}
    for net in "GD":
        listed = key_list(f"stylegan2_rosinality_{net}{res}.txt")
        states[net] = {k: make_kernel(4.0 if net == "G" else 1.0) if k.endswith("kernel") else torch.full(s, float(i))
                       for i, (k, s) in enumerate(listed.items())}
    values = rosinality_config(states, None, "keys")
    assert (values["resolution"], values["channel_base"], values["channel_max"], values["mapping_layers"]) == (
        res, 32768, 512, 8)  # rosinality's channel_multiplier 2 is config F's table
    gan = assemble.build(recipe_for("stylegan2", values, None, [], "keys"))
    out = rosinality_tensors(states, gan, res, "keys")
    assert set(out["G"]) == set(gan.G.state_dict()) and set(out["D"]) == set(gan.D.state_dict())
    top = f"b{res}"
    pins = {"G": {"style.8.weight": "mapping.fc7.weight", "input.input": "synthesis.b4.const",
                  "to_rgb1.bias": "synthesis.b4.torgb.bias", "noises.noise_0": "synthesis.b4.conv1.noise.noise_const",
                  "convs.0.conv.modulation.bias": "synthesis.b8.conv0.conv.affine.bias",
                  "convs.3.noise.weight": "synthesis.b16.conv1.noise.strength",
                  f"convs.{2 * int(math.log2(res)) - 5}.activate.bias": f"synthesis.{top}.conv1.bias",
                  f"noises.noise_{2 * int(math.log2(res)) - 5}": f"synthesis.{top}.conv0.noise.noise_const",
                  f"noises.noise_{2 * int(math.log2(res)) - 4}": f"synthesis.{top}.conv1.noise.noise_const"},
            "D": {"convs.0.1.bias": f"{top}.fromrgb.bias", "convs.1.conv1.0.weight": f"{top}.conv0.weight",
                  "convs.1.conv2.1.weight": f"{top}.conv1.weight", "convs.2.skip.1.weight": f"b{res // 2}.skip.weight",
                  f"convs.{int(math.log2(res)) - 2}.conv2.2.bias": "b8.conv1.bias",
                  "final_conv.0.weight": "b4.conv.weight", "final_linear.0.bias": "b4.fc.bias",
                  "final_linear.1.weight": "b4.out.weight"}}
    for net, pairs in pins.items():
        for theirs, ours in pairs.items():
            assert torch.equal(out[net][ours].reshape(-1), states[net][theirs].reshape(-1)), (theirs, ours)


# ---- rosinality: a tiny checkpoint and rosinality's forward written out ---------------------------------------

SIZE, STYLE, N_MLP, CH = 16, 8, 2, {4: 16, 8: 16, 16: 8}  # rosinality fixes 512 channels up to 32; narrowed here


def rosinality_generator(g: torch.Generator) -> dict[str, torch.Tensor]:
    """rosinality's Generator state_dict (model.py), every tensor drawn so that each one matters."""
    def rn(*shape, scale=1.0, mean=0.0):
        return mean + scale * torch.randn(*shape, generator=g)

    sd = {}
    for i in range(1, N_MLP + 1):  # EqualLinear(lr_mul=0.01): weight N(0, 1) / lr_mul, bias applied x lr_mul
        sd[f"style.{i}.weight"], sd[f"style.{i}.bias"] = rn(STYLE, STYLE, scale=100.0), rn(STYLE, scale=10.0)
    sd["input.input"] = rn(1, CH[4], 4, 4)

    def styled(name, cin, cout, up):
        sd[f"{name}.conv.weight"] = rn(1, cout, cin, 3, 3)
        if up:
            sd[f"{name}.conv.blur.kernel"] = make_kernel(4.0)
        sd[f"{name}.conv.modulation.weight"] = rn(cin, STYLE)
        sd[f"{name}.conv.modulation.bias"] = rn(cin, scale=0.1, mean=1.0)
        sd[f"{name}.noise.weight"], sd[f"{name}.activate.bias"] = rn(1, scale=0.3), rn(cout, scale=0.1)

    def to_rgb(name, cin, up):
        sd[f"{name}.bias"] = rn(1, 3, 1, 1, scale=0.1)
        if up:
            sd[f"{name}.upsample.kernel"] = make_kernel(4.0)
        sd[f"{name}.conv.weight"] = rn(1, 3, cin, 1, 1)
        sd[f"{name}.conv.modulation.weight"] = rn(cin, STYLE)
        sd[f"{name}.conv.modulation.bias"] = rn(cin, scale=0.1, mean=1.0)

    styled("conv1", CH[4], CH[4], False)
    to_rgb("to_rgb1", CH[4], False)
    for k, r in enumerate((8, 16)):
        styled(f"convs.{2 * k}", CH[r // 2], CH[r], True)
        styled(f"convs.{2 * k + 1}", CH[r], CH[r], False)
        to_rgb(f"to_rgbs.{k}", CH[r], True)
    for i in range(5):  # noise_i at 2 ** ((i + 5) // 2)
        r = 2 ** ((i + 5) // 2)
        sd[f"noises.noise_{i}"] = rn(1, 1, r, r)
    return sd


def rosinality_discriminator(g: torch.Generator) -> dict[str, torch.Tensor]:
    def rn(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=g)

    sd = {"convs.0.0.weight": rn(CH[16], 3, 1, 1), "convs.0.1.bias": rn(CH[16], scale=0.1)}
    for k, r in enumerate((16, 8), start=1):  # ResBlock(channels[r], channels[r // 2])
        cin, cout = CH[r], CH[r // 2]
        sd.update({f"convs.{k}.conv1.0.weight": rn(cin, cin, 3, 3), f"convs.{k}.conv1.1.bias": rn(cin, scale=0.1),
                   f"convs.{k}.conv2.0.kernel": make_kernel(1.0), f"convs.{k}.conv2.1.weight": rn(cout, cin, 3, 3),
                   f"convs.{k}.conv2.2.bias": rn(cout, scale=0.1), f"convs.{k}.skip.0.kernel": make_kernel(1.0),
                   f"convs.{k}.skip.1.weight": rn(cout, cin, 1, 1)})
    sd.update({"final_conv.0.weight": rn(CH[4], CH[4] + 1, 3, 3), "final_conv.1.bias": rn(CH[4], scale=0.1),
               "final_linear.0.weight": rn(CH[4], CH[4] * 16), "final_linear.0.bias": rn(CH[4], scale=0.1),
               "final_linear.1.weight": rn(1, CH[4]), "final_linear.1.bias": rn(1, scale=0.1)})
    return sd


def upfirdn(x, kernel, up=1, down=1, pad=(0, 0)):
    """op/upfirdn2d.py's upfirdn2d_native: zero insertion, pad, convolution with the kernel, keep every down-th."""
    B, C, H, W = x.shape
    if up > 1:
        z = x.new_zeros(B, C, H * up, W * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    x = F.conv2d(x, kernel.flip(0, 1).expand(C, 1, *kernel.shape), groups=C)
    return x[:, :, ::down, ::down]


def lrelu(x, bias):
    """FusedLeakyReLU: leaky_relu(x + bias, 0.2) · √2."""
    return F.leaky_relu(x + bias.reshape(1, -1, *[1] * (x.dim() - 2)), 0.2) * SQRT2


def modulated_conv(sd, name, x, style, demodulate=True, up=False):
    """ModulatedConv2d.forward, fused path (upsample: grouped transposed conv, then Blur with pad (1, 1))."""
    B, cin, H, W = x.shape
    weight = sd[f"{name}.conv.weight"]  # (1, O, I, k, k)
    cout, k = weight.shape[1], weight.shape[-1]
    s = F.linear(style, sd[f"{name}.conv.modulation.weight"] / math.sqrt(style.shape[1]),
                 sd[f"{name}.conv.modulation.bias"])  # EqualLinear(style_dim, in, bias_init=1)
    w = weight / math.sqrt(cin * k * k) * s.view(B, 1, cin, 1, 1)
    if demodulate:
        w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8).view(B, cout, 1, 1, 1)
    if up:
        w = w.transpose(1, 2).reshape(B * cin, cout, k, k)
        out = F.conv_transpose2d(x.reshape(1, B * cin, H, W), w, stride=2, groups=B)
        return upfirdn(out.view(B, cout, *out.shape[2:]), sd[f"{name}.conv.blur.kernel"], pad=(1, 1))
    out = F.conv2d(x.reshape(1, B * cin, H, W), w.reshape(B * cout, cin, k, k), padding=k // 2, groups=B)
    return out.view(B, cout, H, W)


def rosinality_mapping(sd, z):
    w = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # PixelNorm
    for i in range(1, N_MLP + 1):
        w = lrelu(F.linear(w, sd[f"style.{i}.weight"] * 0.01 / math.sqrt(STYLE)), sd[f"style.{i}.bias"] * 0.01)
    return w


def rosinality_g(sd, z, truncation=1.0, truncation_latent=None):
    """Generator.forward([z], randomize_noise=False, truncation=..., truncation_latent=...)."""
    w = rosinality_mapping(sd, z)
    if truncation < 1:
        w = truncation_latent + truncation * (w - truncation_latent)
    latent = w[:, None].repeat(1, 2 * int(math.log2(SIZE)) - 2, 1)

    def styled(name, x, style, noise, up=False):
        x = modulated_conv(sd, name, x, style, up=up) + sd[f"{name}.noise.weight"] * noise  # NoiseInjection
        return lrelu(x, sd[f"{name}.activate.bias"])

    def to_rgb(name, x, style, skip):
        out = modulated_conv(sd, name, x, style, demodulate=False) + sd[f"{name}.bias"]
        return out if skip is None else out + upfirdn(skip, sd[f"{name}.upsample.kernel"], up=2, pad=(2, 1))

    out = sd["input.input"].repeat(z.shape[0], 1, 1, 1)
    out = styled("conv1", out, latent[:, 0], sd["noises.noise_0"])
    skip = to_rgb("to_rgb1", out, latent[:, 1], None)
    i = 1
    for k in range(int(math.log2(SIZE)) - 2):
        out = styled(f"convs.{2 * k}", out, latent[:, i], sd[f"noises.noise_{2 * k + 1}"], up=True)
        out = styled(f"convs.{2 * k + 1}", out, latent[:, i + 1], sd[f"noises.noise_{2 * k + 2}"])
        skip = to_rgb(f"to_rgbs.{k}", out, latent[:, i + 2], skip)
        i += 2
    return skip


def conv_layer(x, weight, bias=None, kernel=None):
    """ConvLayer: [Blur, stride 2] EqualConv2d [FusedLeakyReLU]."""
    k = weight.shape[-1]
    if kernel is not None:
        p = 2 + (k - 1)
        x = upfirdn(x, kernel, pad=((p + 1) // 2, p // 2))
    out = F.conv2d(x, weight / math.sqrt(weight.shape[1] * k * k), stride=2 if kernel is not None else 1,
                   padding=0 if kernel is not None else k // 2)
    return out if bias is None else lrelu(out, bias)


def rosinality_d(sd, img):
    x = conv_layer(img, sd["convs.0.0.weight"], sd["convs.0.1.bias"])
    for k in (1, 2):
        c = f"convs.{k}"
        out = conv_layer(x, sd[f"{c}.conv1.0.weight"], sd[f"{c}.conv1.1.bias"])
        out = conv_layer(out, sd[f"{c}.conv2.1.weight"], sd[f"{c}.conv2.2.bias"], sd[f"{c}.conv2.0.kernel"])
        x = (out + conv_layer(x, sd[f"{c}.skip.1.weight"], kernel=sd[f"{c}.skip.0.kernel"])) / SQRT2
    B, C, H, W = x.shape
    group = min(B, 4)  # stddev_group 4, stddev_feat 1
    y = torch.sqrt(x.view(group, -1, 1, C, H, W).var(0, unbiased=False) + 1e-8)
    y = y.mean([2, 3, 4], keepdim=True).squeeze(2).repeat(group, 1, H, W)
    x = conv_layer(torch.cat([x, y], 1), sd["final_conv.0.weight"], sd["final_conv.1.bias"]).view(B, -1)
    x = lrelu(F.linear(x, sd["final_linear.0.weight"] / math.sqrt(x.shape[1])), sd["final_linear.0.bias"])
    return F.linear(x, sd["final_linear.1.weight"] / math.sqrt(x.shape[1]), sd["final_linear.1.bias"])


@pytest.fixture(scope="module")
def rosinality_run(tmp_path_factory):
    """What rosinality's train.py saves (checkpoint/<iter>.pt), and its conversion."""
    folder = tmp_path_factory.mktemp("checkpoint")
    g = torch.Generator().manual_seed(7)
    data = {"g": rosinality_generator(g), "d": rosinality_discriminator(g), "g_ema": rosinality_generator(g),
            "g_optim": {"state": {}, "param_groups": []}, "d_optim": {"state": {}, "param_groups": []},
            "args": argparse.Namespace(size=SIZE, latent=STYLE, n_mlp=N_MLP, path="lmdb", iter=800, batch=4,
                                       r1=10.0, ckpt=None, wandb=False), "ada_aug_p": 0.0}
    torch.save(data, folder / "000200.pt")
    torch.save({k: v for k, v in data.items() if k != "g_ema"}, folder / "000100.pt")  # older: not taken
    summary = convert(folder, "rosinality", folder / "run")
    return data, summary, *ckpt.load_checkpoint(folder / "run")


def test_rosinality_checkpoint_gives_rosinalitys_outputs(rosinality_run):
    data, summary, tensors, state = rosinality_run
    assert summary["step"] == 200 and summary["networks"] == ["D", "G", "G_ema"]
    assert summary["config"] == {
        "resolution": 16, "z_dim": 8, "w_dim": 8, "c_dim": 0, "img_channels": 3, "mapping_layers": 2,
        "mapping_lr_mul": 0.01, "channel_base": 128, "channel_max": 16, "g_architecture": "skip",
        "d_architecture": "resnet", "mbstd_group": 4, "mbstd_channels": 1, "num_fp16_res": 0, "conv_clamp": None}
    z = torch.randn(4, STYLE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for net, theirs in (("G", "g"), ("G_ema", "g_ema")):
            G, sd = network(state, net, tensors), data[theirs]
            w_avg = rosinality_mapping(sd, torch.randn(4096, STYLE, generator=torch.Generator().manual_seed(0))).mean(0)
            assert rel(tensors[f"{net}.mapping.w_avg"], w_avg) <= 1e-5  # mean_latent(4096), seed 0
            want = rosinality_g(sd, z)
            assert rel(generate(G, {"z": z}), want) <= 1e-5
            assert rel(generate(G, {"z": z}, psi=0.7), rosinality_g(sd, z, 0.7, w_avg)) <= 1e-5
        D = network(state, "D", tensors)
        for img in (want, torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))):
            assert rel(D(img), rosinality_d(data["d"], img)) <= 1e-5
        # distinct networks: G_ema's image is not G's
        assert rel(rosinality_g(data["g"], z), want) > 1e-2


def test_rosinality_converted_weights_file(tmp_path):
    """convert_weight.py's output: g_ema and the TF model's latent_avg, nothing else."""
    g_ema = rosinality_generator(torch.Generator().manual_seed(3))
    latent_avg = torch.randn(STYLE)
    torch.save({"g_ema": g_ema, "latent_avg": latent_avg}, tmp_path / "stylegan2-ffhq.pt")
    summary = convert(tmp_path / "stylegan2-ffhq.pt", "rosinality", tmp_path / "run")
    assert summary["networks"] == ["G_ema"] and summary["w_avg"] == {"G_ema": "latent_avg of the checkpoint"}
    G = assemble.load_generator(tmp_path / "run")
    z = torch.randn(3, STYLE, generator=torch.Generator().manual_seed(4))
    assert rel(G.generate(z=z, psi=0.5), rosinality_g(g_ema, z, 0.5, latent_avg).clamp(-1, 1)) <= 1e-5
    # train --resume: G starts from G_ema (the only generator there is), D from its initialisation
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "assemble.cli", "train", str(run), "--out", str(run), "--resume",
                           "--steps", "1", "--no-progress", "--data", "shapes", "--data-option", "n=8",
                           "--data-option", f"size={SIZE}", "--train", "batch=4"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    before, _ = ckpt.load_checkpoint(run / "ckpt-00000000.json")
    after, state = ckpt.load_checkpoint(run)
    assert state["step"] == 1
    moved = {k: float((after["G" + k[5:]] - v).abs().max()) for k, v in before.items()
             if k.startswith("G_ema.") and not k.endswith("w_avg")}
    assert len(moved) > 20 and max(moved.values()) < 0.01  # one Adam step (lr 0.002) away from G_ema


def test_rosinality_checks(rosinality_run, tmp_path):
    data = rosinality_run[0]
    with pytest.raises(ConversionError, match=r"mapping_layers: the checkpoint x.pt has 2, the recipe asks for 8"):
        torch.save(data, tmp_path / "x.pt")
        convert(tmp_path / "x.pt", "rosinality", tmp_path / "a", sets=["mapping_layers=8"])
    torch.save({**data, "args": argparse.Namespace(size=32, latent=STYLE, n_mlp=N_MLP)}, tmp_path / "y.pt")
    with pytest.raises(ConversionError, match=r"y.pt: args.size is 32 but the weights give 16"):
        convert(tmp_path / "y.pt", "rosinality", tmp_path / "b")
    d = dict(data["d"], **{"convs.2.conv2.0.kernel": make_kernel(4.0)})  # a kernel that is not [1, 3, 3, 1] / 64
    torch.save({**data, "d": d}, tmp_path / "z.pt")
    with pytest.raises(ConversionError, match=r"D of .*z.pt: convs.2.conv2.0.kernel is not the \[1, 3, 3, 1\] blur"):
        convert(tmp_path / "z.pt", "rosinality", tmp_path / "c")
    g = {k: v for k, v in data["g"].items() if k != "convs.1.noise.weight"}
    g["convs.1.noise.scale"] = torch.zeros(1)
    torch.save({**data, "g": g}, tmp_path / "w.pt")
    with pytest.raises(ConversionError, match=r"G of .*w.pt does not fit the recipe:\n  - 1 key\(s\) of the "
                                              r"checkpoint have no place in the recipe: convs.1.noise.scale\n  - 1 "
                                              r"key\(s\) of the recipe are not in the checkpoint: "
                                              r"synthesis.b8.conv1.noise.strength"):
        convert(tmp_path / "w.pt", "rosinality", tmp_path / "d")
