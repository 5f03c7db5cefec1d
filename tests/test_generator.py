"""The one-call API: ``assemble.load_generator(RUN).generate(...)`` on a run folder or a checkpoint file, with
inputs by keyword and clear errors for missing or ill-shaped ones."""

from __future__ import annotations

import pytest
import torch

import assemble
from assemble.generator import as_generator
from assemble.train.run import RunOptions, train


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The README's main job, tiny: a dcgan_digits run folder after 3 steps."""
    out = tmp_path_factory.mktemp("digits")
    train(RunOptions(recipe="dcgan_digits", out=out, steps=3, sets=["ngf=4", "ndf=4", "nz=8"], progress=False,
                     train_overrides={"batch": 8}))
    return out


def tiny(name: str) -> assemble.GAN:
    recipe = assemble.load(name)
    torch.manual_seed(0)
    return assemble.build(recipe, **(recipe.get("tiny") or {}))


def test_a_run_folder_and_its_checkpoint_files_give_the_same_generator(digits_run):
    G = assemble.load_generator(digits_run)
    assert G.name == "dcgan_digits" and G.state["step"] == 3 and list(G.inputs) == ["z"]
    images = G.generate(n=6, seed=1)
    assert images.shape == (6, 1, 16, 16) and images.min() >= -1 and images.max() <= 1
    torch.testing.assert_close(G.generate(n=6, seed=1), images)  # a seed gives the same samples
    assert not torch.equal(G.generate(n=6, seed=2), images)
    record = sorted(digits_run.glob("ckpt-*.json"))[-1]
    for source in (record, record.with_suffix(".safetensors")):
        torch.testing.assert_close(assemble.load_generator(source).generate(n=6, seed=1), images)
    z = torch.randn(6, 8)
    torch.testing.assert_close(G.generate(z=z), G.network(z).clamp(-1, 1))  # n follows the inputs given
    assert not G.network.training and not any(p.requires_grad for p in G.network.parameters())


def test_pictures(digits_run, tmp_path):
    G = assemble.load_generator(digits_run)
    images = G.generate(n=4)
    pictures = G.to_pil(images)
    assert len(pictures) == 4 and pictures[0].mode == "L" and pictures[0].size == (16, 16)
    path = G.save(images, tmp_path / "grid.png", nrow=2)
    assert path.stat().st_size > 0


def test_classes_by_keyword_and_truncation():
    G = as_generator(tiny("biggan"))
    a, b = G.generate(n=3, seed=0, classes=[1, 1, 1]), G.generate(n=3, seed=0, classes=[2, 2, 2])
    assert not torch.allclose(a, b)  # the class reaches the image
    torch.testing.assert_close(G.generate(n=3, seed=0, classes=1), a)  # one int for every sample
    torch.testing.assert_close(G.generate(n=3, seed=0, c=[1, 1, 1]), a)  # or by the input's name
    assert G.generate(n=2, psi=0.0, classes=3).unique(dim=0).shape[0] == 1  # psi 0: z at the prior mean
    with pytest.raises(ValueError, match=r"input 'c' takes classes 0..9, got \[12"):
        G.generate(n=2, classes=[12, 0])
    with pytest.raises(ValueError, match=r"input 'c' holds 3 samples but n is 2"):
        G.generate(n=2, classes=[1, 2, 3])
    S = as_generator(tiny("stylegan2"))
    images = S.generate(n=3, psi=0.0)
    torch.testing.assert_close(images[0], images[2])  # psi 0 in W: the average image


def test_missing_and_ill_shaped_inputs_are_named():
    G = as_generator(tiny("spade"))
    n, h, w = G.inputs["seg"].shape
    with pytest.raises(ValueError, match=rf"input 'seg' \(label_map\({n}, {h}, {w}\)\) comes from data: pass "
                                         rf"seg=<a \(n, {n}, {h}, {w}\) tensor>"):
        G.generate(n=2)
    with pytest.raises(ValueError, match=rf"input 'seg' .* should have shape \(n, {n}, {h}, {w}\), got \(2, 3, 4\)"):
        G.generate(seg=torch.zeros(2, 3, 4))
    seg = torch.nn.functional.one_hot(torch.randint(0, n, (2, h, w)), n).permute(0, 3, 1, 2).float()
    assert G.generate(seg=seg).shape == (2, 3, h, w)
    with pytest.raises(TypeError, match=r"no input named \['label'\]; its inputs are seg: label_map"):
        G.generate(label=seg)
    with pytest.raises(TypeError, match="classes= fills the one class input, but G has none"):
        G.generate(seg=seg, classes=3)


def test_a_toy_generator_gives_points():
    G = as_generator(tiny("gan_mlp"))
    points = G.generate(n=5)
    assert points.shape == (5, 2)
    with pytest.raises(ValueError, match="save takes"):
        G.save(points, "never.png")


def test_the_readme_main_jobs_generator_draws_the_class_asked_for(tmp_path):
    """README's five lines on a tiny cdcgan_digits run: classes=[3] * 16, and what print(G) says."""
    out = tmp_path / "digits"
    train(RunOptions(recipe="cdcgan_digits", out=out, steps=2, sets=["ngf=4", "ndf=4", "nz=8"], progress=False,
                     train_overrides={"batch": 8}))
    G = assemble.load_generator(out)
    images = G.generate(n=16, seed=0, classes=[3] * 16)
    assert images.shape == (16, 1, 16, 16) and images.min() >= -1 and images.max() <= 1
    G.save(images, tmp_path / "digits.png")
    assert repr(G) == "Generator('cdcgan_digits', step=2, inputs=(z: latent(8), c: class(10)))"
    assert (out / "samples_by_class.png").exists()
