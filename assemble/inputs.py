"""Declared network inputs: ``latent(dim, prior)``, ``class(n)``, ``image(C, H, W)``, ``label_map(n, H, W)``,
``text_embedding(dim)``, ``tokens(n, dim)``, ``vector(dim)``, ``coords(dim)``.

A declaration is written as a call, e.g. ``z: latent(512)`` or ``img: image(3, resolution, resolution)``;
its arguments are safe expressions over the recipe's variables. A trailing ``?`` makes the input optional
(``z: latent(256)?``): the network's forward takes it as a keyword defaulting to ``None``. In a progressive
network (one that declares ``stages``) the sizes may use ``stage``: ``img: image(3, 4 * 2 ** stage, 4 * 2 **
stage)`` is an image whose size follows the network's current stage (ProGAN's discriminator).
"""

from __future__ import annotations

import ast
import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .expr import ExprError, evaluate

PRIORS = ("normal", "uniform", "bernoulli")


@dataclass(frozen=True)
class InputSpec:
    """One declared input. ``shape`` excludes the batch dimension.

    ``stage_shapes`` holds the shape at every stage when the declaration uses ``stage`` (empty otherwise);
    ``shape`` is then the shape at the last stage.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    prior: str = "normal"
    n_classes: int = 0
    optional: bool = False
    stage_shapes: tuple[tuple[int, ...], ...] = ()

    @property
    def is_index(self) -> bool:
        return self.kind == "class"

    def shape_at(self, stage: int | None) -> tuple[int, ...]:
        """The shape at ``stage`` (``shape`` for inputs that do not depend on the stage, or stage None)."""
        return self.stage_shapes[stage] if self.stage_shapes and stage is not None else self.shape

    def meta(self, batch: int = 1, stage: int | None = None) -> Tensor:
        """A meta tensor of this input's shape (at ``stage``) and dtype (for shape inference)."""
        dtype = torch.long if self.is_index else torch.float32
        return torch.empty((batch, *self.shape_at(stage)), dtype=dtype, device="meta")

    def sample(self, batch: int, generator: torch.Generator | None = None, device: Any = "cpu") -> Tensor:
        """Draw from the prior (latents, classes); data-bound kinds cannot be sampled."""
        if self.kind == "class":
            return torch.randint(0, self.n_classes, (batch,), generator=generator).to(device)
        if self.kind in ("latent", "vector", "coords"):
            if self.prior == "uniform":
                return (torch.rand((batch, *self.shape), generator=generator) * 2 - 1).to(device)
            if self.prior == "bernoulli":
                return torch.bernoulli(torch.full((batch, *self.shape), 0.5), generator=generator).to(device)
            return torch.randn((batch, *self.shape), generator=generator).to(device)
        raise ValueError(f"input '{self.name}' ({self.kind}) comes from data and cannot be sampled")

    def describe(self) -> str:
        args = ", ".join(str(s) for s in (self.n_classes,) if self.kind == "class") or ", ".join(
            str(s) for s in self.shape)
        extra = f", {self.prior}" if self.kind == "latent" and self.prior != "normal" else ""
        return f"{self.kind}({args}{extra}){'?' if self.optional else ''}"


_ARITY = {
    "latent": (1, 1), "vector": (1, 1), "coords": (1, 1), "text_embedding": (1, 1), "class": (1, 1),
    "image": (3, 3), "label_map": (3, 3), "tokens": (2, 2),
}


def parse_input(name: str, text: Any, env: Mapping[str, Any], stages: int | None = None) -> InputSpec:
    """Parse a declaration such as ``"latent(512)"`` with variables from ``env``.

    ``stages``: the network's number of stages; sizes may then use ``stage`` (evaluated at each stage).
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a declaration like latent(512) or image(3, 64, 64), found {text!r}")
    src = text.strip()
    optional = src.endswith("?")
    src = src.rstrip("?").strip()
    # The kind is split off before parsing: `class` is a Python keyword, so `class(10)` is no expression.
    m = re.fullmatch(r"([A-Za-z_]\w*)\s*(?:\((.*)\))?", src, re.S)
    if m is None:
        raise ValueError(f"input declaration '{text}' should look like kind(args)")
    kind = m.group(1)
    try:
        node = ast.parse(f"_({m.group(2) or ''})", mode="eval").body
    except SyntaxError:
        raise ValueError(f"cannot parse input declaration '{text}'") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):  # e.g. latent(4)(5)
        raise ValueError(f"input declaration '{text}' should look like kind(args)")
    if kind not in _ARITY:
        raise ValueError(f"unknown input kind '{kind}'; known: {', '.join(sorted(_ARITY))}")
    staged = "stage" not in env and any(
        isinstance(n, ast.Name) and n.id == "stage" for a in node.args for n in ast.walk(a))
    if staged and not stages:
        raise ValueError(f"'{text}' uses 'stage', but the network declares no stages")
    envs = [ChainMap({"stage": s}, env) for s in range(stages or 0)] if staged else [env]
    shapes = [_sizes(text, kind, node, e) for e in envs]
    args, prior = shapes[-1]
    if kind == "class":
        return InputSpec(name, kind, (), n_classes=args[0], optional=optional)
    return InputSpec(name, kind, args, prior=prior, optional=optional,
                     stage_shapes=tuple(a for a, _ in shapes) if staged else ())


def _sizes(text: str, kind: str, node: ast.Call, env: Mapping[str, Any]) -> tuple[tuple[int, ...], str]:
    """The sizes and the prior of a parsed declaration, evaluated with ``env``."""
    prior = "normal"
    args: list[Any] = []
    try:
        for a in node.args:
            if isinstance(a, ast.Name) and a.id in PRIORS:
                prior = a.id
            else:
                args.append(evaluate(a, env))
        for kw in node.keywords:
            if kw.arg != "prior":
                raise ValueError(f"unknown keyword '{kw.arg}' in '{text}'")
            prior = evaluate(kw.value, {**env, **{p: p for p in PRIORS}})
    except ExprError as err:
        raise ValueError(f"in '{text}': {err}") from None
    lo, hi = _ARITY[kind]
    if not lo <= len(args) <= hi:
        raise ValueError(f"{kind}() takes {lo} size argument{'s' if lo > 1 else ''}, got {len(args)} in '{text}'")
    for a in args:
        if not isinstance(a, int) or isinstance(a, bool) or a <= 0:
            raise ValueError(f"sizes in '{text}' must be positive integers, found {a!r}")
    if prior not in PRIORS:
        raise ValueError(f"unknown prior '{prior}'; known: {', '.join(PRIORS)}")
    return tuple(args), prior
