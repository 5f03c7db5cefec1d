"""Named parts: every shipped recipe's module tree reads as its authors' code does; one path names a part in
the state_dict, ``show``, ``print(G)`` and errors; adding a step renames nothing else."""

from __future__ import annotations

import copy

import pytest
import torch

import assemble
from assemble import RecipeError
from assemble.show import render_table

# A sample of state_dict keys per recipe (tiny builds), as a reader of the reference code would write them.
# Inside a layer our own names follow (a Conv2dLayer holds its nn.Conv2d as `conv`; spectral norm is torch's
# parametrization); the path down to the layer is the reference's.
PINNED = {
    "stylegan2": {
        "G": ["mapping.fc0.weight", "mapping.fc1.bias", "mapping.w_avg", "synthesis.b4.const",
              "synthesis.b4.conv1.conv.affine.weight", "synthesis.b4.torgb.conv.weight",
              "synthesis.b8.conv0.conv.affine.weight", "synthesis.b8.conv0.noise.strength",
              "synthesis.b16.conv1.bias", "synthesis.b16.torgb.bias", "synthesis.b16.resample_filter"],
        "D": ["b16.fromrgb.weight", "b16.conv0.weight", "b16.conv1.bias", "b16.skip.weight", "b8.conv0.weight",
              "b4.conv.weight", "b4.fc.weight", "b4.out.bias"],
    },
    "biggan": {
        "G": ["shared.embed.weight", "linear.linear.bias", "blocks.0.0.conv1.conv.bias",
              "blocks.0.0.conv_sc.conv.bias", "blocks.0.0.bn1.gain.parametrizations.weight.original",
              "blocks.2.1.gamma", "blocks.2.1.theta.parametrizations.weight.original", "output_layer.0.weight",
              "output_layer.2.conv.bias"],
        "D": ["blocks.0.0.conv1.conv.bias", "blocks.0.0.conv_sc.conv.bias", "blocks.1.1.gamma",
              "blocks.5.0.conv2.conv.bias", "head.linear.bias", "head.embed.parametrizations.weight.original"],
    },
    "biggan_deep": {
        "G": ["shared.embed.weight", "linear.linear.bias", "blocks.0.0.conv4.conv.bias", "blocks.0.1.bn4.running_mean",
              "blocks.3.2.gamma", "output_layer.2.conv.bias"],
        "D": ["input_conv.conv.bias", "blocks.0.0.conv_sc.conv.bias", "blocks.0.2.gamma", "blocks.4.1.conv3.conv.bias",
              "head.linear.bias"],
    },
    "progan": {
        "G": ["4x4.dense.weight", "4x4.dense_bias.bias", "4x4.conv.weight", "4x4.torgb.weight", "8x8.conv0.weight",
              "8x8.conv1.bias", "8x8.fade.alpha", "32x32.torgb.bias"],
        "D": ["32x32.fromrgb.weight", "32x32.conv0.weight", "32x32.conv1.bias", "8x8.fade.alpha", "4x4.fromrgb.bias",
              "4x4.conv.weight", "4x4.dense0.weight", "4x4.dense1.bias"],
    },
    "spade": {
        "G": ["fc.conv.weight", "head_0.conv_0.conv.bias", "head_0.norm_0.mlp_shared.0.weight",
              "G_middle_1.norm_1.mlp_gamma.weight", "up_0.conv_s.conv.parametrizations.weight.original",
              "up_3.norm_s.mlp_beta.bias", "conv_img.conv.bias"],
        "D": ["discriminator_0.model0.0.conv.weight",
              "discriminator_0.model1.0.0.conv.parametrizations.weight.original", "discriminator_1.model4.0.conv.bias"],
    },
    "dcgan": {  # pytorch/examples' nn.Sequential `main`, indexed as there
        "G": ["main.0.conv.weight", "main.1.weight", "main.1.running_var", "main.3.conv.weight", "main.12.conv.weight"],
        "D": ["main.0.conv.weight", "main.2.conv.weight", "main.3.running_mean", "main.11.conv.weight"],
    },
    "dcgan_digits": {"G": ["main.0.conv.weight", "main.6.conv.weight"],
                     "D": ["main.0.conv.weight", "main.5.conv.weight"]},
    "gan_mlp": {"G": ["fc0.linear.weight", "fc0.linear.bias", "out.linear.weight"],
                "D": ["fc0.linear.weight", "out.linear.bias"]},
    "wgan_gp_toy": {"G": ["fc0.linear.weight", "out.linear.weight"], "D": ["fc0.linear.weight", "out.linear.bias"]},
    "cgan": {"G": ["z_fc.linear.weight", "y_fc.linear.weight", "fc.linear.weight", "out.linear.weight"],
             "D": ["x_maxout.linear.weight", "y_maxout.linear.weight", "joint.linear.weight", "out.linear.bias"]},
    "acgan": {"G": ["fc1.linear.weight", "tconv2.0.conv.weight", "tconv2.1.weight", "tconv4.0.conv.weight"],
              "D": ["conv1.0.conv.weight", "conv6.1.running_mean", "fc_dis.linear.weight", "fc_aux.linear.weight"]},
    "cdcgan_digits": {"G": ["main.0.conv.weight", "main.6.conv.weight"],
                      "D": ["main.0.conv.parametrizations.weight.original",
                            "head.embed.parametrizations.weight.original"]},
    "infogan": {"G": ["fc0.linear.weight", "deconv1.conv.weight"], "D": ["conv0.conv.weight", "q.fc2.weight"]},
    "sngan": {"G": ["l1.linear.weight", "block2.conv1.conv.weight", "block2.bn1.class_gain"],
              "D": ["head.embed.parametrizations.weight.original"]},
    "wgan_gp": {"G": ["Input.linear.weight", "block1.conv1.conv.weight"],
                "D": ["block4.conv2.conv.weight", "Output.linear.bias"]},
    "wgan": {"G": ["main.0.conv.weight", "main.1.weight"], "D": ["main.5.conv.weight"]},
    "wgan_toy": {"G": ["main.0.linear.weight", "main.2.linear.weight"], "D": ["main.2.linear.bias"]},
    "lsgan": {"G": ["main.0.conv.weight", "main.1.weight"], "D": ["main.5.conv.weight"]},
    "sagan": {"G": ["linear.linear.parametrizations.weight.original", "blocks.0.0.bn1.class_gain",
                    "blocks.1.1.gamma", "output_layer.2.conv.parametrizations.weight.original"],
              "D": ["blocks.0.1.gamma", "head.linear.parametrizations.weight.original"]},
}


def tiny(name: str) -> assemble.GAN:
    recipe = assemble.load(name)
    return assemble.build(recipe, **(recipe.get("tiny") or {}))


def test_every_shipped_recipe_is_pinned():
    assert set(PINNED) == set(assemble.list_recipes())


@pytest.mark.parametrize("name", sorted(PINNED))
def test_state_dict_keys_read_as_the_reference_names(name):
    gan = tiny(name)
    for net, keys in PINNED[name].items():
        have = set(getattr(gan, net).state_dict())
        missing = [k for k in keys if k not in have]
        assert not missing, f"{name} {net}: {missing} not in {sorted(have)[:30]}"
        # no positional step indices at the top: every top-level part is a name
        assert not any(k.split(".")[0].isdigit() for k in have), f"{name} {net}: a top-level key is an index"


@pytest.mark.parametrize("name", ["stylegan2", "biggan", "progan", "spade"])
def test_show_state_dict_and_print_use_one_path(name):
    gan = tiny(name)
    for plan, net in ((gan.plans["generator"], gan.G), (gan.plans["discriminator"], gan.D)):
        modules = dict(net.named_modules())
        for row in plan.rows:
            prefix, path = row.path.split(".", 1)
            assert prefix == net.spec.name
            assert path in modules, f"show's {row.path} is not a module of {prefix}"
            keys = [k for k in net.state_dict() if k.startswith(path + ".")]
            assert keys or row.params == 0, f"{row.path} has parameters but no state_dict key under it"
        text = repr(net)
        for top in net.parts:
            assert f"({top}): " in text  # print(G) shows the same names
    table = render_table(name, gan.plans)
    assert all(row.path in table for plan in gan.plans.values() for row in plan.rows if not row.nested)


def test_show_prints_registers_and_style_layers():
    _, _, plans = assemble.plan("stylegan2", resolution=16, channel_base=64, channel_max=16, z_dim=16, w_dim=16,
                                mapping_layers=2)
    rows = {r.path: r for r in plans["generator"].rows}
    assert rows["G.mapping"].writes == ["w"]
    # NVlabs' w_idx: block b4 takes w[0:2] (conv1, torgb), b8 w[1:4] (its torgb shares b16's first w), ...
    assert [rows[f"G.synthesis.b{r}"].consumes for r in (4, 8, 16)] == [["w[0:2]"], ["w[1:4]"], ["w[3:6]"]]
    assert rows["G.synthesis.b8"].reads == ["_", "img"] and rows["G.synthesis.b8"].writes == ["_", "img"]
    _, _, plans = assemble.plan("biggan", ch=4, attn=32, n_classes=10, shared_dim=8, z_dim=24)
    rows = {r.path: r for r in plans["generator"].rows}
    assert rows["G.blocks.2.0"].consumes == ["y=ys[2]"]  # GBlock k reads row k of [shared(c), z chunk k + 1]


def test_errors_name_the_part_by_its_path():
    recipe = assemble.load("stylegan2", overrides=dict(resolution=16, channel_base=64, channel_max=16, z_dim=16,
                                                       w_dim=16, mapping_layers=2))
    recipe["generator"]["steps"][1]["do"][1]["do"][0]["stylegan2_synthesis_block"]["architecture"] = "skipp"
    with pytest.raises(RecipeError) as info:
        assemble.build(recipe)
    assert [i.path for i in info.value.issues] == ["G.synthesis.b8"] * 1 + ["G.synthesis.b16"] * (
        len(info.value.issues) - 1)
    gan = tiny("stylegan2")
    with pytest.raises(ValueError, match=r"^G.synthesis.b8: asks for layers 1..3 of 'w'"):
        gan.G.run(parts=["synthesis"], registers={"w": torch.randn(2, 3, 16)})  # too few layers of w


def _keys(gan: assemble.GAN) -> dict[str, dict[str, tuple[int, ...]]]:
    return {net: {k: tuple(v.shape) for k, v in getattr(gan, net).state_dict().items()} for net in ("G", "D")}


def test_inserting_a_step_keeps_every_other_key():
    base = assemble.load("stylegan2", overrides=dict(resolution=16, channel_base=64, channel_max=16, z_dim=16,
                                                     w_dim=16, mapping_layers=2))
    before = _keys(assemble.build(base))
    changed = copy.deepcopy(base)
    # a named conv between two discriminator blocks, an unnamed one before the epilogue, a parameter-free
    # step in the synthesis group: the steps before and after them keep their keys
    d = changed["discriminator"]["steps"]
    d.insert(1, {"conv": {"name": "extra", "out_channels": 8, "kernel_size": 1}})
    d.insert(len(d) - 1, {"conv": {"out_channels": 16, "kernel_size": 1}})
    changed["generator"]["steps"][1]["do"].insert(1, {"leaky_relu": {}})
    after = _keys(assemble.build(changed))
    assert before["G"] == after["G"]
    new = {k: v for k, v in after["D"].items() if k not in before["D"]}
    assert set(new) == {"extra.conv.weight", "extra.conv.bias", "conv.conv.weight", "conv.conv.bias"}
    assert all(after["D"][k] == v for k, v in before["D"].items())

    mlp = assemble.load("gan_mlp", overrides={"hidden": 8, "g_layers": 2})
    before = _keys(assemble.build(mlp))
    mlp["generator"]["steps"].insert(1, {"layer_norm": {}})  # unnamed, a new kind: named layer_norm
    after = _keys(assemble.build(mlp))
    assert set(after["G"]) - set(before["G"]) == {"layer_norm.weight", "layer_norm.bias"}
    assert all(after["G"][k] == v for k, v in before["G"].items())


def test_default_names_count_per_block_key():
    recipe = {
        "generator": {"inputs": {"z": "latent(4)"}, "steps": [
            {"linear": {"out_features": 4}}, "relu", {"linear": {"out_features": 4}}, "relu",
            {"for": {"i": [0, 1]}, "do": [{"linear": {"out_features": 4}}]},
            {"for": {"i": [0, 1]}, "name": "$f'block{i}'", "do": [{"linear": {"out_features": 4}}, "relu"]}]},
        "discriminator": {"inputs": {"x": "vector(4)"}, "steps": [{"linear": {"out_features": 1}}]},
    }
    gan = assemble.build(recipe)
    assert gan.G.parts == ["linear", "relu", "linear_1", "relu_1", "linear_2", "linear_3", "block0", "block1"]
    assert list(gan.G.block0._modules) == ["linear", "relu"]
