"""Whole networks from the recipes, at batch 2: every block on its reference path vs on its default path.

Recipes that are not in ``recipes/`` (yet) are skipped. Each network is built at the recipe's canonical
configuration (StyleGAN2 256, BigGAN 128, SPADE ADE20K 256, ProGAN 1024 at its last stage, DCGAN 64).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

import assemble
import blocks

from .cases import Built, Case, Context, Variant, leaf

__all__ = ["RECIPES", "recipe_cases"]

# recipe name -> the configuration benchmarked
RECIPES = {
    "dcgan": "DCGAN 64x64 (Radford et al. 2016)",
    "stylegan2": "StyleGAN2 config F at 256x256",
    "biggan": "BigGAN 128x128, ch 96",
    "spade": "SPADE, ADE20K 256x256",
    "progan": "ProGAN 1024x1024, last stage",
}
BATCH = 2


def _inputs(net: assemble.Network, batch: int, ctx: Context, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random inputs for every declared input (at the network's stage): latents and classes from their
    priors, one-hot label maps, Gaussian images."""
    out = {}
    for name, spec in net.input_specs.items():
        shape = spec.shape_at(net.stage)
        if spec.kind == "label_map":
            labels = torch.randint(0, shape[0], (batch, *shape[1:]), generator=gen)
            t = F.one_hot(labels, shape[0]).permute(0, 3, 1, 2).float()  # (B, S, H, W)
        elif spec.kind in ("image", "text_embedding", "tokens"):
            t = torch.randn((batch, *shape), generator=gen)
        else:
            t = spec.sample(batch, gen)
        out[name] = t.to(ctx.device, ctx.dtype) if t.is_floating_point() else t.to(ctx.device)
    return out


def _build(recipe: str, net_name: str):
    def build(ctx: Context) -> Built:
        torch.manual_seed(ctx.seed)
        gan = assemble.build(recipe, device=ctx.device)
        gen = torch.Generator().manual_seed(ctx.seed)
        net = gan.G if net_name == "G" else gan.D
        del gan
        inputs = _inputs(net, BATCH, ctx, gen)
        net = net.to(dtype=ctx.dtype).train()
        inputs = {k: leaf(v) for k, v in inputs.items()}
        grad_inputs = [t for t in inputs.values() if t.requires_grad]
        variants = []
        for impl, name, role in (("ref", "ref", "ref"), ("auto", "fast", "impl")):
            m = copy.deepcopy(net) if impl == "ref" else net  # one copy: the weights are equal
            switched = blocks.set_impl(m, impl)
            params = [p for p in m.parameters() if p.requires_grad]
            variants.append(Variant(name, (lambda m=m: m(**inputs)), grad_inputs + params, role, impl == "auto"))
        state = [*net.parameters(), *(b for b in net.buffers() if b.is_floating_point())]
        config = {"batch": BATCH, "inputs": {k: list(v.shape) for k, v in inputs.items()},
                  "blocks_with_impls": switched}
        if ctx.compile:
            m = copy.deepcopy(net)
            params = [p for p in m.parameters() if p.requires_grad]
            compiled = torch.compile(m)
            variants.append(Variant("compile", lambda: compiled(**inputs), grad_inputs + params, "compile"))
        return Built(variants, list(inputs.values()), state, config)
    return build


def recipe_cases() -> list[Case]:
    """G and D of every benchmarked recipe that exists in ``recipes/``."""
    present = set(assemble.list_recipes())
    cases = []
    for recipe, paper in RECIPES.items():
        if recipe not in present:
            continue
        for net in ("G", "D"):
            cases.append(Case(f"{recipe}/{net} batch {BATCH}", "recipe", recipe, paper, _build(recipe, net)))
    return cases
