"""PNG outputs of a run: sample grids (PIL), loss curves and toy scatter plots (matplotlib, Agg).

Figures are drawn on matplotlib's ``Figure`` with an Agg canvas, never through ``pyplot``: no global figure
state, no GUI backend, safe to call from a training loop or a thread.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from blocks.shapes import check_shape

PLOTTED_PREFIXES = ("loss/", "reg/")


def _to_uint8(images: Tensor) -> np.ndarray:
    """[-1, 1] -> 0..255, clamped; (N, C, H, W) -> (N, H, W, C) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def save_grid(images: Tensor, path: str | os.PathLike, nrow: int | None = None, pad: int = 2,
              pad_value: float = 1.0) -> Path:
    """Save images as one PNG grid, row by row, ``pad`` pixels between and around the cells.

    Args:
        images: 1-channel (grey) or 3-channel (RGB) images in [-1, 1]; values outside are clamped.
        path: the PNG to write (parent folders are created).
        nrow: images per row (torchvision's convention); default ``ceil(sqrt(N))``.
        pad: padding in pixels.
        pad_value: the padding's value, in the images' [-1, 1] scale (default white).

    Returns:
        The path written. The PNG is ``ncol·(W + pad) + pad`` wide and ``rows·(H + pad) + pad`` high, and
        image ``i`` sits at row ``i // ncol``, column ``i % ncol``; unused cells are padding.

    Shape:
        images: (N, C, H, W) with C in {1, 3}; H and W may differ.
    """
    dims = check_shape(images, "N C H W", block="save_grid", name="images")
    n, c, h, w = dims["N"], dims["C"], dims["H"], dims["W"]
    if c not in (1, 3):
        raise ValueError(f"save_grid: expected 1 (grey) or 3 (RGB) channels, found {c}; "
                         "pass images[:, :3] or one channel at a time")
    if n == 0:
        raise ValueError("save_grid: expected at least one image, found none")
    if pad < 0:
        raise ValueError(f"save_grid: pad must be >= 0, found {pad}")
    if nrow is not None and nrow < 1:
        raise ValueError(f"save_grid: nrow (images per row) must be >= 1, found {nrow}; or None for a square grid")
    ncol = min(nrow or math.ceil(math.sqrt(n)), n)
    rows = math.ceil(n / ncol)
    fill = round((min(max(pad_value, -1.0), 1.0) + 1) * 127.5)
    grid = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, c), fill, dtype=np.uint8)
    for i, img in enumerate(_to_uint8(images)):
        top, left = pad + (i // ncol) * (h + pad), pad + (i % ncol) * (w + pad)
        grid[top: top + h, left: left + w] = img
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(path, format="PNG")  # uint8: mode L or RGB
    return path


def _read_series(metrics_jsonl: Path) -> dict[str, tuple[list[float], list[float]]]:
    """``{key: (steps, values)}`` of every finite scalar "loss/*" and "reg/*" entry, in file order."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    with open(metrics_jsonl, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{metrics_jsonl}:{lineno}: expected one JSON object per line, found "
                                 f"{line.strip()[:80]!r} ({err.msg})") from None
            if not isinstance(record, dict) or "step" not in record:
                raise ValueError(f"{metrics_jsonl}:{lineno}: expected an object with a 'step' entry, found "
                                 f"{line.strip()[:80]!r}")
            for key, value in record.items():
                is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if key.startswith(PLOTTED_PREFIXES) and is_number and math.isfinite(value):
                    steps, values = series.setdefault(key, ([], []))
                    steps.append(float(record["step"]))
                    values.append(float(value))
    return series


def _smooth(values: list[float], weight: float) -> np.ndarray:
    """Exponential moving average with bias correction (the first points are not pulled towards 0)."""
    out, avg = np.empty(len(values)), 0.0
    for i, v in enumerate(values):
        avg = weight * avg + (1 - weight) * v
        out[i] = avg / (1 - weight ** (i + 1))
    return out


def save_loss_curves(metrics_jsonl: str | os.PathLike, out_png: str | os.PathLike, smoothing: float = 0.9) -> Path:
    """Plot every "loss/*" and "reg/*" series of a metrics file against "step" on one axis.

    Each series is drawn twice in one colour: raw values faintly, their smoothed curve solidly; the legend
    names the series. Other entries ("metric/*", timings) are not plotted; non-finite values are skipped.

    Args:
        metrics_jsonl: the trainer's JSON-lines metrics file (one object with "step" per line).
        out_png: the PNG to write (parent folders are created).
        smoothing: weight of the exponential moving average, in [0, 1) (0: no smoothing).

    Returns:
        The path written.

    Raises:
        ValueError: a line is not a JSON object with "step", or no "loss/*" or "reg/*" value was found.
    """
    if not 0 <= smoothing < 1:
        raise ValueError(f"save_loss_curves: smoothing must be in [0, 1), found {smoothing}")
    metrics_jsonl = Path(metrics_jsonl)
    series = _read_series(metrics_jsonl)
    if not series:
        raise ValueError(f"save_loss_curves: no 'loss/*' or 'reg/*' values in {metrics_jsonl}; the trainer "
                         "writes them as e.g. {\"step\": 10, \"loss/D\": 1.2}")
    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (key, (steps, values)) in enumerate(sorted(series.items())):
        color = f"C{i % 10}"
        ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(steps, _smooth(values, smoothing), color=color, linewidth=1.6, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, format="png")
    return out_png


def save_scatter(real: Tensor, fake: Tensor, path: str | os.PathLike, centers: Tensor | None = None) -> Path:
    """Scatter real and generated 2-D points (and the mixture's centres) on equal axes, as a PNG.

    Args:
        real: points from the data.
        fake: points from the generator.
        path: the PNG to write (parent folders are created).
        centers: the mixture's means, drawn as crosses.

    Returns:
        The path written.

    Shape:
        real: (N, 2), fake: (M, 2), centers: (K, 2).
    """
    check_shape(real, "N 2", block="save_scatter", name="real")
    check_shape(fake, "M 2", block="save_scatter", name="fake")
    if centers is not None:
        check_shape(centers, "K 2", block="save_scatter", name="centers")
    fig = Figure(figsize=(5.5, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    r, f = real.detach().float().cpu().numpy(), fake.detach().float().cpu().numpy()
    ax.scatter(r[:, 0], r[:, 1], s=4, alpha=0.3, color="C0", label=f"real ({len(r)})", linewidths=0)
    ax.scatter(f[:, 0], f[:, 1], s=4, alpha=0.5, color="C3", label=f"generated ({len(f)})", linewidths=0)
    if centers is not None:
        c = centers.detach().float().cpu().numpy()
        ax.scatter(c[:, 0], c[:, 1], s=40, marker="x", color="black", label="centres")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small", markerscale=2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
