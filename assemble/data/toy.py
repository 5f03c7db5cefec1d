"""2-D toy distributions for mode-collapse experiments: ``ring8``, ``grid25``, ``swiss_roll``.

Each has one field ``x`` (vector (2,)). The mixtures record ``info["centers"]`` (K x 2) and
``info["std"]`` (per-coordinate standard deviation of every mode) for the mode metrics.

Settings and where they come from:

- ``ring8``: 8 isotropic Gaussians with means equally spaced on a circle (mode k at angle 2πk/8); defaults
  radius 2 and std 0.02, the values usually cited for the mixture experiment of the unrolled-GAN paper (Metz
  et al., "Unrolled Generative Adversarial Networks", ICLR 2017, arXiv:1611.02163), whose ring VEEGAN
  (Srivastava et al., NeurIPS 2017, arXiv:1705.07761) and PacGAN (Lin et al., NeurIPS 2018, arXiv:1712.04086)
  reuse. The released code differs, so radius and std are options: PacGAN's
  ``synthetic_data_experiments/2DRing_GAN&PacGAN/config.py`` (github.com/fjxmlzn/PacGAN) uses radius 1 and
  std 0.01, as does the ring sampler the VEEGAN author published and the unrolled-GAN demo notebook
  (github.com/poolio/unrolled_gan, which says its settings differ from the paper's); ``ring8`` with
  ``radius=1, std=0.01`` reproduces that code.
- ``grid25``: 25 isotropic Gaussians at {-4, -2, 0, 2, 4}², std 0.05, as VEEGAN's and PacGAN's 2D grid
  (PacGAN's ``2DGrid_GAN&PacGAN/config.py``: means on ``range(-4, 5, 2)`` squared, variance 0.05²).
- ``swiss_roll``: ``sklearn.datasets.make_swiss_roll(n, noise=0.25)``, keeping coordinates (x, z) and
  dividing by 7.5, exactly as the WGAN-GP toy experiments (Gulrajani et al. 2017,
  github.com/igul222/improved_wgan_training, ``gan_toy.py``). It has no modes, so no centres.

Every sample picks its mode uniformly at random; all randomness comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import FieldSpec, GanDataset


def _check_n(n: int, name: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name}: n (number of samples) must be a positive int, found {n!r}; e.g. n: 100000")


def _check_positive(value: float, what: str, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name}: {what} must be a positive number, found {value!r}")


def _mixture(name: str, centers: np.ndarray, std: float, n: int, seed: int, extra: dict) -> GanDataset:
    rng = np.random.default_rng(seed)
    modes = rng.integers(0, len(centers), size=n)
    x = centers[modes] + std * rng.standard_normal((n, 2))     # (N, 2)
    info = {"source": name, "n_samples": n, "seed": seed, "centers": centers.tolist(), "std": float(std), **extra}
    return GanDataset(name, {"x": FieldSpec("vector", (2,))},
                      {"x": torch.from_numpy(x.astype(np.float32))}, info)


def ring8(*, seed: int = 0, n: int = 100_000, radius: float = 2.0, std: float = 0.02) -> GanDataset:
    """8 Gaussians on a circle (the unrolled-GAN / VEEGAN / PacGAN ring).

    Args:
        seed: random seed.
        n: number of samples.
        radius: circle radius (2 in the unrolled-GAN paper, 1 in PacGAN's released code).
        std: standard deviation of each mode (0.02 in the paper, 0.01 in PacGAN's code).

    Returns:
        A dataset with field ``x`` (vector (2,)) and ``info["centers"]``, ``info["std"]``.
    """
    _check_n(n, "ring8")
    _check_positive(radius, "radius", "ring8")
    _check_positive(std, "std", "ring8")
    angles = 2 * math.pi * np.arange(8) / 8
    centers = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return _mixture("ring8", centers, std, n, seed, {"radius": float(radius)})


def grid25(*, seed: int = 0, n: int = 100_000, std: float = 0.05) -> GanDataset:
    """25 Gaussians on the grid {-4, -2, 0, 2, 4}² (VEEGAN / PacGAN).

    Args:
        seed: random seed.
        n: number of samples.
        std: standard deviation of each mode.

    Returns:
        A dataset with field ``x`` (vector (2,)) and ``info["centers"]``, ``info["std"]``.
    """
    _check_n(n, "grid25")
    _check_positive(std, "std", "grid25")
    ticks = np.arange(-4.0, 5.0, 2.0)
    centers = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)
    return _mixture("grid25", centers, std, n, seed, {})


def swiss_roll(*, seed: int = 0, n: int = 100_000, noise: float = 0.25) -> GanDataset:
    """scikit-learn's swiss roll projected to its (x, z) plane and divided by 7.5 (WGAN-GP's toy set).

    Args:
        seed: random seed (passed to ``make_swiss_roll`` as ``random_state``).
        n: number of samples.
        noise: standard deviation of the Gaussian noise ``make_swiss_roll`` adds, before scaling.

    Returns:
        A dataset with field ``x`` (vector (2,)); roughly within [-2, 2]².
    """
    from sklearn.datasets import make_swiss_roll  # imported here: sklearn is slow to import

    _check_n(n, "swiss_roll")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        raise ValueError(f"swiss_roll: noise must be a number >= 0, found {noise!r}")
    points, _ = make_swiss_roll(n_samples=n, noise=float(noise), random_state=seed)
    x = points[:, [0, 2]] / 7.5                                 # (N, 2)
    info = {"source": "swiss_roll", "n_samples": n, "seed": seed, "noise": float(noise), "scale": 1 / 7.5}
    return GanDataset("swiss_roll", {"x": FieldSpec("vector", (2,))},
                      {"x": torch.from_numpy(x.astype(np.float32))}, info)
