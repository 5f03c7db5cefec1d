"""The handwritten digits that ship inside scikit-learn: ``digits`` and ``stacked_digits``.

``sklearn.datasets.load_digits`` reads ``digits.csv.gz`` from the installed package through
``importlib.resources``: no network access (tests/train/test_data.py checks it with sockets disabled).
The 1797 images are 8x8 with integer pixel values 0..16, mapped to [-1, 1] as ``v / 8 - 1``, then resized to
S x S with bilinear interpolation (``torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
antialias=True)``; sizes 16, 32 and 64 upsample, where the antialias flag changes nothing). Bilinear weights are
convex, so resized values stay in [-1, 1].

``stacked_digits`` is the "stacked MNIST" of the unrolled-GAN, VEEGAN and PacGAN papers built from these
digits: three digit images as the R, G and B channels, label ``100·d_R + 10·d_G + d_B`` (1000 classes).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import FieldSpec, GanDataset, IndexedImages

DIGIT_SIZES = (8, 16, 32, 64)


@lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits  # imported here: sklearn is slow to import

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32))   # (1797, 8, 8), values 0..16
    labels = torch.from_numpy(bunch.target.astype(np.int64))     # (1797,)
    return images, labels


def digit_images(size: int = 16) -> tuple[Tensor, Tensor]:
    """All 1797 scikit-learn digits at ``size`` x ``size``.

    Args:
        size: 8, 16, 32 or 64.

    Returns:
        ``(images (1797, 1, S, S) float in [-1, 1], labels (1797,) int64)``; fresh tensors on each call.
    """
    if size not in DIGIT_SIZES:
        raise ValueError(f"digits: size must be one of {DIGIT_SIZES}, found {size!r}; e.g. set data.size: 16")
    images, labels = _sklearn_digits()
    x = (images / 8.0 - 1.0).unsqueeze(1)                         # (1797, 1, 8, 8)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(-1.0, 1.0).contiguous(), labels.clone()


def _square_digit_size(size: int | tuple[int, int] | None, name: str) -> int:
    if size is None:
        return 16
    pair = (size, size) if isinstance(size, int) else size
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or pair[0] != pair[1] or pair[0] not in DIGIT_SIZES:
        raise ValueError(f"{name}: size must be one of {DIGIT_SIZES} (square), found {size!r}; "
                         f"e.g. set data.size: 16")
    return int(pair[0])


def digits(*, size: int | tuple[int, int] | None = None, seed: int = 0) -> GanDataset:
    """The 1797 scikit-learn digits, in their shipped order (``seed`` changes nothing: nothing is random).

    Args:
        size: 8, 16 (default), 32 or 64.
        seed: accepted for a uniform interface; unused.

    Returns:
        A dataset with fields ``img`` (image (1, S, S)) and ``label`` (class(10)).
    """
    s = _square_digit_size(size, "digits")
    images, labels = digit_images(s)
    info = {"source": "sklearn.datasets.load_digits", "n_samples": len(labels), "size": [s, s],
            "n_classes": 10, "seed": seed, "resize": "bilinear" if s != 8 else "none"}
    return GanDataset("digits", {"img": FieldSpec("image", (1, s, s)), "label": FieldSpec("class", (), 10)},
                      {"img": images, "label": labels}, info)


def stacked_digits(*, size: int | tuple[int, int] | None = None, seed: int = 0, n: int = 25_000) -> GanDataset:
    """Three digits as R, G, B: 1000 modes, every one of them present.

    The first 1000 drawn triples are the 1000 classes once each; the other ``n - 1000`` have uniformly random
    classes; for each channel a digit image of the wanted class is drawn uniformly; the order is then shuffled.

    Args:
        size: 8, 16 (default), 32 or 64.
        seed: random seed.
        n: number of samples, at least 1000.

    Returns:
        A dataset with fields ``img`` (image (3, S, S)) and ``label`` (class(1000),
        ``100·d_R + 10·d_G + d_B``).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1000:
        raise ValueError(f"stacked_digits: n must be an int >= 1000 so that all 1000 classes appear, found {n!r}")
    s = _square_digit_size(size, "stacked_digits")
    images, labels = digit_images(s)
    rng = np.random.default_rng(seed)
    classes = np.concatenate([np.arange(1000), rng.integers(0, 1000, size=n - 1000)])
    classes = classes[rng.permutation(n)]
    channel_digits = np.stack([classes // 100, classes // 10 % 10, classes % 10], axis=1)   # (N, 3)
    by_digit = [np.flatnonzero(labels.numpy() == d) for d in range(10)]
    index = np.empty((n, 3), dtype=np.int64)
    for d in range(10):
        where = channel_digits == d                                  # (N, 3) bool
        index[where] = by_digit[d][rng.integers(0, len(by_digit[d]), size=int(where.sum()))]
    info = {"source": "sklearn.datasets.load_digits, stacked as RGB", "n_samples": n, "size": [s, s],
            "n_classes": 1000, "seed": seed, "resize": "bilinear" if s != 8 else "none"}
    return GanDataset("stacked_digits",
                      {"img": FieldSpec("image", (3, s, s)), "label": FieldSpec("class", (), 1000)},
                      {"img": IndexedImages(images, torch.from_numpy(index)),
                       "label": torch.from_numpy(classes.astype(np.int64))}, info)
