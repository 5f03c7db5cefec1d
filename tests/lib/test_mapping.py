"""StyleGAN's mapping network: the reference parameter count, the forward pass written out, truncation
(ψ = 0 gives w_avg, ψ = 1 the identity, cutoff), the w_avg moving average in train but not eval mode,
the class embedding and the narrowed ``consumes``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from blocks import MappingNetwork, ShapeError, truncate


def test_parameter_count_is_the_reference():
    with torch.device("meta"):
        m = MappingNetwork(512, w_dim=512, num_layers=8, c_dim=0)
    assert sum(p.numel() for p in m.parameters()) == 2_101_248
    assert [n for n, _ in m.named_buffers()] == ["w_avg"]
    with torch.device("meta"):
        cond = MappingNetwork(512, w_dim=512, c_dim=10)
    # embed 10·512 + 512; fc0 (512 + 512)·512 + 512; fc1..fc7 7·(512·512 + 512)
    assert sum(p.numel() for p in cond.parameters()) == 5_632 + 524_800 + 7 * 262_656


def test_forward_written_out():
    torch.manual_seed(0)
    m = MappingNetwork(6, w_dim=5, num_layers=3).double()
    z = torch.randn(4, 6, dtype=torch.float64)
    x = z / z.square().mean(dim=1, keepdim=True).add(1e-8).sqrt()
    for fc in m.fcs:
        fan_in = fc.weight.shape[1]
        x = x @ (fc.weight * 0.01 / math.sqrt(fan_in)).t() + fc.bias * 0.01
        x = F.leaky_relu(x, 0.2) * math.sqrt(2)
    torch.testing.assert_close(m(z), x)
    # the mapping layers: lr_mul 0.01, stored weights N(0, 100²)
    assert all(fc.lr_mul == 0.01 for fc in m.fcs)


def test_z_normalisation_makes_the_scale_of_z_irrelevant():
    m = MappingNetwork(8, w_dim=4, num_layers=2).double().eval()
    z = torch.randn(3, 8, dtype=torch.float64)
    torch.testing.assert_close(m(z * 37.0), m(z))


def make_with_avg(num_ws=None):
    torch.manual_seed(1)
    m = MappingNetwork(6, w_dim=5, num_ws=num_ws, num_layers=2).double().eval()
    m.w_avg.copy_(torch.randn(5, dtype=torch.float64))
    return m, torch.randn(3, 6, dtype=torch.float64)


def test_truncation_psi():
    m, z = make_with_avg()
    w = m(z)
    torch.testing.assert_close(m(z, truncation_psi=0.0), m.w_avg.expand(3, 5))
    torch.testing.assert_close(m(z, truncation_psi=1.0), w)
    torch.testing.assert_close(m(z, truncation_psi=0.5), (w + m.w_avg) / 2)
    torch.testing.assert_close(m.truncate(w, 0.25), m.w_avg + 0.25 * (w - m.w_avg))


def test_truncation_cutoff_only_touches_the_first_layers():
    m, z = make_with_avg(num_ws=6)
    ws = m(z)
    assert ws.shape == (3, 6, 5)
    torch.testing.assert_close(ws, ws[:, :1].expand(3, 6, 5))  # broadcast: every layer the same w
    t = m(z, truncation_psi=0.0, truncation_cutoff=2)
    torch.testing.assert_close(t[:, :2], m.w_avg.expand(3, 2, 5))
    torch.testing.assert_close(t[:, 2:], ws[:, 2:])
    torch.testing.assert_close(truncate(ws, m.w_avg, 0.5, cutoff=None), (ws + m.w_avg) / 2)


def test_w_avg_tracks_the_batch_mean_in_train_mode_only():
    m, z = make_with_avg()
    before = m.w_avg.clone()
    w = m(z)  # eval: no update
    torch.testing.assert_close(m.w_avg, before)
    m.train()
    m(z, update_w_avg=False)
    torch.testing.assert_close(m.w_avg, before)
    m(z)
    # w_avg ← β·w_avg + (1-β)·mean(w): it moves toward the batch mean by (1-β) of the gap
    torch.testing.assert_close(m.w_avg, before + (1 - 0.995) * (w.mean(dim=0) - before))
    m.train()
    out = m(z, truncation_psi=0.0)
    torch.testing.assert_close(out, m.w_avg.expand(3, 5))


def test_truncation_needs_tracking():
    m = MappingNetwork(4, w_dim=3, num_layers=1, w_avg_beta=None)
    with pytest.raises(ValueError, match=r"^MappingNetwork"):
        m(torch.randn(2, 4), truncation_psi=0.5)


def test_class_embedding_and_consumes():
    assert MappingNetwork(4, w_dim=3, num_layers=1).consumes == ()
    torch.manual_seed(2)
    m = MappingNetwork(4, w_dim=3, c_dim=5, num_layers=2).double().eval()
    assert m.consumes == ("c",)
    z = torch.randn(3, 4, dtype=torch.float64)
    idx = torch.tensor([0, 4, 2])
    onehot = F.one_hot(idx, 5).double()
    torch.testing.assert_close(m(z, idx), m(z, onehot))
    # the embedding is normalised before the concatenation: its scale does not matter either
    torch.testing.assert_close(m(z, onehot * 9.0), m(z, onehot))
    assert not torch.allclose(m(z, onehot), m(z, F.one_hot(torch.tensor([1, 1, 1]), 5).double()))
    with pytest.raises(ValueError, match=r"^MappingNetwork"):
        m(z)
    with pytest.raises(ValueError, match=r"^MappingNetwork"):
        m(z, torch.tensor([0, 5, 1]))
    with pytest.raises(ShapeError, match=r"^MappingNetwork"):
        m(z, torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"^MappingNetwork"):
        MappingNetwork(4, w_dim=3, num_layers=1)(z.float(), torch.randn(3, 2))


def test_label_only_mapping_as_nvlabs_conditional_discriminator():
    """z_dim=0: mapping(None, c), NVlabs' D maps the label to cmap this way; no w_avg without tracking."""
    torch.manual_seed(0)
    m = MappingNetwork(0, w_dim=5, c_dim=3, num_layers=2, w_avg_beta=None).double()
    assert [n for n, _ in m.named_buffers()] == []
    c = torch.eye(3, dtype=torch.float64)[[0, 2, 1, 2]]
    y = m.embed(c)
    x = y / y.square().mean(dim=1, keepdim=True).add(1e-8).sqrt()
    for fc in m.fcs:
        x = x @ (fc.weight * 0.01 / math.sqrt(fc.weight.shape[1])).t() + fc.bias * 0.01
        x = F.leaky_relu(x, 0.2) * math.sqrt(2)
    torch.testing.assert_close(m(None, c), x)
    torch.testing.assert_close(m(c=torch.tensor([0, 2, 1, 2])), x)  # class indices
    assert m.out_shape(None, (4, 3)) == (4, 5)
    with pytest.raises(ValueError, match=r"z was given .* but the network has z_dim=0"):
        m(torch.randn(4, 2, dtype=torch.float64), c)
    with pytest.raises(ValueError, match="truncation needs the tracked w_avg"):
        m(None, c, truncation_psi=0.5)
    with pytest.raises(ValueError, match="not both 0"):
        MappingNetwork(0, w_dim=5, c_dim=0)
