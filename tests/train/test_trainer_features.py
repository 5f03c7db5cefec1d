"""Trainer features: progressive growing, gradient accumulation, mixed precision, EMA, weight clipping, TTUR."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

import assemble
from assemble.train import config as config_mod
from assemble.train.ema import EMA
from assemble.train.run import RunOptions, prepare, train
from assemble.train.schedule import phase_at

MLP = ["hidden=16", "g_layers=2", "d_layers=2"]


def opts(recipe: str, out: Path, steps: int, **kw) -> RunOptions:
    return RunOptions(recipe=recipe, out=out, steps=steps, progress=False, **kw)


def test_progressive_schedule_phases():
    cfg = config_mod.ScheduleConfig(images_per_phase=100, fade_images=50, batch={0: 8, 2: 4})
    assert phase_at(0, cfg, 3, 16) == phase_at(99, cfg, 3, 16)
    p = phase_at(99, cfg, 3, 16)
    assert (p.stage, p.alpha, p.batch, p.fading) == (0, 1.0, 8, False)
    p = phase_at(125, cfg, 3, 16)
    assert (p.stage, p.alpha, p.batch, p.fading) == (1, 0.5, 16, True)
    p = phase_at(160, cfg, 3, 16)
    assert (p.stage, p.alpha, p.fading) == (1, 1.0, False)
    p = phase_at(260, cfg, 3, 16)
    assert (p.stage, p.alpha, p.batch, p.fading) == (2, 0.2, 4, True)
    assert phase_at(10**9, cfg, 3, 16).stage == 2


def test_progan_grows_through_every_stage(tmp_path):
    tiny = {"resolution": 16, "fmap_base": 64, "fmap_max": 8, "z_dim": 8}
    schedule = {"images_per_phase": 16, "fade_images": 16, "batch": {0: 4, 1: 4, 2: 4}}
    summary = train(opts("progan", tmp_path, steps=30, sets=[f"{k}={v}" for k, v in tiny.items()],
                         data="shapes", data_options={"size": 16, "n": 64},
                         train_overrides={"schedule": schedule, "log_every": 1, "sample_every": 0}))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    stages = [r["progress/stage"] for r in records if "progress/stage" in r]
    alphas = [r["progress/alpha"] for r in records if "progress/alpha" in r]
    assert stages == sorted(stages) and stages[0] == 0 and stages[-1] == 2
    assert any(0 < a < 1 for a in alphas), "alpha never ramped"
    assert all(torch.isfinite(torch.tensor(v)) for v in summary["losses"].values())
    from PIL import Image

    assert Image.open(tmp_path / "samples.png").size[0] > 8 * 16  # final-stage 16x16 samples in the grid


def test_gradient_accumulation_equals_the_full_batch(tmp_path):
    results = []
    for k in (1, 2):
        trainer, _ = prepare(opts("gan_mlp", tmp_path / f"acc{k}", steps=1, sets=MLP,
                                  train_overrides={"batch": 32, "accumulate": k}), assemble_world())
        trainer.train_step()
        results.append(copy.deepcopy(trainer.G.state_dict()))
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], rtol=1e-5, atol=1e-6)


def assemble_world():
    from assemble.train.distributed import World

    return World()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_with_finite_losses(tmp_path, precision):
    summary = train(opts("dcgan_digits", tmp_path, steps=3, sets=["ngf=4", "ndf=4", "nz=8"],
                         train_overrides={"precision": precision, "batch": 8, "eval_every": 0}))
    assert summary["losses"] and all(torch.isfinite(torch.tensor(v)) for v in summary["losses"].values())


def test_ema_follows_the_half_life_and_ramp():
    G = torch.nn.Linear(3, 3)
    ema = EMA(G, config_mod.EMAConfig(half_life_kimg=1.0, ramp_up=None))
    assert ema.beta(batch=1000, images_seen=10**6) == pytest.approx(0.5)
    ramped = EMA(G, config_mod.EMAConfig(half_life_kimg=10.0, ramp_up=0.1))
    assert ramped.beta(batch=100, images_seen=1000) == pytest.approx(0.5)  # half-life capped at 100 images
    with torch.no_grad():
        G.weight.add_(1.0)
    before = ema.model.weight.clone()
    ema.update(G, batch=1000, images_seen=10**6)
    torch.testing.assert_close(ema.model.weight, 0.5 * before + 0.5 * G.weight)


def test_weight_clipping_bounds_the_critic(tmp_path):
    sets = {"objective.loss": "wasserstein", "objective.regularizers": [{"weight_clip": {"clip": 0.01}}],
            **{k: int(v) for k, v in (s.split("=") for s in MLP)}}
    recipe = assemble.load("gan_mlp", sets=sets)
    trainer, _ = prepare(RunOptions(recipe=recipe, out=tmp_path, steps=3, progress=False,
                                    train_overrides={"batch": 16, "n_critic": 2}), assemble_world())
    for _ in range(3):
        trainer.train_step()
    trainer.objective.clip_weights()
    assert all(p.abs().max() <= 0.01 + 1e-9 for p in trainer.D.parameters())


def test_two_time_scale_learning_rates(tmp_path):
    overrides = {"optimizers": {"G": {"type": "adam", "lr": 1e-4}, "D": {"type": "rmsprop", "lr": 4e-4}}}
    trainer, _ = prepare(opts("gan_mlp", tmp_path, steps=1, sets=MLP, train_overrides=overrides), assemble_world())
    assert trainer.opt["G"].param_groups[0]["lr"] == 1e-4
    assert isinstance(trainer.opt["D"], torch.optim.RMSprop) and trainer.opt["D"].param_groups[0]["lr"] == 4e-4


def test_linear_lr_decay_follows_the_step_and_wgan_boosts_the_critic(tmp_path):
    """train.lr_decay: linear (WGAN-GP's DECAY, SN-GAN's LinearShift): lr · (1 - step / steps) before each step;
    train.critic_boost (WGAN's main.py): n critic updates for the first G steps and every `every`-th."""
    from assemble.train.distributed import World

    sets = ["hidden=8", "g_layers=1", "d_layers=1"]
    trainer, _ = prepare(RunOptions(recipe="gan_mlp", out=tmp_path / "a", sets=sets, steps=4, progress=False,
                                    train_overrides={"lr_decay": "linear", "batch": 8}), World())
    seen = []
    for _ in range(4):
        trainer.train_step()
        seen.append(trainer.opt["G"].param_groups[0]["lr"])
    assert seen == pytest.approx([1e-3 * (1 - s / 4) for s in range(4)])
    with pytest.raises(assemble.RecipeError, match="lr_decay"):
        prepare(RunOptions(recipe="gan_mlp", out=tmp_path / "b", sets=sets, steps=1, progress=False,
                           train_overrides={"lr_decay": "cosine"}), World())
    boost = {"n": 3, "first": 2, "every": 5}
    trainer, _ = prepare(RunOptions(recipe="gan_mlp", out=tmp_path / "c", sets=sets, steps=1, progress=False,
                                    train_overrides={"critic_boost": boost, "n_critic": 1}), World())
    iters = []
    for step in range(11):
        trainer.step = step
        iters.append(trainer.critic_iters())
    assert iters == [3, 3, 1, 1, 1, 3, 1, 1, 1, 1, 3]
