"""Export a generator to ONNX or torch.export: ``ganforge export RUN --format onnx --out g.onnx``.

The exported graph is the EMA generator in eval mode: it takes the recipe's inputs by their names (``z``,
``c``, ``seg``), in the recipe's order, then ``psi`` when truncation is an input, then one noise image per
noise layer when noise is an input (``noise_synthesis_b8_conv0``: (batch, 1, H, W)), and returns
``image``. The batch axis is dynamic unless ``batch`` is given. A sidecar ``<out>.json`` records the recipe,
the inputs (shape, dtype, kind), the output and its value range, and the versions. ONNX needs the optional
extra ``pip install 'ganforge[export]'`` (onnx, onnxscript; onnxruntime for ``check``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from blocks import NoiseInjection

from .generator import Generator, as_generator
from .sample import _mapping, _styles, latent_name

FORMATS = ("onnx", "torch-export")
NOISE = ("const", "input")
_ONNX_NEEDS = ("onnx", "onnxscript")


def onnx_missing(for_check: bool = False) -> list[str]:
    """The packages ONNX export (and its check) needs that are not installed."""
    needs = (*_ONNX_NEEDS, "onnxruntime") if for_check else _ONNX_NEEDS
    return [p for p in needs if importlib.util.find_spec(p) is None]


class ExportModule(nn.Module):
    """The generator as an exporter sees it: positional inputs, one output (see the module doc).

    Args:
        generator: what to export (its network runs at its current stage).
        psi: truncation folded into the graph (a float; 1 = none), or None for a ``psi`` input.
        noise: "const" (the layers' constant noise, or none where a layer has no buffer) or "input".
    """

    def __init__(self, generator: Generator, psi: float | None = 1.0, noise: str = "const"):
        super().__init__()
        if noise not in NOISE:
            raise ValueError(f"noise must be one of {NOISE}, got {noise!r}")
        self.G = generator.network
        self.names = list(generator.inputs)
        self.psi = None if psi is None else float(psi)
        self.mapping, self.styles = _mapping(self.G), _styles(self.G)
        self.noise = noise
        self.all_noise = [m for m in self.G.modules() if isinstance(m, NoiseInjection)]
        self.noise_layers: list[tuple[str, NoiseInjection]] = []
        for path, m in self.G.named_modules():
            if isinstance(m, NoiseInjection) and noise == "input":
                if m.resolution is None:
                    raise ValueError(f"noise as an input needs every noise layer's size; {path} has none")
                layer = path.removesuffix(".noise")  # a StyleConv's noise: name it after the conv
                self.noise_layers.append(("noise_" + layer.replace(".", "_"), m))
        if psi is None and self.mapping is None and not any(s.kind == "latent" for s in generator.inputs.values()):
            raise ValueError(f"{generator.name} has neither a mapping network nor a latent: psi cannot be an input")

    def input_names(self) -> list[str]:
        return [*self.names, *(["psi"] if self.psi is None else []), *(n for n, _ in self.noise_layers)]

    def forward(self, *tensors: Tensor) -> Tensor:
        saved = [(m.noise_mode, m.noise_input) for m in self.all_noise]
        for m in self.all_noise:  # this graph's noise, for this call only (the layers are the generator's)
            m.noise_mode = "input" if self.noise == "input" else ("const" if m.noise_const is not None else "none")
        k = len(self.names)
        for (_, layer), noise in zip(self.noise_layers, tensors[k + (self.psi is None):]):
            layer.use_noise(noise)
        try:
            return self._generate(dict(zip(self.names, tensors[:k])), tensors[k] if self.psi is None else self.psi)
        finally:
            for m, (mode, given) in zip(self.all_noise, saved):
                m.noise_mode, m.noise_input = mode, given

    def _generate(self, inputs: dict[str, Tensor], psi: Tensor | float) -> Tensor:
        if isinstance(psi, float) and psi == 1.0:
            return self.G(**inputs)
        if self.mapping is not None and self.styles is not None and self.G.parts_after(self.styles):
            regs = self.G.run(parts=self.G.parts_through(self.styles), **inputs)
            ws = regs[self.styles]
            regs[self.styles] = self.mapping.w_avg.to(ws.dtype).lerp(ws, psi)  # truncation in W, any psi
            return self.G.run(parts=self.G.parts_after(self.styles), registers=regs)[self.G.output_names[0]]
        z = latent_name(self.G)
        return self.G(**{**inputs, z: inputs[z] * psi})


def example_inputs(module: ExportModule, generator: Generator, batch: int, seed: int = 0) -> tuple[Tensor, ...]:
    """Inputs for ``batch`` samples: drawn from the priors, random one-hot label maps, Gaussian images."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for spec in generator.inputs.values():
        shape = spec.shape_at(generator.network.stage)
        if spec.kind == "label_map":
            labels = torch.randint(0, shape[0], (batch, *shape[1:]), generator=gen)
            out.append(nn.functional.one_hot(labels, shape[0]).permute(0, 3, 1, 2).float())
        elif spec.kind in ("image", "text_embedding", "tokens"):
            out.append(torch.randn((batch, *shape), generator=gen))
        else:
            out.append(spec.sample(batch, gen))
    if module.psi is None:
        out.append(torch.tensor(0.7))
    for _, layer in module.noise_layers:
        out.append(torch.randn((batch, 1, *layer.resolution), generator=gen))  # type: ignore[misc]
    device = generator.device
    return tuple(t.to(device) for t in out)


def _dynamic(module: ExportModule, inputs: tuple[Tensor, ...], batch: int | None) -> Any:
    if batch is not None:
        return None
    dim = torch.export.Dim("batch", min=1, max=65536)
    shapes = tuple(None if name == "psi" else {0: dim} for name in module.input_names())
    return {"tensors": shapes}


def relative_difference(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max |b| (0 when both are 0)."""
    scale = float(b.abs().max())
    return float((a - b).abs().max()) / scale if scale else float((a - b).abs().max())


def export(source: Any, fmt: str, out: str | Path, *, batch: int | None = None, psi: float | None = 1.0,
           noise: str = "const", opset: int = 18, check: bool = False) -> dict[str, Any]:
    """Export ``source`` (a Generator, a built GAN or a Network) and write the sidecar; returns it.

    Args:
        fmt: "onnx" or "torch-export" (a ``.pt2`` file for ``torch.export.load``).
        out: the file to write.
        batch: a fixed batch size, or None for a dynamic batch axis.
        psi: truncation folded in (a float), or None for a ``psi`` input.
        noise: "const" or "input" (see :class:`ExportModule`).
        opset: the ONNX opset.
        check: run the exported file against eager PyTorch (batch 1, and 5 when dynamic) and record the
            largest relative difference (ONNX: in onnxruntime).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 65536):
        raise ValueError(f"batch must be an integer from 1 to 65536 (or None for dynamic), got {batch!r}")
    if fmt == "torch-export" and Path(out).suffix != ".pt2":
        raise ValueError(f"a torch.export file ends in .pt2 (torch.export.load reads only those), got {out}")
    if fmt == "onnx" and onnx_missing(check):
        raise RuntimeError(f"ONNX export needs {', '.join(onnx_missing(check))}: pip install 'ganforge[export]'")
    generator = as_generator(source)
    module = ExportModule(generator, psi, noise).eval()
    inputs = example_inputs(module, generator, batch or 2)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dynamic = _dynamic(module, inputs, batch)
    with torch.no_grad(), warnings.catch_warnings():
        # noise given as inputs reaches its layers as attributes (NoiseInjection.use_noise): the exporter
        # traces them as the inputs they are, and says so; and ONNX's axis-renaming note is noise too
        warnings.filterwarnings("ignore", message=".*were assigned during export.*")
        warnings.filterwarnings("ignore", message=".*axis name: batch will not be used.*")
        if fmt == "torch-export":
            program = torch.export.export(module, inputs, dynamic_shapes=dynamic, strict=False)
            torch.export.save(program, str(out))
        else:
            onnx_program = torch.onnx.export(module, inputs, dynamo=True, opset_version=opset, verbose=False,
                                             input_names=module.input_names(), output_names=["image"],
                                             dynamic_shapes=dynamic, external_data=False)
            onnx_program.save(str(out))
    sidecar = describe(module, generator, fmt, batch, psi, noise, opset, out)
    if check:
        sidecar["check"] = check_file(out, fmt, module, generator, batch)
    Path(f"{out}.json").write_text(json.dumps(sidecar, indent=1))
    return sidecar


def _version() -> str:
    try:
        return importlib.metadata.version("ganforge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def describe(module: ExportModule, generator: Generator, fmt: str, batch: int | None, psi: float | None,
             noise: str, opset: int, out: Path) -> dict[str, Any]:
    """The sidecar: what the file takes and gives."""
    b: Any = "batch" if batch is None else batch
    ins = []
    for name, spec in generator.inputs.items():
        shape = [b, *spec.shape_at(generator.network.stage)]
        ins.append({"name": name, "kind": spec.kind, "shape": shape,
                    "dtype": "int64" if spec.kind == "class" else "float32",
                    **({"classes": spec.n_classes} if spec.kind == "class" else {}),
                    **({"prior": spec.prior} if spec.kind == "latent" else {})})
    if psi is None:
        ins.append({"name": "psi", "kind": "truncation", "shape": [], "dtype": "float32"})
    for name, layer in module.noise_layers:
        ins.append({"name": name, "kind": "noise", "shape": [b, 1, *layer.resolution], "dtype": "float32"})
    with torch.no_grad():
        shape = list(module(*example_inputs(module, generator, 1)).shape[1:])
    return {
        "recipe": generator.name, "format": fmt, "file": out.name, "step": generator.state.get("step"),
        "stage": generator.network.stage, "inputs": ins,
        "output": {"name": "image", "shape": [b, *shape], "dtype": "float32", "range": [-1.0, 1.0],
                   "note": "images in [-1, 1] (clamp before display: linear outputs can overshoot slightly); "
                           "pixels = (image + 1) * 127.5"},
        "psi": "input" if psi is None else psi, "noise": noise, "opset": opset if fmt == "onnx" else None,
        "ganforge": _version(), "torch": torch.__version__,
    }


def check_file(path: Path, fmt: str, module: ExportModule, generator: Generator, batch: int | None
               ) -> dict[str, float]:
    """The largest relative difference of the exported file against eager, per batch size tried."""
    result = {}
    for size in ([batch] if batch is not None else [1, 5]):
        inputs = example_inputs(module, generator, size, seed=size + 11)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*were assigned during export.*")
            eager = module(*inputs)
            if fmt == "torch-export":
                got = torch.export.load(str(path)).module()(*inputs)
            else:
                import onnxruntime

                session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                named = dict(zip(module.input_names(), inputs))
                feeds = {i.name: named[i.name].cpu().numpy() for i in session.get_inputs()}  # unused ones dropped
                got = torch.from_numpy(session.run(None, feeds)[0])
        result[f"batch_{size}"] = relative_difference(got.float().cpu(), eager.float().cpu())
    return result
