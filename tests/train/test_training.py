"""Training works: toy modes are covered, digits are recognised, runs resume bit-identically, faults are loud,
data-parallel ranks stay in sync, and sampling writes its figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from assemble import checkpoint as ckpt
from assemble.train.objective import TrainingError
from assemble.train.run import RunOptions, train

TINY_MLP = ["hidden=16", "g_layers=2", "d_layers=2"]


@pytest.fixture
def one_thread():
    """Tiny MLPs train faster on one thread than two (no OpenMP hand-offs for 256x2 matmuls)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(recipe: str, out: Path, steps: int, sets: list[str] | None = None, **kw) -> dict:
    opts = RunOptions(recipe=recipe, out=out, steps=steps, sets=sets or [], progress=False, **kw)
    return train(opts)


# ---- learning -------------------------------------------------------------------------------------------


def test_gan_mlp_covers_the_ring_of_8(tmp_path, one_thread):
    """Seed 0 at 2000 steps. Over seeds 0-4 at the recipe's 3000 steps: 7.6 ± 0.9 modes (8, 8, 8, 6, 8),
    high-quality fraction 0.946 ± 0.008 (recipes/gan_mlp.yaml); the margins allow for another machine."""
    summary = run("gan_mlp", tmp_path, steps=2000)
    m = summary["metrics"]
    assert m["modes_covered"] >= 7, m
    assert m["high_quality_fraction"] >= 0.7, m
    assert (tmp_path / "scatter.png").exists() and (tmp_path / "loss.png").exists()


def test_wgan_gp_covers_the_grid_of_25(tmp_path, one_thread):
    summary = run("wgan_gp_toy", tmp_path, steps=1000)
    m = summary["metrics"]
    assert m["modes_covered"] >= 20, m


@pytest.mark.slow
def test_the_main_job_draws_the_digit_asked_for(tmp_path):
    """README's main job as shipped, seed 0. Measured over seeds 0-2: confident 0.963 ± 0.004, agreement
    0.993 ± 0.005, 10/10 classes at >= 0.9 (docs/recipes/digits.md)."""
    m = run("cdcgan_digits", tmp_path, steps=3000, seed=0)["metrics"]
    assert m["confident_fraction"] >= 0.85 and m["class_agreement"] >= 0.93 and m["classes_agreeing"] >= 9, m
    assert (tmp_path / "samples_by_class.png").exists()


def test_dcgan_digits_beats_an_untrained_generator(tmp_path):
    untrained = run("dcgan_digits", tmp_path / "untrained", steps=0)["metrics"]
    trained = run("dcgan_digits", tmp_path / "trained", steps=600)["metrics"]
    assert trained["confident_fraction"] >= untrained["confident_fraction"] + 0.25, (untrained, trained)
    assert (tmp_path / "trained" / "samples.png").exists()


# ---- faults ---------------------------------------------------------------------------------------------


def _final_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    path = ckpt.latest_checkpoint(run_dir)
    return load_file(str(path).replace(".json", ".safetensors"))


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    # 900 steps with a checkpoint every 300: the run is killed once its second checkpoint (600) exists,
    # leaving 300 steps (about a second) for the kill to land before the run would finish.
    args = ["--steps", "900", "--no-progress", "--deterministic", "--train", "checkpoint_every=300",
            "--train", "batch=256", "--train", "log_every=50", "--set", "hidden=64"]
    full = tmp_path / "full"
    subprocess.run([sys.executable, "-m", "assemble.cli", "train", "gan_mlp", "--out", str(full), *args],
                   check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "assemble.cli", "train", "gan_mlp", "--out", str(killed),
                             *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "ckpt-00000600.json").exists():
        assert proc.poll() is None, "the run ended before its second checkpoint"
        assert time.time() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "ckpt-00000900.json").exists(), "the run finished before it was killed"
    subprocess.run([sys.executable, "-m", "assemble.cli", "train", "gan_mlp", "--out", str(killed), *args,
                    "--resume"], check=True, capture_output=True)
    a, b = _final_tensors(full), _final_tensors(killed)
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith(("G.", "D.", "G_ema.", "opt.")):
            assert torch.equal(a[k], b[k]), k


def test_truncated_checkpoint_gives_a_clear_error(tmp_path):
    run("gan_mlp", tmp_path, steps=3, sets=TINY_MLP)
    tensors = next(tmp_path.glob("ckpt-*.safetensors"))
    tensors.write_bytes(tensors.read_bytes()[:-100])
    out = subprocess.run([sys.executable, "-m", "assemble.cli", "train", "gan_mlp", "--out", str(tmp_path),
                          "--resume", "--steps", "5", "--no-progress"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "truncated" in out.stderr and tensors.name in out.stderr
    assert "Traceback" not in out.stderr


def test_nan_in_the_data_stops_the_run_naming_step_and_term(tmp_path, monkeypatch):
    import assemble.data as data

    make = data.make_dataset

    def poisoned(*args, **kw):
        ds = make(*args, **kw)
        batch, calls = ds.batch, []

        class Poisoned(type(ds)):
            def batch(self, indices):  # the 5th batch (step 5's D update) carries a NaN
                calls.append(1)
                out = batch(indices)
                if len(calls) == 5:
                    out = {k: v.float().index_fill(0, torch.tensor([0]), float("nan")) for k, v in out.items()}
                return out

        ds.__class__ = Poisoned
        return ds

    monkeypatch.setattr(data, "make_dataset", poisoned)
    with pytest.raises(TrainingError) as info:
        run("gan_mlp", tmp_path, steps=50, sets=TINY_MLP, data_options={"n": 512},
            train_overrides={"checkpoint_every": 1})
    err = info.value
    assert err.step == 5 and err.term == "data (input 'x')"
    assert str(err).startswith("step 5: data (input 'x') is not finite")
    last = ckpt.latest_checkpoint(tmp_path)
    assert last is not None and f"{err.step - 1:08d}" in last.name  # the last good step's checkpoint is kept
    _, state = ckpt.load_checkpoint(last)
    assert state["step"] == err.step - 1


# ---- several processes ------------------------------------------------------------------------------------


def test_two_gloo_processes_stay_in_sync(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "assemble.cli", "train", "gan_mlp", "--out", str(tmp_path), "--steps", "6", "--no-progress",
           "--check-sync", "--train", "log_every=1", "--train", "batch=16",
           *[a for s in TINY_MLP for a in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss/D" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert all(r["in_sync"] is True for r in steps)
    assert json.loads((tmp_path / "run.json").read_text())["world_size"] == 2


# ---- sampling ------------------------------------------------------------------------------------------------


def test_sample_writes_every_figure_and_psi_zero_is_one_image(tmp_path):
    from assemble.sample import generate, load_generator, sample_inputs

    tiny = ["resolution=16", "channel_base=64", "channel_max=16", "z_dim=16", "w_dim=16", "mapping_layers=2"]
    run("stylegan2", tmp_path, steps=2, sets=tiny, data="shapes", data_options={"size": 16, "n": 64},
        train_overrides={"batch": 4, "style_mixing": 0.9})
    out = subprocess.run([sys.executable, "-m", "assemble.cli", "sample", str(tmp_path), "--out",
                          str(tmp_path / "fig"), "--n", "16"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("grid", "truncation_psi", "truncation_z", "interp_lerp", "interp_slerp", "style_mixing",
                 "arithmetic"):
        assert (tmp_path / "fig" / f"{name}.png").stat().st_size > 0, name
    G, _ = load_generator(tmp_path)
    inputs = sample_inputs(G, 6, torch.Generator().manual_seed(0))
    images = generate(G, inputs, psi=0.0)
    assert torch.allclose(images, images[:1].expand_as(images), atol=1e-5)
    assert not torch.allclose(generate(G, inputs), images[:1].expand_as(images), atol=1e-3)


def test_eval_reports_the_metrics_of_the_latest_checkpoint(tmp_path):
    run("gan_mlp", tmp_path, steps=5, sets=TINY_MLP)
    out = subprocess.run([sys.executable, "-m", "assemble.cli", "eval", str(tmp_path), "--json",
                          str(tmp_path / "eval.json")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["step"] == 5 and result["checkpoint"].endswith("ckpt-00000005.json")
    assert set(result["metrics"]) >= {"modes_covered", "high_quality_fraction"}
    assert 0 <= result["metrics"]["modes_covered"] <= 8
