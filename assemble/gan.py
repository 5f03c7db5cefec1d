"""The pipeline: parse -> resolve -> validate -> shape inference on meta -> build -> record.

``assemble.build("stylegan2", resolution=1024)`` returns a :class:`GAN` with ``.G``, ``.D`` (plain
``nn.Module`` s whose call signatures follow the declared inputs), ``.recipe`` (the resolved recipe: save
it as YAML and build it again to get the same state_dict keys and shapes) and ``.summary()``.
"""

from __future__ import annotations

import copy
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import blocks
from blocks.registry import UnknownKeyError

from .errors import Collector, RecipeError
from .expr import ExprError
from .inputs import parse_input
from .network import Network, NetworkSpec, Plan, infer
from .program import Expander, Variables, check_macros, resolve
from .recipe import load

NETWORKS = {"generator": "G", "discriminator": "D"}
NETWORK_KEYS = ("description", "inputs", "steps", "programs", "output", "styles", "stages", "init")
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


def _expand_network(name: str, section: Any, variables: Variables, macros: dict[str, Any],
                    issues: Collector) -> NetworkSpec | None:
    if not isinstance(section, dict):
        issues.add(name, f"a network is a mapping with inputs, steps (or programs) and output; found {section!r}")
        return None
    for k in section:
        if k not in NETWORK_KEYS:
            issues.add(f"{name}.{k}", f"unknown network key; allowed: {', '.join(NETWORK_KEYS)}")
    stages = None
    if section.get("stages") is not None:
        try:
            stages = resolve(section["stages"], variables)
        except ExprError as err:
            issues.add(f"{name}.stages", str(err))
        if stages is not None and (not isinstance(stages, int) or isinstance(stages, bool) or stages < 1):
            issues.add(f"{name}.stages", f"stages must be a positive integer, found {stages!r}")
            stages = None
    inputs = {}
    raw_inputs = section.get("inputs") or {}
    if not isinstance(raw_inputs, dict) or not raw_inputs:
        issues.add(f"{name}.inputs", "declare at least one input, e.g. {z: latent(128)}")
        raw_inputs = {}
    for k, decl in raw_inputs.items():
        if not isinstance(k, str) or not k.isidentifier() or keyword.iskeyword(k) or k == "_":
            issues.add(f"{name}.inputs.{k}", "input names are identifiers (they become the network's call "
                                             "arguments), not Python keywords and not '_'")
            continue
        try:
            inputs[k] = parse_input(k, decl, variables, stages)
        except ValueError as err:
            issues.add(f"{name}.inputs.{k}", str(err))
    if "steps" in section and "programs" in section:
        issues.add(name, "give either steps (one program) or programs (named programs), not both")
    programs_raw = section.get("programs") if "programs" in section else {"steps": section.get("steps")}
    if not isinstance(programs_raw, dict) or not programs_raw:
        issues.add(f"{name}.programs", "programs is a mapping of program name -> list of steps")
        programs_raw = {}
    styles_raw = section.get("styles", []) or []
    if isinstance(styles_raw, str):
        styles_raw = [styles_raw]
    if not isinstance(styles_raw, list) or not all(isinstance(s, str) for s in styles_raw):
        issues.add(f"{name}.styles", f"styles is a list of per-layer register names, found {styles_raw!r}")
        styles_raw = []
    init = section.get("init")
    if init is not None:
        try:
            blocks.INITS.entry(init)
        except (UnknownKeyError, TypeError) as err:
            issues.add(f"{name}.init", str(err))
    expander = Expander(macros, variables, tuple(styles_raw), issues)
    programs = {}
    for prog, steps in programs_raw.items():
        if not isinstance(prog, str) or not _IDENT.match(prog) or hasattr(nn.Module, prog):
            issues.add(f"{name}.programs.{prog}", "program names are snake_case and not nn.Module attributes")
            continue
        if steps is None:
            issues.add(f"{name}.{prog}", "a network needs steps")
            continue
        programs[prog] = expander.expand(steps, variables, f"{name}.{prog}")
    output = section.get("output", "_")
    output = (output,) if isinstance(output, str) else output
    if not isinstance(output, list | tuple) or not output or not all(isinstance(o, str) for o in output):
        issues.add(f"{name}.output", f"output is a register name or a list of them, found {output!r}")
        output = ("_",)
    styles = {r: max(expander.slots[r], expander.slot_peeks[r]) for r in styles_raw}
    return NetworkSpec(name, inputs, programs, tuple(output), styles, stages, init, section)


def expand_recipe(recipe: dict[str, Any]) -> dict[str, NetworkSpec]:
    """Validate the whole recipe (all problems at once) and expand both networks."""
    issues = Collector()
    variables = Variables(recipe.get("vars") or {})
    for v in list(variables):
        try:
            variables[v]
        except ExprError as err:
            issues.add(f"vars.{v}", str(err))
    macros = check_macros(recipe.get("macros"), issues)
    specs = {}
    for net in NETWORKS:
        if net not in recipe:
            issues.add(net, f"the recipe has no {net}")
            continue
        spec = _expand_network(net, recipe[net], variables, macros, issues)
        if spec is not None:
            specs[net] = spec
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
        nets[net] = module
    return GAN(recipe.get("name", "recipe"), nets["generator"], nets["discriminator"], recipe, plans)
