"""``ganforge convert --from dcgan``: pytorch/examples' DCGAN state dicts reproduce the example's outputs, and the
converted run works with sample, load_generator, export and train --resume. Also the converters' shared
machinery: a full account of the keys, and settings read from the checkpoint."""

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
from assemble.convert.common import rename

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "converters" / "dcgan_64"


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """What pytorch/examples' dcgan/main.py leaves in --outf (two epochs), from the fixture's weights."""
    outf = tmp_path_factory.mktemp("outf")
    w = load_file(FIXTURE / "weights.safetensors")
    for epoch, scale in ((3, 0.5), (24, 1.0)):  # the converter takes the highest epoch
        for net in "GD":
            state = {k[2:]: v * (scale if v.is_floating_point() else 1) for k, v in w.items() if k[0] == net}
            torch.save(state, outf / f"net{net}_epoch_{epoch}.pth")
    return outf


def test_the_converted_networks_give_the_examples_outputs(example_run, tmp_path):
    summary = convert(example_run, "dcgan", tmp_path / "run")
    assert summary["epoch"] == 24 and summary["config"] == {"nz": 16, "ngf": 4, "ndf": 4, "nc": 3,
                                                             "resolution": 64}
    tensors, state = ckpt.load_checkpoint(tmp_path / "run")
    assert state["weights_only"] and state["converted"]["from"] == "dcgan"
    gan = assemble.build(state["recipe"])
    ckpt.load_module_tensors("G.", gan.G, tensors)
    ckpt.load_module_tensors("D.", gan.D, tensors)
    io = load_file(FIXTURE / "io.safetensors")
    z, x = io["input.z"].flatten(1), io["input.x"]  # the example's z is (B, nz, 1, 1)
    for mode in ("eval", "train"):  # each mode from the stored weights, as the fixture
        G, D = (assemble.build(state["recipe"]).G, assemble.build(state["recipe"]).D)
        ckpt.load_module_tensors("G.", G, tensors)
        ckpt.load_module_tensors("D.", D, tensors)
        G.train(mode == "train")
        D.train(mode == "train")
        with torch.no_grad():
            assert rel(G(z), io[f"G.{mode}.out"]) <= 1e-5
            logit = D(x).flatten()
            assert rel(logit, io[f"D.{mode}.logit"]) <= 1e-5
            assert rel(torch.sigmoid(logit), io[f"D.{mode}.out"]) <= 1e-5  # the example's Sigmoid


def test_the_converted_run_samples_exports_and_resumes(example_run, tmp_path):
    convert(example_run / "netG_epoch_24.pth", "dcgan", tmp_path / "run")  # a netG file: its netD beside it
    G = assemble.load_generator(tmp_path / "run")
    images = G.generate(n=3, seed=0)
    io = load_file(FIXTURE / "io.safetensors")
    z = io["input.z"].flatten(1)
    torch.testing.assert_close(G.generate(z=z), io["G.eval.out"], rtol=1e-5, atol=1e-5)
    assert images.shape == (3, 3, 64, 64)
    sidecar = assemble.export(G, "torch-export", tmp_path / "g.pt2", check=True)
    assert max(sidecar["check"].values()) == 0
    done = subprocess.run([sys.executable, "-m", "assemble.cli", "train", str(tmp_path / "run"), "--out",
                           str(tmp_path / "run"), "--resume", "--steps", "2", "--no-progress", "--data", "shapes",
                           "--data-option", "n=16", "--train", "batch=4"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["resumed_from"].endswith("ckpt-00000000.json")


def test_settings_come_from_the_checkpoint(example_run, tmp_path):
    with pytest.raises(ConversionError, match=r"ngf: the checkpoint netG_epoch_24.pth has 4, the recipe asks for 64"):
        convert(example_run, "dcgan", tmp_path / "run", sets=["ngf=64"])
    done = subprocess.run([sys.executable, "-m", "assemble.cli", "convert", str(example_run), "--from", "dcgan",
                           "--out", str(tmp_path / "cli")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "recipe dcgan, networks D, G, step 0" in done.stdout, done.stderr
    with pytest.raises(ConversionError, match="no netG"):
        convert(tmp_path, "dcgan", tmp_path / "none")


def test_pickled_code_is_refused(tmp_path):
    """A .pth holding anything but tensors is refused by torch.load(weights_only=True), and nothing runs."""

    class Payload:
        def __reduce__(self):
            return (exec, ("open('PWNED', 'w').write('x')",))

    (tmp_path / "outf").mkdir()
    torch.save({"main.0.weight": Payload()}, tmp_path / "outf" / "netG_epoch_1.pth")
    torch.save({}, tmp_path / "outf" / "netD_epoch_1.pth")
    with pytest.raises(ConversionError, match=r"cannot be read as tensors only"):
        convert(tmp_path / "outf", "dcgan", tmp_path / "run")
    assert not Path("PWNED").exists() and not (tmp_path / "PWNED").exists()


def test_rename_accounts_for_every_key():
    target = {"a.conv.weight": torch.zeros(2, 3), "a.bias": torch.zeros(2), "f.filter": torch.ones(4)}
    source = {"a.weight": torch.ones(2, 3), "a.bias": torch.ones(2)}
    rules = [(r"(\w+)\.weight", r"\1.conv.weight")]
    out = rename(source, target, rules, "net", derived=lambda k: k.endswith("filter"))
    assert torch.equal(out["a.conv.weight"], torch.ones(2, 3)) and torch.equal(out["f.filter"], torch.ones(4))
    bad = {"a.weight": torch.ones(3, 3), "extra": torch.ones(1)}
    with pytest.raises(ConversionError) as info:
        rename(bad, target, rules, "net")
    message = str(info.value)
    assert message.startswith("net does not fit the recipe:\n  - 1 key(s) of the checkpoint have no place in the "
                              "recipe: extra")
    assert "2 key(s) of the recipe are not in the checkpoint: a.bias, f.filter" in message
    assert "1 shape(s) differ: a.weight (3, 3) -> a.conv.weight (2, 3)" in message
