"""SPADE / GauGAN's repeated units: the SPADE residual block and one scale of the multiscale discriminator."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..activations.basic import LeakyReLU
from ..core import Block, Example, Shape, Sizes
from ..layers.basic import Conv2dLayer
from ..norms.batch import InstanceNorm
from ..norms.spade import SPADE
from ..registry import COMPOSITE

__all__ = ["NLayerDiscriminator", "SPADEResnetBlock"]

_PAPER = "Park et al. 2019, Semantic Image Synthesis with Spatially-Adaptive Normalization (SPADE / GauGAN)"
_SLOPE = 0.2  # leaky ReLU slope of both networks


def _check_sizes(block: Block, **values: int) -> None:
    for arg, v in values.items():
        if v < 1:
            raise block.fail(f"{arg} must be >= 1, got {v}")


@COMPOSITE.register("spade_resblock", paper=f"{_PAPER}, sec. 3 (SPADE ResBlk) and appendix A; NVlabs/SPADE "
                    "models/networks/architecture.py SPADEResnetBlock", consumes=("seg",), batch_coupled=True)
class SPADEResnetBlock(Block):
    """SPADE's residual block: two SPADE -> leaky ReLU -> 3x3 conv stages, plus a shortcut.

    As NVlabs' ``SPADEResnetBlock(fin, fout)`` with ``norm_G`` "spectralspadesyncbatch3x3"::

        x_s = conv_s(norm_s(x, seg))  if fin != fout, else x
        dx  = conv_0(lrelu(norm_0(x, seg)))      # fin -> fmiddle = min(fin, fout)
        dx  = conv_1(lrelu(norm_1(dx, seg)))     # fmiddle -> fout
        out = x_s + dx

    with leaky ReLU slope 0.2, ``conv_0``/``conv_1`` 3x3 (padding 1, bias) and ``conv_s`` 1x1 without bias,
    all spectrally normalised when ``sn``; each ``norm_*`` is a :class:`~blocks.SPADE` (parameter-free
    norm, then γ and β from the label map, which it resizes (nearest) to the features' size). Sub-modules
    are defined in the reference's order: ``conv_0``, ``conv_1``, [``conv_s``], ``norm_0``, ``norm_1``,
    [``norm_s``]. Parameters: ``9·fin·fmiddle + fmiddle + 9·fmiddle·fout + fout + spade(fin) +
    spade(fmiddle)``, plus ``fin·fout + spade(fin)`` with the learned shortcut, where ``spade(c) =
    k²·S·hidden + hidden + 2·(k²·hidden·c + c)``.

    Deviations from the reference: SyncBatchNorm is plain batch norm (the same statistics on one device;
    DDP users may convert it). Spectral norm is torch's parametrization, which runs 15 power iterations
    when attached where the reference's hook starts from a random u; the state_dict therefore holds
    ``conv_0.conv.parametrizations.weight.original`` (and ``.0._u``, ``.0._v``) for the reference's
    ``conv_0.weight_orig`` (``weight_u``, ``weight_v``) -- each conv is a :class:`~blocks.Conv2dLayer`,
    one ``.conv`` level deeper. The SPADE width, kernel and norm, hard-coded or parsed from ``norm_G`` in
    the reference, are arguments.

    Args:
        in_channels: channels C of x (the reference's fin).
        out_channels: output channels (fout); ``in_channels != out_channels`` adds the learned shortcut.
        seg_channels: channels S of the label map (the reference's semantic_nc).
        hidden_channels: width of each SPADE's shared embedding (nhidden, hard-coded 128).
        kernel_size: square kernel of the SPADE convs (the "3x3" of spadesyncbatch3x3); ``conv_0`` and
            ``conv_1`` are always 3x3.
        norm: SPADE's parameter-free norm, ``"batch"`` (syncbatch) or ``"instance"``.
        sn: spectral-normalise ``conv_0``, ``conv_1`` and ``conv_s`` (the "spectral" of norm_G).

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - seg: (B, S, H', W') with S = seg_channels, any H', W' (resized to (H, W) with nearest neighbour).
        - output: (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        seg_channels: int,
        hidden_channels: int = 128,
        kernel_size: int = 3,
        norm: str = "batch",
        sn: bool = True,
    ):
        super().__init__()
        _check_sizes(self, in_channels=in_channels, out_channels=out_channels, seg_channels=seg_channels)
        if norm not in SPADE.norms:
            raise self.fail(f"norm must be one of {SPADE.norms}, got {norm!r}")
        self.in_channels, self.out_channels, self.seg_channels = in_channels, out_channels, seg_channels
        self.learned_shortcut = in_channels != out_channels
        middle = min(in_channels, out_channels)
        spade = {"seg_channels": seg_channels, "hidden_channels": hidden_channels, "kernel_size": kernel_size,
                 "norm": norm}
        self.conv_0 = Conv2dLayer(in_channels, middle, 3, padding=1, sn=sn)
        self.conv_1 = Conv2dLayer(middle, out_channels, 3, padding=1, sn=sn)
        if self.learned_shortcut:
            self.conv_s = Conv2dLayer(in_channels, out_channels, 1, padding=0, bias=False, sn=sn)
        self.norm_0 = SPADE(in_channels, **spade)
        self.norm_1 = SPADE(middle, **spade)
        if self.learned_shortcut:
            self.norm_s = SPADE(in_channels, **spade)

    def shortcut(self, x: Tensor, seg: Tensor) -> Tensor:
        """The skip branch: ``conv_s(norm_s(x, seg))`` when in_channels != out_channels, else x."""
        return self.conv_s(self.norm_s(x, seg=seg)) if self.learned_shortcut else x

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        dims = self.check(x, "B C H W", C=self.in_channels)
        self.check(seg, "B C H W", "seg", B=dims.get("B"), C=self.seg_channels)
        if not seg.is_floating_point():
            raise self.fail(f"seg should be a float (e.g. one-hot) label map, got dtype {seg.dtype}", TypeError)
        x_s = self.shortcut(x, seg)  # (B, out_channels, H, W)
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg=seg), _SLOPE))  # (B, min(in, out), H, W)
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg=seg), _SLOPE))  # (B, out_channels, H, W)
        return x_s + dx

    def out_shape(self, x: Shape, seg: Shape) -> Shape:
        return (x[0], self.out_channels, x[2], x[3])

    @classmethod
    def example(cls, s: Sizes) -> Example:
        out = s.C if s.seed % 2 else s.N  # both shortcuts across draws (identity when C == N)
        labels = s.randint(s.D, s.B, 2 * s.H, 2 * s.W)  # a finer map than x: SPADE resizes it
        seg = F.one_hot(labels, s.D).permute(0, 3, 1, 2).to(s.dtype)  # (B, D, 2H, 2W)
        kwargs = {"in_channels": s.C, "out_channels": out, "seg_channels": s.D, "hidden_channels": 8}
        return Example(kwargs, (s.randn(s.B, s.C, s.H, s.W),), {"seg": seg})

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, learned_shortcut={self.learned_shortcut}"


def _conv_out(size: int, stride: int) -> int:
    """Output size of a 4x4 conv with padding 2 (padw = ceil((kw - 1) / 2) with kw = 4)."""
    return (size + 2 * 2 - 4) // stride + 1


@COMPOSITE.register("nlayer_discriminator", paper=f"{_PAPER}, appendix A (multi-scale PatchGAN after "
                    "pix2pixHD, Wang et al. 2018); NVlabs/SPADE models/networks/discriminator.py "
                    "NLayerDiscriminator, norm_D spectralinstance")
class NLayerDiscriminator(Block):
    """One scale of SPADE's multiscale discriminator, returning every layer's output for feature matching.

    As NVlabs' ``NLayerDiscriminator`` with ``norm_D`` "spectralinstance" (kw 4, padw 2):

    - ``model0``: conv 4x4, stride 2, with bias -> leaky ReLU 0.2;
    - ``model1`` .. ``model{n_layers - 1}``: spectrally normalised conv 4x4 to ``min(2·nf, max_channels)``
      without bias (``get_nonspade_norm_layer`` deletes it: the norm cancels it) -> instance norm (no
      affine) -> leaky ReLU 0.2; stride 2, except the last of them, stride 1;
    - ``model{n_layers}``: conv 4x4 to 1 channel, stride 1, with bias (the patch logits).

    Each ``model{n}`` is an ``nn.Sequential`` nested as the reference's, so its indices match:
    ``model0.0`` and ``model{n_layers}.0`` are the plain convs, ``model{n}.0.0`` the normalised conv and
    ``model{n}.0.1`` its instance norm (with ``norm="none"``, ``model{n}.0`` is the conv, bias kept, as the
    reference's ``get_nonspade_norm_layer`` returns it unwrapped). ``forward`` returns the tuple of all
    n_layers + 1 outputs, each the input of the next sub-model: the features for the feature-matching
    loss, then the patch logits -- the reference's ``results[1:]`` with the ganFeat loss on (its
    ``no_ganFeat_loss`` variant returns only the last). Padding 2 with a 4x4 kernel grows a stride-1
    layer's output by one pixel: H -> H//2 + 1 per stride-2 layer, H + 1 per stride-1 layer.

    This is not pix2pix's PatchGAN (pytorch-CycleGAN-and-pix2pix ``NLayerDiscriminator``: padding 1,
    batch norm, n_layers 3, a single output), which is a different variant.

    Deviations from the reference: each conv is a :class:`~blocks.Conv2dLayer` (one ``.conv`` level
    deeper) and spectral norm is torch's parametrization (``.conv.parametrizations.weight.original`` for
    ``weight_orig``; 15 power iterations when attached where the reference's hook starts from a random u);
    the activations are ganforge's :class:`~blocks.LeakyReLU` (no parameters, same function). Outputs are
    a tuple, not a list. ``sn=False`` with ``norm="instance"`` gives a plain bias-free conv + instance norm
    (the reference's ``get_nonspade_norm_layer`` fails on a norm_D without "spectral"). Only the
    "instance" and "none" sub-norms are offered (the reference also takes batch norms, which SPADE's
    configurations do not use); ``max_channels`` is the reference's hard-coded 512.

    Args:
        in_channels: channels C of the input (input_nc: label channels + image channels, + 1 with an
            instance map; SPADE feeds cat(seg, img)).
        ndf: channels of the first layer.
        n_layers: n_layers_D, the number of feature outputs (>= 1); the block has n_layers + 1 sub-models.
        sn: spectral-normalise the convs of ``model1`` .. ``model{n_layers - 1}``.
        norm: the norm after those convs, ``"instance"`` (no affine, no running statistics) or ``"none"``.
        max_channels: cap of the doubling channel widths.

    Raises:
        ValueError: an input so small that an instance-normalised feature map has a single position.

    Shape:
        - x: (B, C, H, W) with C = in_channels.
        - output: a tuple of n_layers + 1 tensors: (B, ndf, H1, W1) with H1 = H//2 + 1, then per layer n
          (B, min(ndf·2ⁿ, max_channels), Hn, Wn) with Hn = H(n-1)//2 + 1 (stride 2) or H(n-1) + 1 (the
          stride-1 last of them), and finally the logits (B, 1, H' + 1, W' + 1) from the last (H', W').
    """

    norms = ("instance", "none")

    def __init__(
        self,
        in_channels: int,
        ndf: int = 64,
        n_layers: int = 4,
        sn: bool = True,
        norm: str = "instance",
        max_channels: int = 512,
    ):
        super().__init__()
        _check_sizes(self, in_channels=in_channels, ndf=ndf, n_layers=n_layers, max_channels=max_channels)
        if norm not in self.norms:
            raise self.fail(f"norm must be one of {self.norms}, got {norm!r}")
        self.in_channels, self.ndf, self.n_layers, self.norm = in_channels, ndf, n_layers, norm
        self.max_channels = max_channels
        self.strides = [2] + [1 if n == n_layers - 1 else 2 for n in range(1, n_layers)] + [1]
        self.widths = [ndf]
        self.model0 = nn.Sequential(Conv2dLayer(in_channels, ndf, 4, stride=2, padding=2), LeakyReLU(_SLOPE))
        for n in range(1, n_layers):
            self.widths.append(min(self.widths[-1] * 2, max_channels))
            conv = Conv2dLayer(self.widths[-2], self.widths[-1], 4, stride=self.strides[n], padding=2,
                               bias=norm == "none", sn=sn)
            layer = conv if norm == "none" else nn.Sequential(conv, InstanceNorm(self.widths[-1]))
            self.add_module(f"model{n}", nn.Sequential(layer, LeakyReLU(_SLOPE)))
        self.widths.append(1)
        self.add_module(f"model{n_layers}", nn.Sequential(Conv2dLayer(self.widths[-2], 1, 4, padding=2)))

    @property
    def models(self) -> list[nn.Sequential]:
        """The sub-models ``model0`` .. ``model{n_layers}``, in order."""
        return [getattr(self, f"model{n}") for n in range(self.n_layers + 1)]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        dims = self.check(x, "B C H W", C=self.in_channels)
        if dims and self.norm == "instance" and self.n_layers > 1:
            _, _, h, w = self.out_shape(tuple(x.shape))[1]
            if h * w == 1:
                raise self.fail(f"x of shape {tuple(x.shape)} is too small: model1's instance norm would see "
                                "a single position (H or W must be >= 2)")
        results = []
        for model in self.models:
            x = model(x)
            results.append(x)
        return tuple(results)

    def out_shape(self, x: Shape) -> list[Shape]:
        b, _, h, w = x
        shapes = []
        for width, stride in zip(self.widths, self.strides, strict=True):
            h, w = _conv_out(h, stride), _conv_out(w, stride)
            shapes.append((b, width, h, w))
        return shapes

    @classmethod
    def example(cls, s: Sizes) -> Example:
        # 2 or 3 layers, the width cap below 4·ndf so that it binds in the 3-layer draws
        kwargs = {"in_channels": s.C, "ndf": s.D, "n_layers": 2 + s.seed % 2, "max_channels": 2 * s.D}
        return Example(kwargs, (s.randn(s.B, s.C, s.H, s.W),))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, ndf={self.ndf}, n_layers={self.n_layers}, norm={self.norm!r}"
