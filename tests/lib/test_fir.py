"""FIR resampling and the resample blocks: textbook values, an independent direct-sum oracle for
upfirdn2d, DC preservation, down(up(x)) of a smooth image, fast == reference (values and gradients),
the fused up-conv against upsample-then-conv, and the shape laws of every resampler."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from blocks import (
    AvgPoolDown,
    BilinearUp,
    Blur,
    BlurDown,
    BlurUp,
    ConvTransposeUp,
    NearestResize,
    NearestUp,
    PixelShuffleUp,
    PixelUnshuffleDown,
    ShapeError,
    StridedConvDown,
    UpConv,
    conv2d_resample,
    downsample2d,
    filter2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

F4 = setup_filter((1, 3, 3, 1))


def direct_upfirdn2d(x, f, up, down, pad, flip_filter=False, gain=1.0):
    """scipy-style upfirdn by explicit sums: zero insertion, zero padding (crop when negative),
    out[i, j] = Σ_{a,b} z[i·d + a, j·d + b] · f[fh-1-a, fw-1-b] (convolution), subsample."""
    (upx, upy), (downx, downy) = up, down
    px0, px1, py0, py1 = pad
    B, C, H, W = x.shape
    z = torch.zeros(B, C, H * upy, W * upx, dtype=x.dtype)
    z[:, :, ::upy, ::upx] = x
    zp = torch.zeros(B, C, H * upy + max(py0, 0) + max(py1, 0), W * upx + max(px0, 0) + max(px1, 0),
                     dtype=x.dtype)
    zp[:, :, max(py0, 0): max(py0, 0) + H * upy, max(px0, 0): max(px0, 0) + W * upx] = z
    zp = zp[:, :, max(-py0, 0): zp.shape[2] - max(-py1, 0), max(-px0, 0): zp.shape[3] - max(-px1, 0)]
    k = (f if flip_filter else f.flip((0, 1))).to(x.dtype) * gain
    fh, fw = k.shape
    oh, ow = zp.shape[2] - fh + 1, zp.shape[3] - fw + 1
    out = torch.zeros(B, C, oh, ow, dtype=x.dtype)
    for a, b in itertools.product(range(fh), range(fw)):
        out += zp[:, :, a: a + oh, b: b + ow] * k[a, b]
    return out[:, :, ::downy, ::downx]


# ---- setup_filter ---------------------------------------------------------------------------------


def test_setup_filter_textbook():
    f = setup_filter((1, 3, 3, 1))
    expected = torch.tensor([1.0, 3, 3, 1])
    torch.testing.assert_close(f, torch.outer(expected, expected) / 64)
    assert f.sum().item() == pytest.approx(1.0)
    assert setup_filter((1, 2), normalize=False, gain=3).tolist() == [[3, 6], [6, 12]]
    asym = torch.tensor([[1.0, 2], [3, 4]])
    assert setup_filter(asym, normalize=False, flip=True).tolist() == [[4, 3], [2, 1]]
    assert setup_filter(None).tolist() == [[1.0]]
    with pytest.raises(ValueError, match=r"^setup_filter"):
        setup_filter(torch.ones(2, 2, 2))


# ---- upfirdn2d: conventions and the oracle ----------------------------------------------------------


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_impulse_response_is_the_filter(impl):
    """flip_filter=False is convolution: a unit impulse returns f itself; True (correlation) f flipped."""
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x = torch.ones(1, 1, 1, 1)
    conv = upfirdn2d(x, f, padding=1, impl=impl)[0, 0]
    corr = upfirdn2d(x, f, padding=1, flip_filter=True, impl=impl)[0, 0]
    assert conv.tolist() == [[1, 2], [3, 4]]
    assert corr.tolist() == [[4, 3], [2, 1]]


CASES = [
    # (taps, up, down, padding, H, W)
    ((1, 3, 3, 1), (2, 2), (1, 1), (2, 1, 2, 1), 5, 7),
    ((1, 3, 3, 1), (1, 1), (2, 2), (1, 1, 1, 1), 7, 6),
    ((1, 3, 3, 1), (1, 1), (1, 1), (2, 1, 2, 1), 3, 8),
    ((1, 2, 1), (3, 1), (1, 2), (0, 3, 1, -1), 4, 5),
    ((1, 3, 3, 1), (2, 2), (2, 2), (0, 0, 3, 0), 6, 3),
    ((1, 4, 6, 4, 1), (1, 1), (3, 3), (-1, 2, 2, 0), 9, 7),
    ((1,), (2, 3), (1, 1), (0, 0, 0, 0), 2, 3),
]


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("taps,up,down,pad,H,W", CASES)
def test_upfirdn2d_matches_direct_sums(impl, flip, taps, up, down, pad, H, W):
    torch.manual_seed(0)
    f = setup_filter(taps) + 0.01 * torch.rand(len(taps), len(taps))  # asymmetric: flips matter
    x = torch.randn(2, 3, H, W, dtype=torch.float64)
    want = direct_upfirdn2d(x, f, up, down, pad, flip, gain=1.7)
    got = upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=1.7, impl=impl)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("taps,up,down,pad,H,W", CASES)
def test_upfirdn2d_fast_gradient_equals_ref(taps, up, down, pad, H, W):
    f = setup_filter(taps)
    x = torch.randn(2, 3, H, W, dtype=torch.float64)
    grads = []
    for impl in ("ref", "fast"):
        xi = x.clone().requires_grad_()
        y = upfirdn2d(xi, f, up=up, down=down, padding=pad, impl=impl)
        (y * torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape).sin()).sum().backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[1], grads[0])


def test_upfirdn2d_gradcheck_fast():
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    for up, down in [(2, 1), (1, 2), (1, 1)]:
        assert torch.autograd.gradcheck(lambda t, u=up, d=down: upfirdn2d(t, F4, u, d, 1, impl="fast"), (x,))


def test_upfirdn2d_rejects_bad_input():
    with pytest.raises(ValueError, match=r"^upfirdn2d"):
        upfirdn2d(torch.zeros(2, 3, 4), F4)
    with pytest.raises(ValueError, match=r"^upfirdn2d"):
        upfirdn2d(torch.zeros(1, 1, 2, 2), F4)  # smaller than the filter
    with pytest.raises(ValueError, match=r"^upfirdn2d"):
        upfirdn2d(torch.zeros(1, 1, 4, 4), F4, up=0)
    with pytest.raises(ValueError, match=r"^upfirdn2d"):
        upfirdn2d(torch.zeros(1, 1, 4, 4), F4, impl="cuda")


# ---- helpers: shapes, DC gain, smooth round trip --------------------------------------------------


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("H,W", [(6, 6), (5, 7), (7, 4)])
def test_helper_shapes(impl, H, W):
    x = torch.randn(1, 2, H, W)
    assert upsample2d(x, F4, impl=impl).shape == (1, 2, 2 * H, 2 * W)
    assert filter2d(x, F4, impl=impl).shape == (1, 2, H, W)
    assert downsample2d(x, F4, impl=impl).shape == (1, 2, H // 2, W // 2)


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_constant_image_is_preserved_away_from_the_border(impl):
    """The filter sums to 1 and upsample2d's gain is up² = 4: DC passes with gain 1 (zero padding only
    touches the pixels within the filter's reach of the border)."""
    x = torch.full((1, 2, 8, 10), 3.0)
    up = upsample2d(x, F4, impl=impl)
    blur = filter2d(x, F4, impl=impl)
    down = downsample2d(x, F4, impl=impl)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))
    torch.testing.assert_close(blur[..., 2:-2, 2:-2], torch.full_like(blur[..., 2:-2, 2:-2], 3.0))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 3.0))
    # ... and without the up² gain the upsampled image would be 4x too dark:
    plain = upfirdn2d(x, F4, up=2, padding=(2, 1, 2, 1), impl=impl)
    assert plain[..., 2:-2, 2:-2].mean().item() == pytest.approx(0.75)


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_smooth_image_survives_up_then_down(impl):
    """down(up(x)) for a sinusoid of frequency ω per axis: the zero-phase binomial filters pass it with the
    textbook gain cos⁶(ω/4) + sin⁶(ω/4) = 1 - ¾ sin²(ω/2) per axis (the image at π - ω/2 folds back), so
    the interior equals x times that gain, with no shift."""
    h, w = 24, 20
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    wy, wx = 2 * math.pi / h, 2 * math.pi / w
    x = (torch.sin(wy * yy) * torch.cos(wx * xx))[None, None]
    back = downsample2d(upsample2d(x, F4, impl=impl), F4, impl=impl)
    assert back.shape == x.shape
    gain = (1 - 0.75 * math.sin(wy / 2) ** 2) * (1 - 0.75 * math.sin(wx / 2) ** 2)
    torch.testing.assert_close(back[..., 1:-1, 1:-1], gain * x[..., 1:-1, 1:-1])
    assert (back - x)[..., 1:-1, 1:-1].abs().max().item() < 0.035  # "survives": a 3 % loss at most
    noise = torch.randn_like(x)
    noise_err = (downsample2d(upsample2d(noise, F4, impl=impl), F4, impl=impl) - noise)[..., 3:-3, 3:-3]
    assert noise_err.abs().max().item() > 0.3  # white noise does not survive: the filter really filters


# ---- FIR blocks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls,law", [(BlurUp, lambda h: 2 * h), (Blur, lambda h: h),
                                     (BlurDown, lambda h: h // 2)])
@pytest.mark.parametrize("H,W", [(5, 8), (7, 3), (2, 2)])
def test_fir_blocks_fast_equals_ref_non_square_odd(cls, law, H, W):
    x = torch.randn(2, 3, H, W, dtype=torch.float64)
    outs = []
    for impl in cls.impls:
        xi = x.clone().requires_grad_()
        y = cls(impl=impl).double()(xi)
        assert y.shape == (2, 3, law(H), law(W))
        y.pow(2).sum().backward()
        outs.append((y, xi.grad))
    for y, g in outs[1:]:
        torch.testing.assert_close(y, outs[0][0])
        torch.testing.assert_close(g, outs[0][1])


def test_fir_blocks_hold_the_filter_as_a_buffer():
    b = BlurUp()
    assert not list(b.parameters())
    torch.testing.assert_close(b.resample_filter, F4)
    assert "resample_filter" in b.state_dict()


def test_blur_down_rejects_too_small_input():
    with pytest.raises(ShapeError, match=r"^BlurDown"):
        BlurDown()(torch.zeros(1, 1, 1, 4))
    with pytest.raises(ValueError, match=r"^BlurDown"):
        BlurDown()(torch.zeros(1, 1, 1, 4))


# ---- conv2d_resample and up_conv ----------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 4])
@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_fast_equals_ref(k, up, down, groups, flip_weight):
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64, requires_grad=True)
    res = []
    for impl in ("ref", "fast"):
        y = conv2d_resample(x, w, F4, up=up, down=down, padding=k // 2, groups=groups,
                            flip_weight=flip_weight, impl=impl)
        gx, gw = torch.autograd.grad(y.square().sum(), (x, w))
        res.append((y, gx, gw))
    for a, b in zip(res[0], res[1]):
        torch.testing.assert_close(b, a)


@pytest.mark.parametrize("impl", UpConv.impls)
@pytest.mark.parametrize("k", [3, 1])
def test_up_conv_equals_fir_upsample_then_conv(impl, k):
    block = UpConv(3, 5, kernel_size=k, impl=impl).double()
    x = torch.randn(2, 3, 4, 7, dtype=torch.float64)
    # Padded once, before both ops (NVlabs): the blurred image reaches k // 2 past the border.
    want = F.conv2d(upsample2d(x, F4, padding=k // 2, impl="ref"), block.weight, block.bias)
    got = block(x)
    assert got.shape == (2, 5, 8, 14)
    torch.testing.assert_close(got, want)


# ---- parameter-free and learned resamplers -------------------------------------------------------------


def test_nearest_up_repeats_pixels():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    want = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(NearestUp()(x), want)


def test_bilinear_up_half_pixel_centres():
    x = torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 2).expand(1, 1, 3, 2)
    y = BilinearUp()(x)
    torch.testing.assert_close(y[0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))  # align_corners=False
    torch.testing.assert_close(BilinearUp()(torch.full((1, 2, 3, 5), 2.0)), torch.full((1, 2, 6, 10), 2.0))


def test_avg_pool_down_is_the_block_mean():
    x = torch.randn(2, 3, 5, 6)
    want = x[:, :, :4, :6].reshape(2, 3, 2, 2, 3, 2).mean(dim=(3, 5))
    torch.testing.assert_close(AvgPoolDown()(x), want)


def test_avg_pool_down_overlapping_windows_leave_the_padding_out_of_the_mean():
    """pix2pixHD/SPADE's multiscale-D downsampling: 3x3 windows, stride 2, padding 1,
    count_include_pad=False."""
    pool = AvgPoolDown(2, kernel_size=3, padding=1, count_include_pad=False)
    x = torch.randn(2, 3, 7, 6)
    y = pool(x)
    assert y.shape == (2, 3, 4, 3) == pool.out_shape(tuple(x.shape))
    torch.testing.assert_close(y[:, :, 0, 0], x[:, :, :2, :2].mean(dim=(2, 3)))  # corner: 4 in-image pixels
    torch.testing.assert_close(y[:, :, 1, 1], x[:, :, 1:4, 1:4].mean(dim=(2, 3)))  # interior: full 3x3
    # a constant image stays constant; counting the padded zeros would darken the border to 4/9
    torch.testing.assert_close(pool(torch.full((1, 1, 5, 5), 3.0)), torch.full((1, 1, 3, 3), 3.0))
    counted = AvgPoolDown(2, kernel_size=3, padding=1)(torch.full((1, 1, 5, 5), 3.0))
    torch.testing.assert_close(counted[0, 0, 0, 0], torch.tensor(3.0 * 4 / 9))
    with pytest.raises(ValueError, match=r"^AvgPoolDown"):
        AvgPoolDown(2, kernel_size=3, padding=2)


def test_nearest_resize_takes_the_floor_index():
    x = torch.arange(2 * 64.0).reshape(1, 2, 8, 8)
    torch.testing.assert_close(NearestResize(2)(x), x[:, :, ::4, ::4])  # SPADE: 256 -> 8 keeps every 32nd
    rows, cols = [0, 2, 5], [0, 1, 3, 4, 6]  # floor(i * 8 / 3), floor(j * 8 / 5)
    torch.testing.assert_close(NearestResize((3, 5))(x), x[:, :, rows][:, :, :, cols])
    torch.testing.assert_close(NearestResize(16)(x), x.repeat_interleave(2, 2).repeat_interleave(2, 3))
    with pytest.raises(ValueError, match=r"^NearestResize"):
        NearestResize((0, 4))


def test_pixel_shuffle_index_formula_and_inverse():
    r = 2
    x = torch.randn(2, 4 * 3, 3, 5)
    y = PixelShuffleUp()(x)
    assert y.shape == (2, 3, 6, 10)
    b, c, h, w, i, j = 1, 2, 1, 3, 1, 0
    assert y[b, c, h * r + i, w * r + j] == x[b, c * r * r + i * r + j, h, w]
    torch.testing.assert_close(PixelUnshuffleDown()(y), x)
    with pytest.raises(ValueError, match=r"^PixelShuffleUp"):
        PixelShuffleUp()(torch.zeros(1, 6, 2, 2))
    with pytest.raises(ValueError, match=r"^PixelUnshuffleDown"):
        PixelUnshuffleDown()(torch.zeros(1, 1, 3, 4))


def test_dcgan_learned_resamplers_layout_and_shapes():
    up = ConvTransposeUp(8, 4)
    down = StridedConvDown(4, 8, bias=False)
    assert {n: tuple(p.shape) for n, p in up.named_parameters()} == {"conv.weight": (8, 4, 4, 4),
                                                                      "conv.bias": (4,)}
    assert {n: tuple(p.shape) for n, p in down.named_parameters()} == {"conv.weight": (8, 4, 4, 4)}
    assert up(torch.randn(2, 8, 3, 5)).shape == (2, 4, 6, 10)
    assert down(torch.randn(2, 4, 7, 6)).shape == (2, 8, 3, 3)
    x = torch.randn(1, 8, 3, 3)
    want = F.conv_transpose2d(x, up.conv.weight, up.conv.bias, stride=2, padding=1)
    torch.testing.assert_close(up(x), want)


@pytest.mark.parametrize("up,down", [(2, 1), (1, 2), (1, 1)])
def test_upfirdn2d_fast_supports_double_backward(up, down):
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: upfirdn2d(t, F4, up, down, 1, impl="fast"), (x,))
