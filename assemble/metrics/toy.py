"""Mode coverage and sample quality on toy Gaussian mixtures (ring of 8, grid of 25).

The evaluation of VEEGAN (Srivastava et al., 2017, "Synthetic dataset" experiments) that PacGAN (Lin et al.,
2018, Table 1) reuses for its 2-D ring and grid:

    "count a sample as high quality if it is within three standard deviations of the nearest mode [...]
    report the number of modes captured as the number of mixture components whose mean is nearest to at
    least one high quality sample" (VEEGAN; 2,500 samples per model, averaged over five runs).

PacGAN's released metric code (``fjxmlzn/PacGAN``, ``synthetic_data_experiments/PacGAN/pacgan/extensions.py``,
``MetricLogger``) pins the details down: each sample goes to the mode nearest in std-normalised distance, it
is high quality when that distance is strictly below the threshold, a mode counts as captured when its count
of high-quality samples is non-zero, and the high-quality percentage is over all samples. The unrolled-GAN
paper (Metz et al., 2017) shows the same ring of 8 only qualitatively, so it adds no rule.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from blocks.shapes import check_shape


def mode_stats(
    samples: Tensor, centers: Tensor, std: float, threshold: float = 3.0, min_count: int = 1
) -> dict[str, Any]:
    """Modes captured and fraction of high-quality samples, by VEEGAN's and PacGAN's rule.

    A sample belongs to its nearest centre (Euclidean distance; the mixture is isotropic with a common
    ``std``). It is high quality when that distance is below ``threshold * std``. A mode is covered when at
    least ``min_count`` high-quality samples belong to it (VEEGAN and PacGAN: 1).

    Args:
        samples: generated points.
        centers: the mixture's means (the dataset's ``info["centers"]``).
        std: the standard deviation of every component (the dataset's ``info["std"]``).
        threshold: how many standard deviations count as "near" (VEEGAN: 3 for 2-D data, 10 for 1200-D).
        min_count: high-quality samples a mode needs to count as covered.

    Returns:
        ``{"modes_covered": int, "n_modes": K, "high_quality_fraction": float, "per_mode_counts": list}``,
        where ``per_mode_counts[k]`` is the number of high-quality samples whose nearest centre is ``k``.

    Shape:
        samples: (N, D), centers: (K, D); D is 2 for the toy sets.

    Example:
        >>> centers = torch.tensor([[0.0, 0.0], [4.0, 0.0]])
        >>> stats = mode_stats(torch.tensor([[0.1, 0.0], [2.0, 0.0]]), centers, std=0.1)
        >>> stats["modes_covered"], stats["high_quality_fraction"], stats["per_mode_counts"]
        (1, 0.5, [1, 0])
    """
    dims = check_shape(samples, "N D", block="mode_stats", name="samples")
    check_shape(centers, "K D", block="mode_stats", name="centers", D=dims["D"])
    if samples.shape[0] == 0:
        raise ValueError("mode_stats: expected at least one sample, found none; pass generated points (N, D)")
    if centers.shape[0] == 0:
        raise ValueError("mode_stats: expected at least one centre, found none; pass the dataset's info['centers']")
    if not std > 0:
        raise ValueError(f"mode_stats: std must be > 0, found {std}; pass the dataset's info['std']")
    if not threshold > 0:
        raise ValueError(f"mode_stats: threshold must be > 0 (in standard deviations), found {threshold}")
    if min_count < 1:
        raise ValueError(f"mode_stats: min_count must be >= 1, found {min_count}")
    x = samples.detach().to("cpu", torch.float64)
    mu = centers.detach().to("cpu", torch.float64)
    # The direct (non-matmul) formula keeps distances exact for points on a threshold boundary.
    dist = torch.cdist(x, mu, compute_mode="donot_use_mm_for_euclid_dist")  # (N, K)
    nearest_dist, nearest = dist.min(dim=1)  # (N,), (N,)
    good = nearest_dist < threshold * std  # (N,)
    counts = torch.bincount(nearest[good], minlength=mu.shape[0])  # (K,)
    return {
        "modes_covered": int((counts >= min_count).sum()),
        "n_modes": int(mu.shape[0]),
        "high_quality_fraction": float(good.sum()) / x.shape[0],
        "per_mode_counts": [int(c) for c in counts],
    }
