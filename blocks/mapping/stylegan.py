"""StyleGAN's mapping network z -> w, with the tracked average of w and the truncation trick."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import Block, Example, Shape, Sizes
from ..layers.equalized import EqualizedLinear
from ..norms.pixel import pixel_norm
from ..registry import MAPPING

__all__ = ["MappingNetwork", "truncate"]


def truncate(ws: Tensor, w_avg: Tensor, psi: float, cutoff: int | None = None) -> Tensor:
    """The truncation trick in W: ``w_avg + ψ · (w - w_avg)`` (Karras et al. 2019, StyleGAN, sec. 3.1).

    ψ = 1 returns ``ws`` unchanged, ψ = 0 returns the average. With broadcast styles (B, N, D), ``cutoff``
    truncates only the layers ``< cutoff`` (the coarse styles; StyleGAN's figures use cutoff 8).

    Args:
        ws: styles, (B, D) or (B, N, D).
        w_avg: the tracked average (D,).
        psi: ψ.
        cutoff: number of leading layers to truncate; ``None`` = all.

    Shape:
        - ws: (B, D) or (B, N, D).
        - output: same as ws.
    """
    if psi == 1:
        return ws
    truncated = w_avg.to(ws.dtype).lerp(ws, psi)
    if cutoff is None or ws.dim() != 3:
        return truncated
    layer = torch.arange(ws.shape[1], device=ws.device).reshape(1, -1, 1)  # (1, N, 1)
    return torch.where(layer < cutoff, truncated, ws)


@MAPPING.register("mapping_network", paper="Karras et al. 2019, A Style-Based Generator Architecture for "
                  "GANs (StyleGAN), sec. 2, 3.1 and appendix C; StyleGAN2 defaults (stylegan2-ada-pytorch)",
                  consumes=("c",))
class MappingNetwork(Block):
    """StyleGAN's mapping network: normalise z, embed the label, N equalized FC layers, track w's average.

    As NVlabs' ``MappingNetwork``: z is divided by its root mean square (pixel norm); with ``c_dim > 0``
    the label is mapped by an :class:`EqualizedLinear` ``c_dim -> embed_features``, normalised the same
    way and concatenated; then ``num_layers`` :class:`EqualizedLinear` layers with learning-rate multiplier
    ``lr_mul`` and leaky ReLU · √2. In training mode the buffer ``w_avg`` moves toward the batch mean of w,
    ``w_avg ← β·w_avg + (1-β)·mean(w)``. The output is optionally broadcast to ``num_ws`` style layers,
    then truncated toward ``w_avg`` when ``truncation_psi != 1``. At z_dim = w_dim = 512, 8 layers,
    c_dim = 0 it holds 2,101,248 parameters, as the reference.

    With ``z_dim=0`` the network maps the label alone (NVlabs' conditional discriminator maps c to its
    ``cmap`` this way: ``mapping(None, c)``); ``w_avg`` is a buffer only while it is tracked
    (``w_avg_beta`` not None), as NVlabs registers it.

    Deviations: the computation keeps the input's dtype (NVlabs casts to float32); ``w_avg`` exists even
    without broadcasting (as in StyleGAN3), so truncation also works on (B, D) outputs; ``c`` may be
    given as class indices (B,), one-hot encoded here.

    Args:
        z_dim: latent dimension (512); 0 = no latent, the label alone (needs ``c_dim > 0``).
        w_dim: style dimension (512).
        c_dim: label dimension, 0 = unconditional (then ``c`` is not consumed).
        num_ws: broadcast w to this many style layers, output (B, num_ws, w_dim); ``None`` = (B, w_dim).
        num_layers: FC layers (8).
        embed_features: label embedding size; ``None`` = w_dim.
        layer_features: hidden layer size; ``None`` = w_dim.
        activation: a ``bias_act`` activation (``"lrelu"``).
        lr_mul: learning-rate multiplier of the FC layers (0.01).
        w_avg_beta: decay of the tracked average of w (0.995); ``None`` = do not track.

    Shape:
        - z: (B, D) with D = z_dim; absent when z_dim = 0.
        - c: (B, c_dim) float, or (B,) int class indices; only when c_dim > 0.
        - output: (B, w_dim), or (B, num_ws, w_dim) when num_ws is set.
    """

    def __init__(self, z_dim: int, w_dim: int = 512, c_dim: int = 0, num_ws: int | None = None,
                 num_layers: int = 8, embed_features: int | None = None, layer_features: int | None = None,
                 activation: str = "lrelu", lr_mul: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        if z_dim < 0 or c_dim < 0 or z_dim + c_dim < 1 or num_layers < 1:
            raise self.fail(f"expected z_dim >= 0 and c_dim >= 0, not both 0, and num_layers >= 1; got "
                            f"z_dim={z_dim}, c_dim={c_dim}, num_layers={num_layers}")
        self.z_dim, self.w_dim, self.c_dim, self.num_ws = z_dim, w_dim, c_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        if c_dim == 0:
            self.consumes = ()
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim > 0 else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        self.embed = EqualizedLinear(c_dim, embed_features) if c_dim > 0 else None
        # Named fc0 .. fc{N-1} with the buffer w_avg, as NVlabs' MappingNetwork (mapping.fc0.weight, ...).
        for i in range(num_layers):
            self.add_module(f"fc{i}", EqualizedLinear(features[i], features[i + 1], activation=activation,
                                                       lr_mul=lr_mul))
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    @property
    def fcs(self) -> list[EqualizedLinear]:
        """The fully connected layers, in order."""
        return [getattr(self, f"fc{i}") for i in range(self.num_layers)]

    def _label(self, c: Tensor | None, batch: int | None) -> Tensor | None:
        if self.c_dim == 0:
            if c is not None and c.numel() != 0:
                raise self.fail(f"c was given (shape {tuple(c.shape)}) but the network has c_dim=0")
            return None
        if c is None:
            raise self.fail(f"c of shape (B, {self.c_dim}) (or class indices (B,)) is required with "
                            f"c_dim={self.c_dim}")
        if c.dim() == 1 and not c.is_floating_point():
            # values are checked outside torch.compile/export only (check_indices): export traces them
            self.check_indices(c, self.c_dim, "c", B=batch)
            if c.is_meta:  # shape inference: values unknown
                return c.new_zeros((c.shape[0], self.c_dim), dtype=torch.float32)
            return F.one_hot(c.long(), self.c_dim)
        self.check(c, "B D", "c", B=batch, D=self.c_dim)
        return c

    def _latent(self, z: Tensor | None) -> tuple[Tensor | None, int | None]:
        """z checked (None when z_dim = 0) and the batch size it gives."""
        if self.z_dim == 0:
            if z is not None and z.numel() != 0:
                raise self.fail(f"z was given (shape {tuple(z.shape)}) but the network has z_dim=0 (it maps c "
                                "alone)")
            return None, None
        if z is None:
            raise self.fail(f"z of shape (B, {self.z_dim}) is required with z_dim={self.z_dim}", TypeError)
        return z, self.check(z, "B D", "z", D=self.z_dim).get("B")

    def _map(self, z: Tensor | None, c: Tensor | None, ref: bool) -> Tensor:
        x = pixel_norm(z) if z is not None else None
        if c is not None:
            dtype = z.dtype if z is not None else (c.dtype if c.is_floating_point() else self.embed.weight.dtype)
            y = self.embed.call_function(c.to(dtype)) if ref else self.embed(c.to(dtype))
            y = pixel_norm(y)
            x = y if x is None else torch.cat([x, y], dim=1)  # (B, z_dim + embed_features)
        for fc in self.fcs:
            x = fc.call_function(x) if ref else fc(x)
        return x

    def _finish(self, x: Tensor, psi: float, cutoff: int | None) -> Tensor:
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # (B, num_ws, w_dim)
        return self.truncate(x, psi, cutoff)

    def forward(self, z: Tensor | None = None, c: Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool = True) -> Tensor:
        """Map z (and c) to w; ``update_w_avg=False`` skips the moving-average update in training mode."""
        z, batch = self._latent(z)
        c = self._label(c, batch)
        x = self._map(z, c, ref=False)
        if self.training and update_w_avg and self.w_avg_beta is not None:
            with torch.no_grad():
                batch_mean = x.detach().mean(dim=0).to(self.w_avg.dtype)  # (w_dim,)
                self.w_avg.copy_(batch_mean.lerp(self.w_avg, self.w_avg_beta))
        return self._finish(x, truncation_psi, truncation_cutoff)

    def truncate(self, ws: Tensor, psi: float, cutoff: int | None = None) -> Tensor:
        """Truncate styles toward ``w_avg`` (see :func:`truncate`)."""
        if psi == 1:
            return ws
        if self.w_avg_beta is None:
            raise self.fail("truncation needs the tracked w_avg, but w_avg_beta is None")
        return truncate(ws, self.w_avg, psi, cutoff)

    def call_function(self, z: Tensor | None = None, c: Tensor | None = None) -> Tensor:
        z, batch = self._latent(z)
        x = self._map(z, self._label(c, batch), ref=True)
        return self._finish(x, 1.0, None)

    def out_shape(self, z: Shape | None = None, c: Shape | None = None) -> Shape:
        B = (z if self.z_dim else c)[0]
        if self.num_ws is None:
            return (B, self.w_dim)
        return (B, self.num_ws, self.w_dim)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        c_dim = s.N if s.seed % 2 else 0
        kwargs = {"z_dim": s.D, "w_dim": s.C, "c_dim": c_dim, "num_ws": s.N, "num_layers": 2}
        cond = {"c": s.randn(s.B, c_dim)} if c_dim else {}
        return Example(kwargs, (s.randn(s.B, s.D),), cond)

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, w_dim={self.w_dim}, c_dim={self.c_dim}, num_ws={self.num_ws}, "
                f"num_layers={self.num_layers}, w_avg_beta={self.w_avg_beta}")
