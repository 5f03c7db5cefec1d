"""Random mutations of valid recipes: building either succeeds or raises RecipeError -- never anything else."""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import assemble
from assemble import RecipeError

# Small, fast recipes (tiny sizes) that exercise loops, names, groups, registers, styles, conditioning and
# stages (ProGAN's stage-aware blocks and runtime conditions).
SEEDS = {
    "dcgan": {"nz": 8, "ngf": 4, "ndf": 4, "resolution": 16},
    "stylegan2": {"resolution": 8, "channel_base": 32, "channel_max": 8, "z_dim": 8, "w_dim": 8,
                  "mapping_layers": 1},
    "gan_mlp": {"hidden": 4, "g_layers": 1, "d_layers": 1},
    "progan": {"resolution": 16, "fmap_base": 32, "fmap_max": 8, "z_dim": 8},
    "biggan": {"resolution": 64, "ch": 2, "attn": 32, "n_classes": 3, "shared_dim": 4, "z_dim": 10},
}
BASES = {name: assemble.load(name, overrides=tiny) for name, tiny in SEEDS.items()}

LEAVES = st.one_of(
    st.integers(-3, 70), st.floats(-2, 2, allow_nan=False), st.booleans(), st.none(),
    st.sampled_from(["relu", "conv", "$ch * 2", "$nope", "$[1, 2]", "img", "x", "", "latent(4)", "image(3, 8, 8)",
                     "$r", "$2 ** 40", "stage > 1", "class(3)", "[", "linear", "w", "{index: next}",
                     "$stage >= 1", "$f'b{r}'", "b4", "_x", "forward", "0", "$stage", "relu", "$[]", "$true"]),
    st.lists(st.integers(-1, 9), max_size=3),
    st.just({}), st.just([]),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(BASES)))
    recipe = copy.deepcopy(BASES[name])
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(recipe) if p]
        path = draw(st.sampled_from(paths))
        parent, key = _get(recipe, path[:-1]), path[-1]
        op = draw(st.sampled_from(["delete", "replace", "rename", "number", "swap"]))
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(LEAVES)
        elif op == "rename" and isinstance(parent, dict):
            new = draw(st.sampled_from(["conv", "relux", "linear", "from", "into", "for", "residual", "when",
                                        "out_channels", "kernel_size", "steps", "inputs", "w", "do", "emit",
                                        "name", "if", "stop", "programs", "stages", "styles"]))
            parent[new] = parent.pop(key)
        elif op == "number":
            value = parent[key]
            if isinstance(value, int | float) and not isinstance(value, bool):
                parent[key] = draw(st.sampled_from([0, -1, 1, 3, value * 2, value + 1, 1e9]))
        elif op == "swap":
            other = draw(st.sampled_from(paths))
            if other[: len(path)] != path and path[: len(other)] != other:
                try:
                    a, b = copy.deepcopy(_get(recipe, path)), copy.deepcopy(_get(recipe, other))
                    parent[key] = b
                    _get(recipe, other[:-1])[other[-1]] = a
                except (KeyError, IndexError, TypeError):
                    pass
        if not isinstance(recipe, dict):
            break
    return recipe


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(recipe=mutated())
def test_mutated_recipes_build_or_raise_recipe_error(recipe):
    try:
        assemble.build(recipe)
    except RecipeError as err:
        assert str(err) and "Traceback" not in str(err)
