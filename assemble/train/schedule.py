"""Progressive growing: which stage, which fade-in α and which batch size at a given number of images."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ScheduleConfig


@dataclass(frozen=True)
class Phase:
    stage: int
    alpha: float  # 1 when the stage is fully grown
    batch: int
    fading: bool


def phase_at(images: int, cfg: ScheduleConfig, num_stages: int, default_batch: int) -> Phase:
    """The phase after ``images`` images (Karras et al. 2018, sec. 3: stage 0 trains for ``images_per_phase``;
    each later stage fades in over ``fade_images`` -- α from 0 to 1 -- then trains for ``images_per_phase``)."""
    stage = min(cfg.start_stage, num_stages - 1)
    remaining = images
    if remaining < cfg.images_per_phase:
        return Phase(stage, 1.0, cfg.batch.get(stage, default_batch), False)
    remaining -= cfg.images_per_phase
    while stage + 1 < num_stages:
        stage += 1
        if remaining < cfg.fade_images:
            alpha = remaining / max(cfg.fade_images, 1)
            return Phase(stage, alpha, cfg.batch.get(stage, default_batch), True)
        remaining -= cfg.fade_images
        if remaining < cfg.images_per_phase:
            return Phase(stage, 1.0, cfg.batch.get(stage, default_batch), False)
        remaining -= cfg.images_per_phase
    return Phase(num_stages - 1, 1.0, cfg.batch.get(num_stages - 1, default_batch), False)
