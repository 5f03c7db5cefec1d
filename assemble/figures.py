"""Figures of what a trained network does inside: where SAGAN's attention looks.

``attention_figure`` draws, for a few generated images, the attention weights of G's first self-attention
layer at a few query positions (Zhang et al. 2019, fig. 1 and 5): each row is one sample, the first cell the
image with the query points marked, then one cell per query point with its weights over the image (red, scaled
to the largest weight of that query) on a dimmed copy of the image and the query point in green.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blocks.attention.self_attention import SelfAttention

QUERIES = ((0.3, 0.3), (0.5, 0.7), (0.75, 0.4))  # (row, column) as fractions of the attention map


def first_attention(model: nn.Module) -> SelfAttention | None:
    return next((m for m in model.modules() if isinstance(m, SelfAttention)), None)


@torch.no_grad()
def attention_maps(model: nn.Module, inputs: Mapping[str, Tensor], output: str,
                   queries: Sequence[tuple[float, float]] = QUERIES) -> tuple[Tensor, Tensor, list[tuple[int, int]]]:
    """Run ``model`` (a Network) on ``inputs`` and read its first self-attention layer's weights.

    Returns:
        images (B, C, H, W), the weights of each query over the attention map's positions upsampled to the
        image (B, Q, H, W), each in [0, 1] (divided by its maximum), and the queries' (row, column) in the image.
    """
    layer = first_attention(model)
    if layer is None:
        raise ValueError(f"{type(model).__name__} has no self_attention layer")
    seen: dict[str, Tensor] = {}
    handle = layer.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    try:
        images = model.run(**inputs)[output].float()
    finally:
        handle.remove()
    x = seen["x"]  # (B, C, h, w)
    h, w = x.shape[-2:]
    beta = layer.attention(x).float()  # (B, h·w, M)
    kh, kw = (h // 2, w // 2) if layer.pool else (h, w)
    H, W = images.shape[-2:]
    maps, points = [], []
    for qy, qx in queries:
        i, j = min(int(qy * h), h - 1), min(int(qx * w), w - 1)
        m = beta[:, i * w + j].reshape(-1, 1, kh, kw)
        m = F.interpolate(m, size=(H, W), mode="nearest")
        maps.append(m / m.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12))
        points.append((int((i + 0.5) * H / h), int((j + 0.5) * W / w)))
    return images, torch.cat(maps, dim=1), points


def attention_figure(model: nn.Module, inputs: Mapping[str, Tensor], output: str, path: str | Path,
                     queries: Sequence[tuple[float, float]] = QUERIES) -> Path:
    """Save the figure described in the module's docstring; returns its path."""
    from .plots import save_grid

    images, maps, points = attention_maps(model, inputs, output, queries)
    rgb = images.clamp(-1, 1).expand(-1, 3, -1, -1) if images.shape[1] == 1 else images[:, :3].clamp(-1, 1)
    green = torch.tensor([-1.0, 1.0, -1.0]).view(3, 1)
    cells = []
    for b in range(rgb.shape[0]):
        marked = rgb[b].clone()
        for y, x in points:
            marked[:, y, x] = green[:, 0]
        cells.append(marked)
        for q, (y, x) in enumerate(points):
            dim = (rgb[b] + 1) / 2 * 0.4  # the image, dimmed, in [0, 0.4]
            cell = dim.clone()
            cell[0] = dim[0] + 0.6 * maps[b, q]
            cell = cell * 2 - 1
            cell[:, y, x] = green[:, 0]
            cells.append(cell)
    return save_grid(torch.stack(cells), path, nrow=1 + len(points))
