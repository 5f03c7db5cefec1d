"""What a run writes besides checkpoints: fixed-latent sample grids, toy scatter plots and the metrics that
say whether training works (mode coverage on toy data, classifier-judged digits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

TOY = ("ring8", "grid25", "swiss_roll")


def class_input(trainer: Any) -> str | None:
    """G's first class input (the class of class-conditional G, or InfoGAN's categorical code), or None."""
    return next((n for n, s in trainer.G.input_specs.items() if s.kind == "class"), None)


class FixedSamples:
    """The same G inputs at every sample step, so the grids show one run's progress.

    A class-conditional G also gets a grid per class (``samples_by_class.png``): one row per class (the
    first 16 when there are more), the same latents down each column.
    """

    ROWS, COLS = 16, 10

    def __init__(self, trainer: Any, n: int):
        self.n = n
        gen = torch.Generator().manual_seed(trainer.cfg.seed * 7919 + 99)
        real: dict[str, Tensor] = {}
        if trainer.g_data_inputs or trainer.cfg.g_labels == "data":
            from .batches import collate

            idx = torch.arange(min(n, len(trainer.dataset)))
            fields = collate(trainer.dataset, idx)
            real = {name: fields[f].to(trainer.device) for name, f in trainer.binding.items()}
            self.n = len(idx)
        self.inputs = trainer.g_inputs(self.n, real, gen)
        self.by_class: dict[str, Tensor] | None = None
        name = class_input(trainer)
        if name is not None:
            rows = min(trainer.G.input_specs[name].n_classes, self.ROWS)
            cols = min(self.COLS, self.n)
            column = {k: v[:cols] for k, v in self.inputs.items()}  # one latent per column, repeated down it
            self.by_class = {k: v.repeat(rows, *([1] * (v.dim() - 1))) for k, v in column.items()}
            self.by_class[name] = torch.arange(rows, device=trainer.device).repeat_interleave(cols)
            self.cols = cols

    @torch.no_grad()
    def images(self, trainer: Any, inputs: dict[str, Tensor] | None = None) -> Tensor:
        model = trainer.sample_model()
        was = model.training
        model.eval()
        try:
            return trainer.fake_of(model.run(**(inputs or self.inputs))).float().cpu()
        finally:
            model.train(was)

    def save(self, trainer: Any, step: int) -> Path | None:
        from ..plots import save_grid, save_scatter

        out = trainer.out / "samples"
        out.mkdir(exist_ok=True)
        fake = self.images(trainer)
        if fake.dim() == 4:
            path = save_grid(fake, out / f"step-{step:07d}.png")
            save_grid(fake, trainer.out / "samples.png")
            if self.by_class is not None:
                grid = self.images(trainer, self.by_class)
                save_grid(grid, out / f"by-class-{step:07d}.png", nrow=self.cols)
                save_grid(grid, trainer.out / "samples_by_class.png", nrow=self.cols)
            return path
        if fake.dim() == 2 and fake.shape[1] == 2:
            real = toy_points(trainer, 2000)
            centers = trainer.dataset.info.get("centers")
            centers = torch.as_tensor(centers, dtype=torch.float32) if centers is not None else None
            many = generate(trainer, 2000)
            save_scatter(real, many, out / f"scatter-{step:07d}.png", centers=centers)
            return save_scatter(real, many, trainer.out / "scatter.png", centers=centers)
        return None


    def save_attention(self, trainer: Any, samples: int = 4) -> Path | None:
        """``attention.png`` (see :func:`assemble.figures.attention_figure`) when G has self-attention."""
        from ..figures import attention_figure, first_attention

        model = trainer.sample_model()
        if first_attention(model) is None or self.n < 1:
            return None
        inputs = {k: v[:samples] for k, v in (self.by_class or self.inputs).items()}
        if self.by_class is not None:  # one sample of each of the first classes
            inputs = {k: v[::self.cols][:samples] for k, v in self.by_class.items()}
        was = model.training
        model.eval()
        try:
            return attention_figure(model, inputs, trainer.G.output_names[0], trainer.out / "attention.png")
        finally:
            model.train(was)


def sample_grid(trainer: Any, n: int) -> FixedSamples:
    return FixedSamples(trainer, n)


@torch.no_grad()
def generate(trainer: Any, n: int, seed: int = 12345, classes: Tensor | None = None) -> Tensor:
    """``n`` samples from the EMA generator (eval mode), in batches, with a fixed seed; ``classes`` (n,) sets
    G's class input (see :func:`class_input`) instead of drawing it."""
    model = trainer.sample_model()
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out = []
    try:
        done = 0
        while done < n:
            b = min(256, n - done)
            real: dict[str, Tensor] = {}
            if trainer.g_data_inputs:
                from .batches import collate

                idx = torch.randint(0, len(trainer.dataset), (b,), generator=gen)
                fields = collate(trainer.dataset, idx)
                real = {name: fields[f].to(trainer.device) for name, f in trainer.binding.items()}
            gin = trainer.g_inputs(b, real, gen)
            if classes is not None:
                gin[class_input(trainer)] = classes[done:done + b].to(trainer.device)
            out.append(trainer.fake_of(model.run(**gin)).float().cpu())
            done += b
    finally:
        model.train(was)
    return torch.cat(out)


def toy_points(trainer: Any, n: int) -> Tensor:
    from .batches import collate

    idx = torch.arange(min(n, len(trainer.dataset)))
    field = next(iter(trainer.binding.values()))
    return collate(trainer.dataset, idx)[field].float()


def evaluate(trainer: Any) -> dict[str, Any]:
    """The metrics that fit the dataset: toy mode statistics, or a digits classifier's verdict."""
    name = str(trainer.cfg.data.get("name", ""))
    info = getattr(trainer.dataset, "info", {}) or {}
    if name in TOY and info.get("centers") is not None:
        from ..metrics import mode_stats

        samples = generate(trainer, 2500)
        centers = torch.as_tensor(info["centers"], dtype=torch.float32)
        return mode_stats(samples, centers, float(info["std"]))
    if name == "digits":
        from ..metrics import digit_classifier, digits_report
        from ..metrics.digits import _default_size

        name = class_input(trainer)
        conditional = name is not None and trainer.G.input_specs[name].n_classes == 10
        classes = torch.arange(500) % 10 if conditional else None  # 50 samples of each class
        images = generate(trainer, 500, classes=classes)
        if images.shape[1] != 1:
            return {}
        # 64 px digits are judged by the 32 px classifier (digits_report resizes them)
        classifier = digit_classifier(_default_size(images.shape[-1]))
        report = digits_report(images, classifier=classifier)
        if conditional:
            from ..metrics.digits import class_report

            report.update(class_report(images, classes, classifier=classifier))
        return report
    if name == "stacked_digits":
        from ..metrics import stacked_report

        images = generate(trainer, 2000)
        return stacked_report(images)
    return {}
