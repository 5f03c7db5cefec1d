"""Malformed recipes: each mistake gives one readable RecipeError with its recipe path (messages pinned)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable

import pytest

import assemble
from assemble import RecipeError

BASE = {
    "name": "tiny",
    "vars": {"ch": 8, "zdim": 16},
    "generator": {
        "inputs": {"z": "latent(zdim)"},
        "steps": [
            {"linear": {"out_features": "$ch * 4 * 4"}},
            {"reshape": {"shape": ["$ch", 4, 4]}},
            {"conv": {"out_channels": "$ch"}},
            "relu",
            {"conv": {"out_channels": 3}},
            "tanh",
        ],
    },
    "discriminator": {
        "inputs": {"img": "image(3, 4, 4)"},
        "steps": [{"conv": {"out_channels": "$ch"}}, "flatten", {"linear": {"out_features": 1}}],
    },
}


def g_steps(r):
    return r["generator"]["steps"]


def setter(fn: Callable[[dict], None]) -> Callable[[], dict]:
    def make() -> dict:
        r = copy.deepcopy(BASE)
        fn(r)
        return r
    return make


def _with_stages(step):
    def fn(r):
        r["generator"]["stages"] = 2
        g_steps(r).__setitem__(3, step)
    return fn


# (name, recipe maker, expected path, expected message fragment). Paths are module paths (G.conv_1: the second
# unnamed conv of G), or recipe keys outside the networks; the place in the recipe text is in the message.
CASES: list[tuple[str, Callable[[], dict], str, str]] = [
    ("unknown block key", setter(lambda r: g_steps(r).__setitem__(3, "relux")),
     "G.relux", "unknown block 'relux'. Closest: relu"),
    ("unknown argument", setter(lambda r: g_steps(r)[2]["conv"].update(out_channel=8)),
     "G.conv.out_channel", "unknown argument for 'conv'. Did you mean out_channels?"),
    ("wrong type", setter(lambda r: g_steps(r)[2]["conv"].update(out_channels="eight")),
     "G.conv.out_channels", "expects int, found str 'eight'"),
    ("wrong type bool", setter(lambda r: g_steps(r)[2]["conv"].update(bias="yes")),
     "G.conv.bias", "expects bool, found str 'yes'"),
    ("missing required", setter(lambda r: g_steps(r).__setitem__(2, {"conv": {}})),
     "G.conv.out_channels", "missing required argument of 'conv'"),
    ("undefined register", setter(lambda r: g_steps(r).__setitem__(3, {"relu": {"from": "nothing"}})),
     "G.relu", "reads register 'nothing', which no input or earlier step writes"),
    ("undefined variable", setter(lambda r: g_steps(r)[2]["conv"].update(out_channels="$chn")),
     "G.conv.out_channels", "undefined variable 'chn'"),
    ("bad expression", setter(lambda r: g_steps(r)[2]["conv"].update(out_channels="$ch +* 2")),
     "G.conv.out_channels", "cannot parse expression 'ch +* 2'"),
    ("forbidden expression", setter(lambda r: g_steps(r)[2]["conv"].update(out_channels="$__import__('os')")),
     "G.conv.out_channels", "function '__import__' is not allowed"),
    ("shape mismatch naming both steps", setter(lambda r: g_steps(r)[4]["conv"].update(in_channels=5)),
     "G.conv_1", "comes from G.relu"),
    ("conditioning never declared",
     setter(lambda r: g_steps(r).insert(3, {"conditional_batch_norm": {"n_classes": 10}})),
     "G.conditional_batch_norm", "consumes 'y' but no input or earlier step provides"),
    ("invalid YAML", lambda: "generator:\n  inputs: {z: latent(4)\n  steps: []\n",
     "", "invalid YAML in <text> at line"),
    ("loop over nothing", setter(lambda r: g_steps(r).insert(3, {"for": {"r": []}, "do": ["relu"]})),
     "G.for.r", "loop over nothing: the list is empty"),
    ("negative size", setter(lambda r: g_steps(r)[2]["conv"].update(out_channels=-3)),
     "G.conv.out_channels", "must be a positive size, found -3"),
    ("zero size", setter(lambda r: r["discriminator"]["steps"][2]["linear"].update(out_features=0)),
     "D.linear.out_features", "must be a positive size, found 0"),
    ("unknown top-level key", setter(lambda r: r.update(generater={})), "generater",
     "unknown top-level key (did you mean 'generator'?)"),
    ("missing network", setter(lambda r: r.pop("discriminator")), "discriminator",
     "the recipe has no discriminator"),
    ("bad input size", setter(lambda r: r["generator"]["inputs"].update(z="latent(-5)")),
     "G.inputs.z", "sizes in 'latent(-5)' must be positive integers"),
    ("unknown input kind", setter(lambda r: r["generator"]["inputs"].update(z="gaussian(5)")),
     "G.inputs.z", "unknown input kind 'gaussian'"),
    ("two keys in a step", setter(lambda r: g_steps(r).__setitem__(3, {"relu": {}, "tanh": {}})),
     "G", "a step is a block key"),
    ("zipped loop lengths", setter(lambda r: g_steps(r).insert(3, {"for": {"a": [1, 2], "b": [1]},
                                                                  "do": ["relu"]})),
     "G.for", "zipped loop variables have different lengths"),
    ("undefined name in runtime condition", setter(_with_stages({"relu": {"if": "$stage > 0 and stge"}})),
     "G.relu.if", "uses undefined name(s) stge"),
    ("output never written", setter(lambda r: r["generator"].update(output="img")),
     "G.output", "output register 'img' is never written"),
    ("unknown initialiser", setter(lambda r: r["generator"].update(init="ortho")),
     "G.init", "unknown init 'ortho'. Closest: orthogonal"),
    ("constructor rejects a value", setter(lambda r: g_steps(r).insert(3, {"group_norm": {"num_groups": 3}})),
     "G.group_norm", "'group_norm' cannot be built"),
    ("residual shapes differ", setter(lambda r: g_steps(r).insert(
        3, {"residual": {"body": [{"conv": {"out_channels": 4}}]}})),
     "G.residual", "body gives shape (1, 4, 4, 4) but shortcut gives (1, 8, 4, 4)"),
    ("variables in a cycle", setter(lambda r: r["vars"].update(a="$b + 1", b="$a + 1")),
     "vars.a", "variables refer to each other in a cycle: a -> b -> a"),
    ("several outputs not named", setter(lambda r: g_steps(r).insert(
        3, {"skip_z": {"from": "z", "z_dim": 16, "y_dim": 0, "chunks": 2}})),
     "G.skip_z", "returns 2 outputs; name them with into"),
    ("layer index out of range", setter(lambda r: (
        r["generator"].update(inputs={"z": "latent(zdim)", "t": "tokens(2, 4)"}),
        g_steps(r).insert(3, {"cross_attention": {"tokens": {"from": "t", "index": 5}}}))),
     "G.cross_attention", "asks for layer 5 of 't', which has 2 layers"),
    ("step never runs", setter(_with_stages({"relu": {"if": "$stage > 5"}})),
     "G.relu", "this step never runs"),
    # the traps of the old language, now errors
    ("plain string as a condition", setter(lambda r: g_steps(r).__setitem__(3, {"relu": {"if": "zdim == 9999"}})),
     "G.relu.if", "found the plain string 'zdim == 9999' (write '$zdim == 9999')"),
    ("condition that is not true or false", setter(lambda r: g_steps(r).__setitem__(3, {"relu": {"if": "$[1]"}})),
     "G.relu.if", "gives [1]; a condition must give true or false"),
    ("stage used without stages", setter(lambda r: g_steps(r).__setitem__(3, {"relu": {"if": "$stage > 0"}})),
     "G.relu.if", "uses stage, but the network declares no stages"),
    ("stage in a value", setter(lambda r: (r["generator"].update(stages=2),
                                           g_steps(r)[2]["conv"].update(out_channels="$8 * (stage + 1)"))),
     "G.conv.out_channels", "'stage' is known only at run time: use it in an `if`"),
    ("removed: when", setter(lambda r: g_steps(r).__setitem__(3, {"relu": {"when": "stage > 0"}})),
     "G.relu.when", "'when' was removed: `if` is the one conditional"),
    ("removed: stop", setter(lambda r: g_steps(r).insert(3, {"stop": "stage == 0"})),
     "G.stop", "'stop' was removed"),
    ("removed: programs", setter(lambda r: r["generator"].update(programs={"main": g_steps(r)})),
     "G.programs", "'programs' was removed"),
    ("removed: macros", setter(lambda r: r.update(macros={"block": {"steps": ["relu"]}})),
     "macros", "macros were removed"),
    ("removed: index next", setter(lambda r: (
        r["generator"].update(inputs={"z": "latent(zdim)", "t": "tokens(2, 4)"}),
        g_steps(r).insert(3, {"cross_attention": {"tokens": {"from": "t", "index": "next"}}}))),
     "G.cross_attention.tokens", "index 'next' was removed"),
    ("two parts with one name", setter(lambda r: (g_steps(r)[2]["conv"].update(name="x"),
                                                 g_steps(r)[4]["conv"].update(name="x"))),
     "G.x", "two parts are named 'x'"),
    ("a default name taken by hand later", setter(lambda r: g_steps(r)[4]["conv"].update(name="relu")),
     "G.relu", "two parts are named 'relu'"),
    ("a name that is not a module name", setter(lambda r: g_steps(r)[2]["conv"].update(name="a.b")),
     "G.conv.name", "a name is letters, digits and _"),
    ("a name the containers use", setter(lambda r: g_steps(r)[2]["conv"].update(name="forward")),
     "G.conv.name", "'forward' is reserved"),
    ("a name the network uses", setter(lambda r: g_steps(r)[2]["conv"].update(name="parts_after")),
     "G.conv.name", "'parts_after' is reserved"),
    ("a private name", setter(lambda r: g_steps(r)[2]["conv"].update(name="_signature")),
     "G.conv.name", "not starting with _"),
    ("a variable that fails, used twice", setter(lambda r: (r["vars"].update(bad="$1 // 0"),
                                                          g_steps(r)[2]["conv"].update(out_channels="$bad"))),
     "G.conv.out_channels", "variable 'bad' failed: integer division or modulo by zero"),
    ("a registers inside a residual", setter(lambda r: g_steps(r).insert(
        3, {"residual": {"body": [{"conv": {"out_channels": 8, "into": "h"}}]}})),
     "G.residual.body.conv", "inside a residual, steps run in sequence on one tensor"),
    ("a loop too long", setter(lambda r: g_steps(r).insert(3, {"for": {"i": "$range(30000)"}, "do": ["relu"]})),
     "G.for", "a loop of 30,000 iterations"),
    ("a spectral-norm convention that does not exist", setter(lambda r: r["generator"].update(
        spectral_norm={"order": "w_first"})),
     "G.spectral_norm.order", "expects one of ('u_first', 'v_first'), found 'w_first'"),
    ("a group without steps", setter(lambda r: g_steps(r).insert(3, {"name": "block"})),
     "G", "'name' is a step option, not a block: a named group is {name: g, do: [steps]}"),
]


def _build(make):
    recipe = make()
    if isinstance(recipe, str):
        from assemble.recipe import parse_yaml

        recipe = parse_yaml(recipe, "<text>")
    return assemble.build(recipe)


@pytest.mark.parametrize("name, make, path, fragment", CASES, ids=[c[0] for c in CASES])
def test_malformed_recipe(name, make, path, fragment):
    with pytest.raises(RecipeError) as info:
        _build(make)
    err = info.value
    assert type(err) is RecipeError
    assert any(i.path == path for i in err.issues), f"no issue at {path}: {err}"
    assert fragment in str(err), f"expected {fragment!r} in:\n{err}"
    assert "Traceback" not in str(err)


def test_at_least_25_kinds_of_mistake():
    assert len(CASES) >= 25


def test_all_errors_reported_at_once():
    r = copy.deepcopy(BASE)
    g_steps(r)[2]["conv"]["out_channel"] = 8
    g_steps(r)[3] = "relux"
    r["discriminator"]["steps"][2]["linear"]["out_features"] = "$nope"
    with pytest.raises(RecipeError) as info:
        assemble.build(r)
    paths = {i.path for i in info.value.issues}
    assert {"G.conv.out_channel", "G.relux", "D.linear.out_features"} <= paths
    assert str(info.value).startswith("recipe 'tiny' has 3 problems:")


def test_circular_base(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(RecipeError, match=re.escape("circular base: a -> b -> a")):
        assemble.build(str(tmp_path / "a.yaml"))


def test_unknown_override_variable():
    with pytest.raises(RecipeError, match=re.escape("unknown variable 'chh' in an override. Closest: ch")):
        assemble.build(BASE, chh=4)


def test_unknown_recipe_name():
    with pytest.raises(RecipeError, match=re.escape("no recipe named or at 'dcgann'. Closest built-in recipes: dcgan")):
        assemble.build("dcgann")


def test_invalid_yaml_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("generator:\n  inputs: [\n")
    with pytest.raises(RecipeError, match=r"invalid YAML in bad.yaml at line 3, column 1"):
        assemble.build(str(p))


def test_yaml_tags_are_not_executed(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("vars: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(RecipeError, match="invalid YAML"):
        assemble.build(str(p))
