"""One training step's losses: the adversarial loss, auxiliary terms on named registers, regularizers.

The trainer hands this module the runs of the networks (register dicts) and gets back named loss terms;
every term is checked for NaN/inf where it is computed, so a divergence names the step and the term.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

import blocks

from ..network import Network
from .config import TrainConfig


class TrainingError(RuntimeError):
    """Training stopped: a loss term (or the data) became NaN or infinite."""

    def __init__(self, step: int, term: str, detail: str = ""):
        self.step, self.term = step, term
        super().__init__(f"step {step}: {term} is not finite{f' ({detail})' if detail else ''}; the run stopped "
                         "and the last good checkpoint is kept")


def finite(value: Tensor, step: int, term: str, detail: str = "") -> Tensor:
    if not torch.isfinite(value.detach()).all():
        raise TrainingError(step, term, detail)
    return value


class Objective:
    """The recipe's objective, instantiated: adversarial loss, regularizer modules, auxiliary terms."""

    def __init__(self, cfg: TrainConfig, G: Network, D: Network, device: torch.device):
        self.cfg = cfg
        self.loss = blocks.LOSSES.create(cfg.loss, **cfg.loss_args)
        self.regularizers = nn.ModuleList(
            [blocks.REGULARIZERS.create(r.key, **r.args) for r in cfg.regularizers]).to(device)
        self.reg_names = [r.key for r in cfg.regularizers]
        self.terms = [(t, blocks.LOSSES.create(t.key, **t.args)) for t in cfg.terms]
        self.logit_names = cfg.logits or (D.output_names[0],)
        self.matching_aware = cfg.loss == "matching_aware"
        self.G, self.D = G, D
        for name in self.logit_names:
            if name not in D.output_names and name not in D.registers():
                raise ValueError(f"objective.logits: D has no register '{name}' (outputs: {list(D.output_names)})")

    def logits(self, regs: dict[str, Any]) -> list[Tensor]:
        return [regs[n] for n in self.logit_names]

    # ---- terms -------------------------------------------------------------------------------------
    def _resolve(self, ref: Any, runs: dict[str, dict[str, Any]]) -> Any:
        if isinstance(ref, list):
            return [self._resolve(r, runs) for r in ref]
        ns, name = ref.split(".", 1)
        if ns not in runs:
            raise ValueError(f"objective term input '{ref}': run {ns} is not available in this step")
        regs = runs[ns]
        if name not in regs:
            known = ", ".join(sorted(k for k in regs if not k.startswith("_")))
            raise ValueError(f"objective term input '{ref}': {ns} has no register '{name}' (it has: {known})")
        return regs[name]

    def term_losses(self, network: str, runs: dict[str, dict[str, Any]], step: int) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for i, (cfg, loss) in enumerate(self.terms):
            if cfg.network != network:
                continue
            kwargs = {name: self._resolve(ref, runs) for name, ref in cfg.inputs.items()}
            value = loss(**kwargs) * cfg.weight
            name = f"term/{cfg.key}" if sum(t.key == cfg.key for t, _ in self.terms) == 1 else f"term/{cfg.key}{i}"
            out[name] = finite(value, step, name)
        return out

    # ---- regularizers ------------------------------------------------------------------------------
    def due(self, reg: nn.Module, step: int) -> bool:
        return step % reg.interval == 0

    def d_regularizers(self, step: int, d_index: int, critic: Callable[[Tensor], Tensor], real: Tensor,
                       fake: Tensor, real_logits: list[Tensor], cond: dict[str, Tensor]) -> dict[str, Tensor]:
        """D's regularizer terms at training step ``step`` (for messages), D update number ``d_index``
        (lazy regularizers run when it is a multiple of their interval)."""
        out: dict[str, Tensor] = {}
        for name, reg in zip(self.reg_names, self.regularizers):
            if reg.network != "D" or name == "weight_clip" or not self.due(reg, d_index):
                continue
            needs = reg.needs
            if needs == ("critic", "real", "fake"):
                value = reg(critic, real, fake, **cond)
            elif needs == ("critic", "real"):
                value = reg(critic, real, **cond)
            elif needs == ("real_logits",):
                value = sum(reg(lg) for lg in real_logits) / len(real_logits)
            elif needs == ("module",):
                value = reg(self.D)
            else:
                raise ValueError(f"regularizer '{name}' needs {needs}, which the trainer cannot supply to D")
            value = value * reg.interval  # lazy regularisation (StyleGAN2 sec. 3.1)
            out[f"reg/{name}"] = finite(value, step, f"reg/{name}")
        return out

    def g_regularizers(self, step: int, path_length_run: Callable[[], tuple[Tensor, Tensor]] | None
                       ) -> dict[str, Tensor]:
        """G's regularizer terms at (1-based) training step ``step``; lazy ones when ``step - 1`` is a multiple
        of their interval, so they also run on the first step."""
        out: dict[str, Tensor] = {}
        for name, reg in zip(self.reg_names, self.regularizers):
            if reg.network != "G" or not self.due(reg, step - 1):
                continue
            if reg.needs == ("images", "ws"):
                if path_length_run is None:
                    raise ValueError(f"regularizer '{name}' needs per-layer styles: list the styles register in "
                                     "generator.styles")
                images, ws = path_length_run()
                value = reg(images, ws)
            elif reg.needs == ("module",):
                value = reg(self.G)
            else:
                raise ValueError(f"regularizer '{name}' needs {reg.needs}, which the trainer cannot supply to G")
            value = value * reg.interval
            out[f"reg/{name}"] = finite(value, step, f"reg/{name}")
        return out

    def clip_weights(self) -> None:
        for name, reg in zip(self.reg_names, self.regularizers):
            if name == "weight_clip":
                reg(self.D)
