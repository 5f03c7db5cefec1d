"""Progressive networks in the assembler: inputs whose size follows the stage, and parameter totals that
count every stage's blocks (not only those that run at the stage shown)."""

import pytest
import torch

import assemble
from assemble.inputs import parse_input
from assemble.show import totals
from blocks import ShapeError


def test_stage_dependent_input_sizes():
    spec = parse_input("img", "image(3, 4 * 2 ** stage, 4 * 2 ** stage)", {}, stages=3)
    assert spec.stage_shapes == ((3, 4, 4), (3, 8, 8), (3, 16, 16))
    assert spec.shape == (3, 16, 16)  # the last stage's
    assert spec.shape_at(0) == (3, 4, 4) and spec.shape_at(None) == (3, 16, 16)
    assert tuple(spec.meta(2, stage=1).shape) == (2, 3, 8, 8)
    plain = parse_input("img", "image(3, n, n)", {"n": 8}, stages=3)
    assert plain.stage_shapes == () and plain.shape_at(1) == (3, 8, 8)
    with pytest.raises(ValueError, match="declares no stages"):
        parse_input("img", "image(3, 4 * 2 ** stage, 4 * 2 ** stage)", {})


def _toy() -> dict:
    """Two stages: D reads 4x4 or 8x8 images; each stage has its own 1x1 conv (only one runs per stage)."""
    return {
        "name": "toy",
        "generator": {"inputs": {"z": "latent(8)"}, "stages": 2, "steps": [
            {"linear": {"out_features": 16}}, {"reshape": {"shape": [1, 4, 4]}},
            {"conv": {"out_channels": 3, "kernel_size": 1, "if": "$stage == 0"}},
            {"do": ["nearest_up", {"conv": {"out_channels": 3, "kernel_size": 1}}], "if": "$stage >= 1"}]},
        "discriminator": {"inputs": {"img": "image(3, 4 * 2 ** stage, 4 * 2 ** stage)"}, "stages": 2, "steps": [
            {"conv": {"out_channels": 2, "kernel_size": 1, "if": "$stage == 1"}},
            {"avg_pool_down": {"if": "$stage == 1"}},
            {"conv": {"out_channels": 2, "kernel_size": 1, "if": "$stage == 0"}},
            "flatten", {"linear": {"out_features": 1}}]},
    }


def test_totals_count_every_stage_and_d_reads_the_stage_size():
    g_all = 8 * 16 + 16 + 2 * (1 * 3 + 3)
    d_all = 2 * (3 * 2 + 2) + 2 * 16 + 1
    for stage in (0, 1):
        _, _, plans = assemble.plan(_toy(), stage=stage)
        assert totals(plans["generator"])["params"] == g_all
        assert totals(plans["discriminator"])["params"] == d_all
        assert sum(r.params for r in plans["generator"].rows) < g_all  # one of the two convs is not shown
    gan = assemble.build(_toy())
    assert sum(p.numel() for p in gan.G.parameters()) == g_all
    assert sum(p.numel() for p in gan.D.parameters()) == d_all
    for stage, size in ((0, 4), (1, 8)):
        gan.G.set_stage(stage)
        gan.D.set_stage(stage)
        img = gan.G(torch.randn(2, 8))
        assert img.shape == (2, 3, size, size)
        assert gan.D(img).shape == (2, 1)
    with pytest.raises(ShapeError, match="img"):
        gan.D(torch.randn(2, 3, 4, 4))  # stage 1 reads 8x8 images
