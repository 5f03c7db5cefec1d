"""Generic checks run on every registered loss and regularizer (parametrised over the registries).

A new objective is tested here without editing this file: it only has to provide ``example``.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import blocks
from blocks import LOSSES, REGULARIZERS, AdversarialLoss, AuxiliaryLoss, Regularizer, ShapeError, Sizes

LOSS_ENTRIES = LOSSES.entries()
REG_ENTRIES = REGULARIZERS.entries()
ALL = LOSS_ENTRIES + REG_ENTRIES
ADVERSARIAL = [e for e in LOSS_ENTRIES if e.extra.get("role") == "adversarial"]


def ids(entries):
    return [e.key for e in entries]


def sizes(seed: int = 0) -> Sizes:
    return Sizes(B=3, C=2, H=3, W=4, D=3, N=2, seed=seed)


def with_grad(x):
    """Float tensors become fresh leaves that require grad (those already in a graph are kept)."""
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() and not x.requires_grad:
            return x.detach().clone().requires_grad_(True)
        return x
    if isinstance(x, list | tuple):
        return type(x)(with_grad(t) for t in x)
    return x


def leaves(x) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x] if x.is_leaf and x.requires_grad else []
    if isinstance(x, nn.Module):
        return list(x.parameters())
    if isinstance(x, list | tuple):
        return [t for item in x for t in leaves(item)]
    return []


def repeat_batch(x):
    """Every tensor repeated twice along the batch dim (modules and other values unchanged)."""
    if isinstance(x, torch.Tensor):
        return torch.cat([x, x])
    if isinstance(x, list | tuple):
        return type(x)(repeat_batch(t) for t in x)
    return x


def evaluate(entry, ex, args=None, cond=None):
    """The objective's value(s) on the example: adversarial losses give (d_loss, g_loss)."""
    args = ex.args if args is None else args
    cond = ex.cond if cond is None else cond
    obj = entry.obj(**ex.kwargs)
    if entry.extra.get("role") == "adversarial":
        real, fake = args
        return [obj.d_loss(real, fake, **cond), obj.g_loss(fake, real)]
    return [obj(*args, **cond)]


# ---- metadata -------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ALL, ids=ids(ALL))
def test_metadata(entry):
    cls = entry.obj
    assert entry.paper, f"{entry.key}: needs its paper"
    doc = inspect.getdoc(cls) or ""
    assert "Shape:" in doc, f"{entry.key}: docstring needs a Shape: section"
    assert blocks.describe(entry.key).startswith(entry.key)
    for name, p in inspect.signature(cls).parameters.items():
        assert p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD), f"{entry.key}: no *args/**kwargs ({name})"
        assert p.default is not p.empty, f"{entry.key}: every constructor argument needs the paper's default"
    obj = cls()
    if entry in LOSS_ENTRIES:
        assert entry.extra.get("role") in ("adversarial", "auxiliary")
        assert issubclass(cls, AdversarialLoss if entry.extra["role"] == "adversarial" else AuxiliaryLoss)
        assert obj.role == entry.extra["role"]
    else:
        assert isinstance(obj, Regularizer)
        assert isinstance(obj.weight, float) and obj.weight >= 0
        assert isinstance(obj.interval, int) and obj.interval >= 1
        assert obj.network in ("G", "D")
    assert obj.needs, f"{entry.key}: `needs` names the call's inputs"
    assert repr(obj).startswith(cls.__name__)


# ---- value: scalar, finite, differentiable, reduced over the batch -----------------------------------


@pytest.mark.parametrize("entry", ALL, ids=ids(ALL))
@pytest.mark.parametrize("seed", [0, 1])
def test_scalar_finite_and_differentiable(entry, seed):
    ex = entry.obj.example(sizes(seed))
    args, cond = with_grad(ex.args), with_grad(ex.cond)
    values = evaluate(entry, ex, args, cond)
    inputs = leaves(args) + leaves(list(cond.values()))
    if values == [None]:  # acts in place (weight clipping)
        return
    for v in values:
        assert isinstance(v, torch.Tensor) and v.shape == (), f"{entry.key}: must return a scalar"
        assert v.dtype == torch.float32 and torch.isfinite(v), f"{entry.key}: {v}"
        grads = torch.autograd.grad(v, inputs, allow_unused=True, retain_graph=True)
        got = [g for g in grads if g is not None]
        assert got, f"{entry.key}: no gradient reached any input or parameter"
        assert all(torch.isfinite(g).all() for g in got), f"{entry.key}: non-finite gradient"


@pytest.mark.parametrize("entry", ALL, ids=ids(ALL))
def test_mean_over_the_batch(entry):
    """Repeating the batch leaves a batch mean unchanged (a sum would double)."""
    ex = entry.obj.example(sizes(2))
    if not ex.batch_mean:
        pytest.skip("stochastic or parameter-only term")
    torch.manual_seed(0)
    once = evaluate(entry, ex)
    torch.manual_seed(0)
    twice = evaluate(entry, ex, repeat_batch(ex.args), repeat_batch(ex.cond))
    for a, b in zip(once, twice, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


# ---- adversarial losses ----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ADVERSARIAL, ids=ids(ADVERSARIAL))
def test_adversarial_stable_at_extreme_logits(entry):
    ex = entry.obj.example(sizes())
    loss = entry.obj(**ex.kwargs)
    big = torch.tensor([200.0, -200.0, 0.0], requires_grad=True)
    cond = {k: torch.full_like(v, -200.0) for k, v in ex.cond.items()}
    for v in (loss.d_loss(big, -big, **cond), loss.g_loss(-big, big)):
        (g,) = torch.autograd.grad(v, big)
        assert torch.isfinite(v) and torch.isfinite(g).all(), f"{entry.key}: {v}, {g}"


@pytest.mark.parametrize("entry", ADVERSARIAL, ids=ids(ADVERSARIAL))
def test_adversarial_logit_layouts_agree_and_bad_shapes_name_the_loss(entry):
    ex = entry.obj.example(sizes())
    loss = entry.obj(**ex.kwargs)
    real, fake = torch.randn(4), torch.randn(4)
    flat = [loss.d_loss(real, fake, **ex.cond), loss.g_loss(fake, real)]
    column = [loss.d_loss(real[:, None], fake[:, None], **ex.cond), loss.g_loss(fake[:, None], real[:, None])]
    patch = [loss.d_loss(real.view(1, 1, 2, 2), fake.view(1, 1, 2, 2), **ex.cond),
             loss.g_loss(fake.view(1, 1, 2, 2))]
    for a, b, c in zip(flat, column, patch, strict=True):
        torch.testing.assert_close(b, a)
        torch.testing.assert_close(c, a)  # a PatchGAN map is averaged over every element
    with pytest.raises(ShapeError, match=type(loss).__name__):
        loss.d_loss(torch.randn(4, 2), fake, **ex.cond)
    with pytest.raises(TypeError, match=type(loss).__name__):
        loss.g_loss(torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("entry", ADVERSARIAL, ids=ids(ADVERSARIAL))
def test_adversarial_gradients_push_the_right_way(entry):
    """D's loss falls as real logits rise and fake logits fall; G's loss falls as fake logits rise."""
    ex = entry.obj.example(sizes())
    loss = entry.obj(**ex.kwargs)
    real, fake = torch.full((4,), 0.5, requires_grad=True), torch.full((4,), 0.5, requires_grad=True)
    g_real, g_fake = torch.autograd.grad(loss.d_loss(real, fake, **ex.cond), (real, fake))
    assert (g_real < 0).all() and (g_fake > 0).all(), f"{entry.key}: {g_real}, {g_fake}"
    (g_gen,) = torch.autograd.grad(loss.g_loss(fake), fake)
    assert (g_gen < 0).all(), f"{entry.key}: {g_gen}"


def test_bf16_logits_give_float32_losses():
    for entry in ADVERSARIAL:
        ex = entry.obj.example(sizes())
        loss = entry.obj(**ex.kwargs)
        cond = {k: v.bfloat16() for k, v in ex.cond.items()}
        assert loss.d_loss(torch.randn(3).bfloat16(), torch.randn(3).bfloat16(), **cond).dtype == torch.float32
