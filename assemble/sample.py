"""``ganforge sample``: grids, truncation, interpolation, style mixing and latent arithmetic from a checkpoint.

Everything uses the EMA generator when the checkpoint has one, in eval mode, with a fixed seed. Noise
injection uses its constant buffers where the layers have them ("const", as NVlabs' generate.py), so a
latent always maps to the same image.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import checkpoint as ckpt
from .gan import build
from .network import Network


def load_generator(path: str | Path, device: str = "cpu", ema: bool = True) -> tuple[Network, dict[str, Any]]:
    """G from a checkpoint (a JSON/safetensors path or a run directory): EMA weights when present."""
    tensors, state = ckpt.load_checkpoint(path)
    gan = build(state["recipe"], device=device)
    G = gan.G
    prefix = "G_ema." if ema and any(k.startswith("G_ema.") for k in tensors) else "G."
    ckpt.load_module_tensors(prefix, G, tensors)
    if state.get("stage") is not None and G.num_stages:
        G.set_stage(int(state["stage"]))
    G.eval().requires_grad_(False)
    set_noise_mode(G, "const")
    return G, state


def set_noise_mode(G: Network, mode: str) -> None:
    """Noise injection in every layer: "const" where a layer has a constant buffer (else "none"), or as given."""
    for m in G.modules():
        if hasattr(m, "noise_mode") and hasattr(m, "make_noise"):
            has_const = getattr(m, "noise_const", None) is not None
            m.noise_mode = mode if mode != "const" or has_const else "none"


def _mapping(G: Network) -> Any:
    return next((m for m in G.modules() if hasattr(m, "truncate") and hasattr(m, "w_avg")), None)


def _styles(G: Network) -> str | None:
    return next(iter(G.style_layers), None)


def sample_inputs(G: Network, n: int, generator: torch.Generator, device: Any = "cpu") -> dict[str, Tensor]:
    out = {}
    for name, spec in G.input_specs.items():
        if spec.kind in ("latent", "vector", "coords", "class"):
            out[name] = spec.sample(n, generator, device)
        elif not spec.optional:
            raise ValueError(f"G's input '{name}' ({spec.describe()}) comes from data; sampling without data is "
                             "not possible for this recipe")
    return out


def latent_name(G: Network) -> str:
    name = next((n for n, s in G.input_specs.items() if s.kind == "latent"), None)
    if name is None:
        raise ValueError("G has no latent input to sample, truncate or interpolate")
    return name


def generate(G: Network, inputs: dict[str, Tensor], psi: float = 1.0, cutoff: int | None = None,
             registers: dict[str, Tensor] | None = None) -> Tensor:
    """Images for the given inputs, with StyleGAN's truncation in W (toward w_avg) when G has a mapping network,
    else truncation in Z (``z · ψ``, toward the prior's mean)."""
    mapping, styles = _mapping(G), _styles(G)
    if psi != 1.0 and mapping is not None and styles is not None and G.parts_after(styles):
        regs = dict(G.run(parts=G.parts_through(styles), **inputs))
        regs[styles] = mapping.truncate(regs[styles], psi, cutoff)
        out = G.run(parts=G.parts_after(styles), registers={**regs, **(registers or {})})
        return out[G.output_names[0]]
    if psi != 1.0:
        z = latent_name(G)
        inputs = {**inputs, z: inputs[z] * psi}
    if registers:
        return G.run(parts=G.parts_after(*registers), registers={**inputs, **registers})[G.output_names[0]]
    return G.run(**inputs)[G.output_names[0]]


def truncated_normal(shape: tuple[int, ...], threshold: float, generator: torch.Generator) -> Tensor:
    """BigGAN's truncation trick (Brock et al. 2019, sec. 3.1): z ~ N(0, I) with every entry whose magnitude
    exceeds ``threshold`` resampled until it falls inside."""
    z = torch.randn(shape, generator=generator)
    for _ in range(1000):
        bad = z.abs() > threshold
        if not bad.any():
            return z
        z[bad] = torch.randn(int(bad.sum()), generator=generator)
    return z.clamp(-threshold, threshold)


def lerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    return a + (b - a) * t


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation (White 2016, "Sampling Generative Networks"), per sample."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


@torch.no_grad()
def write_all(G: Network, out: Path, n: int = 64, seed: int = 0, psis: tuple[float, ...] = (1.0, 0.7, 0.5, 0.0),
              thresholds: tuple[float, ...] = (2.0, 1.0, 0.5), steps: int = 8, cutoff: int | None = None
              ) -> dict[str, str]:
    """Write every sampling figure to ``out``; returns {figure: path}."""
    from .plots import save_grid

    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    files: dict[str, str] = {}

    def save(name: str, images: Tensor, nrow: int) -> None:
        files[name] = str(save_grid(images.float().cpu(), out / f"{name}.png", nrow=nrow))

    base = sample_inputs(G, n, gen, device)
    save("grid", generate(G, base), math.ceil(math.sqrt(n)))
    z = latent_name(G)
    cols = min(n, 8)
    few = {k: v[:cols] for k, v in base.items()}
    save("truncation_psi", torch.cat([generate(G, few, psi=p, cutoff=cutoff) for p in psis]), cols)
    spec = G.input_specs[z]
    rows = []
    for t in thresholds:
        zt = truncated_normal((cols, *spec.shape), t, torch.Generator().manual_seed(seed + 1)).to(device)
        rows.append(generate(G, {**few, z: zt}))
    save("truncation_z", torch.cat(rows), cols)
    pairs = min(4, n // 2)
    a = {k: v[:pairs] for k, v in base.items()}
    b = {k: v[pairs: 2 * pairs] for k, v in base.items()}
    for name, fn in (("interp_lerp", lerp), ("interp_slerp", slerp)):
        frames = []
        for i in range(steps):
            t = i / (steps - 1)
            frames.append(generate(G, {**a, z: fn(a[z], b[z], t)}))
        save(name, torch.stack(frames, 1).flatten(0, 1), steps)  # one row per pair
    styles = _styles(G)
    if styles is not None and G.parts_after(styles):
        save("style_mixing", style_mixing(G, a, b), pairs + 1)
    save("arithmetic", arithmetic(G, base, gen), 4)
    return files


def style_mixing(G: Network, rows: dict[str, Tensor], cols: dict[str, Tensor], cutoff: int | None = None
                 ) -> Tensor:
    """StyleGAN fig. 3: row sources keep their coarse styles (layers < cutoff), column sources give the rest.
    The first row holds the column sources, the first column the row sources; the corner is blank."""
    styles = _styles(G)
    wr = G.run(parts=G.parts_through(styles), **rows)[styles]
    wc = G.run(parts=G.parts_through(styles), **cols)[styles]
    layers = G.style_layers[styles]
    if wr.dim() == 2:
        wr, wc = wr[:, None].expand(-1, layers, -1), wc[:, None].expand(-1, layers, -1)
    cut = cutoff if cutoff is not None else max(1, layers // 2)
    img_r, img_c = generate(G, rows), generate(G, cols)
    blank = torch.ones_like(img_r[:1]) * -1
    grid = [blank, *img_c]
    for i in range(wr.shape[0]):
        grid.append(img_r[i:i + 1])
        for j in range(wc.shape[0]):
            ws = torch.cat([wr[i:i + 1, :cut], wc[j:j + 1, cut:]], dim=1)
            grid.append(generate(G, {k: v[i:i + 1] for k, v in rows.items()}, registers={styles: ws}))
    return torch.cat([g if g.dim() == 4 else g[None] for g in grid])


def arithmetic(G: Network, base: dict[str, Tensor], gen: torch.Generator) -> Tensor:
    """DCGAN sec. 6.3.2: average the latents of three exemplars per concept, then A - B + C. Concepts here are
    three random triples of the sampled latents; each row shows the three exemplars of A, B, C and their
    averages, and the last row A - B + C with three small perturbations (as the paper's figure 7)."""
    z = latent_name(G)
    idx = torch.randperm(base[z].shape[0], generator=gen)[:9].view(3, 3)
    means = [base[z][i].mean(0, keepdim=True) for i in idx]
    rows = []
    for i, m in zip(idx, means):
        ex = {k: v[i] for k, v in base.items()}
        mean_in = {k: v[i[:1]] for k, v in base.items()}
        rows.append(torch.cat([generate(G, ex), generate(G, {**mean_in, z: m})]))
    result = means[0] - means[1] + means[2]
    noise = torch.randn((3, *result.shape[1:]), generator=gen).to(result) * 0.25
    one = {k: v[:1].expand(4, *v.shape[1:]) for k, v in base.items()}
    rows.append(generate(G, {**one, z: torch.cat([result, result + noise])}))
    return torch.cat(rows)
