"""Class-conditional runs: the classifier's agreement with the requested class, the matched agreement of
an unsupervised code, and the grid with one row per class."""

from __future__ import annotations

import json

import pytest
import torch

from assemble.data.digits import digit_images
from assemble.metrics import digit_classifier
from assemble.metrics.digits import class_report
from assemble.train.run import RunOptions, train


@pytest.fixture(scope="module")
def real16():
    images, labels = digit_images(16)
    return images[:400], labels[:400]


def test_real_digits_agree_with_their_labels(real16):
    images, labels = real16
    r = class_report(images, labels, classifier=digit_classifier(16))
    assert r["class_agreement"] >= 0.95 and r["class_agreement_matched"] >= r["class_agreement"]
    assert r["classes_agreeing"] >= 9 and len(r["class_agreement_per_class"]) == 10
    assert r["code_to_digit"] == list(range(10))


def test_a_permuted_code_is_matched_back(real16):
    images, labels = real16
    perm = torch.tensor([3, 7, 0, 9, 1, 5, 2, 8, 4, 6])
    codes = perm[labels]                         # code k stands for digit perm^-1[k]
    r = class_report(images, codes, classifier=digit_classifier(16))
    assert r["class_agreement"] < 0.3            # the codes are not in digit order
    assert r["class_agreement_matched"] >= 0.95  # but one-to-one with the digits
    assert [r["code_to_digit"][int(perm[d])] for d in range(10)] == list(range(10))


def test_requested_classes_out_of_range_are_refused(real16):
    images, _ = real16
    with pytest.raises(ValueError, match=r"requested classes should be in \[0, 10\)"):
        class_report(images[:4], torch.tensor([0, 1, 2, 10]))


CONDITIONAL = """
name: cond_digits_tiny
vars: {nz: 8}
generator:
  inputs: {z: "latent(nz)", c: "class(10)"}
  steps:
    - concat_vector: {n_classes: 10, c: c}
    - linear: {out_features: 256}
    - tanh
    - reshape: {shape: [1, 16, 16]}
discriminator:
  inputs: {img: "image(1, 16, 16)", c: "class(10)"}
  steps:
    - flatten
    - concat_vector: {n_classes: 10, c: c}
    - linear: {out_features: 1}
train: {batch: 16, steps: 2, sample_every: 1, log_every: 1, checkpoint_every: 2}
data: {name: digits, size: 16}
"""


def test_a_class_conditional_run_reports_agreement_and_a_grid_per_class(tmp_path):
    recipe = tmp_path / "cond.yaml"
    recipe.write_text(CONDITIONAL)
    out = tmp_path / "run"
    summary = train(RunOptions(recipe=str(recipe), out=out, steps=2, progress=False))
    m = summary["metrics"]
    for key in ("class_agreement", "class_agreement_matched", "classes_agreeing", "confident_fraction"):
        assert key in m, m
    assert 0.0 <= m["class_agreement"] <= m["class_agreement_matched"] <= 1.0
    assert (out / "samples_by_class.png").exists()
    saved = json.loads((out / "summary.json").read_text())["metrics"]
    assert saved["class_agreement"] == m["class_agreement"]
    from PIL import Image

    w, h = Image.open(out / "samples_by_class.png").size
    assert (w, h) == (10 * 18 + 2, 10 * 18 + 2)  # 10 classes x 10 columns of 16 px cells, 2 px padding
