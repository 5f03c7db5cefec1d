"""ProGAN toRGB / fromRGB: the exact parameter layout (weight + bias) and the authors' formulas
(equalized 1x1 conv; toRGB gain 1 and linear; fromRGB He gain √2 in the weight, leaky ReLU 0.2, no
gain after it)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from blocks import STRUCTURE, FromRGB, ShapeError, ToRGB


def layout(block):
    return {n: tuple(p.shape) for n, p in block.named_parameters()}


def test_to_rgb_layout_and_formula():
    block = STRUCTURE.create("to_rgb", in_channels=16).double()
    assert isinstance(block, ToRGB)
    assert layout(block) == {"weight": (3, 16, 1, 1), "bias": (3,)}
    assert block.bias.eq(0).all()
    with torch.no_grad():
        block.bias.normal_()
    x = torch.randn(2, 16, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(block(x), F.conv2d(x, block.weight / math.sqrt(16), block.bias))
    assert ToRGB(16, out_channels=1)(x.float()).shape == (2, 1, 5, 3)


def test_from_rgb_layout_and_formula():
    block = STRUCTURE.create("from_rgb", in_channels=3, out_channels=8).double()
    assert isinstance(block, FromRGB)
    assert layout(block) == {"weight": (8, 3, 1, 1), "bias": (8,)}
    with torch.no_grad():
        block.bias.normal_()
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    pre = F.conv2d(x, block.weight * math.sqrt(2) / math.sqrt(3), block.bias)
    torch.testing.assert_close(block(x), F.leaky_relu(pre, 0.2))


def test_parameter_counts_match_progan():
    # ProGAN 1024² generator: toRGB_lod0 takes 16 channels; discriminator fromRGB_lod0 makes 16
    assert sum(p.numel() for p in ToRGB(16).parameters()) == 16 * 3 + 3
    assert sum(p.numel() for p in FromRGB(3, 16).parameters()) == 3 * 16 + 16
    assert sum(p.numel() for p in ToRGB(512).parameters()) == 512 * 3 + 3


def test_rgb_blocks_check_channels():
    with pytest.raises(ShapeError, match=r"^FromRGB"):
        FromRGB(3, 8)(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ShapeError, match=r"^ToRGB"):
        ToRGB(8)(torch.zeros(1, 3, 2, 2))
