"""Invariants of the conditioning injectors: concatenation layouts, embeddings, heads computed by hand,
conditioning augmentation's KL and sampling statistics, skip-z reassembly, COCO-GAN coordinates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from blocks import (
    CONDITIONING,
    ACHead,
    ClassEmbedding,
    ConcatTiled,
    ConcatVector,
    ConditioningAugmentation,
    CoordConditioning,
    CoordPredictor,
    CoordProjectionHead,
    ProjectionHead,
    QHead,
    ShapeError,
    SkipZ,
    assemble_patches,
    conditioning_augmentation,
    kl_divergence,
    patch_grid_coords,
    split_q_output,
)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def power_iterate(module, x, cond=None, steps=50):
    """Training-mode calls, each advancing every spectral norm's power iteration."""
    module.train()
    with torch.no_grad():
        for _ in range(steps):
            module(x, **(cond or {}))
    return module.eval()


def largest_singular_value(w):
    return torch.linalg.matrix_norm(w.detach().flatten(1), ord=2)


# ---- concatenation -----------------------------------------------------------------------------------


def test_concat_vector_vector_and_one_hot():
    x, c = torch.randn(4, 5), torch.randn(4, 3)
    out = ConcatVector(c_dim=3)(x, c)
    assert out.shape == (4, 8) and torch.equal(out[:, :5], x) and torch.equal(out[:, 5:], c)
    y = torch.tensor([2, 0, 6, 2])
    out = ConcatVector(n_classes=7)(x, y)
    assert out.shape == (4, 12) and torch.equal(out[:, :5], x)
    one_hot = out[:, 5:]
    assert torch.equal(one_hot.sum(1), torch.ones(4)) and torch.equal(one_hot.argmax(1), y)
    assert set(one_hot.unique().tolist()) == {0.0, 1.0}


def test_concat_tiled_non_square():
    x, c = torch.randn(2, 3, 4, 7), torch.randn(2, 5)
    out = ConcatTiled(c_dim=5)(x, c)
    assert out.shape == (2, 8, 4, 7)
    assert torch.equal(out[:, :3], x)
    assert torch.equal(out[:, 3:], c[:, :, None, None].expand(2, 5, 4, 7))  # c at every position
    y = torch.tensor([1, 3])
    out = ConcatTiled(n_classes=4)(x, y)
    assert out.shape == (2, 7, 4, 7)
    assert torch.equal(out[:, 3:, 2, 5], F.one_hot(y, 4).float())


def test_concat_keeps_the_main_dtype():
    x = torch.randn(2, 3, dtype=torch.bfloat16)
    assert ConcatVector(n_classes=4)(x, torch.tensor([0, 3])).dtype == torch.bfloat16


def test_concat_errors_name_the_block():
    with pytest.raises(ValueError, match=r"^ConcatVector: give exactly one"):
        ConcatVector()
    with pytest.raises(ValueError, match=r"^ConcatTiled: give exactly one"):
        ConcatTiled(c_dim=2, n_classes=3)
    with pytest.raises(ValueError, match=r"^ConcatVector: c should hold class indices in \[0, 4\)"):
        ConcatVector(n_classes=4)(torch.randn(2, 3), torch.tensor([0, 4]))
    with pytest.raises(TypeError, match=r"^ConcatVector: c should hold class indices"):
        ConcatVector(n_classes=4)(torch.randn(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ShapeError, match=r"^ConcatTiled: c"):
        ConcatTiled(c_dim=4)(torch.randn(2, 3, 2, 2), torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"^ConcatTiled: c has batch 3"):
        ConcatTiled(n_classes=4)(torch.randn(2, 3, 2, 2), torch.tensor([0, 1, 2]))


# ---- class embedding ---------------------------------------------------------------------------------


def test_class_embedding_rows_and_layout():
    emb = ClassEmbedding(10, 6)
    y = torch.tensor([3, 3, 7])
    out = emb(y)
    assert out.shape == (3, 6)
    assert torch.equal(out, emb.embed.weight[y]) and torch.equal(out[0], out[1])
    assert n_params(emb) == 60 and not list(emb.buffers())  # plain nn.Embedding, no spectral norm
    biggan = ClassEmbedding()  # BigGAN-128: 1000 classes, shared_dim 128
    assert n_params(biggan) == 1000 * 128
    with pytest.raises(ValueError, match=r"^ClassEmbedding: y should hold class indices in \[0, 10\)"):
        emb(torch.tensor([10]))


# ---- projection and classifier heads -----------------------------------------------------------------


def test_projection_head_equals_hand_computation_with_normalised_weights():
    torch.manual_seed(0)
    head = ProjectionHead(6, n_classes=5)  # spectral norm on by default
    h, y = torch.randn(8, 6), torch.tensor([0, 1, 2, 3, 4, 4, 1, 0])
    power_iterate(head, h, {"y": y})
    w, b, emb = head.linear.weight, head.linear.bias, head.embed.weight  # normalised
    assert torch.allclose(largest_singular_value(w), torch.tensor(1.0), atol=1e-4)
    assert torch.allclose(largest_singular_value(emb), torch.tensor(1.0), atol=1e-4)
    expected = torch.stack([h[i] @ w[0] + b[0] + h[i] @ emb[y[i]] for i in range(8)])[:, None]
    torch.testing.assert_close(head(h, y), expected)
    assert n_params(head) == 6 + 1 + 5 * 6  # linear C -> 1 with bias, embedding without bias


def test_projection_term_separates_classes():
    """<embed(y), h> is the only class-dependent part: the difference between two classes is h·(e_a - e_b)."""
    head = ProjectionHead(4, n_classes=3, sn=False)
    h = torch.randn(5, 4)
    diff = head(h, torch.full((5,), 2)) - head(h, torch.full((5,), 0))
    torch.testing.assert_close(diff[:, 0], h @ (head.embed.weight[2] - head.embed.weight[0]))


def test_ac_head_logits():
    head = ACHead(7, n_classes=4)
    h = torch.randn(3, 7)
    torch.testing.assert_close(head(h), h @ head.linear.weight.T + head.linear.bias)
    assert n_params(head) == 7 * 4 + 4
    sn_head = power_iterate(ACHead(7, n_classes=4, sn=True), h)
    assert torch.allclose(largest_singular_value(sn_head.linear.weight), torch.tensor(1.0), atol=1e-4)


# ---- InfoGAN Q head ----------------------------------------------------------------------------------


def test_q_head_layout_and_split():
    torch.manual_seed(0)
    head = QHead(12, cat_dims=(3, 5), cont_dim=2, hidden=16, fixed_std=False)
    h = torch.randn(6, 12)
    q = head(h)
    assert q.shape == (6, 3 + 5 + 2 * 2)
    # By hand, with the paper's leaky ReLU slope 0.1 and batch statistics (training mode).
    a = h @ head.fc1.weight.T + head.fc1.bias
    a = (a - a.mean(0)) / torch.sqrt(a.var(0, unbiased=False) + 1e-5) * head.bn.weight + head.bn.bias
    a = torch.where(a > 0, a, 0.1 * a)
    torch.testing.assert_close(q, a @ head.fc2.weight.T + head.fc2.bias)
    logits, mu, logvar = head.split(q)
    assert [t.shape for t in logits] == [(6, 3), (6, 5)]
    assert torch.equal(logits[0], q[:, 0:3]) and torch.equal(logits[1], q[:, 3:8])
    assert torch.equal(mu, q[:, 8:10]) and torch.equal(logvar, q[:, 10:12])


def test_q_head_fixed_std_and_infogan_mnist_parameters():
    head = QHead()  # InfoGAN MNIST: 1024 features, one 10-way code, 2 continuous codes, fixed std
    q = head(torch.randn(4, 1024))
    logits, mu, logvar = split_q_output(q, (10,), 2)
    assert torch.equal(logvar, torch.zeros(4, 2)) and mu.abs().sum() > 0 and logits[0].shape == (4, 10)
    # FC 1024 -> 128 (+bias), BN(128) affine, FC 128 -> 10 + 2·2 (+bias): the reference keeps the unused
    # log-variance outputs of its fixed-std Gaussians.
    assert n_params(head) == 1024 * 128 + 128 + 2 * 128 + 128 * 14 + 14


def test_q_head_is_batch_coupled():
    assert CONDITIONING.entry("q_head").batch_coupled and CONDITIONING.entry("coord_predictor").batch_coupled
    head = QHead(5, cat_dims=(3,), cont_dim=1, hidden=8)
    h = torch.randn(4, 5)
    other = h.clone()
    other[1:] += 3.0
    assert not torch.allclose(head(h)[0], head(other)[0])  # batch norm couples the samples


# ---- conditioning augmentation -----------------------------------------------------------------------


def test_kl_equals_the_closed_form():
    mu, logvar = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    p = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    q = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(kl_divergence(mu, logvar), torch.distributions.kl_divergence(p, q).mean())
    assert kl_divergence(torch.zeros(3, 2), torch.zeros(3, 2)) == 0  # the prior itself


def test_ca_samples_have_the_predicted_mean_and_std():
    torch.manual_seed(0)
    ca = ConditioningAugmentation(text_dim=16, c_dim=8)
    with torch.no_grad():
        ca.fc.bias.normal_()  # spread mu and logvar
    text = torch.randn(1, 16).expand(20000, 16)  # one caption, many samples
    torch.manual_seed(1)
    c, side = ca(text)
    mu, logvar = ca.encode(text[:1])
    assert (mu >= 0).all() and (logvar >= 0).all()  # StackGAN-v1: ReLU before the split
    sigma = torch.exp(0.5 * logvar)
    torch.testing.assert_close(c.mean(0), mu[0], atol=4 * sigma.max().item() / 20000**0.5, rtol=0)
    torch.testing.assert_close(c.std(0), sigma[0], atol=0, rtol=0.03)
    torch.testing.assert_close(side["kl"], kl_divergence(mu, logvar))


def test_ca_reparameterisation_with_given_noise_and_eval_sampling():
    ca = ConditioningAugmentation(text_dim=6, c_dim=3)
    text, eps = torch.randn(4, 6), torch.randn(4, 3)
    c, mu, logvar = conditioning_augmentation(text, ca.fc.weight, ca.fc.bias, 3, noise=eps)
    torch.testing.assert_close(c, mu + eps * torch.exp(logvar / 2))
    ca.eval()  # the reference samples in eval mode too
    assert not torch.equal(ca(text)[0], ca(text)[0])
    assert n_params(ConditioningAugmentation()) == 1024 * 256 + 256  # StackGAN: fc 1024 -> 2·128, bias


# ---- hierarchical latents ----------------------------------------------------------------------------


def test_skip_z_biggan_chunks_reassemble_and_carry_y():
    block = SkipZ()  # BigGAN-128: z 120 in 6 chunks of 20, y 128
    z, y = torch.randn(3, 120), torch.randn(3, 128)
    z0, ys = block(z, y)
    assert z0.shape == (3, 20) and ys.shape == (3, 5, 148)
    assert (z0.shape, ys.shape) == block.out_shape(z.shape, y=y.shape)
    assert torch.equal(torch.cat([z0, *ys[:, :, 128:].unbind(1)], dim=1), z)  # chunks in order
    assert torch.equal(ys[:, :, :128], y[:, None].expand(3, 5, 128))  # y first, as BigGAN-PyTorch


def test_skip_z_biggan_deep():
    block = SkipZ(z_dim=128, y_dim=128, split=False, n_blocks=10)
    z, y = torch.randn(2, 128), torch.randn(2, 128)
    z0, ys = block(z, y)
    assert torch.equal(z0, z) and ys.shape == (2, 10, 256)
    for i in range(10):
        assert torch.equal(ys[:, i], torch.cat([z, y], 1))  # z first, as BigGANdeep.py


def test_skip_z_without_y_and_errors():
    block = SkipZ(z_dim=12, y_dim=0, chunks=3)
    assert block.consumes == ()
    z0, ys = block(torch.arange(24.0).view(2, 12))
    assert torch.equal(z0[0], torch.arange(4.0)) and torch.equal(ys[0, 1], torch.arange(8.0, 12.0))
    with pytest.raises(ValueError, match=r"^SkipZ: z_dim must split"):
        SkipZ(z_dim=100, chunks=6)
    with pytest.raises(TypeError, match=r"^SkipZ: y \(B, 128\) is required"):
        SkipZ()(torch.randn(2, 120))


# ---- COCO-GAN coordinates ----------------------------------------------------------------------------


def test_patch_grid_coords_non_square_column_major():
    rows, cols = 3, 4
    coords = patch_grid_coords(rows, cols)
    assert coords.shape == (12, 2)
    for j in range(cols):
        for i in range(rows):
            expected = torch.tensor([-1 + 2 * i / (rows - 1), -1 + 2 * j / (cols - 1)])
            torch.testing.assert_close(coords[j * rows + i], expected)


def test_assemble_patches_places_each_coordinate_at_its_position():
    rows, cols, ph, pw = 3, 4, 2, 5  # non-square grid of non-square patches
    coords = patch_grid_coords(rows, cols)
    # Each patch is filled with its own coordinate (channel 0: row position, channel 1: column position).
    patches = coords[None, :, :, None, None].expand(2, rows * cols, 2, ph, pw)
    image = assemble_patches(patches, rows, cols)
    assert image.shape == (2, 2, rows * ph, cols * pw)
    row_pos = torch.linspace(-1, 1, rows).repeat_interleave(ph)  # along H
    col_pos = torch.linspace(-1, 1, cols).repeat_interleave(pw)  # along W
    torch.testing.assert_close(image[:, 0], row_pos[:, None].expand(rows * ph, cols * pw).expand(2, -1, -1))
    torch.testing.assert_close(image[:, 1], col_pos[None, :].expand(rows * ph, cols * pw).expand(2, -1, -1))


def test_assemble_patches_inverts_cutting_an_image():
    rows, cols, ph, pw = 2, 3, 4, 3
    image = torch.randn(2, 3, rows * ph, cols * pw)
    cut = [image[:, :, i * ph:(i + 1) * ph, j * pw:(j + 1) * pw] for j in range(cols) for i in range(rows)]
    assert torch.equal(assemble_patches(torch.stack(cut, dim=1), rows, cols), image)


def test_coord_conditioning_is_latent_then_coords():
    z, coords = torch.randn(4, 6), patch_grid_coords(2, 2)
    out = CoordConditioning()(z, coords=coords)
    assert torch.equal(out, torch.cat([z, coords], 1))


def test_coord_projection_head_by_hand():
    torch.manual_seed(0)
    head = CoordProjectionHead(5)  # spectral norm on
    h, coords = torch.randn(4, 5), patch_grid_coords(2, 2)
    power_iterate(head, h, {"coords": coords})
    w, b = head.linear.weight, head.linear.bias
    we, be = head.coord_embed.weight, head.coord_embed.bias
    expected = h @ w[0] + b + ((coords @ we.T + be) * h).sum(1)
    torch.testing.assert_close(head(h, coords)[:, 0], expected)
    assert n_params(head) == 5 + 1 + 2 * 5 + 5  # both linear maps with bias


def test_coord_predictor_range_and_parameters():
    head = CoordPredictor(32)  # COCO-GAN: aux_dim 128, 2 coordinates
    out = head(torch.randn(6, 32) * 100)
    assert out.shape == (6, 2) and (out.abs() < 1).all()
    assert n_params(head) == 32 * 128 + 128 + 2 * 128 + 128 * 2 + 2
