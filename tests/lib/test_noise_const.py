"""Noise injection (zero strength is the identity; one N(0, 1) image per sample scaled per channel or by
a scalar; const/none modes) and the learned constant input (expanded to the batch, gradients summed)."""

from __future__ import annotations

import pytest
import torch

from blocks import ConstantInput, NoiseInjection, ShapeError


@pytest.mark.parametrize("channels", [None, 4])
@pytest.mark.parametrize("mode", ["random", "const", "none"])
def test_zero_strength_is_the_identity(channels, mode):
    block = NoiseInjection(channels, resolution=(5, 3), noise_mode=mode)
    assert block.strength.shape == ((4,) if channels else ())
    assert block.strength.eq(0).all()
    x = torch.randn(2, 4, 5, 3)
    assert torch.equal(block(x), x)


def test_per_channel_strength_scales_one_noise_image_per_sample():
    torch.manual_seed(0)
    block = NoiseInjection(3)
    with torch.no_grad():
        block.strength.copy_(torch.tensor([0.5, -2.0, 1.0]))
    x = torch.randn(4, 3, 64, 64)
    added = (block(x) - x) / block.strength.reshape(1, 3, 1, 1)  # (B, C, H, W): the unscaled noise
    torch.testing.assert_close(added[:, 0], added[:, 1])  # shared by the channels
    torch.testing.assert_close(added[:, 0], added[:, 2])
    assert not torch.allclose(added[0, 0], added[1, 0])  # a different image per sample
    noise = added[:, 0]
    assert noise.mean().item() == pytest.approx(0.0, abs=0.02)
    assert noise.std().item() == pytest.approx(1.0, abs=0.02)


def test_scalar_strength_const_and_none_modes():
    block = NoiseInjection(None, resolution=(4, 6))
    with torch.no_grad():
        block.strength.fill_(0.3)
    x = torch.randn(2, 5, 4, 6)
    const = block(x, noise_mode="const")
    torch.testing.assert_close(const, x + 0.3 * block.noise_const)  # same fixed image for every sample
    torch.testing.assert_close(block(x, noise_mode="const"), const)
    assert torch.equal(block(x, noise_mode="none"), x)
    torch.manual_seed(1)
    a = block(x)
    torch.manual_seed(1)
    torch.testing.assert_close(block(x), a)  # random mode follows torch's seed
    assert not torch.allclose(block(x), a)


def test_noise_errors():
    with pytest.raises(ValueError, match=r"^NoiseInjection"):
        NoiseInjection(noise_mode="fixed")
    with pytest.raises(ValueError, match=r"^NoiseInjection"):
        NoiseInjection()(torch.zeros(1, 2, 4, 4), noise_mode="const")  # no buffer
    with pytest.raises(ValueError, match=r"^NoiseInjection"):
        NoiseInjection(resolution=4)(torch.zeros(1, 2, 4, 5), noise_mode="const")
    with pytest.raises(ShapeError, match=r"^NoiseInjection"):
        NoiseInjection(3)(torch.zeros(1, 2, 4, 4))


def test_constant_input_expands_to_the_batch():
    block = ConstantInput(3, size=(2, 5))
    w = torch.randn(4, 7)
    y = block(w)
    assert y.shape == (4, 3, 2, 5)
    for b in range(4):
        assert torch.equal(y[b], block.const)
    y.sum().backward()
    torch.testing.assert_close(block.const.grad, torch.full((3, 2, 5), 4.0))  # summed over the batch
    assert block(torch.randn(2, 18, 7)).shape == (2, 3, 2, 5)  # broadcast styles work too
    with pytest.raises(ShapeError, match=r"^ConstantInput"):
        block(torch.randn(4))


def test_constant_input_initialisation():
    torch.manual_seed(0)
    c = ConstantInput(512, size=4).const
    assert c.shape == (512, 4, 4)
    assert c.mean().item() == pytest.approx(0.0, abs=0.05)
    assert c.std().item() == pytest.approx(1.0, abs=0.05)  # StyleGAN2: N(0, 1)
    assert ConstantInput(8, init="ones").const.eq(1).all()  # StyleGAN: ones
    assert sum(p.numel() for p in ConstantInput(512).parameters()) == 512 * 16
    with pytest.raises(ValueError, match=r"^ConstantInput"):
        ConstantInput(8, init="zeros")


def test_noise_given_as_an_input():
    """Mode "input" adds the noise last given to use_noise (an exported generator's noise input), checked."""
    torch.manual_seed(0)
    block = NoiseInjection(None, resolution=(4, 5), noise_mode="input")
    with torch.no_grad():
        block.strength.fill_(0.5)
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(block(x), x)  # nothing given: nothing added
    noise = torch.randn(2, 1, 4, 5)
    block.use_noise(noise)
    torch.testing.assert_close(block(x), x + 0.5 * noise)
    block.use_noise(torch.randn(2, 1, 5, 5))
    with pytest.raises(ShapeError, match="NoiseInjection"):
        block(x)
