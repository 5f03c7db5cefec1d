"""Pictures and measures of a generator's latent codes (InfoGAN's categorical and continuous codes).

    >>> from assemble.latent_codes import code_grids, code_agreement
    >>> paths = code_grids("runs/infogan", "runs/infogan/codes")      # doctest: +SKIP
    >>> code_agreement("runs/infogan")["class_agreement_matched"]      # doctest: +SKIP

The grids follow Chen et al. 2016, fig. 2: one code varies while the noise and the other codes stay fixed.

- **Categorical code** ``c`` (a ``class(K)`` input): ``codes_c.png``, one row per code value (the first
  ``max_values``), one column per random draw of the noise and of every other code; each column keeps its
  draw down the rows, so a row shows what one value of the code does to ten different samples.
- **Continuous code** (every latent input but the noise; one grid per dimension): ``codes_<name>.png``
  (``codes_<name>_<d>.png`` for an input of several dimensions), the code swept over ``sweep`` (the paper's
  [-2, 2], wider than the uniform(-1, 1) prior it is trained on) from left to right; one row per value of
  the first categorical code when there is one (else ``rows`` random draws), each row with its own fixed
  draw of the noise and of the other codes.

Generators without such codes give no grids (an empty list); nor do generators whose output is not an image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .network import Network

__all__ = ["CodeGrid", "code_agreement", "code_grid_inputs", "code_grids"]

CONTINUOUS_KINDS = ("latent", "vector")


@dataclass
class CodeGrid:
    """One grid: which input varies, along which axis, and G's inputs for every cell (row-major).

    Attributes:
        file: the PNG's file name.
        input: the varied input's name.
        dim: the varied dimension of a continuous code (None for a categorical one).
        values: the code's values along the varied axis (rows for a categorical code, columns for a
            continuous one).
        nrow: images per grid row.
        inputs: G's inputs, (rows · nrow, ...) each, image i at row i // nrow, column i % nrow.
    """

    file: str
    input: str
    dim: int | None
    values: list[float]
    nrow: int
    inputs: dict[str, Tensor] = field(repr=False)


def _network(source: Any) -> Network:
    """The generator network of a run folder / checkpoint path, a Generator, a built GAN or a Network."""
    if isinstance(source, Network):
        return source
    if isinstance(source, str | Path):
        from .sample import load_generator

        return load_generator(source)[0]
    network = getattr(source, "network", None)  # assemble.Generator
    if isinstance(network, Network):
        return network
    G = getattr(source, "G", None)  # a built GAN
    if isinstance(G, Network):
        return G
    raise TypeError(f"code_grids: expected a run folder or checkpoint path, a Generator, a GAN or a Network, got "
                    f"{type(source).__name__}")


def _codes(G: Network, noise: str | None, categorical: list[str] | None, continuous: list[str] | None
           ) -> tuple[list[str], list[str]]:
    specs = G.input_specs
    for name in [noise] + (categorical or []) + (continuous or []):
        if name is not None and name not in specs:
            raise ValueError(f"code_grids: G has no input '{name}'; its inputs are {', '.join(specs)}")
    if categorical is None:
        categorical = [n for n, s in specs.items() if s.kind == "class"]
    if continuous is None:
        if noise is None:
            noise = next((n for n, s in specs.items() if s.kind == "latent"), None)
        continuous = [n for n, s in specs.items() if s.kind in CONTINUOUS_KINDS and n != noise and len(s.shape) == 1]
    for name in categorical:
        if specs[name].kind != "class":
            raise ValueError(f"code_grids: categorical code '{name}' is a {specs[name].describe()}, not a class input")
    for name in continuous:
        if specs[name].kind not in CONTINUOUS_KINDS or len(specs[name].shape) != 1:
            raise ValueError(f"code_grids: continuous code '{name}' is a {specs[name].describe()}, not a vector")
    return categorical, continuous


def _draw(G: Network, n: int, gen: torch.Generator) -> dict[str, Tensor]:
    from .sample import sample_inputs

    return sample_inputs(G, n, gen)


def code_grid_inputs(generator_or_run: Any, *, seed: int = 0, columns: int = 10, rows: int = 10,
                     sweep: tuple[float, float] = (-2.0, 2.0), steps: int = 10, max_values: int = 16,
                     noise: str | None = None, categorical: list[str] | None = None,
                     continuous: list[str] | None = None, prefix: str = "codes") -> list[CodeGrid]:
    """The layout and G's inputs of every grid :func:`code_grids` draws (nothing is generated).

    Args:
        generator_or_run: a run folder or checkpoint path, an ``assemble.Generator``, a built GAN or G itself.
        seed: draws the noise and the codes that stay fixed.
        columns: columns of a categorical code's grid (random draws).
        rows: rows of a continuous code's grid when G has no categorical code.
        sweep: the range a continuous code is swept over (fig. 2 of the paper: [-2, 2]).
        steps: values in the sweep (the columns of a continuous code's grid).
        max_values: at most this many values of a categorical code are shown (its first ones).
        noise: the incompressible noise input (default: G's first latent input); it is never swept.
        categorical: the categorical codes (default: every class input).
        continuous: the continuous codes (default: every other 1-D latent or vector input).
        prefix: the start of each file name.
    """
    if columns < 1 or rows < 1 or steps < 1 or max_values < 1:
        raise ValueError(f"code_grids: columns, rows, steps and max_values must be >= 1, got {columns}, {rows}, "
                         f"{steps}, {max_values}")
    G = _network(generator_or_run)
    cats, conts = _codes(G, noise, categorical, continuous)
    specs = G.input_specs
    gen = torch.Generator().manual_seed(int(seed))
    grids: list[CodeGrid] = []
    for name in cats:
        k = min(specs[name].n_classes, max_values)
        base = _draw(G, columns, gen)  # one draw per column, repeated down the rows
        inputs = {n: v.repeat(k, *([1] * (v.dim() - 1))) for n, v in base.items()}
        inputs[name] = torch.arange(k).repeat_interleave(columns)
        grids.append(CodeGrid(f"{prefix}_{name}.png", name, None, [float(i) for i in range(k)], columns, inputs))
    values = torch.linspace(float(sweep[0]), float(sweep[1]), steps)
    for name in conts:
        width = specs[name].shape[0]
        for d in range(width):
            if cats:
                first = cats[0]
                n_rows = min(specs[first].n_classes, max_values)
            else:
                first, n_rows = None, rows
            base = _draw(G, n_rows, gen)  # one draw per row, repeated along it
            if first is not None:
                base[first] = torch.arange(n_rows)
            inputs = {n: v.repeat_interleave(steps, dim=0) for n, v in base.items()}
            code = inputs[name].clone()
            code[:, d] = values.repeat(n_rows)
            inputs[name] = code
            file = f"{prefix}_{name}.png" if width == 1 else f"{prefix}_{name}_{d}.png"
            grids.append(CodeGrid(file, name, d, [float(v) for v in values], steps, inputs))
    return grids


@torch.no_grad()
def _images(G: Network, inputs: dict[str, Tensor], batch: int = 256) -> Tensor:
    """G's first output for ``inputs`` in eval mode (G's mode is restored after)."""
    device = next((p.device for p in G.parameters()), torch.device("cpu"))
    n = next(iter(inputs.values())).shape[0]
    was = G.training
    G.eval()
    try:
        out = [G.run(**{k: v[i:i + batch].to(device) for k, v in inputs.items()})[G.output_names[0]].float().cpu()
               for i in range(0, n, batch)]
    finally:
        G.train(was)
    return torch.cat(out)


def code_grids(generator_or_run: Any, out_dir: str | Path, **options: Any) -> list[Path]:
    """Draw one PNG grid per latent code of G into ``out_dir`` and return their paths (see the module doc).

    Args:
        generator_or_run: a run folder or checkpoint path, an ``assemble.Generator``, a built GAN or G itself
            (a network in training is put in eval mode for the drawing and back after; nothing else changes).
        out_dir: the folder to write into (created).
        **options: the layout options of :func:`code_grid_inputs` (seed, columns, rows, sweep, steps,
            max_values, noise, categorical, continuous, prefix).

    Returns:
        The written paths: the categorical codes' grids first, then the continuous codes', in input order;
        empty when G has no codes or its output is not an image.
    """
    from .plots import save_grid

    G = _network(generator_or_run)
    out = Path(out_dir)
    paths: list[Path] = []
    for grid in code_grid_inputs(G, **options):
        images = _images(G, grid.inputs)
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            return []
        paths.append(save_grid(images, out / grid.file, nrow=grid.nrow))
    return paths


def code_agreement(generator_or_run: Any, *, n_per_value: int = 50, seed: int = 12345, code: str | None = None,
                   classifier: Any = None) -> dict[str, Any]:
    """How well a 10-valued categorical code matches digit identity, judged by the built-in digit classifier.

    ``n_per_value`` samples for each code value (the noise and the other codes from their priors, drawn with
    ``seed``), classified, then :func:`assemble.metrics.digits.class_report`: ``class_agreement_matched`` is
    the fraction classified as the digit matched to their code value by the best one-to-one matching
    (Hungarian algorithm), InfoGAN's measure (Chen et al. 2016, sec. 7.1: 5% error on MNIST).

    Args:
        generator_or_run: as for :func:`code_grids`; its output must be 1-channel digits in [-1, 1].
        n_per_value: samples per code value.
        seed: draws the noise and the other codes.
        code: the categorical input (default: G's first class input); it must have 10 values.
        classifier: the judge (default: the digit classifier at the images' size).
    """
    from .metrics.digits import class_report

    G = _network(generator_or_run)
    cats, _ = _codes(G, None, [code] if code else None, [])
    if not cats:
        raise ValueError("code_agreement: G has no categorical (class) input")
    name = cats[0]
    if G.input_specs[name].n_classes != 10:
        raise ValueError(f"code_agreement: '{name}' has {G.input_specs[name].n_classes} values; digits need 10")
    values = torch.arange(10).repeat_interleave(n_per_value)
    inputs = _draw(G, len(values), torch.Generator().manual_seed(int(seed)))
    inputs[name] = values
    images = _images(G, inputs)
    return class_report(images, values, classifier=classifier)
