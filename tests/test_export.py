"""Every shipped generator stays traceable: torch.export (non-strict) of its tiny build, in eval mode with
constant noise, gives the eager output (progressive recipes at their last stage and at an intermediate one)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import assemble

RECIPES = assemble.list_recipes()


class Positional(nn.Module):
    """G called with its inputs positionally (what an exporter hands it)."""

    def __init__(self, G: assemble.Network):
        super().__init__()
        self.G, self.names = G, list(G.input_specs)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.G(**dict(zip(self.names, inputs)))


def _inputs(G: assemble.Network, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    out = []
    for spec in G.input_specs.values():
        shape = spec.shape_at(G.stage)
        if spec.kind == "label_map":
            labels = torch.randint(0, shape[0], (batch, *shape[1:]), generator=gen)
            out.append(nn.functional.one_hot(labels, shape[0]).permute(0, 3, 1, 2).float())
        elif spec.kind in ("image", "text_embedding", "tokens"):
            out.append(torch.randn((batch, *shape), generator=gen))
        else:
            out.append(spec.sample(batch, gen))
    return tuple(out)


def _const_noise(G: nn.Module) -> None:
    for m in G.modules():
        if hasattr(m, "make_noise") and hasattr(m, "noise_mode"):
            m.noise_mode = "const" if getattr(m, "noise_const", None) is not None else "none"


@pytest.mark.parametrize("name", RECIPES)
def test_generator_exports_and_matches_eager(name):
    recipe = assemble.load(name)
    gan = assemble.build(recipe, **(recipe.get("tiny") or {}))
    G = gan.G.eval()
    _const_noise(G)
    stages = [None] if not G.num_stages else [G.num_stages - 1, G.num_stages // 2]
    for stage in stages:
        if stage is not None:
            G.set_stage(stage)
            G.set_alpha(0.5)
        inputs = _inputs(G, 3, torch.Generator().manual_seed(0))
        wrapped = Positional(G)
        with torch.no_grad():
            eager = wrapped(*inputs)
            program = torch.export.export(wrapped, inputs, strict=False)
            exported = program.module()(*inputs)
        torch.testing.assert_close(exported, eager, rtol=1e-6, atol=1e-6)
