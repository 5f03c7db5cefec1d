"""The recipe of stylegan2_projection.yaml, written in Python with assemble.Net / assemble.Recipe.

StyleGAN2's generator (class-conditional mapping network, skip synthesis blocks 4..64, one channel) against
BigGAN's discriminator (residual D blocks, self-attention at 32x32, projection head), at 64x64 on the built-in
digits. Run it to write the YAML, then train that with the CLI:

    python docs/examples/stylegan2_projection.py runs/stylegan2_projection.yaml
    ganforge train runs/stylegan2_projection.yaml --out runs/stylegan2_projection
"""

from __future__ import annotations

import sys

from assemble import Net, Recipe

RESOLUTION, Z_DIM, W_DIM, N_CLASSES = 64, 64, 64, 10
G_CH = {4: 64, 8: 64, 16: 64, 32: 32, 64: 16}  # synthesis channels per resolution
D_CH, D_OUT = 8, [1, 2, 4, 8, 8]                 # BigGAN's D_ch and its blocks' multipliers


def generator() -> Net:
    G = Net(inputs={"z": f"latent({Z_DIM})", "c": f"class({N_CLASSES})"}, styles=["w"], output="img")
    G.mapping_network(name="mapping", z_dim=Z_DIM, c_dim=N_CLASSES, w_dim=W_DIM, num_ws=10, num_layers=4, into="w")
    with G.group("synthesis") as synthesis:
        synthesis.stylegan2_synthesis_block(name="b4", in_channels=0, out_channels=G_CH[4], w_dim=W_DIM,
                                            resolution=4, img_channels=1, from_=[], into=["_", "img"])
        for r in (8, 16, 32, 64):
            synthesis.stylegan2_synthesis_block(name=f"b{r}", out_channels=G_CH[r], w_dim=W_DIM, resolution=r,
                                                img_channels=1, is_last=r == RESOLUTION, from_=["_", "img"],
                                                into=["_", "img"])
    return G


def discriminator() -> Net:
    D = Net(inputs={"img": f"image(1, {RESOLUTION}, {RESOLUTION})", "c": f"class({N_CLASSES})"}, init="orthogonal")
    with D.group("blocks") as blocks:
        for k, mult in enumerate(D_OUT):
            with blocks.group(str(k)) as block:
                block.biggan_d_block(name="0", out_channels=D_CH * mult, preactivation=k > 0,
                                     downsample=k < len(D_OUT) - 1)
                if k == 0:
                    block.self_attention(name="1")  # at 32x32, after the first block
    D.relu()
    D.global_sum_pool()
    D.projection_head(name="head", n_classes=N_CLASSES, y="c")
    return D


def recipe() -> Recipe:
    return Recipe(
        "stylegan2_projection", generator(), discriminator(),
        description="StyleGAN2 G against a BigGAN projection D at 64x64 on digits (written in Python).",
        vars={"resolution": RESOLUTION},
        objective={"loss": "non_saturating", "regularizers": [{"r1": {"gamma": 1, "interval": 4}}]},
        train={"batch": 32, "steps": 300,
               "optimizers": {"G": {"type": "adam", "lr": 2.0e-3, "betas": [0.0, 0.99]},
                              "D": {"type": "adam", "lr": 2.0e-3, "betas": [0.0, 0.99]}},
               "ema": {"half_life_kimg": 2, "ramp_up": 0.1},
               "log_every": 25, "sample_every": 100, "checkpoint_every": 300, "eval_every": 300},
        data={"name": "digits", "size": "$resolution"},
    )


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "stylegan2_projection.yaml"
    print(f"wrote {recipe().save(out)}")
