"""``--from dcgan``: pytorch/examples' DCGAN (``dcgan/main.py``), the ``netG_epoch_N.pth`` / ``netD_epoch_N.pth``
state dicts it saves, into the ``dcgan`` recipe (whose module tree is the same ``main`` Sequential).

SRC is the folder the example wrote (``--outf``; the highest epoch is taken), or a ``netG*.pth`` file with
its ``netD`` beside it (the same name with netG -> netD). nz, ngf, ndf and the image channels are read from
the weights; the example is hard-wired to 64x64. Our layers hold their torch conv as ``conv``
(``main.0.weight`` is ``main.0.conv.weight``); batch norms keep the names. G takes z as (B, nz) where the
example takes (B, nz, 1, 1), and D ends at the logit: the example's final Sigmoid is in the loss.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..gan import build
from . import converter
from .common import ConversionError, Converted, load_torch, rename

_EPOCH = re.compile(r"net([GD])(?:_epoch_(\d+))?\.pth$")
RULES = [(r"main\.(\d+)\.weight", r"main.\1.conv.weight")]  # a conv's weight (a batch norm's keeps its name)


def _files(src: Path) -> tuple[Path, Path]:
    if src.is_dir():
        found: dict[str, list[tuple[int, Path]]] = {"G": [], "D": []}
        for p in src.iterdir():
            m = _EPOCH.fullmatch(p.name)
            if m:
                found[m.group(1)].append((int(m.group(2) or -1), p))
        if not found["G"] or not found["D"]:
            raise ConversionError(f"{src}: no netG*.pth and netD*.pth (pytorch/examples dcgan's --outf)")
        return max(found["G"])[1], max(found["D"])[1]
    if "netG" not in src.name:
        raise ConversionError(f"{src}: give the folder or a netG*.pth file (its netD is found beside it)")
    d = src.with_name(src.name.replace("netG", "netD"))
    if not d.is_file():
        raise ConversionError(f"{src}: its discriminator {d.name} is not beside it")
    return src, d


@converter("dcgan")
def read(src: Path, recipe: str | None, sets: list[str]) -> Converted:
    from . import recipe_for

    g_file, d_file = _files(src)
    g, d = load_torch(g_file), load_torch(d_file)
    try:
        nz, ngf8 = g["main.0.weight"].shape[:2]  # ConvTranspose2d(nz, ngf * 8, 4, 1, 0)
        nc, ndf = d["main.0.weight"].shape[1], d["main.0.weight"].shape[0]  # Conv2d(nc, ndf, 4, 2, 1)
    except KeyError as err:
        raise ConversionError(f"{g_file} / {d_file}: not pytorch/examples DCGAN state dicts (no {err})") from None
    convs = sorted(int(k.split(".")[1]) for k in g if re.fullmatch(r"main\.\d+\.weight", k) and g[k].dim() == 4)
    resolution = 4 * 2 ** (len(convs) - 1)  # one 4x4 transposed conv, then x2 each
    values = {"nz": int(nz), "ngf": int(ngf8) // 8, "ndf": int(ndf), "nc": int(nc), "resolution": resolution}
    conv_recipe = recipe_for("dcgan", values, recipe, sets, f"{g_file.name}")
    gan = build(conv_recipe)
    tensors = {
        "G": rename(g, gan.G.state_dict(), RULES, f"G of {g_file}"),
        "D": rename(d, gan.D.state_dict(), RULES, f"D of {d_file}"),
    }
    epoch = _EPOCH.fullmatch(g_file.name).group(2) if _EPOCH.fullmatch(g_file.name) else None
    return Converted(conv_recipe, tensors, files=[g_file, d_file],
                     info={"epoch": int(epoch) if epoch is not None else None, "config": values})
