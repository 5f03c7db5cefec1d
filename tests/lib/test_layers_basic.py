"""Plain layers: each equals its torch counterpart, obeys its shape law and rejects bad inputs by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from blocks import Conv2dLayer, ConvTranspose2dLayer, EmbeddingLayer, LinearLayer, ShapeError


def copy_into(block_layer: nn.Module, torch_layer: nn.Module) -> None:
    block_layer.load_state_dict(torch_layer.state_dict())


@pytest.mark.parametrize("k,stride,padding,mode", [(3, 1, None, "zeros"), (5, 2, None, "reflect"),
                                                   (4, 2, 1, "zeros"), (1, 1, 0, "circular")])
def test_conv_equals_torch_conv_on_non_square_input(k, stride, padding, mode):
    layer = Conv2dLayer(3, 5, kernel_size=k, stride=stride, padding=padding, padding_mode=mode)
    ref = nn.Conv2d(3, 5, k, stride, k // 2 if padding is None else padding, padding_mode=mode)
    copy_into(layer.conv, ref)
    x = torch.randn(2, 3, 9, 6)
    out = layer(x)
    torch.testing.assert_close(out, ref(x))
    assert tuple(out.shape) == layer.out_shape(tuple(x.shape))


def test_conv_padding_none_keeps_size_for_odd_kernels():
    for k in (1, 3, 5, 7):
        assert Conv2dLayer(2, 2, kernel_size=k)(torch.randn(1, 2, 8, 5)).shape[2:] == (8, 5)


def test_conv_state_dict_keys_and_bias_flag():
    assert set(Conv2dLayer(2, 3).state_dict()) == {"conv.weight", "conv.bias"}
    layer = Conv2dLayer(2, 3, bias=False)
    assert [n for n, _ in layer.named_parameters()] == ["conv.weight"]
    assert sum(p.numel() for p in layer.parameters()) == 3 * 2 * 9


def test_conv_transpose_dcgan_defaults_double_the_size_and_equal_torch():
    layer = ConvTranspose2dLayer(4, 3)
    ref = nn.ConvTranspose2d(4, 3, 4, 2, 1)
    copy_into(layer.conv, ref)
    x = torch.randn(2, 4, 5, 7)
    out = layer(x)
    assert out.shape == (2, 3, 10, 14)
    torch.testing.assert_close(out, ref(x))
    assert layer.out_shape(tuple(x.shape)) == (2, 3, 10, 14)


def test_conv_transpose_output_padding_law():
    layer = ConvTranspose2dLayer(2, 2, kernel_size=3, stride=2, padding=1, output_padding=1)
    x = torch.randn(1, 2, 4, 3)
    assert tuple(layer(x).shape) == layer.out_shape(tuple(x.shape)) == (1, 2, 8, 6)


def test_linear_equals_torch_linear_on_extra_dims():
    layer = LinearLayer(6, 4)
    ref = nn.Linear(6, 4)
    copy_into(layer.linear, ref)
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(layer(x), ref(x))
    assert layer.out_shape((2, 3, 6)) == (2, 3, 4)
    assert [n for n, _ in LinearLayer(6, 4, bias=False).named_parameters()] == ["linear.weight"]


def test_embedding_looks_up_rows_for_int64_and_int32():
    layer = EmbeddingLayer(5, 3)
    y = torch.tensor([4, 0, 2])
    torch.testing.assert_close(layer(y), layer.embed.weight[y])
    torch.testing.assert_close(layer(y.int()), layer.embed.weight[y])


@pytest.mark.parametrize("y,exc,words", [
    (torch.tensor([0.0, 1.0]), TypeError, "int64"),
    (torch.tensor([0, 5]), ValueError, "[0, 5)"),
    (torch.tensor([-1, 2]), ValueError, "[-1, 2]"),
    (torch.tensor([[0, 1]]), ShapeError, "(B)"),
])
def test_embedding_rejects_bad_indices_by_name(y, exc, words):
    with pytest.raises(exc) as err:
        EmbeddingLayer(5, 3)(y)
    assert str(err.value).startswith("EmbeddingLayer") and words in str(err.value)


@pytest.mark.parametrize("make,x", [
    (lambda: Conv2dLayer(3, 4), torch.randn(2, 4, 5, 5)),
    (lambda: ConvTranspose2dLayer(3, 4), torch.randn(2, 4, 5, 5)),
    (lambda: LinearLayer(3, 4), torch.randn(2, 5)),
])
def test_wrong_channels_name_the_block(make, x):
    block = make()
    with pytest.raises(ShapeError, match=f"^{type(block).__name__}"):
        block(x)


def test_conv_input_smaller_than_kernel_is_named():
    with pytest.raises(ValueError, match=r"^Conv2dLayer.*smaller than the kernel"):
        Conv2dLayer(1, 1, kernel_size=5, padding=0)(torch.randn(1, 1, 3, 8))


@pytest.mark.parametrize("make", [
    lambda: Conv2dLayer(0, 2), lambda: Conv2dLayer(2, 2, padding_mode="mirror"),
    lambda: ConvTranspose2dLayer(2, 2, stride=2, output_padding=2), lambda: LinearLayer(2, 0),
    lambda: EmbeddingLayer(0, 3),
])
def test_bad_constructor_arguments_name_the_block(make):
    with pytest.raises(ValueError, match=r"^(Conv2dLayer|ConvTranspose2dLayer|LinearLayer|EmbeddingLayer):"):
        make()


def test_reflect_padding_wider_than_the_input_is_named():
    with pytest.raises(ValueError, match=r"^Conv2dLayer.*reflect padding 2"):
        Conv2dLayer(1, 1, kernel_size=5, padding_mode="reflect")(torch.randn(1, 1, 2, 8))
