"""``--from spade``: NVlabs/SPADE's checkpoint folders (``checkpoints/<name>/``) into the ``spade`` recipe.

SRC is the experiment folder, holding ``<epoch>_net_G.pth`` (``latest`` or an epoch number: ``latest`` is
taken, else the highest epoch), usually ``<epoch>_net_D.pth`` (the released pretrained models hold G only:
then only G is converted) and the ``opt.txt`` that ``BaseOptions.save_options`` writes; or one
``<epoch>_net_G.pth`` file, with its D and ``opt.txt`` found beside it. ``opt.pkl`` is never read (a pickle).

What the weights fix is read from them: ngf (``fc``: 16·ngf), the label channels semantic_nc, the image
channels, the SPADE hidden width and kernel (``mlp_shared``), ndf, n_layers_D and num_D. What only
``opt.txt`` says -- crop_size, aspect_ratio, label_nc vs contain_dontcare_label vs no_instance,
num_upsampling_layers, norm_G / norm_D, use_vae -- is read from it as text (``key: value [default: ...]``
lines) and checked against the weights; without it those settings must come with ``--set`` (the error says
which). What the recipe cannot build is refused: the VAE, an instance map, num_upsampling_layers
'more'/'most', other norms, num_D other than 2, pix2pixHD's generator.

Keys: our layers hold their torch conv as ``conv`` (``fc.weight`` is ``fc.conv.weight``), and spectral norm is
torch's parametrization where SPADE has the older hook: ``<conv>.weight_orig``, ``.weight_u``, ``.weight_v``
become ``<conv>.conv.parametrizations.weight.original``, ``.0._u``, ``.0._v`` (the recipe sets the hook's
order, v first, so eval and training match). The SPADE norms and their SyncBatchNorm running statistics
keep their names (``head_0.norm_0.param_free_norm.running_mean``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import RecipeError
from ..gan import build
from ..recipe import parse_set
from . import converter
from .common import ConversionError, Converted, load_torch, rename

_FILE = re.compile(r"(.+)_net_([GDE])\.pth")
RULES = [
    (r"(.+)\.weight_orig", r"\1.conv.parametrizations.weight.original"),
    (r"(.+)\.weight_u", r"\1.conv.parametrizations.weight.0._u"),
    (r"(.+)\.weight_v", r"\1.conv.parametrizations.weight.0._v"),
    (r"(fc|conv_img|\w+\.conv_[01s]|discriminator_\d+\.model\d+\.0)\.(weight|bias)", r"\1.conv.\2"),
]
UP_LAYERS = {"normal": 5, "more": 6, "most": 7}  # SPADEGenerator.compute_latent_vector_size
# what only opt.txt says, as the spade recipe's variables; without opt.txt each needs a --set
ONLY_OPT = {"crop_size": int, "aspect_ratio": float, "label_nc": int, "contain_dontcare_label": bool,
            "num_up_layers": int}
_OPT_TYPES = {"crop_size": int, "aspect_ratio": float, "label_nc": int, "contain_dontcare_label": bool,
              "no_instance": bool, "use_vae": bool, "output_nc": int, "ngf": int, "ndf": int, "num_D": int,
              "n_layers_D": int}
_OPT_LINE = re.compile(r"\s*(\w+):(?: (.*))?")


def read_opt_txt(path: Path) -> dict[str, Any]:
    """SPADE's ``opt.txt`` (``'{:>25}: {:<30}{}'`` lines, ``\\t[default: ...]`` where a value is not the
    default) as ``{key: value}``, typed for the keys this converter uses; read as text, nothing evaluated."""
    if path.stat().st_size > 1 << 20:
        raise ConversionError(f"{path}: {path.stat().st_size} bytes is not an opt.txt (SPADE's is ~3 kB)")
    opts: dict[str, Any] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        body = line.split("\t[default: ", 1)[0]
        if not body.strip():
            continue
        m = _OPT_LINE.fullmatch(body)
        if not m:
            raise ConversionError(f"{path}, line {n}: not a 'key: value' line of SPADE's save_options: {line[:80]!r}")
        opts[m.group(1)] = (m.group(2) or "").strip()
    for key, kind in _OPT_TYPES.items():
        if key in opts:
            opts[key] = _typed(opts[key], kind, f"{path}: {key}")
    return opts


def _typed(raw: Any, kind: type, what: str) -> Any:
    """``raw`` (opt.txt's text, or a --set value) as ``kind``; an error naming ``what`` if it is not one."""
    text = raw.strip() if isinstance(raw, str) else None
    if kind is bool:
        value = {"True": True, "False": False}.get(text, raw) if text is not None else raw
        ok = isinstance(value, bool)
    elif kind is int:
        value = int(text) if text is not None and re.fullmatch(r"-?\d+", text) else raw
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        value = raw if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        if text is not None and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
            value = float(text)
        ok = value is not None
        value = float(value) if ok else value
    if not ok:
        raise ConversionError(f"{what} is {raw!r}, expected {'True or False' if kind is bool else kind.__name__}")
    return value


def _files(src: Path) -> tuple[Path, Path | None, Path]:
    """(G file, D file or None, experiment folder)."""
    if src.is_dir():
        folder = src
        found: dict[str, dict[str, Path]] = {}
        for p in folder.iterdir():
            m = _FILE.fullmatch(p.name)
            if m:
                found.setdefault(m.group(1), {})[m.group(2)] = p
        with_g = [e for e in found if "G" in found[e]]
        if not with_g:
            raise ConversionError(f"{src}: no <epoch>_net_G.pth (NVlabs/SPADE's checkpoints/<name>/ folder, e.g. "
                                  "latest_net_G.pth)")
        numbered = [e for e in with_g if e.isdigit()]
        if "latest" not in with_g and not numbered and len(with_g) > 1:
            raise ConversionError(f"{src}: no latest_net_G.pth and no numbered epoch, but "
                                  f"{', '.join(sorted(f'{e}_net_G.pth' for e in with_g))}: give one of them")
        epoch = "latest" if "latest" in with_g else max(numbered, key=int) if numbered else with_g[0]
        g = found[epoch]["G"]
    else:
        m = _FILE.fullmatch(src.name)
        if not m or m.group(2) != "G":
            raise ConversionError(f"{src}: give the experiment folder or an <epoch>_net_G.pth file (NVlabs/SPADE's "
                                  "util.save_network names)")
        g, folder, epoch = src, src.parent, m.group(1)
    if (folder / f"{epoch}_net_E.pth").is_file():
        raise ConversionError(f"{folder / f'{epoch}_net_E.pth'}: a VAE encoder (--use_vae); the spade recipe has "
                              "no image encoder")
    d = folder / f"{epoch}_net_D.pth"
    return g, d if d.is_file() else None, folder


def _need(state: dict[str, Tensor], key: str, file: Path, what: str) -> Tensor:
    if key not in state:
        raise ConversionError(f"{file}: no {key}: not {what}")
    return state[key]


def _read_g(g: dict[str, Tensor], file: Path) -> dict[str, int]:
    """What G's weights fix; refuses what the spade recipe cannot build."""
    if "model.1.weight" in g or "model.1.weight_orig" in g:
        raise ConversionError(f"{file}: pix2pixHD's generator (--netG pix2pixhd); the spade recipe builds "
                              "SPADEGenerator")
    fc = _need(g, "fc.weight", file, "an NVlabs/SPADE SPADEGenerator state dict")
    if fc.dim() == 2:
        raise ConversionError(f"{file}: fc.weight {tuple(fc.shape)} is the VAE's linear layer (--use_vae); the "
                              "spade recipe starts from the label map (fc is a 3x3 conv)")
    if any(k.startswith("up_4.") for k in g):
        raise ConversionError(f"{file}: has up_4 (--num_upsampling_layers most); the spade recipe builds 'normal'")
    if "head_0.conv_0.weight_orig" not in g:
        raise ConversionError(f"{file}: head_0.conv_0 has no weight_orig: norm_G without 'spectral'; the spade "
                              "recipe builds spectralspadesyncbatch3x3")
    if "head_0.norm_0.param_free_norm.running_mean" not in g:
        raise ConversionError(f"{file}: the SPADE norms have no running statistics: an instance norm_G "
                              "(spadeinstance); the spade recipe builds spadesyncbatch")
    shared = _need(g, "head_0.norm_0.mlp_shared.0.weight", file, "an NVlabs/SPADE SPADEGenerator state dict")
    img = _need(g, "conv_img.weight", file, "an NVlabs/SPADE SPADEGenerator state dict")
    if fc.shape[0] % 16:
        raise ConversionError(f"{file}: fc.weight {tuple(fc.shape)} has {fc.shape[0]} outputs, not 16·ngf")
    return {"ngf": fc.shape[0] // 16, "semantic_nc": fc.shape[1], "output_nc": img.shape[0],
            "spade_hidden": shared.shape[0], "spade_ks": shared.shape[-1]}


def _read_d(d: dict[str, Tensor], file: Path) -> dict[str, int]:
    """What D's weights fix (MultiscaleDiscriminator of NLayerDiscriminators, norm_D spectralinstance)."""
    scales = sorted({int(m.group(1)) for k in d if (m := re.match(r"discriminator_(\d+)\.", k))})
    if not scales or scales != list(range(len(scales))):
        raise ConversionError(f"{file}: no discriminator_0, discriminator_1, ...: not an NVlabs/SPADE "
                              "MultiscaleDiscriminator state dict")
    models = sorted({int(m.group(1)) for k in d if (m := re.match(r"discriminator_0\.model(\d+)\.", k))})
    first = _need(d, "discriminator_0.model0.0.weight", file, "a MultiscaleDiscriminator of NLayerDiscriminators")
    n_layers = len(models) - 1
    for n in range(1, n_layers):
        key = f"discriminator_0.model{n}.0.0"
        if f"{key}.weight_orig" not in d or f"{key}.bias" in d or any(k.startswith(f"discriminator_0.model{n}.0.1.")
                                                                        for k in d):
            raise ConversionError(f"{file}: discriminator_0.model{n} is not a spectral-normalised conv without "
                                  "bias followed by an instance norm; the spade recipe builds norm_D "
                                  "spectralinstance")
    return {"ndf": first.shape[0], "input_nc": first.shape[1], "n_layers_D": n_layers, "num_D": len(scales)}


def _settings_from_opt(opts: dict[str, Any], path: Path) -> dict[str, Any]:
    """The recipe's variables that only opt.txt gives; refuses the options the recipe cannot build."""
    def get(key: str) -> Any:
        if key not in opts:
            raise ConversionError(f"{path}: no {key} line (SPADE's save_options writes every option)")
        return opts[key]

    refuse = [
        (get("netG") != "spade", f"netG is {get('netG')!r}; the spade recipe builds SPADEGenerator ('spade')"),
        (get("use_vae"), "use_vae is True; the spade recipe has no image encoder (its G starts from the label map)"),
        (not get("no_instance"), "no_instance is False: G and D take an instance edge map as one more label "
                                 "channel, which the spade recipe does not build (train with --no_instance)"),
        (get("num_upsampling_layers") != "normal",
         f"num_upsampling_layers is {get('num_upsampling_layers')!r}; the spade recipe builds 'normal'"),
    ]
    for bad, why in refuse:
        if bad:
            raise ConversionError(f"{path}: {why}")
    norm = re.fullmatch(r"spectralspade(syncbatch|batch)(\d)x\d", get("norm_G"))
    if not norm:
        raise ConversionError(f"{path}: norm_G is {get('norm_G')!r}; the spade recipe builds "
                              "spectralspade(sync)batch<k>x<k> (spectral convs, a batch-norm SPADE)")
    for key, want in (("norm_D", "spectralinstance"), ("netD", "multiscale"), ("netD_subarch", "n_layer")):
        if key in opts and opts[key] != want:
            raise ConversionError(f"{path}: {key} is {opts[key]!r}; the spade recipe builds {want!r}")
    return {"crop_size": get("crop_size"), "aspect_ratio": get("aspect_ratio"), "label_nc": get("label_nc"),
            "contain_dontcare_label": get("contain_dontcare_label"),
            "num_up_layers": UP_LAYERS[get("num_upsampling_layers")], "spade_ks": int(norm.group(2))}


def _settings_from_sets(sets: list[str], folder: Path) -> dict[str, Any]:
    asked = dict(parse_set(s) for s in sets)
    missing = [k for k in ONLY_OPT if k not in asked]
    if missing:
        raise ConversionError(
            f"{folder}: no opt.txt (opt.pkl is a pickle and is not read); the weights do not say "
            f"{', '.join(missing)}: put SPADE's opt.txt beside the weights, or give "
            + " ".join(f"--set {k}=..." for k in missing)
            + " (num_up_layers 5 is num_upsampling_layers 'normal', the only one the recipe builds)")
    values = {k: _typed(asked[k], kind, f"--set {k}") for k, kind in ONLY_OPT.items()}
    if values["num_up_layers"] != UP_LAYERS["normal"]:
        raise ConversionError(f"--set num_up_layers={values['num_up_layers']}: the spade recipe builds "
                              "num_upsampling_layers 'normal' (5)")
    return values


def _agree_opt(opts: dict[str, Any], weights: dict[str, int], path: Path, file: Path, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key in opts and opts[key] != weights[key]:
            raise ConversionError(f"{key}: {path} says {opts[key]!r}, the weights {file.name} have "
                                  f"{weights[key]!r}")


def _untracked(key: str) -> bool:
    """Batch-norm counters, which files saved by torch < 0.4.1 do not hold (only momentum=None reads them)."""
    return key.endswith("num_batches_tracked")


_FEATURE = re.compile(r"(D_fake|D_real)\.d(\d+)_f\d+")


def _fit_objective(recipe: dict[str, Any], n_layers: int) -> bool:
    """Make the feature-matching terms list the n_layers_D features each scale has (d{i}_f0 .. d{i}_f{n-1}):
    the recipe's objective spells out the four of n_layers_D 4. Returns whether anything changed."""
    changed = False
    for term in recipe.get("objective", {}).get("terms", []):
        inputs = term.get("feature_matching", {}).get("inputs", {}) if isinstance(term, dict) else {}
        for name, refs in inputs.items():
            found = [_FEATURE.fullmatch(r) for r in refs] if isinstance(refs, list) else [None]
            if not found or not all(found) or len({(m.group(1), m.group(2)) for m in found}) != 1:
                continue
            run, scale = found[0].group(1), found[0].group(2)
            fitted = [f"{run}.d{scale}_f{j}" for j in range(n_layers)]
            if refs != fitted:
                inputs[name], changed = fitted, True
    return changed


@converter("spade")
def read(src: Path, recipe: str | None, sets: list[str]) -> Converted:
    from . import recipe_for

    g_file, d_file, folder = _files(src)
    g = load_torch(g_file)
    d = load_torch(d_file) if d_file else None
    fixed = _read_g(g, g_file)
    opt_file = folder / "opt.txt"
    opts = read_opt_txt(opt_file) if opt_file.is_file() else None
    if opts is not None:
        settings = _settings_from_opt(opts, opt_file)
        _agree_opt(opts, fixed, opt_file, g_file, ("ngf", "output_nc"))
        if settings["spade_ks"] != fixed["spade_ks"]:
            raise ConversionError(f"spade_ks: {opt_file} says norm_G {opts['norm_G']!r}, the weights "
                                  f"{g_file.name} have {fixed['spade_ks']}x{fixed['spade_ks']} SPADE convs")
        del settings["spade_ks"]
    else:
        settings = _settings_from_sets(sets, folder)
    labels = settings["label_nc"] + int(settings["contain_dontcare_label"])
    if labels != fixed["semantic_nc"]:
        where = opt_file if opts is not None else "--set"
        raise ConversionError(f"semantic_nc: {where} gives label_nc {settings['label_nc']} + contain_dontcare_label "
                              f"{int(settings['contain_dontcare_label'])} = {labels} label channels, the weights "
                              f"{g_file.name} have {fixed['semantic_nc']} (fc.weight); an instance map (+1) is not "
                              "built by the spade recipe")
    values: dict[str, Any] = {**settings, **{k: v for k, v in fixed.items() if k != "semantic_nc"}}
    if d is not None:
        d_fixed = _read_d(d, d_file)
        if d_fixed["input_nc"] != fixed["semantic_nc"] + fixed["output_nc"]:
            raise ConversionError(f"{d_file}: discriminator_0.model0 takes {d_fixed['input_nc']} channels, G's "
                                  f"labels + image are {fixed['semantic_nc']} + {fixed['output_nc']}")
        if opts is not None:
            _agree_opt(opts, d_fixed, opt_file, d_file, ("ndf", "n_layers_D", "num_D"))
        values.update({k: v for k, v in d_fixed.items() if k != "input_nc"})
    elif opts is not None:
        values.update({k: opts[k] for k in ("ndf", "n_layers_D", "num_D") if k in opts})
    if values.get("num_D", 2) != 2:
        raise ConversionError(f"num_D: {d_file or opt_file} has {values['num_D']} scales; the spade recipe's D "
                              "returns two (d0_out, d1_out)")
    conv_recipe = recipe_for("spade", values, recipe, sets, g_file.name + (" and opt.txt" if opts is not None else ""))
    refitted = "n_layers_D" in values and _fit_objective(conv_recipe, values["n_layers_D"])
    try:
        gan = build(conv_recipe)
    except RecipeError as err:
        raise ConversionError(f"{g_file}: the spade recipe does not build with {values}: {err}") from None
    tensors = {"G": rename(g, gan.G.state_dict(), RULES, f"G of {g_file}", derived=_untracked)}
    if d is not None:
        tensors["D"] = rename(d, gan.D.state_dict(), RULES, f"D of {d_file}")
    epoch = _FILE.fullmatch(g_file.name).group(1)
    info = {"epoch": int(epoch) if epoch.isdigit() else epoch, "config": values,
            "settings_from": str(opt_file) if opts is not None else "--set"}
    if refitted:
        info["objective"] = f"feature matching over d{{i}}_f0 .. d{{i}}_f{values['n_layers_D'] - 1} (n_layers_D)"
    if d is None:
        info["D"] = f"not converted: no {epoch}_net_D.pth beside {g_file.name} (the run holds G only)"
    files = [g_file] + ([d_file] if d_file else []) + ([opt_file] if opts is not None else [])
    return Converted(conv_recipe, tensors, files=files, info=info)
