"""``ganforge convert --from biggan-pytorch``: ajbrock/BigGAN-PyTorch's weights folders reproduce its outputs
(BigGAN and BigGAN-deep, eval and train), every key of its full-size state dicts has a place in the canonical
recipes, settings come from the checkpoint, and its state_dict.pth is read without running anything in it."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

import assemble
from assemble import checkpoint as ckpt
from assemble.convert import ConversionError, convert
from assemble.convert.biggan import from_states, read_plain

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "converters"
KEYS = FIXTURES / "keys"
ITR, BATCH, ACCUMULATIONS = 1200, 4, 2


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def state_dict_pth(**config: object) -> dict:
    """What train.py saves as state_dict.pth: counters, numpy metrics and the config with nn.ReLU modules in it."""
    np = pytest.importorskip("numpy")
    config = {"model": "BigGAN", "SN_eps": 1e-6, "BN_eps": 1e-5, "norm_style": "bn", "batch_size": BATCH,
              "num_D_accumulations": ACCUMULATIONS, "G_activation": nn.ReLU(inplace=True),
              "D_activation": nn.ReLU(inplace=True), **config}
    return {"itr": ITR, "epoch": 3, "save_num": 1, "save_best_num": 0, "best_IS": np.float64(3.25),
            "best_FID": np.float64(55.5), "config": config}


def weights_folder(root: Path, fixture: str, suffix: str = "", ema_scale: float = 1.0) -> Path:
    """weights/<experiment>/ as utils.save_weights writes it, from the fixture's state dicts (the EMA a copy of
    G, as before ema_start, or G scaled by ``ema_scale``)."""
    w = load_file(FIXTURES / fixture / "weights.safetensors")
    root.mkdir(exist_ok=True)
    end = f"_{suffix}.pth" if suffix else ".pth"
    for net in ("G", "D"):
        state = {k[2:]: v for k, v in w.items() if k.startswith(f"{net}.")}
        torch.save(state, root / f"{net}{end}")
        if net == "G":
            torch.save({k: v * ema_scale for k, v in state.items()}, root / f"G_ema{end}")
    torch.save(state_dict_pth(), root / f"state_dict{end}")
    torch.save({"param_groups": []}, root / f"G_optim{end}")  # not read
    return root


@pytest.mark.parametrize("fixture", ["biggan_32", "biggan_deep_32"])
def test_the_converted_networks_give_the_references_outputs(fixture, tmp_path):
    summary = convert(weights_folder(tmp_path / "exp", fixture), "biggan-pytorch", tmp_path / "run")
    deep = fixture == "biggan_deep_32"
    assert summary["recipe"] == ("biggan_deep" if deep else "biggan") and summary["networks"] == ["D", "G", "G_ema"]
    assert {k: summary["config"][k] for k in ("resolution", "ch", "z_dim", "shared_dim", "n_classes", "attn")} == {
        "resolution": 32, "ch": 8 if deep else 16, "z_dim": 20, "shared_dim": 16, "n_classes": 10, "attn": 16}
    assert summary["step"] == ITR and summary["counters"]["best_FID"] == 55.5
    tensors, state = ckpt.load_checkpoint(tmp_path / "run")
    assert state["images"] == ITR * BATCH * ACCUMULATIONS and state["recipe"]["vars"]["sn_eps"] == 1e-6
    io = load_file(FIXTURES / fixture / "io.safetensors")
    z, y, x = io["input.z"], io["input.y"], io["input.x"]
    for mode in ("eval", "train"):  # each mode from the stored weights, as the fixture
        gan = assemble.build(state["recipe"])
        ckpt.load_module_tensors("G.", gan.G, tensors)
        ckpt.load_module_tensors("D.", gan.D, tensors)
        gan.G.train(mode == "train")
        gan.D.train(mode == "train")
        seen: dict[str, torch.Tensor] = {}
        for part, name in ((gan.G.output_layer["2"], "pre_tanh"), (gan.G.shared, "shared_y")):
            part.register_forward_hook(lambda m, i, o, name=name, seen=seen: seen.update({name: o}))
        with torch.no_grad():  # ours embeds the class itself: G(z, y) is the reference's G(z, G.shared(y))
            assert rel(gan.G(z, y), io[f"G.{mode}.out"]) <= 1e-5
            assert rel(seen["pre_tanh"], io[f"G.{mode}.pre_tanh"]) <= 1e-5
            assert rel(gan.D(x, y).reshape(-1, 1), io[f"D.{mode}.out"]) <= 1e-5
        if mode == "eval":
            assert torch.equal(seen["shared_y"], io["G.eval.shared_y"])
    G = assemble.load_generator(tmp_path / "run")  # the EMA (here a copy of G) samples
    torch.testing.assert_close(G.generate(z=z, c=y), io["G.eval.out"], rtol=1e-5, atol=1e-5)


def test_spectral_norm_state_follows_the_reference(tmp_path):
    """_u is u0 as stored, _v = n(Wᵀ u0); after a train forward u is the reference's next u0 (one v-first step)."""
    w = load_file(FIXTURES / "biggan_32" / "weights.safetensors")
    convert(weights_folder(tmp_path / "exp", "biggan_32"), "biggan-pytorch", tmp_path / "run")
    tensors, state = ckpt.load_checkpoint(tmp_path / "run")
    layer = "G.blocks.1.0.conv1.conv.parametrizations.weight"
    u0, weight = w["G.blocks.1.0.conv1.u0"], w["G.blocks.1.0.conv1.weight"]
    assert torch.equal(tensors[f"{layer}.0._u"], u0[0]) and torch.equal(tensors[f"{layer}.original"], weight)
    v = F.normalize(weight.flatten(1).t() @ u0[0], dim=0, eps=1e-6)
    torch.testing.assert_close(tensors[f"{layer}.0._v"], v, rtol=1e-6, atol=1e-7)
    gan = assemble.build(state["recipe"])
    ckpt.load_module_tensors("G.", gan.G, tensors)
    io = load_file(FIXTURES / "biggan_32" / "io.safetensors")
    with torch.no_grad():
        gan.G(io["input.z"], io["input.y"])  # training mode: BigGAN-PyTorch writes u0 <- n(W n(u0 W)ᵀ)
    u1 = F.normalize(weight.flatten(1) @ v, dim=0, eps=1e-6)
    torch.testing.assert_close(gan.G.blocks["1"]["0"].conv1.conv.parametrizations.weight[0]._u, u1)


def random_state(name: str, fill=torch.randn) -> dict[str, torch.Tensor]:
    """A full-size state dict of the authors' key list (name and shape per line), random values."""
    out = {}
    for line in (KEYS / name).read_text().splitlines():
        key, shape = line.split("\t")
        out[key] = fill(tuple(int(s) for s in re.findall(r"\d+", shape)))
    return out


@pytest.mark.parametrize(("arch", "expected"), [
    ("BigGAN128", {"resolution": 128, "ch": 96, "z_dim": 120, "shared_dim": 128, "n_classes": 1000, "attn": 64}),
    ("BigGANdeep128", {"resolution": 128, "ch": 128, "z_dim": 128, "shared_dim": 128, "n_classes": 1000,
                       "attn": 64, "depth": 2, "ratio": 4, "out_conv_channels": 3}),
])
def test_every_key_of_the_full_size_state_dicts_maps(arch, expected):
    g, d = random_state(f"{arch}_G.txt"), random_state(f"{arch}_D.txt")
    # init=normal: the orthogonal init of the full-size layers costs seconds and is overwritten anyway
    recipe, tensors, info = from_states(g, d, sets=["generator.init=normal", "discriminator.init=normal"])
    assert info["config"] == expected and recipe["name"] == ("biggan_deep" if "deep" in arch else "biggan")
    if "deep" in arch:  # the flat block list: blocks.{2k+d}.0 -> blocks.k.d, attention blocks.7.1 -> blocks.3.2
        assert tensors["G"]["blocks.3.1.conv4.conv.bias"] is g["blocks.7.0.conv4.bias"]
        assert tensors["G"]["blocks.3.2.theta.parametrizations.weight.original"] is g["blocks.7.1.theta.weight"]
        # the recipe joins [y, z] as BigGANdeep.py's cat([y, z]): the linear layer's columns are copied as they are
        assert tensors["G"]["linear.linear.parametrizations.weight.original"] is g["linear.weight"]
    else:
        assert tensors["G"]["blocks.3.1.gamma"] is g["blocks.3.1.gamma"]
        assert tensors["D"]["head.embed.parametrizations.weight.original"] is d["embed.weight"]
        assert tensors["G"]["output_layer.0.weight"] is g["output_layer.0.gain"]
    # every key but the logged σ (sv0) is used; each SN layer gains a _v, the output BN a num_batches_tracked
    n_sv, n_u = (sum(k.endswith(end) for k in [*g, *d]) for end in (".sv0", ".u0"))
    assert sum(map(len, tensors.values())) == len(g) + len(d) - n_sv + n_u + 1


def test_sagan_full_size_keys_map_into_the_sagan_recipe():
    """launch_SAGAN_bs128x2_ema.sh's G and D (G_shared=False): per-class batch-norm embeddings, z whole."""
    g, d = random_state("SAGAN128_G.txt"), random_state("SAGAN128_D.txt")
    recipe, tensors, info = from_states(g, d, sets=["generator.init=normal", "discriminator.init=normal"])
    assert recipe["name"] == "sagan" and info["architecture"] == "SA-GAN"
    assert info["config"] == {"resolution": 128, "ch": 64, "z_dim": 128, "n_classes": 1000, "attn": 64, "nc": 3}
    # ccbn's gain = 1 + embedding(y); the recipe's categorical batch norm stores the gain itself
    torch.testing.assert_close(tensors["G"]["blocks.2.0.bn1.class_gain"], g["blocks.2.0.bn1.gain.weight"] + 1)
    assert tensors["G"]["blocks.2.0.bn2.class_bias"] is g["blocks.2.0.bn2.bias.weight"]
    assert tensors["G"]["blocks.3.1.gamma"] is g["blocks.3.1.gamma"] and "shared.embed.weight" not in tensors["G"]
    n_sv, n_u = (sum(k.endswith(end) for k in [*g, *d]) for end in (".sv0", ".u0"))
    assert sum(map(len, tensors.values())) == len(g) + len(d) - n_sv + n_u + 1
    with pytest.raises(ConversionError, match=r"holds SA-GAN's blocks: per-class batch norms, no shared embedding "
                                              r"\(G_shared=False\); --recipe biggan does not take it, --recipe sagan"):
        from_states(g, d, recipe="biggan")


def test_a_sagan_checkpoint_gives_the_references_outputs(tmp_path):
    """sagan_32: BigGAN.py with G_shared=False, hier=False (SA-GAN), run by the fixture generator."""
    summary = convert(weights_folder(tmp_path / "exp", "sagan_32"), "biggan-pytorch", tmp_path / "run")
    assert summary["recipe"] == "sagan"
    assert {k: summary["config"][k] for k in ("resolution", "ch", "z_dim", "n_classes", "attn", "nc")} == {
        "resolution": 32, "ch": 8, "z_dim": 16, "n_classes": 10, "attn": 16, "nc": 3}
    tensors, state = ckpt.load_checkpoint(tmp_path / "run")
    state["recipe"]["vars"]["sn_eps"] = 1e-8  # the fixture's SN_eps (weights_folder's state_dict.pth says 1e-6)
    io = load_file(FIXTURES / "sagan_32" / "io.safetensors")
    z, y, x = io["input.z"], io["input.y"], io["input.x"]
    gan = assemble.build(state["recipe"])
    ckpt.load_module_tensors("G.", gan.G, tensors)
    ckpt.load_module_tensors("D.", gan.D, tensors)
    for mode in ("eval", "train"):  # the fixture's train outputs follow its eval outputs, as here
        gan.G.train(mode == "train")
        gan.D.train(mode == "train")
        with torch.no_grad():
            assert rel(gan.G(z, y), io[f"G.{mode}.out"]) <= 1e-5, mode
            assert rel(gan.D(x, y).reshape(-1, 1), io[f"D.{mode}.out"]) <= 1e-5, mode


def test_settings_come_from_the_checkpoint(tmp_path):
    folder = weights_folder(tmp_path / "exp", "biggan_32")
    with pytest.raises(ConversionError, match=r"^ch: the checkpoint G.pth has 16, the recipe asks for 64"):
        convert(folder, "biggan-pytorch", tmp_path / "run", sets=["ch=64"])
    with pytest.raises(ConversionError, match=r"G.pth: holds BigGAN blocks with a shared class embedding "
                                              r"\(G_shared\); --recipe biggan_deep does not take it"):
        convert(folder, "biggan-pytorch", tmp_path / "run", recipe="biggan_deep")
    torch.save(state_dict_pth(SN_eps=1e-8), folder / "state_dict.pth")
    convert(folder, "biggan-pytorch", tmp_path / "run", sets=["generator.init=normal"])  # a --set of another key
    assert ckpt.load_checkpoint(tmp_path / "run")[1]["recipe"]["vars"]["sn_eps"] == 1e-8
    torch.save(state_dict_pth(norm_style="in"), folder / "state_dict.pth")
    with pytest.raises(ConversionError, match=r"G.pth: the run's norm_style is 'in'; the recipes' conditional"):
        convert(folder, "biggan-pytorch", tmp_path / "run")
    deep = weights_folder(tmp_path / "deep", "biggan_deep_32")
    with pytest.raises(ConversionError, match=r"should join the class embedding and z with one concat step from "
                                              r"\[y, z\] \(BigGANdeep.py's cat\(\[y, z\]\)\), found \[\['z', 'y'\]\]"):
        convert(deep, "biggan-pytorch", tmp_path / "run", sets=["generator.steps[1].concat.from=[z, y]"])
    (folder / "state_dict.pth").unlink()  # no counters, no eps: the recipe's stand
    summary = convert(folder, "biggan-pytorch", tmp_path / "run2")
    assert summary["step"] == 0 and summary["eps_from"].startswith("the recipe")


def test_wrong_files_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConversionError, match=r"empty: no G.pth and no D.pth \(BigGAN-PyTorch's weights/"):
        convert(tmp_path / "empty", "biggan-pytorch", tmp_path / "run")
    torch.save({}, tmp_path / "empty" / "netG_epoch_3.pth")
    with pytest.raises(ConversionError, match=r"netG_epoch_3.pth: not a file BigGAN-PyTorch's save_weights writes"):
        convert(tmp_path / "empty" / "netG_epoch_3.pth", "biggan-pytorch", tmp_path / "run")
    folder = weights_folder(tmp_path / "exp", "biggan_32")
    torch.save({"main.0.weight": torch.zeros(16, 4, 4, 4)}, folder / "G.pth")  # a DCGAN generator
    with pytest.raises(ConversionError, match=r"G.pth: G is not a BigGAN.py G state dict \(no linear.weight"):
        convert(folder, "biggan-pytorch", tmp_path / "run")
    g = load_file(FIXTURES / "biggan_32" / "weights.safetensors")
    g = {k[2:]: v for k, v in g.items() if k.startswith("G.") and k != "G.blocks.0.0.conv2.u0"}
    torch.save(g, folder / "G.pth")  # one u0 lost: the weight then has no SN place, and the _u none filled
    with pytest.raises(ConversionError, match=r"G of .*G.pth does not fit the recipe:\n  - 1 key\(s\) of the "
                                              r"checkpoint have no place in the recipe: blocks.0.0.conv2.weight"):
        convert(folder, "biggan-pytorch", tmp_path / "run")


def test_a_saved_copy_is_converted_with_its_own_files(tmp_path):
    folder = weights_folder(tmp_path / "exp", "biggan_32")
    weights_folder(folder, "biggan_32", suffix="best0", ema_scale=0.5)
    (folder / "G.pth").unlink()
    with pytest.raises(ConversionError, match=r"no G.pth .*saved copies here: best0 \(give e.g. G_best0.pth\)"):
        convert(folder, "biggan-pytorch", tmp_path / "run")
    summary = convert(folder / "D_best0.pth", "biggan-pytorch", tmp_path / "run")
    assert summary["suffix"] == "best0" and {Path(f["path"]).name for f in summary["files"]} == {
        "G_best0.pth", "D_best0.pth", "G_ema_best0.pth", "state_dict_best0.pth"}
    tensors, _ = ckpt.load_checkpoint(tmp_path / "run")
    for key in (k for k in tensors if k.startswith("G.")):  # G_ema.pth, not G.pth: every tensor halved
        same = key.endswith(("._v", "num_batches_tracked"))  # v = n(Wᵀu) does not see the scale
        torch.testing.assert_close(tensors["G_ema" + key[1:]], tensors[key] * (1 if same else 0.5))


class Payload:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


@pytest.mark.parametrize("zipped", [True, False])
def test_state_dict_pth_is_read_without_running_it(tmp_path, monkeypatch, zipped):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "state_dict.pth"
    torch.save(state_dict_pth(extra=Payload()), path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # torch refuses it: nn.ReLU, numpy scalars (and here a payload)
    data = read_plain(path)
    assert not (tmp_path / "PWNED").exists()
    assert (data["itr"], data["best_IS"], data["config"]["SN_eps"]) == (ITR, 3.25, 1e-6)
    assert repr(data["config"]["G_activation"]) == "<torch.nn.modules.activation.ReLU>"
    path.write_bytes(b"not a pickle")
    with pytest.raises(ConversionError, match=r"state_dict.pth: cannot be read as a torch.save file"):
        read_plain(path)
