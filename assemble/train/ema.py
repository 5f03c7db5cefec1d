"""Exponential moving average of the generator's weights (Karras et al. 2018, sec. 4 / NVlabs' G_ema)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .config import EMAConfig


class EMA:
    """Keeps ``model``, a frozen copy of G whose weights follow G's with a half-life in images.

    The decay per step is ``0.5 ** (batch / half_life_images)``; with ``ramp_up`` the half-life is capped at
    ``ramp_up · images_seen`` early in training (StyleGAN2-ADA's ``ema_rampup``), so the average does not
    remember the random initialisation for long. Buffers (batch-norm statistics, w_avg, noise constants)
    are copied, not averaged.
    """

    def __init__(self, G: nn.Module, cfg: EMAConfig):
        self.cfg = cfg
        self.model = copy.deepcopy(G).eval().requires_grad_(False)

    def beta(self, batch: int, images_seen: int) -> float:
        half_life = self.cfg.half_life_kimg * 1000
        if self.cfg.ramp_up is not None:
            half_life = min(half_life, images_seen * self.cfg.ramp_up)
        return 0.5 ** (batch / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, G: nn.Module, batch: int, images_seen: int) -> None:
        beta = self.beta(batch, images_seen)
        for p_ema, p in zip(self.model.parameters(), G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.model.buffers(), G.buffers()):
            b_ema.copy_(b)
