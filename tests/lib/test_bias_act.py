"""bias_act and the activation blocks: NVlabs' default gains, hand-computed values, clamp after the gain,
fast == ref (values and gradients), the lr_mul of the learned bias, and textbook activation values."""

from __future__ import annotations

import math

import pytest
import torch

from blocks import (
    ACTIVATION_SPECS,
    GELU,
    BiasAct,
    Identity,
    LeakyReLU,
    ReLU,
    ShapeError,
    Sigmoid,
    SiLU,
    Tanh,
    bias_act,
)

SQRT2 = math.sqrt(2)
X = [-1.5, -0.25, 0.0, 0.5, 2.0]


def sig(v):
    return 1 / (1 + math.exp(-v))


# Hand computation of each activation at a point, with its default gain.
HAND = {
    "linear": lambda v: v,
    "relu": lambda v: max(v, 0.0) * SQRT2,
    "lrelu": lambda v: (v if v > 0 else 0.2 * v) * SQRT2,
    "tanh": math.tanh,
    "sigmoid": sig,
    "elu": lambda v: v if v > 0 else math.exp(v) - 1,
    "selu": lambda v: 1.0507009873554805 * (v if v > 0 else 1.6732632423543772 * (math.exp(v) - 1)),
    "softplus": lambda v: math.log1p(math.exp(v)),
    "swish": lambda v: v * sig(v) * SQRT2,
}


def test_default_gain_table_is_nvlabs():
    gains = {k: s.def_gain for k, s in ACTIVATION_SPECS.items()}
    assert gains == pytest.approx({"linear": 1, "relu": SQRT2, "lrelu": SQRT2, "tanh": 1, "sigmoid": 1,
                                   "elu": 1, "selu": 1, "softplus": 1, "swish": SQRT2})
    assert ACTIVATION_SPECS["lrelu"].def_alpha == 0.2


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("act", sorted(HAND))
def test_values_against_hand_computation(act, impl):
    # bias along dim 1 of a (1, 5, 1) tensor: x + b = X
    b = torch.tensor([0.5, -1.0, 0.25, 0.0, 1.0], dtype=torch.float64)
    x = (torch.tensor(X, dtype=torch.float64) - b).reshape(1, 5, 1)
    got = bias_act(x, b, dim=1, act=act, impl=impl).flatten().tolist()
    assert got == pytest.approx([HAND[act](v) for v in X], abs=1e-12)


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_alpha_and_gain_override(impl):
    x = torch.tensor(X, dtype=torch.float64).reshape(1, -1)
    got = bias_act(x, act="lrelu", alpha=0.1, gain=3.0, impl=impl).flatten().tolist()
    assert got == pytest.approx([3 * (v if v > 0 else 0.1 * v) for v in X])


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_clamp_comes_after_the_gain(impl):
    x = torch.tensor([[-300.0, -100.0, 100.0, 200.0, 300.0]])
    got = bias_act(x, act="linear", gain=2.0, clamp=256.0, impl=impl)
    assert got.flatten().tolist() == [-256.0, -200.0, 200.0, 256.0, 256.0]
    # lrelu: 200·√2 = 282.8 is clamped (clamping 200 before the gain would not have been)
    got = bias_act(torch.tensor([[200.0, 150.0, -500.0]]), act="lrelu", clamp=256.0, impl=impl)
    assert got.flatten().tolist() == pytest.approx([256.0, 150 * SQRT2, -100 * SQRT2])


def test_bias_runs_along_dim():
    x = torch.zeros(2, 3, 4)
    b = torch.tensor([1.0, 2.0, 3.0, 4.0])
    torch.testing.assert_close(bias_act(x, b, dim=2), b.expand(2, 3, 4))
    torch.testing.assert_close(bias_act(x, b, dim=-1), b.expand(2, 3, 4))
    with pytest.raises(ValueError, match=r"^bias_act"):
        bias_act(x, b, dim=1)
    with pytest.raises(ValueError, match=r"^bias_act"):
        bias_act(x, act="gelu")


CONFIGS = [(act, g, c, a) for act in sorted(HAND) for g, c, a in
           [(None, None, None), (0.7, 1.0, None), (None, 0.5, None), (-1.5, None, None)]]
CONFIGS += [("lrelu", None, None, -0.3), ("lrelu", 1.0, None, 0.0), ("relu", 1.0, None, None)]


@pytest.mark.parametrize("act,gain,clamp,alpha", CONFIGS)
@pytest.mark.parametrize("with_bias", [True, False])
def test_fast_equals_ref_with_gradients(act, gain, clamp, alpha, with_bias):
    torch.manual_seed(0)
    x0 = torch.randn(3, 4, 5, dtype=torch.float64)
    b0 = torch.randn(4, dtype=torch.float64) if with_bias else None
    results = []
    for impl in ("ref", "fast"):
        x = x0.clone().requires_grad_()
        b = b0.clone().requires_grad_() if with_bias else None
        y = bias_act(x, b, 1, act, alpha, gain, clamp, impl=impl)
        weights = torch.linspace(-1, 2, y.numel(), dtype=y.dtype).reshape(y.shape)
        grads = torch.autograd.grad((y * weights).sum(), [t for t in (x, b) if t is not None])
        results.append((y, *grads))
    for r, f in zip(results[0], results[1]):
        torch.testing.assert_close(f, r)
    x = x0.clone()
    bias_act(x, b0, 1, act, alpha, gain, clamp, impl="fast")
    assert torch.equal(x, x0), "the fast path must not modify its input"


def test_bias_act_block_bias_init_and_lr_mul():
    block = BiasAct(3, act="linear", bias_init=0.5, lr_mul=0.01)
    assert block.bias.detach().tolist() == pytest.approx([50.0] * 3)  # stored as bias_init / lr_mul
    x = torch.randn(2, 3, 4, 4)
    y = block(x)
    torch.testing.assert_close(y, x + 0.5)
    y.sum().backward()
    # d y / d stored bias = lr_mul: the effective learning rate of the bias is lr_mul times smaller
    torch.testing.assert_close(block.bias.grad, torch.full((3,), 0.01 * 2 * 4 * 4))


def test_bias_act_block_lrelu_with_clamp():
    block = BiasAct(2, act="lrelu", clamp=1.0, bias_init=0.1)
    x = torch.tensor([[[[-1.0]], [[3.0]]]])
    assert block(x).flatten().tolist() == pytest.approx([-0.9 * 0.2 * SQRT2, 1.0])
    with pytest.raises(ShapeError, match=r"^BiasAct"):
        block(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"^BiasAct"):
        BiasAct(2, act="mish")


# ---- plain activation blocks ----------------------------------------------------------------------


@pytest.mark.parametrize("block,expected", [
    (ReLU(), [0.0, 0.0, 0.0, 0.5, 2.0]),
    (LeakyReLU(), [-0.3, -0.05, 0.0, 0.5, 2.0]),  # DCGAN / ProGAN slope 0.2
    (Tanh(), [math.tanh(v) for v in X]),
    (Sigmoid(), [sig(v) for v in X]),
    (GELU(), [v * 0.5 * (1 + math.erf(v / SQRT2)) for v in X]),  # exact x·Φ(x)
    (SiLU(), [v * sig(v) for v in X]),
    (Identity(), X),
])
def test_plain_activations_textbook(block, expected):
    x = torch.tensor(X, dtype=torch.float64).reshape(1, 5)
    assert block(x).flatten().tolist() == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ShapeError, match=f"^{type(block).__name__}"):
        block(torch.zeros(5))


@pytest.mark.parametrize("act", ["lrelu", "relu", "tanh", "swish"])
def test_fast_path_supports_double_backward(act):
    """R1 and path-length regularisation differentiate through gradients: the in-place fast path must
    keep second derivatives exact."""
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, b: bias_act(x, b, act=act, clamp=0.8, impl="fast"), (x, b))
