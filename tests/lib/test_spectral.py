"""Spectral norm: the normalised weight has σ_max = 1 (checked by SVD), in the layers and in the block."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blocks import Conv2dLayer, ConvTranspose2dLayer, EmbeddingLayer, LinearLayer, SpectralNorm, configure_spectral_norm


def sigma_max(w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Largest singular value of w viewed as (w.shape[dim], -1), by SVD (independent of power iteration)."""
    return torch.linalg.matrix_norm(w.movedim(dim, 0).flatten(1), ord=2)


def train_forwards(block: nn.Module, x: torch.Tensor, n: int) -> None:
    block.train()
    with torch.no_grad():
        for _ in range(n):
            block(x)


LAYERS = [
    ("conv", lambda **kw: Conv2dLayer(3, 8, **kw), "conv", 0, torch.randn(2, 3, 6, 5)),
    ("conv_transpose", lambda **kw: ConvTranspose2dLayer(3, 8, **kw), "conv", 1, torch.randn(2, 3, 4, 4)),
    ("linear", lambda **kw: LinearLayer(7, 5, **kw), "linear", 0, torch.randn(2, 7)),
    ("embedding", lambda **kw: EmbeddingLayer(6, 4, **kw), "embed", 0, torch.tensor([1, 5])),
]


@pytest.mark.parametrize("key,make,child,dim,x", LAYERS, ids=[c[0] for c in LAYERS])
def test_sn_weight_has_unit_spectral_norm(key, make, child, dim, x):
    layer = make(sn=True)
    train_forwards(layer, x, 50)
    layer.eval()
    inner = getattr(layer, child)
    w = inner.weight  # W / σ with the converged u, v
    torch.testing.assert_close(sigma_max(w.detach(), dim), torch.tensor(1.0), atol=1e-3, rtol=0)
    # The raw weight was not itself of norm 1: the normalisation did the work.
    assert abs(float(sigma_max(inner.parametrizations.weight.original.detach(), dim)) - 1) > 0.05


@pytest.mark.parametrize("key,make,child,dim,x", LAYERS, ids=[c[0] for c in LAYERS])
def test_sn_adds_no_parameters_only_buffers(key, make, child, dim, x):
    plain, sn = make(), make(sn=True)
    assert sum(p.numel() for p in sn.parameters()) == sum(p.numel() for p in plain.parameters())
    buffers = dict(sn.named_buffers())
    assert {n.rsplit(".", 1)[-1] for n in buffers} == {"_u", "_v"}
    assert f"{child}.parametrizations.weight.original" in sn.state_dict()


def test_sn_conv_output_equals_conv_with_weight_divided_by_svd_sigma():
    layer = Conv2dLayer(3, 4, sn=True)
    x = torch.randn(2, 3, 7, 5)
    train_forwards(layer, x, 50)
    layer.eval()
    raw = layer.conv.parametrizations.weight.original.detach()
    expected = F.conv2d(x, raw / sigma_max(raw), layer.conv.bias, padding=1)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-4)


def test_sn_eps_and_iterations_are_passed_through():
    layer = LinearLayer(5, 3, sn=True, sn_eps=1e-6, sn_iters=3)
    sn = layer.linear.parametrizations.weight[0]
    assert sn.eps == 1e-6 and sn.n_power_iterations == 3


def test_one_power_iteration_per_training_forward_none_in_eval():
    layer = LinearLayer(6, 6, sn=True)
    u = layer.linear.parametrizations.weight[0]._u
    before = u.clone()
    layer.eval()
    layer(torch.randn(2, 6))
    assert torch.equal(u, before)
    with torch.no_grad():
        layer.linear.parametrizations.weight.original.add_(torch.randn(6, 6))  # u is no longer converged
    layer.train()
    layer(torch.randn(2, 6))
    assert not torch.equal(u, before)


# ---- the SpectralNorm block -------------------------------------------------------------------------


def test_block_sigma_converges_to_the_svd_sigma_and_normalises():
    conv = nn.Conv2d(3, 5, 3, padding=1)
    block = SpectralNorm(conv)
    x = torch.randn(2, 3, 6, 4)
    train_forwards(block, x, 50)
    w = block.module.parametrizations.weight.original.detach()
    torch.testing.assert_close(block.sigma, sigma_max(w), rtol=1e-4, atol=0)
    block.eval()
    torch.testing.assert_close(block(x), F.conv2d(x, w / sigma_max(w), conv.bias, padding=1),
                               atol=1e-5, rtol=1e-4)


def test_block_sigma_is_the_divisor_of_the_last_forward():
    block = SpectralNorm(nn.Linear(4, 6))
    block(torch.randn(2, 4))
    w = block.module.parametrizations.weight.original.detach()
    block.eval()
    torch.testing.assert_close(block.module.weight, w / block.sigma)


def test_block_leaves_the_callers_module_alone_and_wraps_transposed_convs_on_out_dim():
    conv = nn.ConvTranspose2d(3, 5, 4, 2, 1)
    block = SpectralNorm(conv, n_power_iterations=2, eps=1e-8)
    assert not hasattr(conv, "parametrizations")
    sn = block.module.parametrizations.weight[0]
    assert (sn.dim, sn.n_power_iterations, sn.eps) == (1, 2, 1e-8)
    x = torch.randn(1, 3, 4, 4)
    assert tuple(block(x).shape) == block.out_shape(tuple(x.shape)) == (1, 5, 8, 8)


def test_block_checks_inputs_of_known_layers_and_rejects_weightless_modules():
    with pytest.raises(ValueError, match=r"^SpectralNorm.*weight of 2 or more dims"):
        SpectralNorm(nn.ReLU())
    with pytest.raises(ValueError, match=r"^SpectralNorm"):
        SpectralNorm(nn.LayerNorm(4))  # 1-D weight
    with pytest.raises(ValueError, match=r"^SpectralNorm"):
        SpectralNorm(nn.Linear(4, 3))(torch.randn(2, 5))
    with pytest.raises(TypeError, match=r"^SpectralNorm.*integer"):
        SpectralNorm(nn.Embedding(4, 3))(torch.randn(2))


def test_sn_embedding_iterates_over_classes_as_biggan():
    # BigGAN's SNEmbedding keeps u of size num_embeddings: the (n_classes, D) table is the matrix.
    sn = EmbeddingLayer(10, 4, sn=True).embed.parametrizations.weight[0]
    assert sn._u.shape == (10,) and sn._v.shape == (4,)


def test_sn_on_meta_skips_the_warm_up_but_keeps_the_layout():
    """On ``meta`` (the assembler's shape inference) the 15 warm-up power iterations are skipped -- they have
    nothing to estimate -- while the state-dict layout is torch's; on a real weight they still run."""
    from unittest import mock

    from blocks.norms.spectral import _SpectralNorm

    real = {k: tuple(v.shape) for k, v in Conv2dLayer(3, 8, sn=True).state_dict().items()}
    with mock.patch.object(_SpectralNorm, "_iterate", autospec=True, side_effect=_SpectralNorm._iterate) as power:
        with torch.device("meta"):
            layer = Conv2dLayer(3, 8, sn=True)
        assert power.call_count == 0
        Conv2dLayer(3, 8, sn=True)
        assert 15 in [c.args[4] for c in power.call_args_list]  # the warm-up on a real weight
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == real
    assert layer.conv.weight.is_meta and layer.conv.parametrizations.weight[0]._u.shape == (8,)


def _old_hook_and_ours(order: str):
    """torch's older spectral_norm hook (v first, as SPADE) and our parametrization, same weight and u, v."""
    torch.manual_seed(0)
    old = nn.utils.spectral_norm(nn.Conv2d(3, 5, 3, padding=1))
    ours = Conv2dLayer(3, 5, sn=True)
    sn = ours.conv.parametrizations.weight
    with torch.no_grad():
        sn.original.copy_(old.weight_orig)
        ours.conv.bias.copy_(old.bias)
        sn[0]._u.copy_(old.weight_u)
        sn[0]._v.copy_(old.weight_v)
    configure_spectral_norm(ours, order=order)
    return old, ours


def test_v_first_reproduces_the_older_hook_in_training_and_eval():
    """SPADE's checkpoints (torch.nn.utils.spectral_norm) continue exactly: eval from the stored u, v; each
    training forward one iteration v = n(Wᵀu), then u = n(Wv)."""
    x = torch.randn(2, 3, 6, 6)
    old, ours = _old_hook_and_ours("v_first")
    old.eval(), ours.eval()
    torch.testing.assert_close(ours(x), old(x), rtol=1e-6, atol=1e-6)
    old.train(), ours.train()
    for _ in range(3):
        torch.testing.assert_close(ours(x), old(x), rtol=1e-6, atol=1e-6)
    _, torch_order = _old_hook_and_ours("u_first")
    torch_order.train()
    old2, _ = _old_hook_and_ours("u_first")
    old2.train()
    assert not torch.allclose(torch_order(x), old2(x), rtol=1e-7, atol=1e-7)  # the order matters in training


def test_eval_iterations_reproduce_biggan_pytorch():
    """BigGAN-PyTorch's layers.SN in eval: v = n(u W), u = n(v Wᵀ) from the stored u, σ = v Wᵀ uᵀ, u not
    written; in training the same, and u is written."""
    layer = LinearLayer(6, 4, sn=True)
    configure_spectral_norm(layer, order="v_first", eval_iterations=1)
    sn = layer.linear.parametrizations.weight
    W = sn.original.detach()
    u0 = torch.randn(4)
    with torch.no_grad():
        sn[0]._u.copy_(u0)

    def biggan_sigma(u):
        v = F.normalize(u @ W, dim=0, eps=1e-12)
        u = F.normalize(v @ W.t(), dim=0, eps=1e-12)
        return (v @ W.t()) @ u, u

    want, u1 = biggan_sigma(u0)
    layer.eval()
    for _ in range(2):  # eval never moves u
        torch.testing.assert_close(layer.linear.weight, W / want)
        torch.testing.assert_close(sn[0]._u, u0)
    layer.train()
    torch.testing.assert_close(layer.linear.weight, W / want)  # the same σ, and u is written
    torch.testing.assert_close(sn[0]._u, u1)
    assert configure_spectral_norm(nn.Sequential(layer, LinearLayer(4, 2, sn=True)), order="u_first") == 2
    with pytest.raises(ValueError, match="order must be one of"):
        configure_spectral_norm(layer, order="w_first")
