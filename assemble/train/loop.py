"""The trainer: alternating D and G updates in plain PyTorch.

One ``step`` is ``n_critic`` discriminator updates followed by one generator update. Everything that
decides what happens next -- weights, optimiser moments, EMA, regularizer buffers, the data order, every
random generator, the step -- is in the checkpoint, so ``--resume`` continues bit-identically.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import checkpoint as ckpt
from ..gan import GAN
from .batches import BatchOrder, collate
from .config import OptimizerConfig, TrainConfig
from .distributed import World, average_gradients, broadcast_buffers
from .ema import EMA
from .objective import Objective, finite
from .schedule import Phase, phase_at

DATA_KINDS = ("image", "label_map", "text_embedding", "tokens")  # G inputs that come from data


def make_optimizer(params: list[nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    if cfg.type == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.type == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.type == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class Trainer:
    """Trains ``gan`` on ``dataset`` as the recipe's objective and train sections say.

    Args:
        gan: the built GAN (weights on ``device``).
        cfg: the parsed objective/train/data configuration.
        dataset: a ``GanDataset`` (in memory) whose fields are bound to the networks' inputs by ``binding``.
        binding: network input name -> dataset field, for D's inputs and G's data-bound inputs.
        out: the run directory (checkpoints, metrics.jsonl, samples).
        world: this process's place among data-parallel processes.
    """

    def __init__(self, gan: GAN, cfg: TrainConfig, dataset: Any, binding: dict[str, str], out: Path,
                 device: torch.device, world: World | None = None):
        self.gan, self.cfg, self.dataset, self.binding = gan, cfg, dataset, binding
        self.out, self.device, self.world = out, device, world or World()
        self.G, self.D = gan.G, gan.D
        self.objective = Objective(cfg, self.G, self.D, device)
        self.opt = {"G": make_optimizer(list(self.G.parameters()), cfg.optimizers["G"]),
                    "D": make_optimizer(list(self.D.parameters()), cfg.optimizers["D"])}
        self.ema = EMA(self.G, cfg.ema) if cfg.ema else None
        fp16 = cfg.precision == "fp16"
        self.scaler = {n: torch.amp.GradScaler(device.type, enabled=fp16) for n in ("G", "D")}
        self.order = BatchOrder(len(dataset), cfg.seed, world.rank, world.size)
        self.latents = torch.Generator().manual_seed(cfg.seed * 7919 + 1 + world.rank)
        self.mixing = torch.Generator().manual_seed(cfg.seed * 7919 + 2)
        self.step = 0
        self.images = 0
        self.stage: int | None = None
        # The D input that receives the samples: its first image input (its first vector input on toy data).
        specs = self.D.input_specs
        self.image_input = next((n for n, s in specs.items() if s.kind == "image"),
                                next((n for n, s in specs.items() if s.kind == "vector"), None))
        self.g_data_inputs = [n for n, s in self.G.input_specs.items() if s.kind in DATA_KINDS and n in binding]
        self.history: list[dict[str, Any]] = []

    # ---- inputs ------------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def real_batch(self, batch: int) -> dict[str, Tensor]:
        fields = collate(self.dataset, self.order.next(batch))
        out = {name: fields[field].to(self.device) for name, field in self.binding.items()}
        for name, t in out.items():
            finite(t, self.step + 1, f"data (input '{name}')", "the batch holds NaN or inf values")
        return out

    def g_inputs(self, batch: int, real: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        gin: dict[str, Tensor] = {}
        for name, spec in self.G.input_specs.items():
            if name in self.g_data_inputs or (spec.kind == "class" and self.cfg.g_labels == "data" and name in real):
                gin[name] = real[name][:batch]
            elif spec.kind in ("latent", "vector", "coords", "class"):
                gin[name] = spec.sample(batch, generator, self.device)
            elif not spec.optional:
                raise ValueError(f"generator input '{name}' ({spec.describe()}) is neither sampled nor bound to a "
                                 f"data field; bind it with data.bind: {{{name}: <field>}}")
        return gin

    def d_inputs(self, image: Tensor, gin: dict[str, Tensor], real: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {}
        for name, spec in self.D.input_specs.items():
            if name == self.image_input:
                out[name] = image
            elif name in gin:
                out[name] = gin[name]
            elif name in real:
                out[name] = real[name]
            elif not spec.optional:
                raise ValueError(f"discriminator input '{name}' has no source (not generated, not in the data)")
        return out

    def fake_of(self, regs: dict[str, Any]) -> Tensor:
        return regs[self.G.output_names[0]]

    def match_stage(self, real: dict[str, Tensor], fake: Tensor, phase: Phase | None) -> dict[str, Tensor]:
        """Progressive growing: reals at the current stage's resolution, faded in like the fakes
        (Karras et al. 2018, appendix A.1: real images are interpolated between resolutions too)."""
        if self.image_input is None or real[self.image_input].shape[-2:] == fake.shape[-2:]:
            return real
        x = real[self.image_input]
        factor = x.shape[-1] // fake.shape[-1]
        x = F.avg_pool2d(x, factor)
        if phase is not None and phase.fading:
            low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
            x = low.lerp(x, phase.alpha)
        return {**real, self.image_input: x}

    # ---- progressive growing -------------------------------------------------------------------------
    def phase(self) -> Phase | None:
        if not self.cfg.schedule or not self.G.num_stages:
            return None
        return phase_at(self.images, self.cfg.schedule, self.G.num_stages, self.cfg.batch)

    def apply_phase(self, phase: Phase | None) -> int:
        if phase is None:
            return self.cfg.batch
        nets = [self.G, self.D] + ([self.ema.model] if self.ema else [])
        for net in nets:
            net.set_stage(phase.stage)
            if any(hasattr(m, "set_alpha") for m in net.modules() if m is not net):
                net.set_alpha(phase.alpha)
        if self.stage is not None and phase.stage != self.stage and self.cfg.reset_optimizers_on_stage:
            for opt in self.opt.values():
                opt.state.clear()  # ProGAN resets Adam's moments at each new resolution
        self.stage = phase.stage
        return phase.batch

    # ---- the updates -----------------------------------------------------------------------------------
    def micro_batches(self, batch: int) -> Iterator[int]:
        per_rank = batch // self.world.size
        yield from [per_rank // self.cfg.accumulate] * self.cfg.accumulate

    def d_step(self, batch: int, phase: Phase | None, d_index: int) -> dict[str, float]:
        obj, cfg = self.objective, self.cfg
        obj.clip_weights()
        self.D.requires_grad_(True)
        self.opt["D"].zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        for micro in self.micro_batches(batch):
            real = self.real_batch(micro * self.world.size)
            with torch.no_grad(), self.autocast():
                gin = self.g_inputs(micro, real, self.latents)
                g_regs = self.G.run(**gin)
            fake = self.fake_of(g_regs).detach()
            real = self.match_stage(real, fake, phase)
            with self.autocast():
                if cfg.d_joint:
                    d_fake, d_real = self._d_joint(self.d_inputs(fake, gin, real), real)
                else:
                    d_fake = self.D.run(**self.d_inputs(fake, gin, real))
                    d_real = self.D.run(**real)
                terms = {"loss/D": finite(self._d_adv(d_real, d_fake, real), self.step + 1, "loss/D")}
                terms.update(obj.term_losses("D", {"G": g_regs, "D_fake": d_fake, "D_real": d_real}, self.step + 1))
            cond = {k: v for k, v in real.items() if k != self.image_input}
            if self.image_input is not None:
                terms.update(obj.d_regularizers(self.step + 1, d_index, self._critic(real),
                                                real[self.image_input], fake, obj.logits(d_real), cond))
            total = sum(terms.values())
            self.scaler["D"].scale(total / cfg.accumulate).backward()
            for k, v in terms.items():
                logs[k] = logs.get(k, 0.0) + float(v.detach()) / cfg.accumulate
        average_gradients(self.D, self.world)
        self.scaler["D"].step(self.opt["D"])
        self.scaler["D"].update()
        broadcast_buffers(self.D, self.world)
        return logs

    def _d_joint(self, fake_in: dict[str, Tensor], real_in: dict[str, Tensor]) -> tuple[dict, dict]:
        """One D forward on [fakes; reals], split back into the two runs (BigGAN-PyTorch's ``GD`` and SPADE's
        ``discriminate`` do this, so spectral norm takes one power step and D sees one batch per update)."""
        n = next(iter(fake_in.values())).shape[0]
        regs = self.D.run(**{k: torch.cat([fake_in[k], real_in[k]]) for k in fake_in})
        fake, real = {}, {}
        for k, v in regs.items():
            if isinstance(v, Tensor) and v.dim() and v.shape[0] == n + real_in[self.image_input].shape[0]:
                fake[k], real[k] = v[:n], v[n:]
            else:
                fake[k] = real[k] = v
        return fake, real

    def _critic(self, real: dict[str, Tensor]):
        """D's first adversarial output as a function of the image input (for R1 and the gradient penalty)."""
        out_name, image_input = self.objective.logit_names[0], self.image_input

        def critic(x: Tensor, **cond: Tensor) -> Tensor:
            return self.D.run(**{**real, **cond, image_input: x})[out_name]

        return critic

    def _d_adv(self, d_real: dict[str, Any], d_fake: dict[str, Any], real: dict[str, Tensor]) -> Tensor:
        obj = self.objective
        pairs = list(zip(obj.logits(d_real), obj.logits(d_fake)))
        if obj.matching_aware:
            wrong_in = {k: (v.roll(1, 0) if k != self.image_input else v) for k, v in real.items()}
            d_wrong = self.D.run(**wrong_in)
            return sum(obj.loss.d_loss(r, f, w) for (r, f), w in zip(pairs, obj.logits(d_wrong))) / len(pairs)
        return sum(obj.loss.d_loss(r, f) for r, f in pairs) / len(pairs)

    def g_step(self, batch: int, phase: Phase | None) -> dict[str, float]:
        obj, cfg = self.objective, self.cfg
        self.D.requires_grad_(False)
        self.opt["G"].zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        for micro in self.micro_batches(batch):
            real = self.real_batch(micro * self.world.size) if self.g_data_inputs or cfg.g_labels == "data" \
                else {}
            with self.autocast():
                gin = self.g_inputs(micro, real, self.latents)
                g_regs = self.generate(gin)
                fake = self.fake_of(g_regs)
                real_d = self.match_stage(real, fake, phase) if real else real
                d_fake = self.D.run(**self.d_inputs(fake, gin, real_d))
                runs = {"G": g_regs, "D_fake": d_fake}
                if any(r.startswith("D_real.") for t in cfg.terms if t.network == "G" for r in _refs(t.inputs)):
                    runs["D_real"] = self.D.run(**real_d)
                adv = sum(obj.loss.g_loss(lg) for lg in obj.logits(d_fake)) / len(obj.logit_names)
                terms = {"loss/G": finite(adv, self.step + 1, "loss/G")}
                terms.update(obj.term_losses("G", runs, self.step + 1))
            terms.update(obj.g_regularizers(self.step + 1, self._path_length_run(micro, real)))
            total = sum(terms.values())
            self.scaler["G"].scale(total / cfg.accumulate).backward()
            for k, v in terms.items():
                logs[k] = logs.get(k, 0.0) + float(v.detach()) / cfg.accumulate
        average_gradients(self.G, self.world)
        self.scaler["G"].step(self.opt["G"])
        self.scaler["G"].update()
        broadcast_buffers(self.G, self.world)
        self.D.requires_grad_(True)
        return logs

    def generate(self, gin: dict[str, Tensor]) -> dict[str, Any]:
        """G's run, with style mixing (StyleGAN sec. 3.1) when the recipe asks for it: the styles from a second
        latent replace those from layer ``cutoff`` on, for a random cutoff, with probability ``style_mixing``."""
        styles = next(iter(self.G.style_layers), None)
        if not self.cfg.style_mixing or styles is None or not self.G.parts_after(styles):
            return self.G.run(**gin)
        mapping = self.G.parts_through(styles)
        first = self.G.run(parts=mapping, **gin)
        ws = first[styles]
        layers = ws.shape[1] if ws.dim() == 3 else self.G.style_layers[styles]
        if torch.rand((), generator=self.mixing).item() < self.cfg.style_mixing and layers > 1:
            cutoff = int(torch.randint(1, layers, (), generator=self.mixing))
            other = {k: (torch.randn(v.shape, generator=self.latents).to(v) if self.G.input_specs[k].kind == "latent"
                         else v) for k, v in gin.items()}
            ws2 = self.G.run(parts=mapping, **other)[styles]
            if ws.dim() == 2:
                ws, ws2 = ws[:, None].expand(-1, layers, -1), ws2[:, None].expand(-1, layers, -1)
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        regs = dict(first)
        regs[styles] = ws
        return {**first, **self.G.run(parts=self.G.parts_after(styles), registers=regs)}

    def _path_length_run(self, micro: int, real: dict[str, Tensor]):
        styles = next(iter(self.G.style_layers), None)
        if styles is None:
            return None

        def run() -> tuple[Tensor, Tensor]:
            batch = max(1, micro // self.cfg.pl_batch_shrink)
            gin = self.g_inputs(batch, {k: v[:batch] for k, v in real.items()}, self.latents)
            with self.autocast():
                regs = self.G.run(**gin)
            return self.fake_of(regs), regs[styles]

        return run

    # ---- bookkeeping -----------------------------------------------------------------------------------
    def state_tensors(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors: dict[str, Tensor] = {}
        state: dict[str, Any] = {"step": self.step, "images": self.images, "stage": self.stage,
                                 "order": self.order.state()}
        tensors.update(ckpt.module_tensors("G.", self.G))
        tensors.update(ckpt.module_tensors("D.", self.D))
        tensors.update(ckpt.module_tensors("reg.", self.objective.regularizers))
        if self.ema:
            tensors.update(ckpt.module_tensors("G_ema.", self.ema.model))
        for name, opt in self.opt.items():
            t, s = ckpt.optimizer_state(f"opt.{name}.", opt)
            tensors.update(t)
            state[f"opt.{name}"] = s
        for name, scaler in self.scaler.items():
            state[f"scaler.{name}"] = {k: (float(v) if isinstance(v, float | int) else v)
                                       for k, v in scaler.state_dict().items()}
        t, s = ckpt.rng_state()
        tensors.update({f"rng.{k}": v for k, v in t.items()})
        state["rng"] = s
        for name, gen in (("latents", self.latents), ("mixing", self.mixing)):
            tensors.update(ckpt.generator_state(f"gen.{name}", gen))
        return tensors, state

    def load_state(self, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
        self.step, self.images = int(state["step"]), int(state["images"])
        self.stage = state.get("stage")
        if self.stage is not None:
            for net in [self.G, self.D] + ([self.ema.model] if self.ema else []):
                net.set_stage(self.stage)
        if state.get("weights_only"):
            # A converted checkpoint (ganforge convert): the networks only. Optimisers, RNG and data order
            # start fresh; the EMA starts from the checkpoint's G_ema, or from G when it has none; G starts from
            # G_ema when only that was released (rosinality's convert_weight.py files); D starts from its
            # initialisation when the authors released a generator alone (SPADE's pretrained models).
            has = {net: any(k.startswith(f"{net}.") for k in tensors) for net in ("G", "G_ema", "D")}
            ckpt.load_module_tensors("G." if has["G"] else "G_ema.", self.G, tensors)
            if has["D"]:
                ckpt.load_module_tensors("D.", self.D, tensors)
            if self.ema:
                ckpt.load_module_tensors("G_ema." if has["G_ema"] else "G.", self.ema.model, tensors)
            return
        self.order.load_state(state["order"])
        ckpt.load_module_tensors("G.", self.G, tensors)
        ckpt.load_module_tensors("D.", self.D, tensors)
        ckpt.load_module_tensors("reg.", self.objective.regularizers, tensors)
        if self.ema:
            ckpt.load_module_tensors("G_ema.", self.ema.model, tensors)
        for name, opt in self.opt.items():
            ckpt.load_optimizer_state(f"opt.{name}.", opt, tensors, state[f"opt.{name}"])
        for name, scaler in self.scaler.items():
            if state.get(f"scaler.{name}"):
                scaler.load_state_dict(state[f"scaler.{name}"])
        ckpt.set_rng_state({k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}, state["rng"])
        for name, gen in (("latents", self.latents), ("mixing", self.mixing)):
            ckpt.set_generator_state(f"gen.{name}", gen, tensors)

    def save(self) -> Path | None:
        if not self.world.is_main:
            return None
        tensors, state = self.state_tensors()
        state["recipe"] = self.gan.recipe
        return ckpt.save_checkpoint(self.out, self.step, tensors, state, keep=self.cfg.keep)

    def log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.world.is_main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def train_step(self) -> dict[str, float]:
        if self.cfg.lr_decay == "linear":  # lr · max(0, 1 - step / steps), from the step alone (resumes exactly)
            for net, opt in self.opt.items():
                for group in opt.param_groups:
                    group["lr"] = self.cfg.optimizers[net].lr * max(0.0, 1.0 - self.step / self.cfg.steps)
        phase = self.phase()
        batch = self.apply_phase(phase)
        logs: dict[str, float] = {}
        n_critic = self.critic_iters()
        for i in range(n_critic):
            for k, v in self.d_step(batch, phase, self.step * self.cfg.n_critic + i).items():
                logs[k] = logs.get(k, 0.0) + v / n_critic
        logs.update(self.g_step(batch, phase))
        self.images += batch
        self.step += 1
        if self.ema:
            self.ema.update(self.G, batch, self.images)
        if phase is not None:
            logs.update({"progress/stage": float(phase.stage), "progress/alpha": phase.alpha})
        return logs

    def critic_iters(self) -> int:
        """D updates before this G step: ``n_critic``, or WGAN's boost (main.py: ``Diters = 100`` while
        ``gen_iterations < 25 or gen_iterations % 500 == 0``)."""
        boost = self.cfg.critic_boost
        if boost and (self.step < boost["first"] or (boost["every"] and self.step % boost["every"] == 0)):
            return boost["n"]
        return self.cfg.n_critic

    def sample_model(self) -> nn.Module:
        return self.ema.model if self.ema else self.G


def _refs(inputs: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for v in inputs.values():
        out += v if isinstance(v, list) else [v]
    return out


def throughput(start: float, steps: int) -> float:
    return steps / max(time.perf_counter() - start, 1e-9)
