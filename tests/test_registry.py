"""The registry and the shape checks: decorator registration, lookups, pinned error messages."""

from __future__ import annotations

import re

import pytest
import torch

import blocks
from blocks import Registry, ShapeError, UnknownKeyError, check_shape


def test_registration_get_create_list_describe():
    reg = Registry("widget")

    @reg.register("tiny_widget", paper="Nobody 2024", consumes=("w",), batch_coupled=True)
    class TinyWidget(torch.nn.Module):
        """A widget.

        Shape:
            - x: (B, C)
        """

        def __init__(self, width: int = 3):
            super().__init__()
            self.width = width

    assert reg.get("tiny_widget") is TinyWidget
    assert reg.create("tiny_widget", width=5).width == 5
    assert reg.list("tiny*") == ["tiny_widget"] and reg.list("nope*") == []
    entry = reg.entry("tiny_widget")
    assert (entry.kind, entry.paper, entry.consumes, entry.batch_coupled) == ("widget", "Nobody 2024", ("w",), True)
    assert TinyWidget.consumes == ("w",) and TinyWidget.registry_key == "tiny_widget"
    text = reg.describe("tiny_widget")
    assert "width: int = 3" in text and "consumes:  w" in text and "batch-coupled: yes" in text and "A widget." in text


def test_duplicate_key_raises():
    reg = Registry("widget")
    reg.register("a")(type("A", (), {}))
    with pytest.raises(ValueError, match=r"widget 'a' is already registered \(by .*A\)"):
        reg.register("a")(type("B", (), {}))


def test_keys_must_be_snake_case():
    with pytest.raises(ValueError, match="widget key 'BadKey' is not snake_case"):
        Registry("widget").register("BadKey")


def test_unknown_key_names_kind_key_closest_three_and_how_to_list():
    with pytest.raises(UnknownKeyError) as info:
        blocks.NORMS.get("pixelnorm")
    assert str(info.value) == ("unknown norm 'pixelnorm'. Closest: pixel_norm, spectral_norm, instance_norm. "
                               "List them all with blocks.list_blocks('norm') or `ganforge list norm`.")
    assert info.value.suggestions[0] == "pixel_norm"
    with pytest.raises(UnknownKeyError, match=re.escape("unknown block 'modulatedconv'. Closest: modulated_conv")):
        blocks.find_block("modulatedconv")


def test_import_registers_every_kind_eagerly():
    counts = {k: len(r) for k, r in blocks.KINDS.items()}
    assert all(n > 0 for n in counts.values()), counts
    assert sum(counts[r.kind] for r in blocks.MODULE_KINDS) >= 60


def test_check_shape_binds_letters_and_names_the_block():
    dims = check_shape(torch.zeros(2, 3, 4, 5), "B C H W", C=3)
    assert dims == {"B": 2, "C": 3, "H": 4, "W": 5}
    with pytest.raises(ShapeError) as info:
        check_shape(torch.zeros(2, 4, 4, 5), "B C H W", block="MyBlock", C=3)
    assert str(info.value) == ("MyBlock: x should have shape (B, C=3, H, W) but has shape (2, 4, 4, 5): "
                               "C is 4, expected 3")
    with pytest.raises(ShapeError, match=re.escape("MyBlock: w should have shape (B=2, D) but has shape (3, 8): "
                                                   "B is 3, expected 2")):
        check_shape(torch.zeros(3, 8), "B D", block="MyBlock", name="w", B=2)
    with pytest.raises(ShapeError, match=re.escape("expected 4 dims, got 3")):
        check_shape(torch.zeros(2, 3, 4), "B C H W", block="MyBlock")
    with pytest.raises(TypeError, match=re.escape("MyBlock: x should be a torch.Tensor of shape (B C), got list")):
        check_shape([1, 2], "B C", block="MyBlock")
    assert check_shape(torch.zeros(2, 3, 4, 5, 6), "B C ...") == {"B": 2, "C": 3}


def test_checks_can_be_switched_off():
    with blocks.shape_checks(False):
        assert check_shape(torch.zeros(2), "B C H W") == {}
    with pytest.raises(ShapeError):
        check_shape(torch.zeros(2), "B C H W")


# Pinned messages of real blocks for wrong rank, wrong channels and wrong conditioning shape.
@pytest.mark.parametrize("make, args, kwargs, message", [
    (lambda: blocks.PixelNorm(), (torch.zeros(3),), {},
     "PixelNorm: x should have shape (B, C, ...) but has shape (3,): expected at least 2 dims, got 1"),
    (lambda: blocks.ModulatedConv2d(4, 8, w_dim=6, kernel_size=3), (torch.zeros(2, 5, 8, 8),), {"w": torch.zeros(2, 6)},
     "ModulatedConv2d: x should have shape (B, C=4, H, W) but has shape (2, 5, 8, 8): C is 5, expected 4"),
    (lambda: blocks.ModulatedConv2d(4, 8, w_dim=6, kernel_size=3), (torch.zeros(2, 4, 8, 8),), {"w": torch.zeros(2, 7)},
     "ModulatedConv2d: w should have shape (B=2, D=6) but has shape (2, 7): D is 7, expected 6"),
    (lambda: blocks.SPADE(8, 3), (torch.zeros(2, 8, 4, 4),), {"seg": torch.zeros(2, 4, 4)},
     "SPADE: seg should have shape"),
])
def test_block_errors_are_pinned(make, args, kwargs, message):
    block = make()
    with pytest.raises((ShapeError, TypeError, ValueError)) as info:
        block(*args, **kwargs)
    assert str(info.value).startswith(message), str(info.value)
