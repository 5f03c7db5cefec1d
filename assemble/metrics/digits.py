"""Judge generated digits with a classifier trained here: confidence, class histogram, stacked-digit modes.

``digits_report`` is for 1-channel digits (the built-in ``digits`` data); ``stacked_report`` for the
3-channel "stacked" digits (``stacked_digits``: one digit per channel, 1000 modes), evaluated as in VEEGAN
(Srivastava et al., 2017) and PacGAN (Lin et al., 2018): classify each channel, read the three digits as a
mode, count the modes hit and report the KL divergence of the generated mode distribution from the uniform
one. PacGAN's released code (``fjxmlzn/PacGAN``, ``stacked_MNIST_experiments/VEEGAN_experiment/model.py``,
``log_metrics``) computes that KL over every sample's argmax mode, in nats; we do the same.

Images whose size differs from the classifier's are resized to it with bilinear interpolation, antialiased
when shrinking (``F.interpolate(..., mode="bilinear", antialias=True, align_corners=False)``), the resampling
the built-in datasets use.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from blocks.shapes import check_shape

from .classifier import (
    SIZES,
    DigitClassifier,
    TrainConfig,
    config_hash,
    load_classifier,
    save_classifier,
    train_digit_classifier,
)

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where trained weights are cached: ``$GANFORGE_CACHE``, or ``~/.cache/ganforge``."""
    return Path(os.environ.get("GANFORGE_CACHE") or Path.home() / ".cache" / "ganforge")


def digit_classifier(size: int = 16, weights: str | None = None) -> DigitClassifier:
    """The digit classifier for ``size`` px images, trained once and cached.

    With ``weights`` the weights come from that safetensors file. Otherwise they come from
    ``cache_dir() / f"digits_classifier_{size}px_{hash}.safetensors"``, where the hash covers the size, the
    training config and the architecture version; a missing or unreadable cache file is (re)trained, which
    takes seconds at 8 and 16 px and tens of seconds at 32 px on two CPU cores.

    Args:
        size: input size, 8, 16 or 32.
        weights: a path to weights written by :func:`assemble.metrics.classifier.save_classifier`.

    Returns:
        A :class:`DigitClassifier` in eval mode, with ``.accuracy`` (held-out) and ``.size``.
    """
    if size not in SIZES:
        raise ValueError(f"digit_classifier: size must be one of {SIZES}, found {size}; pick the closest "
                         "(digits_report resizes images to the classifier's size)")
    if weights is not None:
        return load_classifier(weights, size)
    config = TrainConfig()
    path = cache_dir() / f"digits_classifier_{size}px_{config_hash(size, config)}.safetensors"
    if path.is_file():
        try:
            return load_classifier(path, size)
        except ValueError as err:
            log.warning("cached digit classifier unusable, retraining: %s", err)
    log.info("training the %d px digit classifier (cached at %s)", size, path)
    model = train_digit_classifier(size, config)
    save_classifier(model, path, config)
    return model


def _default_size(image_size: int) -> int:
    """The classifier size nearest to ``image_size`` on a log scale (ties go to the larger)."""
    return min(SIZES, key=lambda s: (abs(math.log2(s / image_size)), -s))


def _probabilities(images: Tensor, classifier: DigitClassifier) -> Tensor:
    """Softmax class probabilities of 1-channel images in [-1, 1], resized to the classifier's size."""
    device = next(classifier.parameters()).device
    classifier.eval()
    out = []
    with torch.no_grad():
        for x in images.detach().split(1024):
            x = x.to(device, torch.float32).clamp(-1, 1)  # (b, 1, H, W)
            if x.shape[-2:] != (classifier.size, classifier.size):
                x = F.interpolate(x, size=(classifier.size, classifier.size), mode="bilinear",
                                  align_corners=False, antialias=True)
            out.append(classifier(x).softmax(dim=1).cpu())  # (b, 10)
    return torch.cat(out)  # (N, 10)


def _check_images(images: Tensor, channels: int, where: str) -> int:
    dims = check_shape(images, "N C H W", block=where, name="images", C=channels)
    if dims["N"] == 0:
        raise ValueError(f"{where}: expected at least one image, found none")
    return max(dims["H"], dims["W"])


def digits_report(images: Tensor, classifier: DigitClassifier | None = None, threshold: float = 0.9
                  ) -> dict[str, Any]:
    """How digit-like 1-channel images are, by the classifier's confidence and class histogram.

    Args:
        images: images in [-1, 1] (values outside are clamped); any size (resized to the classifier's).
        classifier: the judge; by default :func:`digit_classifier` at the supported size nearest the images'.
        threshold: the max softmax probability at which an image counts as a confident digit.

    Returns:
        ``{"confident_fraction": float, "histogram": [10 counts of argmax classes over all images],
        "modes": classes with at least one confident image, "classifier_accuracy": held-out accuracy}``.

    Shape:
        images: (N, 1, H, W).
    """
    size = _check_images(images, 1, "digits_report")
    classifier = classifier or digit_classifier(_default_size(size))
    probs = _probabilities(images, classifier)  # (N, 10)
    conf, label = probs.max(dim=1)  # (N,), (N,)
    confident = conf >= threshold
    return {
        "confident_fraction": float(confident.float().mean()),
        "histogram": [int(c) for c in torch.bincount(label, minlength=10)],
        "modes": int(torch.unique(label[confident]).numel()),
        "classifier_accuracy": float(classifier.accuracy),
    }


def class_report(images: Tensor, requested: Tensor, classifier: DigitClassifier | None = None,
                 threshold: float = 0.9) -> dict[str, Any]:
    """How well a class-conditional generator's samples show the digit it was asked for.

    Args:
        images: 1-channel images in [-1, 1], any size (resized to the classifier's).
        requested: the class (0..9) each image was generated for; G's class index, or an unsupervised
            code (InfoGAN's categorical code) whose values need not be in digit order.
        classifier: the judge; by default :func:`digit_classifier` at the size nearest the images'.
        threshold: a class counts as produced when its agreement is at least this.

    Returns:
        ``{"class_agreement": the fraction of images the classifier assigns to the requested class,
        "class_agreement_per_class": [10 fractions], "classes_agreeing": classes whose agreement >=
        threshold, "class_agreement_matched": the agreement after the best one-to-one matching of requested
        values to digits (Hungarian algorithm on the confusion counts; what InfoGAN's categorical code is
        judged by), "code_to_digit": that matching}``.

    Shape:
        images: (N, 1, H, W); requested: (N,) int64 in [0, 10).
    """
    from scipy.optimize import linear_sum_assignment  # scipy comes with scikit-learn

    size = _check_images(images, 1, "class_report")
    check_shape(requested, "N", block="class_report", name="requested", N=images.shape[0])
    requested = requested.long().cpu()
    if int(requested.min()) < 0 or int(requested.max()) > 9:
        raise ValueError(f"class_report: requested classes should be in [0, 10), found values in "
                         f"[{int(requested.min())}, {int(requested.max())}]")
    classifier = classifier or digit_classifier(_default_size(size))
    label = _probabilities(images, classifier).argmax(dim=1)  # (N,)
    hit = (label == requested).double()
    per_class = [float(hit[requested == k].mean()) if (requested == k).any() else float("nan") for k in range(10)]
    confusion = torch.zeros(10, 10, dtype=torch.long)  # requested x assigned
    confusion.index_put_((requested, label), torch.ones_like(label), accumulate=True)
    rows, cols = linear_sum_assignment(-confusion.numpy())
    matched = float(confusion[torch.as_tensor(rows), torch.as_tensor(cols)].sum()) / len(label)
    return {
        "class_agreement": float(hit.sum()) / len(label),
        "class_agreement_per_class": per_class,
        "classes_agreeing": sum(a >= threshold for a in per_class),
        "class_agreement_matched": matched,
        "code_to_digit": [int(c) for c in cols],
    }


def stacked_report(images: Tensor, classifier: DigitClassifier | None = None, threshold: float = 0.9
                   ) -> dict[str, Any]:
    """Modes of stacked digits: channel c is one digit; the mode is ``100·d_0 + 10·d_1 + d_2`` (0..999).

    Args:
        images: 3-channel images in [-1, 1] (values outside are clamped); any size.
        classifier: the judge of each channel; by default :func:`digit_classifier` at the nearest size.
        threshold: a sample is confident when each of its three channels has max probability >= this.

    Returns:
        ``{"modes": modes hit by at least one confident sample, "kl_to_uniform": KL(p || uniform over
        1000) in nats, p the distribution of every sample's argmax mode (as PacGAN computes it),
        "confident_fraction": float, "classifier_accuracy": held-out accuracy}``.

    Shape:
        images: (N, 3, H, W).
    """
    size = _check_images(images, 3, "stacked_report")
    classifier = classifier or digit_classifier(_default_size(size))
    n = images.shape[0]
    probs = _probabilities(images.reshape(n * 3, 1, *images.shape[-2:]), classifier)  # (N·3, 10)
    conf, digit = probs.max(dim=1)
    conf, digit = conf.view(n, 3), digit.view(n, 3)  # (N, 3)
    mode = digit[:, 0] * 100 + digit[:, 1] * 10 + digit[:, 2]  # (N,)
    confident = (conf >= threshold).all(dim=1)  # (N,)
    p = torch.bincount(mode, minlength=1000).double() / n  # (1000,)
    kl = float((p[p > 0] * (p[p > 0] * 1000).log()).sum())
    return {
        "modes": int(torch.unique(mode[confident]).numel()),
        "kl_to_uniform": kl,
        "confident_fraction": float(confident.float().mean()),
        "classifier_accuracy": float(classifier.accuracy),
    }
