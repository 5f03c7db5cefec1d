"""The pipeline: parse -> resolve -> validate -> shape inference on meta -> build -> record.

``assemble.build("stylegan2", resolution=1024)`` returns a :class:`GAN` with ``.G``, ``.D`` (plain
``nn.Module`` s whose call signatures follow the declared inputs), ``.recipe`` (the resolved recipe: save
it as YAML and build it again to get the same state_dict keys and shapes) and ``.summary()``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import blocks

from .errors import Collector, RecipeError
from .expand import NETWORKS, Variables, expand_network
from .expr import ExprError
from .infer import Plan, infer
from .network import Network
from .recipe import load
from .spec import NetworkSpec


def expand_recipe(recipe: dict[str, Any]) -> dict[str, NetworkSpec]:
    """Validate the whole recipe (all problems at once) and expand both networks."""
    issues = Collector()
    variables = Variables(recipe.get("vars") or {})
    for v in list(variables):
        try:
            variables[v]
        except ExprError as err:
            issues.add(f"vars.{v}", str(err))
    specs = {}
    for section in NETWORKS:
        if section not in recipe:
            issues.add(section, f"the recipe has no {section}")
            continue
        spec = expand_network(section, recipe[section], variables, issues)
        if spec is not None:
            specs[section] = spec
    issues.raise_if_any(recipe.get("name", ""))
    return specs


def plan(source: str | Path | dict[str, Any], *, sets: list[str] | dict[str, Any] | None = None,
         stage: int | None = None, **overrides: Any) -> tuple[dict[str, Any], dict[str, NetworkSpec],
                                                             dict[str, Plan]]:
    """Everything short of allocating weights: the resolved recipe, the network specs and their plans
    (constructor arguments, shapes, parameter counts and FLOPs), all computed on ``meta`` tensors."""
    recipe = load(source, sets, overrides)
    specs = expand_recipe(recipe)
    plans = {}
    issues = Collector()
    for net, spec in specs.items():
        try:
            plans[net] = infer(spec, stage=stage if spec.stages else None)
        except RecipeError as err:
            issues.issues += err.issues
    issues.raise_if_any(recipe.get("name", ""))
    return recipe, specs, plans


@dataclass
class GAN:
    """A built GAN: generator ``G``, discriminator ``D``, the resolved ``recipe`` and its plans."""

    name: str
    G: Network
    D: Network
    recipe: dict[str, Any]
    plans: dict[str, Plan]

    @property
    def objective(self) -> dict[str, Any]:
        return copy.deepcopy(self.recipe.get("objective") or {})

    @property
    def train_config(self) -> dict[str, Any]:
        return copy.deepcopy(self.recipe.get("train") or {})

    def summary(self) -> str:
        from .show import render_table

        return render_table(self.name, self.plans)

    def to(self, device: torch.device | str) -> GAN:
        self.G.to(device)
        self.D.to(device)
        return self


def build(source: str | Path | dict[str, Any], *, sets: list[str] | dict[str, Any] | None = None,
          device: torch.device | str = "cpu", **overrides: Any) -> GAN:
    """Build a GAN from a built-in recipe name, a YAML path or a dict.

    Args:
        source: e.g. ``"stylegan2"``, ``"my_recipe.yaml"``, or a parsed recipe.
        sets: dotted-path overrides, e.g. ``["generator.init=normal"]``.
        device: where the weights are allocated.
        **overrides: variable overrides, e.g. ``resolution=1024``.

    Raises:
        RecipeError: every problem found, each with its recipe path.
    """
    recipe, specs, plans = plan(source, sets=sets, **overrides)
    nets = {}
    for net, spec in specs.items():
        module = Network(spec, plans[net], device)
        if spec.init:
            blocks.INITS.get(spec.init)(module)
        if spec.spectral_norm:
            blocks.configure_spectral_norm(module, **spec.spectral_norm)
        nets[net] = module
    return GAN(recipe.get("name", "recipe"), nets["generator"], nets["discriminator"], recipe, plans)
