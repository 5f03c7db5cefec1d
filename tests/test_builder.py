"""The Python builder writes the same recipes as YAML: StyleGAN2, BigGAN and ProGAN written with
``assemble.Net`` give the state_dict keys and shapes of the shipped YAML recipes; a Python-built recipe saved
as YAML builds the same state_dict again; mistakes raise at the line that wrote them."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

import assemble
from assemble import Net, Recipe, RecipeError


def stylegan2(resolution: int, z_dim: int, w_dim: int, channel_base: int, channel_max: int, mapping_layers: int,
              mbstd_group: int = 4) -> Recipe:
    """StyleGAN2 config F (skip G, resnet D) as NVlabs' networks.py builds it."""
    sizes = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
    ch = {r: min(channel_base // r, channel_max) for r in sizes}
    G = Net(inputs={"z": f"latent({z_dim})"}, styles=["w"], output="img")
    G.mapping_network(name="mapping", z_dim=z_dim, w_dim=w_dim, num_ws=2 * len(sizes), num_layers=mapping_layers,
                      lr_mul=0.01, into="w")
    with G.group("synthesis") as synthesis:
        synthesis.stylegan2_synthesis_block(name="b4", in_channels=0, out_channels=ch[4], w_dim=w_dim, resolution=4,
                                            architecture="skip", from_=[], into=["_", "img"])
        for r in sizes[1:]:
            synthesis.stylegan2_synthesis_block(name=f"b{r}", out_channels=ch[r], w_dim=w_dim, resolution=r,
                                                is_last=r == resolution, architecture="skip", from_=["_", "img"],
                                                into=["_", "img"])
    D = Net(inputs={"img": f"image(3, {resolution}, {resolution})"})
    D.stylegan2_d_block(name=f"b{resolution}", in_channels=0, tmp_channels=ch[resolution],
                        out_channels=ch[resolution // 2], resolution=resolution, architecture="resnet",
                        from_={"img": "img"}, into=["_", "img"])
    for r in sizes[::-1][1:-1]:
        D.stylegan2_d_block(name=f"b{r}", tmp_channels=ch[r], out_channels=ch[r // 2], resolution=r,
                            architecture="resnet", from_=["_", "img"], into=["_", "img"])
    D.stylegan2_d_epilogue(name="b4", mbstd_group_size=mbstd_group, architecture="resnet", from_=["_", "img"])
    return Recipe("stylegan2_py", G, D)


def biggan(resolution: int, ch: int, z_dim: int, shared_dim: int, n_classes: int, attn: int) -> Recipe:
    """BigGAN as BigGAN-PyTorch's BigGAN.py builds it (G_arch / D_arch at 128, hier, shared embedding)."""
    g_out = {64: [16, 8, 4, 2], 128: [16, 8, 4, 2, 1]}[resolution]
    d_out = {64: [1, 2, 4, 8, 16], 128: [1, 2, 4, 8, 16, 16]}[resolution]
    sn = {"sn_eps": 1e-6}
    G = Net(inputs={"z": f"latent({z_dim})", "c": f"class({n_classes})"}, init="orthogonal")
    G.class_embedding(name="shared", n_classes=n_classes, embedding_dim=shared_dim, from_="c", into="y")
    G.skip_z(z_dim=z_dim, chunks=len(g_out) + 1, from_="z", into=["z0", "ys"])
    G.linear(name="linear", out_features=16 * ch * 16, sn=True, **sn, from_="z0")
    G.reshape(shape=[16 * ch, 4, 4])
    with G.group("blocks") as blocks:
        for k, out in enumerate(g_out):
            with blocks.group(str(k)) as block:
                block.biggan_g_block(name="0", out_channels=ch * out, bn_eps=1e-5, **sn, y={"from": "ys", "index": k})
                if 4 * 2 ** (k + 1) == attn:
                    block.self_attention(name="1", **sn)
    with G.group("output_layer") as out_layer:
        out_layer.batch_norm(name="0", eps=1e-5)
        out_layer.relu(name="1")
        out_layer.conv(name="2", out_channels=3, kernel_size=3, sn=True, **sn)
    G.tanh()
    D = Net(inputs={"img": f"image(3, {resolution}, {resolution})", "c": f"class({n_classes})"}, init="orthogonal")
    with D.group("blocks") as blocks:
        for k, out in enumerate(d_out):
            with blocks.group(str(k)) as block:
                down = k < len(d_out) - 1
                block.biggan_d_block(name="0", out_channels=ch * out, preactivation=k > 0, downsample=down, **sn)
                if resolution // 2 ** min(k + 1, len(d_out) - 1) == attn:
                    block.self_attention(name="1", **sn)
    D.relu()
    D.global_sum_pool()
    D.projection_head(name="head", n_classes=n_classes, **sn, y="c")
    return Recipe("biggan_py", G, D)


def progan(resolution: int, z_dim: int, fmap_base: int, fmap_max: int) -> Recipe:
    """ProGAN's G_paper / D_paper (networks.py) as a table of stage blocks."""
    stages = int(math.log2(resolution)) - 1
    nf = [min(int(fmap_base / 2.0 ** k), fmap_max) for k in range(stages + 1)]
    G = Net(inputs={"z": f"latent({z_dim})"}, stages=stages, output="rgb")
    G.progan_g_block(name="4x4", out_channels=nf[1], resolution=4, stage=0, into=["_", "rgb"])
    for s in range(1, stages):
        r = 4 * 2 ** s
        G.progan_g_block(name=f"{r}x{r}", out_channels=nf[s + 1], resolution=r, stage=s, if_=f"$stage >= {s}",
                         from_=["_", "rgb"], into=["_", "rgb"])
    D = Net(inputs={"img": "image(3, 4 * 2 ** stage, 4 * 2 ** stage)"}, stages=stages)
    for s in range(stages - 1, 0, -1):
        r = 4 * 2 ** s
        D.progan_d_block(name=f"{r}x{r}", in_channels=nf[s + 1], out_channels=nf[s], resolution=r, stage=s,
                         if_=f"$stage >= {s}")
    D.progan_d_epilogue(name="4x4", in_channels=nf[1], hidden_features=nf[0])
    return Recipe("progan_py", G, D)


def keys_and_shapes(gan: assemble.GAN) -> dict[str, dict[str, tuple[int, ...]]]:
    return {net: {k: tuple(v.shape) for k, v in getattr(gan, net).state_dict().items()} for net in ("G", "D")}


TINY = {
    "stylegan2": (stylegan2, dict(resolution=16, z_dim=16, w_dim=16, channel_base=64, channel_max=16,
                                  mapping_layers=2)),
    "biggan": (biggan, dict(resolution=128, ch=4, z_dim=24, shared_dim=8, n_classes=10, attn=32)),
    "progan": (progan, dict(resolution=32, z_dim=16, fmap_base=128, fmap_max=16)),
}


@pytest.mark.parametrize("name", list(TINY))
def test_python_and_yaml_give_the_same_state_dict(name):
    make, sizes = TINY[name]
    from_python = keys_and_shapes(make(**sizes).build())
    from_yaml = keys_and_shapes(assemble.build(name, **sizes))
    assert list(from_python["G"]) == list(from_yaml["G"]) and from_python == from_yaml


def test_python_recipes_have_the_reference_parameter_counts():
    from assemble.show import totals

    cases = [(stylegan2(256, 512, 512, 32768, 512, 8), (30_034_338, 28_864_129)),
             (biggan(128, 96, 120, 128, 1000, 64), (70_433_988, 87_982_370)),
             (progan(1024, 512, 8192, 512), (23_079_115, 23_087_249))]
    for recipe, (g, d) in cases:
        _, _, plans = recipe.plan()
        assert (totals(plans["generator"])["params"], totals(plans["discriminator"])["params"]) == (g, d)


def test_a_python_recipe_saved_as_yaml_builds_the_same_state_dict(tmp_path):
    recipe = stylegan2(**TINY["stylegan2"][1])
    path = recipe.save(tmp_path / "sg2.yaml")
    assert yaml.safe_load(path.read_text()) == recipe.to_dict()
    torch.manual_seed(0)
    a = recipe.build()
    torch.manual_seed(0)
    b = assemble.build(str(path))
    assert keys_and_shapes(a) == keys_and_shapes(b)
    for k, v in a.G.state_dict().items():
        assert torch.equal(v, b.G.state_dict()[k]), k  # same seed, same construction order: same values


def test_mistakes_raise_at_the_line_that_wrote_them():
    G = Net(inputs={"z": "latent(8)"})
    with pytest.raises(RecipeError, match=r"conv.out_chanels: unknown argument for .conv.. Did you mean out_channels"):
        G.conv(out_chanels=3)
    with pytest.raises(RecipeError, match=r"linear.out_features: expects int, found str"):
        G.linear(out_features="8")
    with pytest.raises(AttributeError, match=r"no block .lineer..*Closest: linear"):
        G.lineer(out_features=8)
    with pytest.raises(TypeError, match="a recipe holds data"):
        G.linear(out_features=torch.tensor(3))
    assert "stylegan2_synthesis_block" in dir(G)  # tab completion offers the block keys
    G.linear(out_features=8)
    D = Net(inputs={"x": "vector(8)"})
    D.linear(out_features=1)
    D.conv(out_channels=3)  # a linear's (B, 1) output cannot enter a conv: found when the recipe is built
    with pytest.raises(RecipeError, match=r"D.conv: .*written at .*test_builder.py:\d+"):
        Recipe("bad", G, D).build()


def test_groups_residuals_and_conditions():
    G = Net(inputs={"z": "latent(8)"}, stages=2)
    G.linear(name="fc", out_features=8)
    with G.residual(name="res", scale=0.5, shortcut=True) as r:
        r.body.linear(out_features=8)
        r.body.relu()
        r.shortcut.linear(out_features=8, bias=False)
    with G.group("head", if_="$stage >= 1") as head:
        head.linear(name="out", out_features=2)
    D = Net(inputs={"x": "vector(8)"}, stages=2)
    D.linear(out_features=1)
    gan = Recipe("mix", G, D).build()
    assert sorted(gan.G.state_dict()) == ["fc.linear.bias", "fc.linear.weight", "head.out.linear.bias",
                                          "head.out.linear.weight", "res.body.linear.linear.bias",
                                          "res.body.linear.linear.weight", "res.shortcut.linear.linear.weight"]
    assert type(gan.G.res).__name__ == "Residual" and gan.G.res.scale == 0.5
    z = torch.randn(3, 8)
    gan.G.set_stage(0)
    assert gan.G(z).shape == (3, 8)
    gan.G.set_stage(1)
    assert gan.G(z).shape == (3, 2)
