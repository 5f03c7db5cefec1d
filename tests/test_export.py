"""Export: every shipped generator (and a Python-built one) exports to torch.export and ONNX with a dynamic
batch, and the exported files give the eager output; truncation and noise can be inputs; the command writes
a sidecar and checks the file; without the optional packages, ONNX export says what to install."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import assemble
from assemble import Net, Recipe
from assemble.exporter import ExportModule, example_inputs, onnx_missing, relative_difference
from assemble.generator import as_generator

RECIPES = assemble.list_recipes()
HAS_ONNX = not onnx_missing(for_check=True)
ONNX_REASON = "onnx, onnxscript and onnxruntime are the optional extra: pip install 'ganforge[export]'"
TORCH_TOL, ONNX_TOL = 1e-6, 1e-4  # relative: max |exported - eager| / max |eager|


def tiny(name: str) -> assemble.GAN:
    recipe = assemble.load(name)
    torch.manual_seed(0)
    return assemble.build(recipe, **(recipe.get("tiny") or {}))


def _stages(gan: assemble.GAN) -> list[int | None]:
    n = gan.G.num_stages
    return [None] if not n else [n - 1, n // 2]  # the last stage and an intermediate one


@pytest.mark.parametrize("name", RECIPES)
def test_torch_export_with_a_dynamic_batch_gives_the_eager_output(name, tmp_path):
    gan = tiny(name)
    for stage in _stages(gan):
        if stage is not None:
            gan.G.set_stage(stage)
            gan.G.set_alpha(0.5)
        sidecar = assemble.export(gan, "torch-export", tmp_path / f"g{stage}.pt2", check=True)
        assert set(sidecar["check"]) == {"batch_1", "batch_5"}
        assert max(sidecar["check"].values()) <= TORCH_TOL, sidecar["check"]
        assert [i["name"] for i in sidecar["inputs"]] == list(gan.G.input_specs)
        assert sidecar["output"]["shape"][0] == "batch" and sidecar["stage"] == stage


@pytest.mark.skipif(not HAS_ONNX, reason=ONNX_REASON)
@pytest.mark.parametrize("name", RECIPES)
def test_onnx_in_onnxruntime_gives_the_eager_output(name, tmp_path):
    gan = tiny(name)
    stage = _stages(gan)[-1]
    if stage is not None:
        gan.G.set_stage(stage)
        gan.G.set_alpha(0.5)
    sidecar = assemble.export(gan, "onnx", tmp_path / "g.onnx", check=True)
    assert max(sidecar["check"].values()) <= ONNX_TOL, sidecar["check"]
    import onnx

    model = onnx.load(str(tmp_path / "g.onnx"))
    assert [i.name for i in model.graph.input] == list(gan.G.input_specs)  # the recipe's own names
    assert [o.name for o in model.graph.output] == ["image"]


def test_truncation_and_noise_as_inputs():
    gan = tiny("stylegan2")
    with torch.no_grad():
        for m in gan.G.modules():
            if hasattr(m, "use_noise"):
                m.strength.fill_(0.5)  # StyleGAN2's noise strengths start at 0
    G = as_generator(gan)
    folded = ExportModule(G, psi=0.6).eval()
    as_input = ExportModule(G, psi=None, noise="input").eval()
    assert as_input.input_names()[:2] == ["z", "psi"]
    assert as_input.input_names()[2] == "noise_synthesis_b4_conv1"  # one per noise layer, named after it
    inputs = example_inputs(as_input, G, 3)
    z, noises = inputs[0], inputs[2:]
    with torch.no_grad():
        want = folded(z)
        # psi 0.6 as an input, and the layers' constant noise given as inputs, is the folded graph
        consts = [layer.noise_const[None, None].expand(3, -1, -1, -1) for _, layer in as_input.noise_layers]
        torch.testing.assert_close(as_input(z, torch.tensor(0.6), *consts), want, rtol=1e-5, atol=1e-6)
        other = as_input(z, torch.tensor(0.6), *noises)
        assert relative_difference(other, want) > 1e-3  # and other noise changes the image
        full = ExportModule(G, psi=0.0).eval()(z)
        torch.testing.assert_close(full[0], full[1])  # psi 0: every z gives the average image
    program = torch.export.export(as_input, inputs, strict=False)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*inputs), as_input(*inputs))
    assert all(m.noise_mode != "input" for m in gan.G.modules() if hasattr(m, "use_noise"))  # left as found


def test_a_python_built_network_exports(tmp_path):
    G = Net(inputs={"z": "latent(8)", "c": "class(3)"})
    G.concat_vector(n_classes=3, from_="z", c="c")
    G.linear(name="fc", out_features=4 * 4 * 4)
    G.reshape(shape=[4, 4, 4])
    G.biggan_g_block(name="up", out_channels=3, sn=False)
    G.tanh()
    D = Net(inputs={"img": "image(3, 8, 8)"})
    D.flatten()
    D.linear(out_features=1)
    gan = Recipe("python_built", G, D).build()
    sidecar = assemble.export(gan, "torch-export", tmp_path / "g.pt2", check=True)
    assert max(sidecar["check"].values()) <= TORCH_TOL
    assert [(i["name"], i["dtype"]) for i in sidecar["inputs"]] == [("z", "float32"), ("c", "int64")]


def test_the_command_exports_a_run_and_checks_it(tmp_path):
    from assemble.train.run import RunOptions, train

    train(RunOptions(recipe="dcgan_digits", out=tmp_path / "run", steps=2, sets=["ngf=4", "ndf=4", "nz=8"],
                     progress=False, train_overrides={"batch": 8}))
    out = tmp_path / "g.pt2"
    done = subprocess.run([sys.executable, "-m", "assemble.cli", "export", str(tmp_path / "run"), "--format",
                           "torch-export", "--out", str(out), "--check", "--batch", "3"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "check, relative difference to eager: batch 3 0.00e+00" in done.stdout
    sidecar = json.loads((tmp_path / "g.pt2.json").read_text())
    assert sidecar["recipe"] == "dcgan_digits" and sidecar["step"] == 2 and sidecar["inputs"][0]["shape"] == [3, 8]
    assert sidecar["output"] == {**sidecar["output"], "name": "image", "shape": [3, 1, 16, 16], "range": [-1.0, 1.0]}
    program = torch.export.load(str(out))
    z = torch.randn(3, 8)
    G = assemble.load_generator(tmp_path / "run")
    torch.testing.assert_close(program.module()(z), G.network(z))


def test_onnx_without_its_packages_says_what_to_install(monkeypatch, tmp_path):
    import assemble.exporter as export_module

    monkeypatch.setattr(export_module, "onnx_missing", lambda for_check=False: ["onnxscript"])
    with pytest.raises(RuntimeError, match=r"ONNX export needs onnxscript: pip install 'ganforge\[export\]'"):
        assemble.export(tiny("gan_mlp"), "onnx", tmp_path / "g.onnx")
    with pytest.raises(ValueError, match=r"ends in \.pt2"):
        assemble.export(tiny("gan_mlp"), "torch-export", tmp_path / "g.onnx")


@pytest.mark.skipif(not HAS_ONNX, reason=ONNX_REASON)
def test_the_onnxruntime_example_needs_neither_torch_nor_ganforge(tmp_path):
    from pathlib import Path

    assemble.export(tiny("biggan"), "onnx", tmp_path / "g.onnx")  # a class input and a latent
    script = Path(__file__).resolve().parents[1] / "docs" / "examples" / "onnx_generate.py"
    blocked = (
        "import runpy, sys\n"
        "class Blocked:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'assemble', 'blocks'):\n"
        "            raise ImportError(f'{name} is blocked in this test')\n"
        "sys.meta_path.insert(0, Blocked())\n"
        f"sys.argv = ['onnx_generate.py', {str(tmp_path / 'g.onnx')!r}, {str(tmp_path / 'row.png')!r}, '3']\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from PIL import Image

    row = Image.open(tmp_path / "row.png")
    assert row.size == (3 * 128, 128) and "3 images from biggan" in done.stdout
