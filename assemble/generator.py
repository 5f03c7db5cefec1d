"""A trained generator in one call: ``assemble.load_generator(RUN).generate(...)``.

    >>> import assemble
    >>> G = assemble.load_generator("runs/digits")          # doctest: +SKIP
    >>> images = G.generate(n=16, seed=0)                    # doctest: +SKIP
    >>> G.save(images, "digits.png")                         # doctest: +SKIP

``load_generator`` takes a run folder (its newest verified checkpoint), a checkpoint file (the JSON record
or its safetensors file) or a converted checkpoint (a run folder written by ``ganforge convert``), and
gives the EMA generator when the checkpoint has one, in eval mode, with the constant noise of the layers
that have it, on the stage the checkpoint was at. Inputs are the recipe's: a latent ``z`` is drawn from
``seed`` unless given; class, text, label-map and coordinate inputs are given by keyword, by their names in
the recipe (``classes=`` fills a recipe's one class input).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .network import Network
from .sample import generate as _generate
from .sample import load_generator as _load
from .sample import set_noise_mode

SAMPLED = ("latent", "vector", "coords", "class")  # kinds drawn from their prior when not given


class Generator:
    """A generator ready to use outside training (a notebook, a service, an export).

    Args:
        network: the built generator (``gan.G``).
        recipe: its resolved recipe.
        state: the checkpoint's training state (step, stage), when it came from one.
    """

    def __init__(self, network: Network, recipe: dict[str, Any], state: dict[str, Any] | None = None):
        self.network = network.eval().requires_grad_(False)
        self.recipe = recipe
        self.state = dict(state or {})

    @property
    def name(self) -> str:
        return str(self.recipe.get("name", "recipe"))

    @property
    def inputs(self) -> dict[str, Any]:
        """The recipe's inputs: name -> declaration (``.kind``, ``.shape_at(stage)``, ``.describe()``)."""
        return dict(self.network.input_specs)

    @property
    def device(self) -> torch.device:
        return next((t.device for t in self.network.parameters()), torch.device("cpu"))

    def __repr__(self) -> str:
        ins = ", ".join(f"{n}: {s.describe()}" for n, s in self.inputs.items())
        return f"Generator({self.name!r}, step={self.state.get('step')}, inputs=({ins}))"

    # ---- inputs -----------------------------------------------------------------------------------
    def _batch(self, n: int | None, given: dict[str, Tensor]) -> int:
        sizes = {name: int(t.shape[0]) for name, t in given.items() if t.dim() > 0}
        if n is None:
            n = next(iter(sizes.values()), 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 100_000:
            raise ValueError(f"{self.name}: n must be an integer from 1 to 100000, got {n!r}")
        for name, size in sizes.items():
            if size != n:
                raise ValueError(f"{self.name}: input '{name}' holds {size} samples but n is {n}")
        return n

    def _tensor(self, name: str, value: Any, n: int | None) -> Tensor:
        spec = self.inputs[name]
        if spec.kind == "class":
            t = torch.as_tensor(value)
            if t.dim() == 0 and n is not None:
                t = t.expand(n)
            if t.is_floating_point() or t.dtype == torch.bool:
                raise ValueError(f"{self.name}: input '{name}' ({spec.describe()}) takes class indices, got dtype "
                                 f"{t.dtype}")
            t = t.long()
            if t.dim() != 1:
                raise ValueError(f"{self.name}: input '{name}' ({spec.describe()}) should have shape (n,), got "
                                 f"{tuple(t.shape)}")
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= spec.n_classes):
                raise ValueError(f"{self.name}: input '{name}' takes classes 0..{spec.n_classes - 1}, got "
                                 f"{t.tolist()[:8]}")
            return t
        t = torch.as_tensor(value, dtype=torch.float32)
        shape = spec.shape_at(self.network.stage)
        if tuple(t.shape[1:]) != tuple(shape) or t.dim() != len(shape) + 1:
            want = ", ".join(["n", *map(str, shape)])
            raise ValueError(f"{self.name}: input '{name}' ({spec.describe()}) should have shape ({want}), got "
                             f"{tuple(t.shape)}")
        return t

    def make_inputs(self, n: int | None = None, *, seed: int = 0, classes: Any = None,
                    **inputs: Any) -> dict[str, Tensor]:
        """Every input of G for ``n`` samples: the given ones checked, the rest drawn from ``seed``."""
        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:
            raise TypeError(f"{self.name}: no input named {unknown}; its inputs are "
                            + ", ".join(f"{k}: {s.describe()}" for k, s in self.inputs.items()))
        if classes is not None:
            class_inputs = [k for k, s in self.inputs.items() if s.kind == "class"]
            if len(class_inputs) != 1:
                raise TypeError(f"{self.name}: classes= fills the one class input, but G has "
                                f"{class_inputs or 'none'}; give them by name")
            if class_inputs[0] in inputs:
                raise TypeError(f"{self.name}: classes= and {class_inputs[0]}= both give the class input")
            inputs[class_inputs[0]] = classes
        given = {k: self._tensor(k, v, n) for k, v in inputs.items() if v is not None}
        n = self._batch(n, given)
        given = {k: self._tensor(k, v, n) if v.dim() == 0 else v for k, v in given.items()}
        gen = torch.Generator().manual_seed(int(seed))
        out: dict[str, Tensor] = {}
        for name, spec in self.inputs.items():
            drawn = spec.sample(n, gen) if spec.kind in SAMPLED else None  # drawn always: one stream per seed
            if name in given:
                out[name] = given[name]
            elif drawn is not None:
                out[name] = drawn
            elif not spec.optional:
                want = ", ".join(["n", *map(str, spec.shape_at(self.network.stage))])
                raise ValueError(f"{self.name}: input '{name}' ({spec.describe()}) comes from data: pass "
                                 f"{name}=<a ({want}) tensor>")
        return {k: v.to(self.device) for k, v in out.items()}

    # ---- images ----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, n: int | None = None, *, seed: int = 0, psi: float = 1.0, cutoff: int | None = None,
                 classes: Any = None, **inputs: Any) -> Tensor:
        """``n`` samples: images (n, C, H, W) in [-1, 1] (clamped), or points (n, D) from a toy generator.

        Args:
            n: how many (default: the batch of the inputs given, else 1).
            seed: draws the inputs not given (the same seed gives the same samples).
            psi: truncation: toward the tracked average w (StyleGAN) or the prior's mean (``z · ψ``).
            cutoff: truncate only the first ``cutoff`` layers of w (StyleGAN's coarse styles).
            classes: the class of each sample, for a recipe with one class input (an int for all).
            **inputs: any input by its recipe name: ``z=...``, ``c=[3, 1]``, ``seg=label_maps``.
        """
        out = _generate(self.network, self.make_inputs(n, seed=seed, classes=classes, **inputs), psi, cutoff)
        return out.float().clamp(-1, 1) if out.dim() == 4 else out.float()

    def to_pil(self, images: Tensor) -> list[Any]:
        """Images in [-1, 1] as PIL images (RGB, or L for one channel)."""
        from PIL import Image

        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"{self.name}: to_pil takes (n, 1 or 3, H, W) images, got {tuple(images.shape)}")
        pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        mode = "L" if pixels.shape[1] == 1 else "RGB"
        arrays = pixels.permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(a[..., 0] if mode == "L" else a, mode) for a in arrays]

    def save(self, images: Tensor, path: str | Path, nrow: int | None = None) -> Path:
        """A grid of the images as PNG (``nrow`` per row; default a square)."""
        from .plots import save_grid

        if images.dim() != 4:
            raise ValueError(f"{self.name}: save takes (n, C, H, W) images, got {tuple(images.shape)}; plot toy "
                             "samples with assemble.plots")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_grid(images.detach().float().cpu(), path, nrow=nrow)
        return path


def load_generator(source: str | Path, *, device: str = "cpu", ema: bool = True) -> Generator:
    """The generator of a run folder, a checkpoint file or a converted checkpoint (see the module doc)."""
    network, state = _load(source, device=device, ema=ema)
    set_noise_mode(network, "const")
    return Generator(network, state["recipe"], state)


def as_generator(obj: Any) -> Generator:
    """A :class:`Generator` from a Generator, a built GAN (its G) or a Network."""
    if isinstance(obj, Generator):
        return obj
    if hasattr(obj, "G") and hasattr(obj, "recipe"):
        set_noise_mode(obj.G, "const")
        return Generator(obj.G, obj.recipe)
    if isinstance(obj, Network):
        set_noise_mode(obj, "const")
        return Generator(obj, {"name": obj.spec.name})
    raise TypeError(f"expected a Generator, a GAN or a Network, got {type(obj).__name__}")

