"""Invariants of the attention blocks: identity at zero gain, every formulation == an independent naive
computation (outputs and gradients), permutation equivariance, memory-linear chunking, parameter counts."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from blocks import (
    CrossAttention,
    SelfAttention,
    ShapeError,
    attend,
    cross_attention,
    self_attention,
    shape_checks,
)

SELF_IMPLS = SelfAttention.impls


def naive_self_attention(x, theta_w, phi_w, g_w, o_w, gamma, pool):
    """SAGAN eq. 1-3 computed independently: explicit 1x1 maps, reshape-max pooling, per-query softmax."""
    b, _, h, w = x.shape

    def conv1x1(t, weight):
        return torch.einsum("oc,bchw->bohw", weight[:, :, 0, 0], t)

    def pool2(t):
        return t.reshape(t.shape[0], t.shape[1], h // 2, 2, w // 2, 2).amax(dim=(3, 5))

    q, k, v = conv1x1(x, theta_w), conv1x1(x, phi_w), conv1x1(x, g_w)
    if pool:
        k, v = pool2(k), pool2(v)
    q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)  # (B, Cq, N), (B, Cq, M), (B, Cv, M)
    rows = []
    for j in range(h * w):
        beta = torch.softmax((q[:, :, j : j + 1] * k).sum(1), dim=-1)  # (B, M): attention of query j
        rows.append((v * beta[:, None, :]).sum(-1))  # (B, Cv)
    attended = torch.stack(rows, dim=-1).view(b, -1, h, w)
    return x + gamma * conv1x1(attended, o_w)


def weights_of(block):
    return block.theta.weight, block.phi.weight, block.g.weight, block.o.weight, block.gamma


def make_self(c=16, pool=True, impl="ref", gamma=0.7, sn=False, seed=0):
    torch.manual_seed(seed)
    return SelfAttention(c, pool=pool, sn=sn, gamma_init=gamma, impl=impl, chunk_size=7).double()


# ---- self-attention ---------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", SELF_IMPLS)
@pytest.mark.parametrize("pool", [True, False])
def test_zero_gamma_is_identity(impl, pool):
    block = SelfAttention(16, pool=pool, impl=impl)  # paper defaults: sn on, gamma = 0
    assert block.gamma.item() == 0.0
    x = torch.randn(2, 16, 6, 4)
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("pool,size", [(True, (6, 10)), (True, (4, 4)), (False, (5, 7)), (False, (3, 2))])
def test_every_impl_equals_naive_with_gradients(pool, size):
    x0 = torch.randn(2, 16, *size, dtype=torch.float64)
    ref_block = make_self(pool=pool)
    x_ref = x0.clone().requires_grad_()
    expected = naive_self_attention(x_ref, *weights_of(ref_block), pool=pool)
    expected.square().sum().backward()
    for impl in SELF_IMPLS:
        block = make_self(pool=pool, impl=impl)
        x = x0.clone().requires_grad_()
        out = block(x)
        torch.testing.assert_close(out, expected.detach(), rtol=1e-10, atol=1e-10, msg=impl)
        out.square().sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-9, msg=impl)
        for p, p_ref in zip(block.parameters(), ref_block.parameters(), strict=True):
            torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-9, atol=1e-9, msg=impl)


@pytest.mark.parametrize("impl", SELF_IMPLS)
def test_function_equals_module(impl):
    block = make_self(pool=True, impl=impl)
    x = torch.randn(3, 16, 4, 6, dtype=torch.float64)
    torch.testing.assert_close(block(x), self_attention(x, *weights_of(block), pool=True, impl=impl))


@pytest.mark.parametrize("impl", SELF_IMPLS)
def test_equivariant_to_permuting_positions_without_pooling(impl):
    block = make_self(pool=False, impl=impl)
    b, c, h, w = 2, 16, 5, 6
    x = torch.randn(b, c, h, w, dtype=torch.float64)
    perm = torch.randperm(h * w)
    x_perm = x.flatten(2)[:, :, perm].view(b, c, h, w)
    torch.testing.assert_close(block(x_perm), block(x).flatten(2)[:, :, perm].view(b, c, h, w))


def test_pooling_breaks_permutation_equivariance():
    """The equivariance test above can fail: with 2x2 pooling the key set depends on pixel layout."""
    block = make_self(pool=True)
    x = torch.randn(2, 16, 4, 4, dtype=torch.float64)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    x_perm = x.flatten(2)[:, :, perm].view_as(x)
    assert not torch.allclose(block(x_perm), block(x).flatten(2)[:, :, perm].view_as(x))


@pytest.mark.parametrize("chunk", [1, 3, 8, 35, 100])
def test_chunked_equals_naive_for_any_chunk_size(chunk):
    q = torch.randn(2, 3, 35, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 3, 9, 4, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 3, 9, 6, dtype=torch.float64, requires_grad=True)
    ref = attend(q, k, v, scale=0.3, impl="ref")
    out = attend(q, k, v, scale=0.3, impl="chunked", chunk_size=chunk)
    torch.testing.assert_close(out, ref)
    g_ref = torch.autograd.grad(ref.sum(), (q, k, v))
    g_out = torch.autograd.grad(out.sum(), (q, k, v))
    for a, b in zip(g_out, g_ref, strict=True):
        torch.testing.assert_close(a, b)


def test_attention_rows_are_convex_combinations():
    """Textbook softmax attention: with all values equal to one vector, every output is that vector."""
    q, k = torch.randn(2, 1, 10, 4), torch.randn(2, 1, 6, 4)
    v = torch.randn(2, 1, 1, 5).expand(2, 1, 6, 5)
    for impl in SELF_IMPLS:
        torch.testing.assert_close(attend(q, k, v, 1.0, impl=impl), v[:, :, :1].expand(2, 1, 10, 5))


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op produces."""

    def __init__(self):
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


@pytest.mark.parametrize("backward", [False, True])
def test_chunked_never_materialises_the_full_score_matrix(backward):
    b, c, h, w, chunk = 2, 8, 32, 32, 64
    n = h * w  # 1024 queries and keys (no pooling)
    x = torch.randn(b, c, h, w, requires_grad=backward)
    sizes = {}
    for impl in ("bmm", "chunked"):
        block = SelfAttention(c, pool=False, sn=False, gamma_init=1.0, impl=impl, chunk_size=chunk)
        with _LargestTensor() as mode:
            out = block(x)
            if backward:
                out.sum().backward()
        sizes[impl] = mode.max_numel
    assert sizes["bmm"] >= b * n * n  # the dense path holds all N x N scores
    assert sizes["chunked"] <= b * chunk * n  # O(chunk · N): here 16x less


@pytest.mark.parametrize("sn", [True, False])
def test_parameter_count_biggan_128(sn):
    c = 192  # BigGAN-128 attention at 64x64 with ch=96: 2 * 96 channels
    block = SelfAttention(c, sn=sn)
    assert sum(p.numel() for p in block.parameters()) == c * c // 8 * 2 + c * c // 2 * 2 + 1
    assert all(not m.bias for m in (block.theta, block.phi, block.g, block.o) if hasattr(m, "bias"))
    assert len(list(block.buffers())) == (8 if sn else 0)  # u and v of each power iteration, not learned


def test_spectral_norm_on_by_default_normalises_every_conv():
    block = SelfAttention(32)
    x = torch.randn(2, 32, 4, 4)
    for _ in range(30):  # training-mode calls run the power iteration
        block(x)
    for conv in (block.theta, block.phi, block.g, block.o):
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        torch.testing.assert_close(sigma, torch.tensor(1.0), rtol=1e-3, atol=1e-3)


def test_spectral_norm_impls_agree_in_eval():
    torch.manual_seed(0)
    ref = SelfAttention(16, sn=True, gamma_init=0.5, impl="ref").eval()
    x = torch.randn(2, 16, 6, 6)
    for impl in SELF_IMPLS[1:]:
        other = SelfAttention(16, sn=True, gamma_init=0.5, impl=impl).eval()
        other.load_state_dict(copy.deepcopy(ref.state_dict()))
        torch.testing.assert_close(other(x), ref(x), rtol=1e-5, atol=1e-5)


def test_gamma_learns_from_zero():
    block = SelfAttention(16)
    block(torch.randn(2, 16, 4, 4)).square().sum().backward()
    assert block.gamma.grad is not None and block.gamma.grad.abs() > 0


def test_auto_impl_resolves_to_cpu_default():
    block = SelfAttention(16)
    block(torch.randn(1, 16, 4, 4))
    assert block.impl == SelfAttention.default_impl["cpu"]


def test_works_with_shape_checks_off():
    block, cross = make_self(impl="bmm"), make_cross(impl="bmm")
    x, tokens = torch.randn(2, 16, 4, 6, dtype=torch.float64), torch.randn(2, 3, 5, dtype=torch.float64)
    expected, expected_cross = block(x), cross(x[:, :8], tokens)
    with shape_checks(False):
        torch.testing.assert_close(block(x), expected)
        torch.testing.assert_close(cross(x[:, :8], tokens), expected_cross)


def test_pool_needs_even_sizes():
    block = SelfAttention(16, pool=True)
    with pytest.raises(ShapeError, match=r"^SelfAttention: .*even"):
        block(torch.randn(2, 16, 5, 4))
    assert block.__class__(16, pool=False)(torch.randn(2, 16, 5, 3)).shape == (2, 16, 5, 3)


def test_bad_construction_and_channels():
    with pytest.raises(ValueError, match=r"^SelfAttention: in_channels"):
        SelfAttention(4)
    with pytest.raises(ShapeError, match=r"^SelfAttention"):
        SelfAttention(16)(torch.randn(2, 8, 4, 4))
    with pytest.raises(ValueError, match=r"^SelfAttention: impl"):
        SelfAttention(16, impl="flash")


# ---- cross-attention --------------------------------------------------------------------------------


def make_cross(c=8, d=5, heads=2, head_dim=4, gate=0.9, impl="ref"):
    torch.manual_seed(0)
    return CrossAttention(c, d, heads=heads, head_dim=head_dim, gate_init=gate, impl=impl).double()


def torch_mha_reference(block, x, tokens):
    """The same computation through torch.nn.MultiheadAttention (needs C == heads · head_dim)."""
    c, inner = block.in_channels, block.heads * block.head_dim
    mha = torch.nn.MultiheadAttention(inner, block.heads, bias=False, kdim=block.tokens_dim,
                                      vdim=block.tokens_dim, batch_first=True).double()
    with torch.no_grad():
        mha.q_proj_weight.copy_(block.to_q.weight.view(inner, c))
        mha.k_proj_weight.copy_(block.to_k.weight)
        mha.v_proj_weight.copy_(block.to_v.weight)
        mha.out_proj.weight.copy_(block.to_out.weight.view(c, inner))
    b, _, h, w = x.shape
    queries = x.flatten(2).transpose(1, 2)  # (B, H·W, C)
    attended, _ = mha(queries, tokens, tokens, need_weights=False)
    o = attended + block.to_out.bias
    return x + block.gate * o.transpose(1, 2).view(b, c, h, w)


@pytest.mark.parametrize("impl", CrossAttention.impls)
def test_cross_equals_torch_multihead_attention(impl):
    block = make_cross(impl=impl)
    x, tokens = torch.randn(2, 8, 3, 5, dtype=torch.float64), torch.randn(2, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(block(x, tokens), torch_mha_reference(block, x, tokens))


def test_cross_impls_equal_ref_with_gradients():
    x0, t0 = torch.randn(2, 6, 4, 3, dtype=torch.float64), torch.randn(2, 7, 5, dtype=torch.float64)
    grads = {}
    for impl in CrossAttention.impls:
        block = make_cross(c=6, heads=3, head_dim=2, impl=impl)
        x, t = x0.clone().requires_grad_(), t0.clone().requires_grad_()
        out = block(x, t)
        out.square().sum().backward()
        grads[impl] = (out.detach(), x.grad, t.grad, *(p.grad for p in block.parameters()))
    for impl in CrossAttention.impls[1:]:
        for a, b in zip(grads[impl], grads["ref"], strict=True):
            torch.testing.assert_close(a, b)


def test_cross_zero_gate_is_identity():
    block = CrossAttention(8, 5)  # defaults: 8 heads of 64, gate 0
    x = torch.randn(2, 8, 3, 4)
    assert torch.equal(block(x, tokens=torch.randn(2, 6, 5)), x)


def test_cross_attends_to_tokens():
    block = make_cross()
    x, tokens = torch.randn(2, 8, 3, 3, dtype=torch.float64), torch.randn(2, 6, 5, dtype=torch.float64)
    out = block(x, tokens)
    changed = tokens.clone()
    changed[:, 4] += 1.0  # change one token
    diff = (block(x, changed) - out).abs().amax(dim=1)  # (B, H, W)
    assert (diff > 1e-6).all()  # every position attends to every token


def test_cross_invariant_to_token_order_and_averages_equal_tokens():
    block = make_cross()
    x, tokens = torch.randn(2, 8, 3, 3, dtype=torch.float64), torch.randn(2, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(block(x, tokens.flip(1)), block(x, tokens))
    same = tokens[:, :1].expand(2, 6, 5)  # identical tokens: the softmax average is that token's value
    expected = cross_attention(x, tokens[:, :1], block.to_q.weight, block.to_k.weight, block.to_v.weight,
                               block.to_out.weight, block.to_out.bias, block.gate, heads=2)
    torch.testing.assert_close(block(x, same), expected)


def test_cross_parameter_count():
    c, d, heads, head_dim = 32, 24, 4, 16
    inner = heads * head_dim
    block = CrossAttention(c, d, heads=heads, head_dim=head_dim)
    assert sum(p.numel() for p in block.parameters()) == c * inner + 2 * d * inner + inner * c + c + 1


def test_cross_bad_tokens_name_the_block():
    block = CrossAttention(8, 5, heads=2, head_dim=4)
    with pytest.raises(ShapeError, match=r"^CrossAttention: tokens"):
        block(torch.randn(2, 8, 3, 3), torch.randn(2, 6, 4))
    with pytest.raises(ShapeError, match=r"^CrossAttention: tokens"):
        block(torch.randn(2, 8, 3, 3), torch.randn(3, 6, 5))


@pytest.mark.parametrize("pool", [True, False])
def test_attention_weights_are_the_ones_the_forward_uses(pool):
    torch.manual_seed(0)
    layer = SelfAttention(16, pool=pool)
    with torch.no_grad():
        layer.gamma.fill_(0.5)
    x = torch.randn(2, 16, 8, 6)
    beta = layer.attention(x)  # (B, N, M)
    m = 8 * 6 // 4 if pool else 8 * 6
    assert beta.shape == (2, 48, m)
    torch.testing.assert_close(beta.sum(-1), torch.ones(2, 48))
    v = torch.nn.functional.conv2d(x, layer.g.weight)
    if pool:
        v = torch.nn.functional.max_pool2d(v, 2)
    attended = (beta @ v.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(2, -1, 8, 6)  # (B, Cv, H, W)
    expected = x + 0.5 * torch.nn.functional.conv2d(attended, layer.o.weight)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_the_attention_figure_marks_queries_and_draws_a_cell_per_query(tmp_path):
    import assemble
    from assemble.figures import attention_figure, attention_maps

    gan = assemble.build("sagan", **assemble.load("sagan")["tiny"])
    gan.G.eval()
    inputs = {"z": torch.randn(3, gan.G.input_specs["z"].shape[0]), "c": torch.tensor([0, 1, 2])}
    _, maps, points = attention_maps(gan.G, inputs, gan.G.output_names[0])
    assert maps.shape == (3, 3, 32, 32) and float(maps.amax()) == 1.0 and len(points) == 3
    path = attention_figure(gan.G, inputs, gan.G.output_names[0], tmp_path / "attention.png")
    from PIL import Image

    assert Image.open(path).size == (4 * 34 + 2, 3 * 34 + 2)  # rows: samples; columns: the image + 3 queries
