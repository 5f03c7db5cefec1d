"""Plots: grid geometry and pixel values, loss-curve parsing and smoothing, valid PNGs."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from assemble.plots import _read_series, _smooth, save_grid, save_loss_curves, save_scatter


def _png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.copy()


def test_grid_geometry_and_cell_values(tmp_path):
    # 10 non-square grey images, 4 per row -> 3 rows; image i is constant at value v_i.
    values = torch.linspace(-1, 1, 10)
    images = values.view(10, 1, 1, 1).expand(10, 1, 5, 7).clone()
    images[6, 0, 2, 3] = 3.0  # clamped to 1 -> 255
    images[6, 0, 0, 0] = -2.0  # clamped to -1 -> 0
    out = save_grid(images, tmp_path / "sub" / "grid.png", nrow=4, pad=2)
    im = _png(out)
    assert im.mode == "L"
    assert im.size == (4 * (7 + 2) + 2, 3 * (5 + 2) + 2)  # (width, height) = (38, 23)
    a = np.asarray(im)
    top, left = 2 + 1 * (5 + 2), 2 + 2 * (7 + 2)  # image 6: row 1, column 2
    cell = a[top: top + 5, left: left + 7]
    expected = round((values[6].item() + 1) * 127.5)
    assert cell[2, 3] == 255 and cell[0, 0] == 0
    rest = np.ones_like(cell, dtype=bool)
    rest[2, 3] = rest[0, 0] = False
    assert (cell[rest] == expected).all()
    assert a[0].tolist() == [255] * 38 and (a[:, left - 1] == 255).all()  # border and gaps are padding
    assert (a[2 + 2 * 7: 2 + 2 * 7 + 5, 2 + 2 * 9:] == 255).all()  # cells 10 and 11 are empty


def test_grid_rgb_channels(tmp_path):
    images = torch.full((3, 3, 4, 4), -1.0)
    images[1, 0] = 1.0  # image 1 red
    images[2, 2] = 0.0  # image 2 half blue
    im = _png(save_grid(images, tmp_path / "rgb.png", nrow=3, pad=1, pad_value=-1.0))
    assert im.mode == "RGB" and im.size == (3 * 5 + 1, 1 * 5 + 1)
    a = np.asarray(im)
    assert a[1, 1].tolist() == [0, 0, 0]
    assert a[1, 1 + 5].tolist() == [255, 0, 0]
    assert a[1, 1 + 10].tolist() == [0, 0, 128]
    assert a[0, 0].tolist() == [0, 0, 0]  # pad_value -1 -> black


def test_grid_default_is_square(tmp_path):
    im = _png(save_grid(torch.zeros(9, 1, 8, 8), tmp_path / "sq.png", pad=0))
    assert im.size == (24, 24)
    im = _png(save_grid(torch.zeros(1, 1, 8, 6), tmp_path / "one.png", nrow=5, pad=2))
    assert im.size == (6 + 4, 8 + 4)  # nrow larger than N: one row of N cells


def test_grid_errors(tmp_path):
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3 \\(RGB\\) channels, found 2"):
        save_grid(torch.zeros(2, 2, 4, 4), tmp_path / "x.png")
    with pytest.raises(ValueError, match="nrow"):
        save_grid(torch.zeros(2, 1, 4, 4), tmp_path / "x.png", nrow=0)
    with pytest.raises(ValueError, match="shape"):
        save_grid(torch.zeros(1, 4, 4), tmp_path / "x.png")


def _write_metrics(path, n=200):
    with open(path, "w") as f:
        for step in range(n):
            rec = {"step": step, "loss/D": 1.0 + math.sin(step / 10), "loss/G": 2.0 - step / n,
                   "metric/modes": 8, "time/step": 0.1}
            if step % 16 == 0:
                rec["reg/r1"] = 0.5
            f.write(json.dumps(rec) + "\n")
        f.write("\n")
        f.write(json.dumps({"step": n, "loss/D": float("nan"), "flag": True}) + "\n")


def test_loss_curves_series_and_png(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    _write_metrics(metrics)
    series = _read_series(metrics)
    assert sorted(series) == ["loss/D", "loss/G", "reg/r1"]  # metric/* and time/* are not plotted
    assert series["reg/r1"][0] == [float(s) for s in range(0, 200, 16)]
    assert len(series["loss/D"][0]) == 200  # the NaN at step 200 is skipped
    im = _png(save_loss_curves(metrics, tmp_path / "plots" / "loss.png"))
    assert im.size == (800, 450)
    assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 20  # lines were drawn


def test_smoothing_is_bias_corrected():
    out = _smooth([2.0, 2.0, 2.0, 4.0], 0.9)
    assert out[:3] == pytest.approx([2.0, 2.0, 2.0])  # no pull towards 0 at the start
    assert 2.0 < out[3] < 4.0
    assert _smooth([1.0, 5.0], 0.0).tolist() == [1.0, 5.0]


def test_loss_curves_errors(tmp_path):
    only_metrics = tmp_path / "m.jsonl"
    only_metrics.write_text(json.dumps({"step": 1, "metric/fid": 3.0}) + "\n")
    with pytest.raises(ValueError, match="no 'loss/\\*' or 'reg/\\*' values"):
        save_loss_curves(only_metrics, tmp_path / "x.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"step": 1, "loss/D": 1.0}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        save_loss_curves(bad, tmp_path / "x.png")
    no_step = tmp_path / "nostep.jsonl"
    no_step.write_text(json.dumps({"loss/D": 1.0}) + "\n")
    with pytest.raises(ValueError, match="'step'"):
        save_loss_curves(no_step, tmp_path / "x.png")


def test_scatter_png(tmp_path):
    angles = torch.arange(8) * (2 * math.pi / 8)
    centers = torch.stack([2 * angles.cos(), 2 * angles.sin()], dim=1)
    real = centers.repeat(50, 1) + 0.02 * torch.randn(400, 2)
    fake = centers[:3].repeat(30, 1) + 0.1 * torch.randn(90, 2)
    im = _png(save_scatter(real, fake, tmp_path / "s" / "scatter.png", centers=centers))
    assert im.size == (550, 550)
    control = _png(save_scatter(real, fake[:0], tmp_path / "control.png", centers=centers))

    def reddish(image):  # generated points are drawn in C3 (red), real ones in C0 (blue)
        rgb = np.asarray(image.convert("RGB")).astype(int)
        return int((rgb[..., 0] - rgb[..., 1] > 60).sum())

    assert reddish(im) > 200 > 5 * reddish(control)  # the control has only the legend's marker
    with pytest.raises(ValueError, match="fake"):
        save_scatter(real, torch.zeros(5, 3), tmp_path / "x.png")
