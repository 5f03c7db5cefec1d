"""``ganforge convert --from spade``: NVlabs/SPADE's checkpoint folders reproduce the authors' outputs (G in eval
and training, D's features per scale and layer), every key of a full-size ADE20K checkpoint has its place, the
settings come from the weights and opt.txt (never from opt.pkl), and what the recipe cannot build is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import assemble
from assemble import checkpoint as ckpt
from assemble.convert import ConversionError, convert
from assemble.convert.spade import read, read_opt_txt

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "converters" / "spade_64"

# SPADE's parser defaults (base_options, train_options, the generator / discriminator / encoder option setters)
DEFAULTS = {
    "D_steps_per_G": 1, "aspect_ratio": 1.0, "batchSize": 1, "beta1": 0.0, "beta2": 0.9,
    "cache_filelist_read": False, "cache_filelist_write": False, "checkpoints_dir": "./checkpoints",
    "contain_dontcare_label": False, "continue_train": False, "crop_size": 512, "dataroot": "./datasets/cityscapes/",
    "dataset_mode": "coco", "debug": False, "display_freq": 100, "display_winsize": 400, "gan_mode": "hinge",
    "gpu_ids": "0", "init_type": "xavier", "init_variance": 0.02, "isTrain": True, "label_nc": 182,
    "lambda_feat": 10.0, "lambda_kld": 0.05, "lambda_vgg": 10.0, "load_from_opt_file": False, "load_size": 1024,
    "lr": 0.0002, "max_dataset_size": sys.maxsize, "model": "pix2pix", "nThreads": 0, "n_layers_D": 4,
    "name": "label2coco", "ndf": 64, "nef": 16, "netD": "multiscale", "netD_subarch": "n_layer", "netG": "spade",
    "ngf": 64, "niter": 50, "niter_decay": 0, "no_TTUR": False, "no_flip": False, "no_ganFeat_loss": False,
    "no_html": False, "no_instance": False, "no_pairing_check": False, "no_vgg_loss": False,
    "norm_D": "spectralinstance", "norm_E": "spectralinstance", "norm_G": "spectralspadesyncbatch3x3", "num_D": 2,
    "num_upsampling_layers": "normal", "optimizer": "adam", "output_nc": 3, "phase": "train",
    "preprocess_mode": "scale_width_and_crop", "print_freq": 100, "save_epoch_freq": 10, "save_latest_freq": 5000,
    "serial_batches": False, "tf_log": False, "use_vae": False, "which_epoch": "latest", "z_dim": 256,
}
# the fixture's argv (config.json), as TrainOptions parses it
FIXTURE_OPT = {
    "name": "fixture_spade64", "dataset_mode": "custom", "label_dir": "/nonexistent", "image_dir": "/nonexistent",
    "instance_dir": "", "dataroot": "/nonexistent", "gpu_ids": "-1", "label_nc": 5, "no_instance": True,
    "crop_size": 64, "load_size": 64, "aspect_ratio": 1.0, "ngf": 1, "ndf": 4, "num_D": 2, "n_layers_D": 2,
    "init_variance": 1.0,
}
ADE20K_OPT = {"name": "ade20k", "dataset_mode": "ade20k", "dataroot": "./datasets/ADEChallengeData2016/",
              "label_nc": 150, "contain_dontcare_label": True, "no_instance": True, "crop_size": 256,
              "load_size": 286, "preprocess_mode": "resize_and_crop", "display_winsize": 256, "batchSize": 32,
              "gpu_ids": "0,1,2,3,4,5,6,7"}


def write_opt_txt(folder: Path, **options) -> Path:
    """What BaseOptions.save_options writes: one '{:>25}: {:<30}' line per option, sorted, and the default after
    a tab where the value differs from it."""
    opt = {**DEFAULTS, **options}
    lines = []
    for k, v in sorted(opt.items()):
        comment = f"\t[default: {DEFAULTS[k]}]" if k in DEFAULTS and v != DEFAULTS[k] else ""
        lines.append(f"{k:>25}: {v!s:<30}{comment}\n")
    (folder / "opt.txt").write_text("".join(lines))
    return folder / "opt.txt"


def authors_state(scale: float = 1.0) -> dict[str, dict[str, torch.Tensor]]:
    w = load_file(FIXTURE / "weights.safetensors")
    return {net: {k[2:]: v * scale if v.is_floating_point() else v for k, v in w.items() if k[0] == net}
            for net in "GD"}


class Payload:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def experiment(folder: Path, nets: str = "GD", epochs: tuple[str, ...] = ("latest",), **options) -> Path:
    """checkpoints/<name>/ as SPADE's train.py leaves it: <epoch>_net_G/D.pth, opt.txt and opt.pkl (here a
    pickle that would write a file if anything unpickled it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, epoch in enumerate(epochs):
        state = authors_state(1.0 if epoch == "latest" else 0.5 + 0.1 * i)
        for net in nets:
            torch.save(state[net], folder / f"{epoch}_net_{net}.pth")
    if options.pop("opt", True):
        write_opt_txt(folder, **{**FIXTURE_OPT, **options})
        torch.save(Payload(), folder / "opt.pkl")
    return folder


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return experiment(tmp_path_factory.mktemp("checkpoints") / "fixture_spade64", epochs=("10", "latest", "20"))


@pytest.fixture(scope="module")
def run(example, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return out, convert(example, "spade", out)


def nets(run_dir: Path) -> tuple[assemble.GAN, dict]:
    tensors, state = ckpt.load_checkpoint(run_dir)
    gan = assemble.build(state["recipe"])
    ckpt.load_module_tensors("G.", gan.G, tensors)
    ckpt.load_module_tensors("D.", gan.D, tensors)
    return gan, state


def test_the_converted_networks_give_the_authors_outputs(run):
    out, summary = run
    assert summary["epoch"] == "latest" and summary["settings_from"].endswith("opt.txt")
    assert summary["config"] == {"crop_size": 64, "aspect_ratio": 1.0, "label_nc": 5, "contain_dontcare_label": False,
                                 "num_up_layers": 5, "ngf": 1, "output_nc": 3, "spade_hidden": 128, "spade_ks": 3,
                                 "ndf": 4, "n_layers_D": 2, "num_D": 2}
    assert not Path("PWNED").exists() and not (out / "PWNED").exists()  # opt.pkl never unpickled
    io = load_file(FIXTURE / "io.safetensors")
    seg, img = io["input.seg"], io["input.img"]
    diffs = {}
    for mode in ("eval", "train"):  # each mode from the stored weights, as the fixture
        gan, _ = nets(out)
        gan.G.train(mode == "train")
        gan.D.train(mode == "train")
        with torch.no_grad():
            diffs[f"G.{mode}.out"] = rel(gan.G(seg), io[f"G.{mode}.out"])
            regs = gan.D.run(img, seg)  # D(cat(seg, img)): every layer's output is a register
        for i in range(2):
            for j in range(3):
                key = f"D.{mode}.scale{i}.layer{j}"
                if key in io:
                    diffs[key] = rel(regs[f"d{i}_out" if j == 2 else f"d{i}_f{j}"], io[key])
    assert len(diffs) == 10, sorted(diffs)
    assert all(d <= 1e-5 for d in diffs.values()), diffs  # (a NaN fails too)


def test_the_converted_run_samples_and_resumes(run):
    out, summary = run
    G = assemble.load_generator(out)
    io = load_file(FIXTURE / "io.safetensors")
    torch.testing.assert_close(G.generate(seg=io["input.seg"]), io["G.eval.out"], rtol=1e-5, atol=1e-5)
    # n_layers_D 2: the objective's feature matching reads d{i}_f0, d{i}_f1 (the recipe spells out four)
    assert summary["objective"] == "feature matching over d{i}_f0 .. d{i}_f1 (n_layers_D)"
    done = subprocess.run([sys.executable, "-m", "assemble.cli", "train", str(out), "--out", str(out), "--resume",
                           "--steps", "1", "--no-progress", "--data", "shapes", "--data-option", "n=4",
                           "--data-option", "n_classes=5", "--train", "batch=2"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "summary.json").read_text())
    assert result["steps"] == 1 and result["resumed_from"].endswith("ckpt-00000000.json")


def test_an_epoch_file_takes_its_own_discriminator(example):
    conv = read(example / "10_net_G.pth", None, [])
    assert conv.info["epoch"] == 10 and [p.name for p in conv.files] == ["10_net_G.pth", "10_net_D.pth", "opt.txt"]
    want = authors_state(0.5)
    assert torch.equal(conv.tensors["D"]["discriminator_1.model1.0.0.conv.parametrizations.weight.original"],
                       want["D"]["discriminator_1.model1.0.0.weight_orig"])
    assert torch.equal(conv.tensors["G"]["up_0.conv_s.conv.parametrizations.weight.0._v"],
                       want["G"]["up_0.conv_s.weight_v"])


def test_a_generator_alone_converts(tmp_path):
    """The released pretrained models hold latest_net_G.pth only."""
    summary = convert(experiment(tmp_path / "pretrained", nets="G"), "spade", tmp_path / "run")
    assert summary["networks"] == ["G"] and "not converted" in summary["D"]
    io = load_file(FIXTURE / "io.safetensors")
    G = assemble.load_generator(tmp_path / "run")
    assert rel(G.generate(seg=io["input.seg"]), io["G.eval.out"]) <= 1e-5


def test_opt_txt_is_read_as_text(tmp_path):
    path = write_opt_txt(tmp_path, **ADE20K_OPT)
    assert "\t[default: 182]" in path.read_text() and "     crop_size: 256" in path.read_text()
    opts = read_opt_txt(path)
    assert opts["label_nc"] == 150 and opts["contain_dontcare_label"] is True and opts["no_instance"] is True
    assert opts["aspect_ratio"] == 1.0 and opts["norm_G"] == "spectralspadesyncbatch3x3"
    assert opts["gpu_ids"] == "0,1,2,3,4,5,6,7" and opts["dataroot"] == "./datasets/ADEChallengeData2016/"
    path.write_text(path.read_text().replace("crop_size: 256", "crop_size: big"))
    with pytest.raises(ConversionError, match=r"opt.txt: crop_size is 'big', expected int"):
        read_opt_txt(path)


def test_without_opt_txt_the_settings_come_from_set(tmp_path):
    folder = experiment(tmp_path / "x", opt=False)
    torch.save(Payload(), folder / "opt.pkl")
    with pytest.raises(ConversionError) as info:
        convert(folder, "spade", tmp_path / "run")
    assert str(info.value) == (
        f"{folder}: no opt.txt (opt.pkl is a pickle and is not read); the weights do not say crop_size, "
        "aspect_ratio, label_nc, contain_dontcare_label, num_up_layers: put SPADE's opt.txt beside the weights, "
        "or give --set crop_size=... --set aspect_ratio=... --set label_nc=... --set contain_dontcare_label=... "
        "--set num_up_layers=... (num_up_layers 5 is num_upsampling_layers 'normal', the only one the recipe builds)")
    sets = ["crop_size=64", "aspect_ratio=1", "label_nc=5", "contain_dontcare_label=false", "num_up_layers=5"]
    with pytest.raises(ConversionError, match=r"semantic_nc: --set gives label_nc 4 \+ contain_dontcare_label 0 = 4 "
                                              r"label channels, the weights latest_net_G.pth have 5"):
        convert(folder, "spade", tmp_path / "run", sets=[*sets[:2], "label_nc=4", *sets[3:]])
    summary = convert(folder, "spade", tmp_path / "run", sets=sets)
    assert summary["settings_from"] == "--set" and summary["config"]["crop_size"] == 64
    assert not Path("PWNED").exists() and not (tmp_path / "PWNED").exists()


def test_settings_come_from_the_checkpoint(example, tmp_path):
    with pytest.raises(ConversionError, match=r"^ngf: the checkpoint latest_net_G.pth and opt.txt has 1, the recipe "
                                              r"asks for 64; drop the --set"):
        convert(example, "spade", tmp_path / "run", sets=["ngf=64"])
    with pytest.raises(ConversionError, match=r"^crop_size: the checkpoint latest_net_G.pth and opt.txt has 64, the "
                                              r"recipe asks for 256"):
        convert(example, "spade", tmp_path / "run", sets=["crop_size=256"])
    folder = experiment(tmp_path / "y", ngf=2)
    with pytest.raises(ConversionError, match=rf"^ngf: {folder / 'opt.txt'} says 2, the weights latest_net_G.pth "
                                              r"have 1$"):
        convert(folder, "spade", tmp_path / "run")
    done = subprocess.run([sys.executable, "-m", "assemble.cli", "convert", str(example), "--from", "spade", "--out",
                           str(tmp_path / "cli"), "--set", "n_layers_D=4"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "n_layers_D: the checkpoint latest_net_G.pth and opt.txt has 2" in done.stderr


@pytest.mark.parametrize("options, message", [
    ({"num_upsampling_layers": "more"}, "num_upsampling_layers is 'more'; the spade recipe builds 'normal'"),
    ({"use_vae": True}, "use_vae is True; the spade recipe has no image encoder"),
    ({"no_instance": False}, "no_instance is False: G and D take an instance edge map"),
    ({"norm_G": "spectralspadeinstance3x3"}, "norm_G is 'spectralspadeinstance3x3'; the spade recipe builds "),
    ({"norm_D": "spectralbatch"}, "norm_D is 'spectralbatch'; the spade recipe builds 'spectralinstance'"),
    ({"netG": "pix2pixhd"}, "netG is 'pix2pixhd'; the spade recipe builds SPADEGenerator"),
    ({"norm_G": "spectralspadesyncbatch5x5"}, "spade_ks: .* says norm_G 'spectralspadesyncbatch5x5', the weights "
                                              "latest_net_G.pth have 3x3 SPADE convs"),
    ({"contain_dontcare_label": True}, "label_nc 5 \\+ contain_dontcare_label 1 = 6 label channels, the weights "
                                       "latest_net_G.pth have 5"),
])
def test_what_the_recipe_cannot_build_is_refused(tmp_path, options, message):
    with pytest.raises(ConversionError, match=message):
        convert(experiment(tmp_path / "z", nets="G", **options), "spade", tmp_path / "run")


def test_wrong_files_are_refused(tmp_path):
    with pytest.raises(ConversionError, match=r"no <epoch>_net_G.pth \(NVlabs/SPADE's checkpoints/<name>/ folder"):
        convert(tmp_path, "spade", tmp_path / "run")
    torch.save({"main.0.weight": torch.zeros(16, 32, 4, 4)}, tmp_path / "netG_epoch_3.pth")
    with pytest.raises(ConversionError, match=r"netG_epoch_3.pth: give the experiment folder or an <epoch>_net_G.pth"):
        convert(tmp_path / "netG_epoch_3.pth", "spade", tmp_path / "run")
    (tmp_path / "netG_epoch_3.pth").rename(tmp_path / "latest_net_G.pth")
    with pytest.raises(ConversionError, match=r"latest_net_G.pth: no fc.weight: not an NVlabs/SPADE SPADEGenerator"):
        convert(tmp_path, "spade", tmp_path / "run")
    g = authors_state()["G"]
    plain = {k.replace("head_0.conv_0.weight_orig", "head_0.conv_0.weight"): v for k, v in g.items()}
    no_stats = {k: v for k, v in g.items() if "param_free_norm" not in k}
    cases = [
        ({**g, "fc.weight": torch.zeros(16, 256)}, "fc.weight \\(16, 256\\) is the VAE's linear layer"),
        ({**g, "up_4.conv_0.bias": torch.zeros(1)}, "has up_4 \\(--num_upsampling_layers most\\)"),
        (plain, "head_0.conv_0 has no weight_orig: norm_G without 'spectral'"),
        (no_stats, "the SPADE norms have no running statistics: an instance norm_G"),
    ]
    for state, message in cases:
        torch.save(state, tmp_path / "latest_net_G.pth")
        with pytest.raises(ConversionError, match=message):
            convert(tmp_path, "spade", tmp_path / "run")
    d = authors_state()["D"]
    d["discriminator_1.model1.0.0.weight_orig"] = d["discriminator_1.model1.0.0.weight_orig"][:, :2]
    del d["discriminator_0.model2.0.bias"]
    folder = experiment(tmp_path / "w", nets="G")
    torch.save(d, folder / "latest_net_D.pth")
    with pytest.raises(ConversionError) as info:
        convert(folder, "spade", tmp_path / "run")
    assert str(info.value) == (
        f"D of {folder / 'latest_net_D.pth'} does not fit the recipe:\n"
        "  - 1 key(s) of the recipe are not in the checkpoint: discriminator_0.model2.0.conv.bias\n"
        "  - 1 shape(s) differ: discriminator_1.model1.0.0.weight_orig (8, 2, 4, 4) -> "
        "discriminator_1.model1.0.0.conv.parametrizations.weight.original (8, 4, 4, 4)")


# ---- every key of a full-size checkpoint ---------------------------------------------------------------------


def reference_shapes(ngf: int, semantic_nc: int, ndf: int, n_layers_d: int = 4, num_d: int = 2, hidden: int = 128,
                     ks: int = 3, output_nc: int = 3) -> dict[str, dict[str, tuple[int, ...]]]:
    """The key names and shapes of SPADEGenerator's and MultiscaleDiscriminator's state dicts (spectralspade-
    syncbatch3x3, spectralinstance), from the reference layer definitions; checked below against the fixture's."""
    g: dict[str, tuple[int, ...]] = {"fc.weight": (16 * ngf, semantic_nc, 3, 3), "fc.bias": (16 * ngf,)}

    def sn_conv(name: str, fout: int, fin: int, k: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
        out = {f"{name}.weight_orig": (fout, fin, k, k), f"{name}.weight_u": (fout,),
               f"{name}.weight_v": (fin * k * k,)}
        return {**out, f"{name}.bias": (fout,)} if bias else out

    def spade(name: str, c: int) -> dict[str, tuple[int, ...]]:
        norm = f"{name}.param_free_norm"
        return {f"{norm}.running_mean": (c,), f"{norm}.running_var": (c,), f"{norm}.num_batches_tracked": (),
                f"{name}.mlp_shared.0.weight": (hidden, semantic_nc, ks, ks), f"{name}.mlp_shared.0.bias": (hidden,),
                f"{name}.mlp_gamma.weight": (c, hidden, ks, ks), f"{name}.mlp_gamma.bias": (c,),
                f"{name}.mlp_beta.weight": (c, hidden, ks, ks), f"{name}.mlp_beta.bias": (c,)}

    widths = [16, 16, 16, 16, 8, 4, 2, 1]
    names = ["head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3"]
    for name, fin, fout in zip(names, widths[:-1], widths[1:], strict=True):
        fin, fout = fin * ngf, fout * ngf
        mid = min(fin, fout)
        g.update({**sn_conv(f"{name}.conv_0", mid, fin, 3), **sn_conv(f"{name}.conv_1", fout, mid, 3),
                  **spade(f"{name}.norm_0", fin), **spade(f"{name}.norm_1", mid)})
        if fin != fout:
            g.update({**sn_conv(f"{name}.conv_s", fout, fin, 1, bias=False), **spade(f"{name}.norm_s", fin)})
    g.update({"conv_img.weight": (output_nc, ngf, 3, 3), "conv_img.bias": (output_nc,)})
    d: dict[str, tuple[int, ...]] = {}
    for i in range(num_d):
        p, nf = f"discriminator_{i}", ndf
        d.update({f"{p}.model0.0.weight": (ndf, semantic_nc + output_nc, 4, 4), f"{p}.model0.0.bias": (ndf,)})
        for n in range(1, n_layers_d):
            nf_prev, nf = nf, min(2 * nf, 512)
            d.update(sn_conv(f"{p}.model{n}.0.0", nf, nf_prev, 4, bias=False))
        d.update({f"{p}.model{n_layers_d}.0.weight": (1, nf, 4, 4), f"{p}.model{n_layers_d}.0.bias": (1,)})
    return {"G": g, "D": d}


def test_the_reference_key_lists_are_the_authors():
    state = authors_state()
    ref = reference_shapes(ngf=1, semantic_nc=5, ndf=4, n_layers_d=2)
    for net in "GD":
        assert {k: tuple(v.shape) for k, v in state[net].items()} == ref[net]


def test_every_key_of_an_ade20k_checkpoint_maps(tmp_path):
    """ngf = ndf = 64, 150 labels + dontcare, crop 256, n_layers_D 4: G 96.5 M and D 5.8 M parameters."""
    ref = reference_shapes(ngf=64, semantic_nc=151, ndf=64)
    gen = torch.Generator().manual_seed(0)
    for net in "GD":
        state = {k: torch.randn(s, generator=gen) if s else torch.tensor(7) for k, s in ref[net].items()}
        torch.save(state, tmp_path / f"latest_net_{net}.pth")
    write_opt_txt(tmp_path, **ADE20K_OPT)
    conv = read(tmp_path, None, [])
    assert conv.recipe["vars"]["label_nc"] == 150 and conv.recipe["vars"]["contain_dontcare_label"] is True
    assert sum(v.numel() for k, v in conv.tensors["G"].items() if "._" not in k and "running" not in k
               and "batches" not in k) == 96_492_483
    g = torch.load(tmp_path / "latest_net_G.pth", weights_only=True)
    assert torch.equal(conv.tensors["G"]["up_3.norm_s.mlp_beta.weight"], g["up_3.norm_s.mlp_beta.weight"])
    assert torch.equal(conv.tensors["G"]["G_middle_1.conv_1.conv.parametrizations.weight.0._u"],
                       g["G_middle_1.conv_1.weight_u"])
    assert len(conv.tensors["G"]) == len(g) and len(conv.tensors["D"]) == len(ref["D"]) == 2 * (2 + 3 * 3 + 2)
