"""Generic checks run on every registered network block (parametrised over the registry itself).

A new block is tested here without editing this file: it only has to provide ``example``,
``out_shape`` and, where it has maths of its own, ``call_function``.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import blocks
from blocks import MODULE_KINDS, Block, ShapeError, Sizes

ENTRIES = [e for reg in MODULE_KINDS for e in reg.entries()]
IDS = [e.key for e in ENTRIES]

sizes = st.builds(
    Sizes,
    B=st.integers(2, 3),
    C=st.integers(1, 5),
    H=st.integers(2, 7),
    W=st.integers(2, 7),
    D=st.integers(1, 6),
    N=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)


def outputs(out) -> list[torch.Tensor]:
    """Main outputs of a forward call, flattened (side-output dicts and absent outputs, None, are left out)."""
    if out is None:
        return []
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, tuple | list):
        return [t for o in out if not isinstance(o, dict) for t in outputs(o)]
    raise TypeError(f"unexpected output type {type(out)}")


def side_outputs(out) -> dict[str, torch.Tensor]:
    if isinstance(out, tuple) and out and isinstance(out[-1], dict):
        return out[-1]
    return {}


def shapes(law) -> list[tuple[int, ...]]:
    """A shape law's shapes: one shape, or a list of them (None for an output a block leaves absent)."""
    if law and (law[0] is None or isinstance(law[0], tuple | list)):
        return [tuple(s) for s in law if s is not None]
    return [tuple(law)]


def build(entry, s: Sizes, seed: int = 0):
    ex = entry.obj.example(s)
    torch.manual_seed(seed)
    return entry.obj(**ex.kwargs), ex


def run(block, ex, inputs=None, cond=None):
    return block(*(ex.inputs if inputs is None else inputs), **(ex.cond if cond is None else cond))


def all_outputs_sum(out) -> torch.Tensor:
    total = sum(o.float().sum() for o in outputs(out) if o.is_floating_point())
    total = total + sum(v.float().sum() for v in side_outputs(out).values() if v.is_floating_point())
    return total


def with_grad(ex):
    inputs = tuple(x.clone().requires_grad_(x.is_floating_point()) for x in ex.inputs)
    cond = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in ex.cond.items()}
    return inputs, cond


# ---- metadata -------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_metadata_and_docstring(entry):
    cls = entry.obj
    assert issubclass(cls, Block), f"{entry.key} must subclass blocks.Block"
    doc = inspect.getdoc(cls) or ""
    assert "Shape:" in doc, f"{entry.key}: docstring needs a Shape: section"
    assert entry.paper, f"{entry.key}: registry entry needs its paper"
    assert set(cls.consumes) == set(entry.consumes)
    assert blocks.describe(entry.key).startswith(entry.key)
    for name, p in inspect.signature(cls).parameters.items():
        assert p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD), f"{entry.key}: no *args/**kwargs ({name})"


def test_keys_unique_across_network_kinds():
    keys = [e.key for e in ENTRIES]
    assert len(keys) == len(set(keys))


# ---- construction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_builds_from_defaults_and_on_meta(entry):
    ex = entry.obj.example(Sizes())
    block = entry.obj(**ex.kwargs)
    for name, p in inspect.signature(entry.obj).parameters.items():
        if name not in ex.kwargs:
            assert p.default is not p.empty, f"{entry.key}: required argument {name} missing from example"
    # Sub-modules passed in (e.g. a residual body) move to meta with the block.
    meta_kwargs = {k: copy.deepcopy(v).to("meta") if isinstance(v, torch.nn.Module) else v
                   for k, v in ex.kwargs.items()}
    with torch.device("meta"):
        meta_block = entry.obj(**meta_kwargs)
    assert all(p.is_meta for p in meta_block.parameters())
    meta_in = tuple(x.to("meta") for x in ex.inputs)
    meta_cond = {k: v.to("meta") for k, v in ex.cond.items()}
    out = meta_block(*meta_in, **meta_cond)
    got = [tuple(o.shape) for o in outputs(out)]
    assert got == shapes(block.out_shape(*(x.shape for x in ex.inputs),
                                         **{k: v.shape for k, v in ex.cond.items()}))


# ---- shape law, forward/backward, dtype, determinism -----------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
@given(s=sizes)
def test_shape_law(entry, s):
    block, ex = build(entry, s)
    out = run(block, ex)
    law = block.out_shape(*(x.shape for x in ex.inputs), **{k: v.shape for k, v in ex.cond.items()})
    assert [tuple(o.shape) for o in outputs(out)] == shapes(law)
    assert set(side_outputs(out)) == set(block.emits)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_forward_backward_finite(entry):
    block, ex = build(entry, Sizes(B=2, C=3, H=6, W=6, D=4, N=3))
    inputs, cond = with_grad(ex)
    out = run(block, ex, inputs, cond)
    for o in outputs(out):
        assert torch.isfinite(o.float()).all(), f"{entry.key}: non-finite output"
    total = all_outputs_sum(out)
    if total.requires_grad:
        total.backward()
        grads = [t.grad for t in (*inputs, *cond.values(), *block.parameters()) if t.grad is not None]
        assert grads, f"{entry.key}: no gradient reached any input or parameter"
        for g in grads:
            assert torch.isfinite(g).all(), f"{entry.key}: non-finite gradient"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_dtype_preserved(entry, dtype):
    block, ex = build(entry, Sizes(B=2, C=3, H=6, W=6, D=4, N=3))
    block = block.to(dtype)
    inputs = tuple(x.to(dtype) if x.is_floating_point() else x for x in ex.inputs)
    cond = {k: v.to(dtype) if v.is_floating_point() else v for k, v in ex.cond.items()}
    float_in = any(t.is_floating_point() for t in (*inputs, *cond.values()))
    for o in outputs(run(block, ex, inputs, cond)):
        if o.is_floating_point() and float_in:
            assert o.dtype == dtype, f"{entry.key}: {dtype} input gave {o.dtype} output"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_deterministic_under_seed(entry):
    s = Sizes(B=2, C=3, H=6, W=6, D=4, N=3, seed=3)
    a, ex = build(entry, s, seed=7)
    b, _ = build(entry, Sizes(B=2, C=3, H=6, W=6, D=4, N=3, seed=3), seed=7)
    torch.manual_seed(1)
    out_a = outputs(run(a, ex))
    torch.manual_seed(1)
    out_b = outputs(run(b, ex))
    for x, y in zip(out_a, out_b, strict=True):
        assert torch.equal(x, y)


# ---- batch independence ---------------------------------------------------------------------------


@pytest.mark.parametrize("entry", [e for e in ENTRIES if not e.batch_coupled],
                         ids=[e.key for e in ENTRIES if not e.batch_coupled])
@given(s=sizes)
def test_batch_independence(entry, s):
    block, ex = build(entry, s)
    twin = copy.deepcopy(block)  # stateful blocks (spectral norm's u, running stats) start equal
    torch.manual_seed(5)
    before = outputs(run(block, ex))
    gen = torch.Generator().manual_seed(s.seed + 1)

    def perturb(t):
        t = t.clone()
        if t.is_floating_point():
            t[1:] = torch.randn(t[1:].shape, generator=gen).to(t.dtype)
        elif t.dtype == torch.long and t.numel():
            t[1:] = t[1:].flip(0) if t.shape[0] > 2 else t[:1].expand_as(t[1:])
        return t

    inputs = tuple(perturb(x) for x in ex.inputs)
    cond = {k: perturb(v) for k, v in ex.cond.items()}
    torch.manual_seed(5)
    after = outputs(run(twin, ex, inputs, cond))
    for x, y in zip(before, after, strict=True):
        if x.dim() and x.shape[0] == s.B:
            torch.testing.assert_close(x[0], y[0], msg=f"{entry.key}: sample 0 changed with the others")


# ---- function == module, ref == fast, gradcheck -----------------------------------------------------

WITH_FUNCTION = [e for e in ENTRIES if e.obj.call_function is not Block.call_function]
WITH_IMPLS = [e for e in ENTRIES if len(e.obj.impls) > 1]


@pytest.mark.parametrize("entry", WITH_FUNCTION, ids=[e.key for e in WITH_FUNCTION])
@given(s=sizes)
def test_function_matches_module(entry, s):
    block, ex = build(entry, s)
    twin = copy.deepcopy(block)
    torch.manual_seed(2)
    mod = outputs(run(block, ex))
    torch.manual_seed(2)
    fn = outputs(twin.call_function(*ex.inputs, **ex.cond))
    for x, y in zip(mod, fn, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("entry", WITH_IMPLS, ids=[e.key for e in WITH_IMPLS])
@given(s=sizes)
def test_reference_matches_fast_paths(entry, s):
    ex = entry.obj.example(s)
    ref = entry.obj(**{**ex.kwargs, "impl": "ref"})
    state = copy.deepcopy(ref.state_dict())  # before any call advances stateful buffers
    inputs_ref, cond_ref = with_grad(ex)
    torch.manual_seed(2)
    out_ref = outputs(run(ref, ex, inputs_ref, cond_ref))
    all_outputs_sum(out_ref).backward()
    for impl in entry.obj.impls[1:]:
        other = entry.obj(**{**ex.kwargs, "impl": impl})
        other.load_state_dict(state)
        assert other.impl == impl
        inputs, cond = with_grad(ex)
        torch.manual_seed(2)
        out = outputs(run(other, ex, inputs, cond))
        for x, y in zip(out_ref, out, strict=True):
            torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-4, msg=f"{entry.key}: {impl} != ref")
        all_outputs_sum(out).backward()
        for a, b in zip((*inputs_ref, *cond_ref.values()), (*inputs, *cond.values()), strict=True):
            if a.grad is not None:
                torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-4,
                                           msg=f"{entry.key}: {impl} gradient != ref")


@pytest.mark.parametrize("entry", WITH_FUNCTION, ids=[e.key for e in WITH_FUNCTION])
def test_gradcheck_float64(entry):
    s = Sizes(B=2, C=2, H=4, W=4, D=3, N=2, seed=1, dtype=torch.float64)
    block, ex = build(entry, s)
    block = block.double()
    names = list(ex.cond)
    tensors = [t for t in (*ex.inputs, *ex.cond.values())]
    diff = [i for i, t in enumerate(tensors) if t.is_floating_point()]
    if not diff:
        pytest.skip("no floating-point inputs")

    def f(*xs):
        full = list(tensors)
        for i, x in zip(diff, xs, strict=True):
            full[i] = x
        torch.manual_seed(3)
        ins, cs = full[: len(ex.inputs)], dict(zip(names, full[len(ex.inputs):], strict=True))
        out = block(*ins, **cs)
        return tuple(o for o in outputs(out) if o.is_floating_point())

    xs = tuple(tensors[i].detach().clone().requires_grad_(True) for i in diff)
    assert torch.autograd.gradcheck(f, xs, eps=1e-6, atol=1e-4, fast_mode=True)


# ---- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_wrong_rank_names_the_block(entry):
    """A tensor of the wrong rank raises an error naming the block, or (for rank-polymorphic inputs) is
    accepted and then obeys the declared shape law: nothing broadcasts silently into a wrong shape."""
    block, ex = build(entry, Sizes())
    named = [("input", i) for i in range(len(ex.inputs))] + [("cond", k) for k in ex.cond]
    for where, idx in named:
        t = ex.inputs[idx] if where == "input" else ex.cond[idx]
        flat = t.reshape(-1) if t.dim() > 1 else t[:, None, None]
        for bad, must_fail in ((flat, True), (t[0], False), (t.unsqueeze(-1), False)):
            inputs, cond = list(ex.inputs), dict(ex.cond)
            if where == "input":
                inputs[idx] = bad
            else:
                cond[idx] = bad
            try:
                out = run(block, ex, tuple(inputs), cond)
            except (ShapeError, TypeError, ValueError) as err:
                assert type(block).__name__ in str(err), f"{entry.key}: error does not name the block: {err}"
                continue
            assert not must_fail, f"{entry.key}: {where} {idx} of shape {tuple(bad.shape)} was accepted"
            law = block.out_shape(*(x.shape for x in inputs), **{k: v.shape for k, v in cond.items()})
            got = [tuple(o.shape) for o in outputs(out)]
            assert got == shapes(law), f"{entry.key}: accepted {tuple(bad.shape)} but broke its shape law"
