"""AC-GAN (recipes/acgan.yaml) against clvrai/ACGAN-PyTorch's CIFAR-10 networks and the paper's table.

Canonical counts come from clvrai/ACGAN-PyTorch network.py (commit 5b7139c: _netG_CIFAR10_v3,
_netD_CIFAR10), a faithful reimplementation of the paper's appendix table (the authors released no code;
the table's generator, three 5x5 stride-2 transposed convs from a 1x1 map, does not reach 32x32 as written).
The slow test trains the default (16 px digits) and checks the samples' classes and D's auxiliary classifier.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from test_recipe_cgan import class_agreement, trained, within_class_spread

import assemble
from assemble.show import totals

CIFAR10 = ["resolution=32", "nc=3", "g_fc=384", "g_ch=[192, 96, 48]", "d_ch=[16, 32, 64, 128, 256, 512]"]


def reference_counts(nz: int = 110, nc: int = 3, n_classes: int = 10) -> tuple[int, int]:
    """clvrai's _netG_CIFAR10_v3: fc1 Linear(110, 384); ConvTranspose2d 384->192 (4, 1, 0), 192->96, 96->48,
    48->3 (4, 2, 1), all bias=False, BatchNorm2d after all but the last. _netD_CIFAR10: Conv2d 3->16, 16->32,
    32->64, 64->128, 128->256, 256->512 (3x3, strides 2, 1, 2, 1, 2, 1, bias=False), BatchNorm2d on all but
    conv1; fc_dis Linear(4·4·512, 1), fc_aux Linear(4·4·512, 10) -- the paper's "Linear 11"."""

    def tconv(i, o, k=4):
        return i * o * k * k

    def bn(c):
        return 2 * c

    g = nz * 384 + 384
    g += tconv(384, 192) + bn(192) + tconv(192, 96) + bn(96) + tconv(96, 48) + bn(48) + tconv(48, nc)
    chans = [nc, 16, 32, 64, 128, 256, 512]
    d = sum(i * o * 9 + (bn(o) if k else 0) for k, (i, o) in enumerate(itertools.pairwise(chans)))
    feat = 4 * 4 * 512
    d += feat * 1 + 1 + feat * n_classes + n_classes
    return g, d


def test_reference_counts_at_cifar10_size():
    g, d = reference_counts()
    assert (g, d) == (1_593_888, 1_663_867)
    _, _, plans = assemble.plan("acgan", sets=CIFAR10)
    assert totals(plans["generator"])["params"] == g
    assert totals(plans["discriminator"])["params"] == d


def test_names_heads_and_the_class_in_z():
    gan = assemble.build("acgan", sets=CIFAR10)
    g_keys, d_keys = set(gan.G.state_dict()), set(gan.D.state_dict())
    assert {"fc1.linear.weight", "tconv2.0.conv.weight", "tconv2.1.weight", "tconv5.0.conv.weight"} <= g_keys
    assert {"conv1.0.conv.weight", "conv6.1.running_mean", "fc_dis.linear.weight", "fc_aux.linear.weight"} <= d_keys
    assert not any(k.endswith("conv.bias") for k in g_keys | d_keys)  # clvrai: bias=False throughout
    assert gan.G.fc1.linear.in_features == 110  # [one-hot class, z]
    gan.G.eval()
    img = gan.G(torch.randn(2, 100), torch.tensor([3, 7]))
    assert img.shape == (2, 3, 32, 32)
    dis, aux = gan.D(img)  # D reads the image only; its class input exists for the objective's labels
    assert dis.shape == (2, 1) and aux.shape == (2, 10)


def test_objective_is_ls_plus_lc():
    from assemble.train.config import parse

    cfg = parse(assemble.load("acgan"))
    assert cfg.loss == "non_saturating" and cfg.logits == ("dis",)
    terms = {(t.network, t.inputs["logits"], t.inputs["labels"]) for t in cfg.terms if t.key == "ac_loss"}
    assert terms == {("D", "D_real.aux", "D_real.c"), ("D", "D_fake.aux", "G.c"), ("G", "D_fake.aux", "G.c")}


@torch.no_grad()
def aux_accuracy(trainer, per_class: int = 100, seed: int = 4321) -> dict[str, float]:
    """D's auxiliary classifier (eval mode) on every real image of the dataset and on ``per_class`` samples of
    each class from the sampling generator (EMA, eval mode): the fraction of argmax logits equal to the label."""
    from assemble.train.batches import collate

    D, G = trainer.D, trainer.sample_model()
    modes = D.training, G.training
    D.eval()
    G.eval()
    try:
        fields = collate(trainer.dataset, torch.arange(len(trainer.dataset)))
        images = fields[trainer.binding[trainer.image_input]]
        labels = fields[trainer.binding["c"]]
        real = torch.cat([D.run(**{trainer.image_input: x})["aux"] for x in images.split(256)]).argmax(1)
        gen = torch.Generator().manual_seed(seed)
        classes = torch.arange(10).repeat_interleave(per_class)
        gin = trainer.g_inputs(len(classes), {}, gen)
        gin["c"] = classes
        fake = D.run(**{trainer.image_input: trainer.fake_of(G.run(**gin))})["aux"].argmax(1)
    finally:
        D.train(modes[0])
        G.train(modes[1])
    return {"aux_accuracy_real": float((real == labels).float().mean()),
            "aux_accuracy_fake": float((fake == classes).float().mean())}


@pytest.mark.slow
def test_samples_show_the_requested_digit_and_d_classifies(tmp_path):
    # Measured at the recipe's 2000 steps, seeds 0, 1, 2 (docs/recipes/cgan-acgan.md): agreement 0.992, 0.988,
    # 0.988; classes >= 0.9: 10, 9, 10; D's aux accuracy on reals 0.961, 0.982, 0.973 and on fakes 1.0.
    trainer = trained("acgan", tmp_path)
    report = class_agreement(trainer)
    assert report["class_agreement"] >= 0.9, report
    assert report["classes_agreeing"] >= 8, report
    assert min(report["class_agreement_per_class"]) >= 0.7, report
    acc = aux_accuracy(trainer)
    assert acc["aux_accuracy_real"] >= 0.9, acc
    assert acc["aux_accuracy_fake"] >= 0.9, acc
    assert within_class_spread(trainer) >= 0.3  # measured 0.56, 0.56, 0.60: G uses z within each class
