"""Procedurally drawn scenes with segmentation maps (for SPADE, pix2pix and class-conditional recipes).

A scene is a flat background colour and 1..``max_shapes`` flat-coloured shapes of random type, size, place
and colour, drawn in order (later shapes cover earlier ones; no antialiasing, so every pixel has exactly one
owner). The segmentation map holds, per pixel, the class of the shape visible there: 0 is background, class
``t + 1`` is shape type ``t`` of :data:`SHAPE_TYPES`. The image label is the type of the shape with the most
visible pixels. Shape colours differ from the background by at least :data:`MIN_CONTRAST` in some channel, so
the background is recoverable from the image alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import FieldSpec, GanDataset, parse_size

SHAPE_TYPES = ("rectangle", "ellipse", "triangle", "diamond", "cross", "ring")
MIN_CONTRAST = 48
MIN_SIZE = 8


@dataclass(frozen=True)
class Shape:
    """One drawn shape: its type index, RGB colour, and the pixels where it is visible (bool (H, W))."""

    type: int
    colour: tuple[int, int, int]
    visible: np.ndarray


@dataclass(frozen=True)
class Scene:
    """A drawn scene: ``image`` uint8 (3, H, W), ``seg`` uint8 (H, W) classes, background colour, shapes."""

    image: np.ndarray
    seg: np.ndarray
    background: tuple[int, int, int]
    shapes: list[Shape]

    @property
    def label(self) -> int:
        """Type index of the shape with the most visible pixels (the earliest drawn on a tie)."""
        areas = [int(s.visible.sum()) for s in self.shapes]
        return self.shapes[int(np.argmax(areas))].type


def _mask(kind: str, ys: np.ndarray, xs: np.ndarray, box: tuple[float, float, float, float],
          rng: np.random.Generator) -> np.ndarray:
    """Pixels (by centre) inside a shape of type ``kind`` filling ``box = (top, left, height, width)``."""
    top, left, h, w = box
    cy, cx = top + h / 2, left + w / 2
    u, v = (xs - cx) / (w / 2), (ys - cy) / (h / 2)              # box -> [-1, 1]², broadcast to (H, W)
    if kind == "rectangle":
        return (np.abs(u) <= 1) & (np.abs(v) <= 1)
    if kind == "ellipse":
        return u**2 + v**2 <= 1
    if kind == "diamond":
        return np.abs(u) + np.abs(v) <= 1
    if kind == "cross":
        return ((np.abs(u) <= 1) & (np.abs(v) <= 1 / 3)) | ((np.abs(u) <= 1 / 3) & (np.abs(v) <= 1))
    if kind == "ring":
        r2 = u**2 + v**2
        return (r2 <= 1) & (r2 >= 0.3)
    # triangle: apex on the top (or bottom) edge at a random place, base along the opposite edge
    apex, flip = rng.uniform(-1, 1), rng.integers(0, 2) * 2 - 1
    v = v * flip
    p = [(apex, -1.0), (-1.0, 1.0), (1.0, 1.0)]
    inside = np.ones(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    for (ax, ay), (bx, by) in zip(p, p[1:] + p[:1]):
        # apex -> bottom-left -> bottom-right turns counter-clockwise on screen (v points down): inside is <= 0
        inside &= (bx - ax) * (v - ay) - (by - ay) * (u - ax) <= 0
    return inside


def _colour(rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
    while True:
        c = rng.integers(0, 256, size=3)
        if avoid is None or np.abs(c - avoid).max() >= MIN_CONTRAST:
            return c


def draw_scene(rng: np.random.Generator, height: int, width: int, n_types: int = 3, max_shapes: int = 4) -> Scene:
    """Draw one scene.

    Args:
        rng: numpy random generator (the only source of randomness).
        height: image height (>= 8).
        width: image width (>= 8).
        n_types: use the first ``n_types`` entries of :data:`SHAPE_TYPES`.
        max_shapes: at most this many shapes (at least one).

    Returns:
        The :class:`Scene`.
    """
    ys = np.arange(height, dtype=np.float64)[:, None] + 0.5      # (H, 1) pixel centres
    xs = np.arange(width, dtype=np.float64)[None, :] + 0.5       # (1, W)
    background = _colour(rng)
    owner = np.zeros((height, width), dtype=np.int64)          # 0: background, i + 1: shape i visible here
    types, colours = [0], [background]                          # per owner value: seg class and colour
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        kind = int(rng.integers(0, n_types))
        while True:                                              # redraw the rare shape too thin to cover a pixel
            h, w = rng.uniform(0.25, 0.6) * height, rng.uniform(0.25, 0.6) * width
            box = (rng.uniform(0, height - h), rng.uniform(0, width - w), h, w)
            mask = _mask(SHAPE_TYPES[kind], ys, xs, box, rng)
            if mask.any():
                break
        np.copyto(owner, len(types), where=mask)                 # later shapes cover earlier ones
        types.append(kind + 1)
        colours.append(_colour(rng, avoid=background))
    image = np.stack(colours).astype(np.uint8)[owner].transpose(2, 0, 1)   # (3, H, W)
    seg = np.asarray(types, dtype=np.uint8)[owner]                          # (H, W)
    shapes = [Shape(t - 1, tuple(int(v) for v in c), owner == i + 1)
              for i, (t, c) in enumerate(zip(types[1:], colours[1:]))]
    return Scene(np.ascontiguousarray(image), seg, tuple(int(v) for v in background), shapes)


def shapes(*, size: int | tuple[int, int] | None = None, seed: int = 0, n: int = 2000, n_classes: int = 4,
           max_shapes: int = 4) -> GanDataset:
    """Scenes of coloured shapes with their segmentation maps.

    Args:
        size: image size, an int or ``(H, W)``, each side >= 8 (default 64).
        seed: random seed.
        n: number of scenes.
        n_classes: segmentation classes: background + ``n_classes - 1`` shape types (2..7; default 4:
            rectangle, ellipse, triangle).
        max_shapes: at most this many shapes per scene.

    Returns:
        A dataset with fields ``img`` (image (3, H, W)), ``seg`` (label_map (n_classes, H, W)) and ``label``
        (class(n_classes - 1): the type of the largest visible shape).
    """
    h, w = parse_size(64 if size is None else size, "shapes")
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"shapes: each side must be >= {MIN_SIZE} pixels, found {(h, w)}; e.g. set data.size: 32")
    if not isinstance(n_classes, int) or not 2 <= n_classes <= len(SHAPE_TYPES) + 1:
        raise ValueError(f"shapes: n_classes (background + shape types) must be 2..{len(SHAPE_TYPES) + 1}, "
                         f"found {n_classes!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"shapes: n (number of scenes) must be a positive int, found {n!r}")
    if not isinstance(max_shapes, int) or isinstance(max_shapes, bool) or max_shapes < 1:
        raise ValueError(f"shapes: max_shapes must be a positive int, found {max_shapes!r}")
    rng = np.random.default_rng(seed)
    n_types = n_classes - 1
    images = np.empty((n, 3, h, w), dtype=np.uint8)
    segs = np.empty((n, h, w), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        scene = draw_scene(rng, h, w, n_types, max_shapes)
        images[i], segs[i], labels[i] = scene.image, scene.seg, scene.label
    info = {"source": "shapes", "n_samples": n, "size": [h, w], "n_classes": n_classes, "seed": seed,
            "classes": ["background", *SHAPE_TYPES[:n_types]], "max_shapes": max_shapes}
    fields = {"img": FieldSpec("image", (3, h, w)), "seg": FieldSpec("label_map", (n_classes, h, w), n_classes),
              "label": FieldSpec("class", (), n_types)}
    data = {"img": torch.from_numpy(images), "seg": torch.from_numpy(segs), "label": torch.from_numpy(labels)}
    return GanDataset("shapes", fields, data, info)
