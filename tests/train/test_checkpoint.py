"""Checkpoints: exact round trips, bit-identical continuation, atomicity, retention and tamper detection."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from assemble.checkpoint import (
    CheckpointError,
    generator_state,
    latest_checkpoint,
    load_checkpoint,
    load_module_tensors,
    load_optimizer_state,
    module_tensors,
    optimizer_state,
    rng_state,
    save_checkpoint,
    set_generator_state,
    set_rng_state,
)


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.2), nn.Linear(8, 1))


def _step(net: nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 4, generator=g)
    opt.zero_grad()
    net(x).square().mean().backward()
    opt.step()


def _save_simple(run_dir: Path, step: int, keep: int = 3) -> Path:
    return save_checkpoint(run_dir, step, {"w": torch.full((3,), float(step))}, {"step": step}, keep=keep)


def _record(json_path: Path) -> dict:
    return json.loads(json_path.read_text())


# --------------------------------------------------------------------------------------------- round trips


def test_module_round_trip_with_buffers(tmp_path):
    net = _net(0)
    net.train()
    net(torch.randn(8, 4))  # moves BatchNorm's running stats away from their initial values
    tensors = module_tensors("G", net)
    assert set(tensors) == {f"G.{k}" for k in net.state_dict()}
    save_checkpoint(tmp_path, 1, tensors, {})
    loaded, state = load_checkpoint(tmp_path)
    assert state == {}

    other = _net(1)
    load_module_tensors("G", other, loaded)
    for k, v in net.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k
        assert other.state_dict()[k].dtype == v.dtype


def test_load_module_tensors_names_missing_unexpected_and_shapes():
    net = _net()
    tensors = module_tensors("G.", net)  # a trailing dot is the same prefix
    assert "G.0.weight" in tensors
    del tensors["G.3.bias"]
    tensors["G.9.weight"] = torch.zeros(1)
    tensors["G.0.weight"] = torch.zeros(2, 2)
    with pytest.raises(CheckpointError) as e:
        load_module_tensors("G", _net(), tensors)
    msg = str(e.value)
    assert "G.3.bias" in msg and "G.9.weight" in msg
    assert "G.0.weight: checkpoint (2, 2), module (8, 4)" in msg

    tensors["G.0.weight"] = net.state_dict()["0.weight"]
    fresh = _net(5)
    result = load_module_tensors("G", fresh, tensors, strict=False)
    assert result.missing_keys == ["3.bias"] and result.unexpected_keys == ["9.weight"]
    assert torch.equal(fresh.state_dict()["0.weight"], net.state_dict()["0.weight"])


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.5, 0.99)),
    lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True),
    lambda p: torch.optim.AdamW(p, lr=torch.tensor(1e-2), foreach=False),  # a tensor hyperparameter
], ids=["adam", "sgd_momentum", "adamw_tensor_lr"])
def test_optimizer_round_trip_continues_bit_identically(tmp_path, make_opt):
    net = _net(0)
    opt = make_opt(net.parameters())
    for i in range(3):
        _step(net, opt, i)
    tensors = module_tensors("G", net)
    opt_tensors, opt_json = optimizer_state("opt_G", opt)
    assert opt_tensors and all(k.startswith("opt_G.") for k in opt_tensors)
    save_checkpoint(tmp_path, 3, {**tensors, **opt_tensors}, {"opt_G": opt_json})

    # The uninterrupted run takes two more steps.
    for i in range(3, 5):
        _step(net, opt, i)

    loaded, state = load_checkpoint(tmp_path / "ckpt-00000003.json")
    resumed = _net(7)
    opt2 = make_opt(resumed.parameters())
    load_module_tensors("G", resumed, loaded)
    load_optimizer_state("opt_G", opt2, loaded, state["opt_G"])
    assert len(opt2.state_dict()["state"]) == len(opt_json["state"]) == 6
    for i in range(3, 5):
        _step(resumed, opt2, i)

    for (k, a), b in zip(net.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    sd1, sd2 = opt.state_dict(), opt2.state_dict()
    assert sd1["param_groups"] == sd2["param_groups"]  # tuples (betas) come back as tuples
    assert sd1["state"].keys() == sd2["state"].keys()
    for pid, s in sd1["state"].items():
        assert s.keys() == sd2["state"][pid].keys()
        for name, v in s.items():
            assert torch.equal(v, sd2["state"][pid][name]), (pid, name)
            assert v.dtype == sd2["state"][pid][name].dtype


def test_optimizer_state_errors():
    net = _net()
    opt = torch.optim.Adam(net.parameters())
    _step(net, opt, 0)
    tensors, js = optimizer_state("opt_G", opt)
    with pytest.raises(CheckpointError, match=r"opt_D\.state\.0"):
        load_optimizer_state("opt_D", torch.optim.Adam(_net().parameters()), tensors, js)
    with pytest.raises(CheckpointError, match=r"sizes \[6\], the optimizer has \[2\]"):
        load_optimizer_state("opt_G", torch.optim.Adam(_net()[0].parameters()), tensors, js)
    with pytest.raises(CheckpointError, match="optimizer_state"):
        load_optimizer_state("opt_G", opt, tensors, {"lr": 1})


def _draw() -> tuple:
    return (torch.rand(5), np.random.rand(5), np.random.randn(3), random.random(), random.gauss(0, 1))


def test_rng_round_trip(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn(1)  # leaves a cached Gaussian in numpy's legacy state
    random.gauss(0, 1)  # and in python's
    tensors, state = rng_state()
    assert tensors["rng.numpy"].dtype == torch.uint32 and tensors["rng.numpy"].shape == (624,)
    save_checkpoint(tmp_path, 0, tensors, {"rng": state})
    expected = _draw()

    _draw()  # move every stream on
    loaded, s = load_checkpoint(tmp_path)
    set_rng_state(loaded, s["rng"])
    got = _draw()
    assert torch.equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[2], expected[2])
    assert got[3:] == expected[3:]


def test_generator_round_trip(tmp_path):
    g = torch.Generator().manual_seed(123)
    torch.randn(10, generator=g)
    tensors = generator_state("gen.latents", g)
    assert list(tensors) == ["gen.latents.state"]
    save_checkpoint(tmp_path, 0, tensors, {})
    expected = torch.randn(10, generator=g)

    loaded, _ = load_checkpoint(tmp_path)
    g2 = torch.Generator().manual_seed(999)
    set_generator_state("gen.latents", g2, loaded)
    assert torch.equal(torch.randn(10, generator=g2), expected)
    # A CUDA generator's state is 16 bytes (seed, offset): it must not be forced into a CPU generator.
    with pytest.raises(CheckpointError, match="16-byte state, a cpu generator's is 5056 bytes"):
        set_generator_state("gen.latents", g2, {"gen.latents.state": torch.zeros(16, dtype=torch.uint8)})
    with pytest.raises(CheckpointError, match=r"no tensor 'gen\.mixing\.state'"):
        set_generator_state("gen.mixing", g2, loaded)


def test_dtypes_views_and_shared_storage(tmp_path):
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    tensors = {
        "bf16": torch.randn(3, 5).to(torch.bfloat16),
        "f16": torch.randn(4).half(),
        "i64": torch.arange(5),
        "i32": torch.arange(5, dtype=torch.int32),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "base": base,
        "transposed": base.t(),  # non-contiguous view of base
        "row": base[1],  # contiguous view of base
        "tied": base,  # the same tensor under two names, as with tied weights
        "param": nn.Parameter(torch.ones(2)),  # requires grad
    }
    save_checkpoint(tmp_path, 5, tensors, {"note": "dtypes"})
    loaded, _ = load_checkpoint(tmp_path / "ckpt-00000005.safetensors")
    assert loaded.keys() == tensors.keys()
    for k, v in tensors.items():
        assert loaded[k].dtype == v.dtype, k
        assert torch.equal(loaded[k], v.detach()), k
    loaded["tied"][0, 0] = 100.0  # stored as copies: no aliasing survives the round trip
    assert loaded["base"][0, 0] == 0.0


# --------------------------------------------------------------------------------------------- state checks


@pytest.mark.parametrize("state, path", [
    ({"opt": {"G": {"lr": torch.tensor(1.0)}}}, "state.opt.G.lr"),
    ({"losses": [1.0, np.float32(2.0)]}, r"state.losses\[1\]"),
    ({"sched": {(3, 4): "phase"}}, r"state.sched has the key \(3, 4\) of type tuple"),
    ({"fn": print}, "state.fn"),
])
def test_non_json_state_is_refused_before_writing(tmp_path, state, path):
    with pytest.raises(TypeError, match=path):
        save_checkpoint(tmp_path / "run", 1, {"w": torch.zeros(1)}, state)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_state_round_trips_verbatim(tmp_path):
    state = {"recipe": {"name": "progan", "schedule": {"batch_per_resolution": {4: 16, 8: 16, 1024: 4}}},
             "step": 10, "ema": None, "best": 1.25, "flags": [True, False], "text": "é ✓",
             "mixed": {1: "a", "b": 2, None: 0.5, 2.5: [{3: None}]}}
    save_checkpoint(tmp_path, 10, {}, state)
    tensors, loaded = load_checkpoint(tmp_path)
    assert tensors == {} and loaded == state  # int keys stay ints: == would fail on "4" != 4
    assert list(loaded["recipe"]["schedule"]["batch_per_resolution"]) == [4, 8, 1024]
    record = _record(tmp_path / "ckpt-00000010.json")
    assert record["step"] == 10 and record["format_version"] == 1


# --------------------------------------------------------------------------------------------- atomicity, retention


def test_record_describes_the_tensors_file(tmp_path):
    json_path = _save_simple(tmp_path, 200)
    record = _record(json_path)
    data = (tmp_path / "ckpt-00000200.safetensors").read_bytes()
    assert record["tensors"] == {"file": "ckpt-00000200.safetensors", "bytes": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-00000200.json", "ckpt-00000200.safetensors"]


def test_crash_leftovers_are_ignored(tmp_path):
    _save_simple(tmp_path, 100)
    (tmp_path / "ckpt-00000200.safetensors.tmp").write_bytes(b"partial")
    (tmp_path / "ckpt-00000200.json.tmp").write_text('{"format": ')
    (tmp_path / "ckpt-00000300.safetensors").write_bytes(b"tensors written, record never committed")
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt-00000100.json"
    tensors, state = load_checkpoint(tmp_path)
    assert state == {"step": 100} and torch.equal(tensors["w"], torch.full((3,), 100.0))
    with pytest.raises(CheckpointError, match=r"ckpt-00000300\.json does not exist"):
        load_checkpoint(tmp_path / "ckpt-00000300.safetensors")


def test_crash_before_the_record_is_committed(tmp_path, monkeypatch):
    _save_simple(tmp_path, 100)
    real_replace = os.replace

    def crash_on_record(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("simulated power loss")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_record)
    with pytest.raises(OSError, match="simulated"):
        _save_simple(tmp_path, 200)
    monkeypatch.undo()
    assert (tmp_path / "ckpt-00000200.safetensors").exists()  # the tensors landed, the record did not
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt-00000100.json"
    assert load_checkpoint(tmp_path)[1] == {"step": 100}

    _save_simple(tmp_path, 200)  # the retry commits it
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt-00000200.json"


def test_keep_last_k(tmp_path):
    for step in range(1, 6):
        _save_simple(tmp_path, step * 100, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ckpt-00000400.json", "ckpt-00000400.safetensors",
                     "ckpt-00000500.json", "ckpt-00000500.safetensors"]
    # Saving an earlier step (a resume from an older checkpoint) never deletes itself or later steps.
    _save_simple(tmp_path, 300, keep=1)
    assert {p.name for p in tmp_path.iterdir()} >= {"ckpt-00000300.json", "ckpt-00000500.json"}
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt-00000500.json"


def test_resaving_a_step_replaces_it(tmp_path):
    save_checkpoint(tmp_path, 7, {"w": torch.zeros(2)}, {"v": 1})
    save_checkpoint(tmp_path, 7, {"w": torch.ones(2)}, {"v": 2})
    tensors, state = load_checkpoint(tmp_path / "ckpt-00000007.json")
    assert state == {"v": 2} and torch.equal(tensors["w"], torch.ones(2))


def test_crash_while_resaving_a_step_uncommits_it(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 5, {"w": torch.zeros(2)}, {"v": 5})
    save_checkpoint(tmp_path, 7, {"w": torch.zeros(2)}, {"v": 7})
    real_replace = os.replace

    def crash_on_record(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("simulated power loss")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_record)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path, 7, {"w": torch.ones(2)}, {"v": 8})
    monkeypatch.undo()
    # The old record of step 7 would describe a tensors file that has since been replaced (same size):
    # it must be gone, so that resuming finds step 5 cleanly instead of a checkpoint that fails its hash.
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt-00000005.json"
    assert load_checkpoint(tmp_path)[1] == {"v": 5}


# --------------------------------------------------------------------------------------------- damaged files


def test_truncated_tensors_file(tmp_path):
    _save_simple(tmp_path, 100)
    json_path = _save_simple(tmp_path, 200)
    path = tmp_path / "ckpt-00000200.safetensors"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(json_path)
    assert str(e.value).startswith(f"ckpt-00000200.safetensors is {size - 10} bytes, the record says {size}: "
                                   f"the file is truncated or was replaced")
    with pytest.warns(UserWarning, match="ckpt-00000200"):
        assert latest_checkpoint(tmp_path) == tmp_path / "ckpt-00000100.json"


def test_tampered_byte_fails_sha256(tmp_path):
    _save_simple(tmp_path, 100)
    json_path = _save_simple(tmp_path, 200)
    path = tmp_path / "ckpt-00000200.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # same size, one bit of a weight flipped
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"ckpt-00000200\.safetensors has sha256 [0-9a-f]{64}, the record"):
        load_checkpoint(json_path)
    assert latest_checkpoint(tmp_path) == json_path  # the size still matches: only load hashes
    with pytest.warns(UserWarning, match="sha256"):
        _, state = load_checkpoint(tmp_path)  # a run directory falls back to the newest that verifies
    assert state == {"step": 100}


@pytest.mark.parametrize("damage", ["truncate", "not_json", "binary", "not_a_record", "newer_version", "escape"])
def test_damaged_record(tmp_path, damage):
    _save_simple(tmp_path, 100)
    json_path = _save_simple(tmp_path, 200)
    text = json_path.read_text()
    record = json.loads(text)
    expected = {
        "truncate": "is not valid JSON",
        "not_json": "is not valid JSON",
        "binary": "cannot be read as UTF-8 text",
        "not_a_record": "not a ganforge checkpoint record",
        "newer_version": "format version 99",
        "escape": "expected a bare file name",
    }[damage]
    if damage == "truncate":
        json_path.write_text(text[: len(text) // 2])
    elif damage == "not_json":
        json_path.write_text("ckpt at step 200")
    elif damage == "binary":
        json_path.write_bytes(b"\x00\xff" * 10)
    elif damage == "not_a_record":
        json_path.write_text("[1, 2]")
    elif damage == "newer_version":
        json_path.write_text(json.dumps({**record, "format_version": 99}))
    else:
        json_path.write_text(json.dumps({**record, "tensors": {**record["tensors"], "file": "../x.safetensors"}}))
    with pytest.raises(CheckpointError, match=expected) as e:
        load_checkpoint(json_path)
    assert "ckpt-00000200.json" in str(e.value) or damage == "escape"
    with pytest.warns(UserWarning):
        assert latest_checkpoint(tmp_path) == tmp_path / "ckpt-00000100.json"


def test_missing_tensors_file(tmp_path):
    json_path = _save_simple(tmp_path, 200)
    (tmp_path / "ckpt-00000200.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"ckpt-00000200\.safetensors is missing"):
        load_checkpoint(json_path)
    with pytest.warns(UserWarning):
        assert latest_checkpoint(tmp_path) is None
    with pytest.raises(CheckpointError, match=r"no checkpoint in .* verifies"), pytest.warns(UserWarning):
        load_checkpoint(tmp_path)


def test_empty_or_absent_run_dir(tmp_path):
    assert latest_checkpoint(tmp_path / "nowhere") is None
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "weights.pt")


class _Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_disguised_as_safetensors_is_never_executed(tmp_path):
    control = tmp_path / "control_marker"
    pickle.loads(pickle.dumps(_Payload(control)))
    assert control.exists()  # the payload is live: unpickling it does run code

    marker = tmp_path / "marker"
    run = tmp_path / "run"
    json_path = _save_simple(run, 100)
    blob = pickle.dumps(_Payload(marker))
    (run / "ckpt-00000100.safetensors").write_bytes(blob)
    # A forger who also rewrites the record (size and hash) still gets nothing executed.
    record = _record(json_path)
    record["tensors"].update(bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest())
    json_path.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(json_path)
    with pytest.raises(CheckpointError), pytest.warns(UserWarning):
        load_checkpoint(run)
    assert not marker.exists()
