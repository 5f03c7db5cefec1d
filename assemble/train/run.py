"""``ganforge train``: build the recipe, bind the data, train, write samples, plots, metrics, checkpoints."""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .. import checkpoint as ckpt
from ..errors import RecipeError
from ..gan import GAN, build
from ..recipe import load
from . import config as config_mod
from .distributed import World, broadcast_module, in_sync, init_world, shutdown
from .evaluate import evaluate, sample_grid
from .loop import Trainer, throughput
from .objective import TrainingError


@dataclass
class RunOptions:
    recipe: str | Path | dict[str, Any]
    out: Path = Path("runs/latest")
    data: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    sets: list[str] = field(default_factory=list)
    train_overrides: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    device: str = "cpu"
    deterministic: bool = False
    progress: bool = True
    check_sync: bool = False
    seed: int | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare(opts: RunOptions, world: World) -> tuple[Trainer, dict[str, Any]]:
    """Everything short of training: recipe, config, data, networks, the trainer (resumed if asked)."""
    from ..data import bind, make_dataset

    tensors: dict[str, Any] = {}
    state: dict[str, Any] = {}
    latest = None
    if opts.resume and any(opts.out.glob("ckpt-*.json")):
        # The newest checkpoint that verifies (damaged newer ones are skipped with a warning); if none
        # verifies, CheckpointError says which files are damaged and how.
        tensors, state = ckpt.load_checkpoint(opts.out)
        latest = opts.out / f"ckpt-{int(state['step']):08d}.json"
    elif opts.resume and world.is_main:
        print(f"ganforge train: nothing to resume in {opts.out}; starting from scratch", file=sys.stderr)
    recipe = state["recipe"] if latest else load(opts.recipe, opts.sets)
    overrides = dict(opts.train_overrides)
    if opts.steps is not None:
        overrides["steps"] = opts.steps
    if opts.seed is not None:
        overrides["seed"] = opts.seed
    cfg = config_mod.parse(recipe, overrides)
    if opts.data:
        cfg.data = {"name": opts.data, **opts.data_options}
    elif opts.data_options:
        cfg.data = {**cfg.data, **opts.data_options}
    if not cfg.data.get("name"):
        raise RecipeError("no dataset: give --data NAME|PATH or a data: {name: ...} section", recipe.get("name", ""))
    seed_everything(cfg.seed)
    device = torch.device(opts.device)
    gan: GAN = build(recipe, device=device)
    data_args = {k: v for k, v in cfg.data.items() if k not in ("name", "bind")}
    dataset = make_dataset(str(cfg.data["name"]), seed=cfg.seed, **data_args)
    # Data feeds every D input and G's data-only inputs (label maps, images, text); G's latents, codes and
    # (by default) class labels are sampled from their priors.
    g_data = {k: v for k, v in gan.G.input_specs.items() if v.kind in ("image", "label_map", "text_embedding",
                                                                        "tokens")}
    data_inputs = {**g_data, **gan.D.input_specs}
    binding = bind(dataset.fields, data_inputs, cfg.data.get("bind"))
    opts.out.mkdir(parents=True, exist_ok=True)
    broadcast_module(gan.G, world)
    broadcast_module(gan.D, world)
    trainer = Trainer(gan, cfg, dataset, binding, opts.out, device, world)
    if latest:
        trainer.load_state(tensors, state)
        _truncate_metrics(opts.out / "metrics.jsonl", trainer.step)
    elif world.is_main:
        (opts.out / "metrics.jsonl").unlink(missing_ok=True)
        (opts.out / "run.json").write_text(json.dumps(
            {"recipe": gan.recipe, "data": cfg.data, "binding": binding, "world_size": world.size}, indent=1,
            default=str))
    return trainer, {"resumed_from": str(latest) if latest else None}


def _truncate_metrics(path: Path, step: int) -> None:
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in keep))


def train(opts: RunOptions) -> dict[str, Any]:
    """Train and return a summary (final losses, metrics, paths, wall time)."""
    if opts.deterministic:
        torch.use_deterministic_algorithms(True)
    device = torch.device(opts.device)
    world = init_world(device)
    try:
        return _train(opts, world)
    finally:
        shutdown(world)


def _train(opts: RunOptions, world: World) -> dict[str, Any]:
    trainer, info = prepare(opts, world)
    cfg = trainer.cfg
    start, start_step = time.perf_counter(), trainer.step
    bar = None
    if opts.progress and world.is_main:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=trainer.step, desc=trainer.gan.name, dynamic_ncols=True,
                   file=sys.stderr)
    fixed = sample_grid(trainer, cfg.sample_grid)
    logs: dict[str, float] = {}
    last_eval: tuple[int, dict[str, Any]] = (-1, {})
    try:
        while trainer.step < cfg.steps:
            logs = trainer.train_step()
            step = trainer.step
            if opts.check_sync and world.active and not in_sync([trainer.G, trainer.D], world):
                raise RuntimeError(f"step {step}: ranks hold different parameters")
            if step % cfg.log_every == 0 or step == cfg.steps:
                rate = throughput(start, step - start_step)
                trainer.log({"step": step, "kimg": trainer.images / 1000, "it_s": rate,
                             "in_sync": True if opts.check_sync else None, **logs})
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in logs.items() if k.startswith("loss/")})
            if cfg.sample_every and step % cfg.sample_every == 0 and world.is_main:
                fixed.save(trainer, step)
            if cfg.eval_every and step % cfg.eval_every == 0 and world.is_main:
                last_eval = (step, evaluate(trainer))
                trainer.log({"step": step, **{f"metric/{k}": v for k, v in last_eval[1].items()
                                              if isinstance(v, int | float)}})
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                trainer.save()
    except TrainingError as err:
        if bar is not None:
            bar.close()
        if world.is_main:
            trainer.log({"step": trainer.step, "error": str(err)})
        raise
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - start
    summary: dict[str, Any] = {"recipe": trainer.gan.name, "steps": trainer.step, "images": trainer.images,
                               "wall_s": wall, "losses": logs, **info}
    trainer.save()
    if world.is_main:
        fixed.save(trainer, trainer.step)
        fixed.save_attention(trainer)
        if any(t.key == "infogan_mi" for t in cfg.terms):  # InfoGAN: a grid per latent code
            from ..latent_codes import code_grids

            code_grids(trainer.sample_model(), opts.out / "codes", seed=cfg.seed)
        fresh = last_eval[0] != trainer.step
        metrics = evaluate(trainer) if fresh else last_eval[1]
        summary["metrics"] = metrics
        if metrics and fresh:
            trainer.log({"step": trainer.step, **{f"metric/{k}": v for k, v in metrics.items()
                                                  if isinstance(v, int | float)}})
        from ..plots import save_loss_curves

        if any(k.startswith("loss/") for r in trainer.history for k in r):
            save_loss_curves(opts.out / "metrics.jsonl", opts.out / "loss.png")
        summary["files"] = sorted(str(p.relative_to(opts.out)) for p in opts.out.rglob("*.png"))
        (opts.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    if world.active:
        # every rank leaves together, after the main one's final evaluation (see distributed.shutdown)
        dist.barrier()
    return summary

