"""Plain convolution, transposed convolution, linear and embedding layers, each with optional spectral norm.

Each block holds the torch layer as a child (state-dict keys ``conv.weight``, ``linear.bias``,
``embed.weight``), so a borrower's checkpoint of the torch layer loads after adding one prefix, and spectral
norm is torch's parametrization (``blocks.norms.spectral.spectral_norm``): with ``sn=True`` the weight is
stored as ``<child>.parametrizations.weight.original`` and the power-iteration vectors as buffers.

Initialisation is torch's default for the layer; the recipes apply a scheme from ``blocks.init`` (DCGAN's
N(0, 0.02), BigGAN's orthogonal, ...) to the whole network afterwards.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..core import Block, Example, Shape, Sizes
from ..norms.spectral import spectral_norm
from ..registry import LAYERS

__all__ = ["Conv2dLayer", "ConvTranspose2dLayer", "EmbeddingLayer", "LinearLayer"]

_SN_PAPER = "Miyato et al. 2018, Spectral Normalization for GANs, Algorithm 1"
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _conv_out(size: int, kernel_size: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel_size) // stride + 1


def _conv_transpose_out(size: int, kernel_size: int, stride: int, padding: int, output_padding: int) -> int:
    return (size - 1) * stride - 2 * padding + kernel_size + output_padding


def _check_positive(block: Block, **values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise block.fail(f"{name} must be >= 1, got {v}")


@LAYERS.register("conv", paper=f"LeCun et al. 1989 (convolution); optional SN: {_SN_PAPER}")
class Conv2dLayer(Block):
    """A 2-D convolution, optionally spectrally normalised (SN-GAN, SAGAN, BigGAN discriminators).

    With ``sn=True`` this is BigGAN-PyTorch's ``SNConv2d``: the weight, reshaped to
    (out_channels, in_channels·k·k), is divided by its largest singular value, estimated by
    ``sn_iters`` power iterations per training forward (Miyato et al. 2018, Algorithm 1).

    Args:
        in_channels: input channels C.
        out_channels: output channels.
        kernel_size: square kernel size k.
        stride: stride.
        padding: zero (or ``padding_mode``) padding on each side; ``None`` means ``k // 2``, which keeps
            H and W for odd k at stride 1 ("same").
        bias: learn an additive bias.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"`` (torch's).
        sn: spectral-normalise the weight.
        sn_eps: epsilon of the power iteration (torch: 1e-12; BigGAN-PyTorch's ImageNet scripts use 1e-6).
        sn_iters: power iterations per training forward (paper: 1).

    Shape:
        - x: (B, C, H, W)
        - output: (B, out_channels, (H + 2p - k) // stride + 1, (W + 2p - k) // stride + 1)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = True,
        padding_mode: str = "zeros",
        sn: bool = False,
        sn_eps: float = 1e-12,
        sn_iters: int = 1,
    ):
        super().__init__()
        _check_positive(self, in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size,
                        stride=stride, sn_iters=sn_iters)
        if padding_mode not in _PADDING_MODES:
            raise self.fail(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.padding = kernel_size // 2 if padding is None else padding
        if self.padding < 0:
            raise self.fail(f"padding must be >= 0, got {self.padding}")
        self.sn = sn
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, self.padding, bias=bias,
                              padding_mode=padding_mode)
        if sn:
            spectral_norm(self.conv, n_power_iterations=sn_iters, eps=sn_eps)

    def forward(self, x: Tensor) -> Tensor:
        dims = self.check(x, "B C H W", C=self.in_channels)
        if dims and min(dims["H"], dims["W"]) + 2 * self.padding < self.kernel_size:
            raise self.fail(f"x of shape {tuple(x.shape)} is smaller than the kernel "
                            f"({self.kernel_size}x{self.kernel_size}, padding {self.padding})")
        if dims and self.conv.padding_mode == "reflect" and self.padding >= min(dims["H"], dims["W"]):
            raise self.fail(f"reflect padding {self.padding} needs H and W > {self.padding}, got x of shape "
                            f"{tuple(x.shape)}")
        return self.conv(x)

    def out_shape(self, x: Shape) -> Shape:
        b, _, h, w = x
        k, s, p = self.kernel_size, self.stride, self.padding
        return (b, self.out_channels, _conv_out(h, k, s, p), _conv_out(w, k, s, p))

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_channels": s.C, "out_channels": s.D}, (s.randn(s.B, s.C, s.H, s.W),))


@LAYERS.register("conv_transpose", paper="Radford et al. 2016, DCGAN, sec. 3 and fig. 1 (fractionally-"
                 f"strided conv); optional SN: {_SN_PAPER}")
class ConvTranspose2dLayer(Block):
    """A transposed ("fractionally strided") 2-D convolution, DCGAN's upsampling layer.

    The defaults (k=4, stride 2, padding 1) double H and W, as in DCGAN's generator. With ``sn=True`` the
    weight, of layout (in_channels, out_channels, k, k), is normalised along its output dim (torch's
    ``dim=1`` for transposed convs), so σ is the spectral norm of the (out, in·k·k) matrix as for a conv.

    Args:
        in_channels: input channels C.
        out_channels: output channels.
        kernel_size: square kernel size k.
        stride: stride (the upsampling factor).
        padding: implicit padding p removed from each side of the output.
        output_padding: extra rows/columns added to one side of the output (< stride).
        bias: learn an additive bias (DCGAN uses none before batch norm).
        sn: spectral-normalise the weight.
        sn_eps: epsilon of the power iteration.
        sn_iters: power iterations per training forward.

    Shape:
        - x: (B, C, H, W)
        - output: (B, out_channels, (H - 1)·stride - 2p + k + output_padding, same for W)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 4,
        stride: int = 2,
        padding: int = 1,
        output_padding: int = 0,
        bias: bool = True,
        sn: bool = False,
        sn_eps: float = 1e-12,
        sn_iters: int = 1,
    ):
        super().__init__()
        _check_positive(self, in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size,
                        stride=stride, sn_iters=sn_iters)
        if padding < 0 or not 0 <= output_padding < stride:
            raise self.fail(f"need padding >= 0 and 0 <= output_padding < stride={stride}, "
                            f"got padding={padding}, output_padding={output_padding}")
        if kernel_size + output_padding <= 2 * padding:
            raise self.fail(f"kernel_size={kernel_size} + output_padding={output_padding} must exceed "
                            f"2·padding={2 * padding}, or the output can be empty")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.output_padding = (
            kernel_size, stride, padding, output_padding)
        self.sn = sn
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
                                       output_padding, bias=bias)
        if sn:
            spectral_norm(self.conv, n_power_iterations=sn_iters, eps=sn_eps)

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B C H W", C=self.in_channels)
        return self.conv(x)

    def out_shape(self, x: Shape) -> Shape:
        b, _, h, w = x
        k, s, p, op = self.kernel_size, self.stride, self.padding, self.output_padding
        return (b, self.out_channels, _conv_transpose_out(h, k, s, p, op),
                _conv_transpose_out(w, k, s, p, op))

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_channels": s.C, "out_channels": s.D}, (s.randn(s.B, s.C, s.H, s.W),))


@LAYERS.register("linear", paper=f"Rumelhart et al. 1986 (fully connected layer); optional SN: {_SN_PAPER}")
class LinearLayer(Block):
    """A fully connected layer ``x Wᵀ + b``, optionally spectrally normalised (BigGAN's ``SNLinear``).

    Args:
        in_features: input features D.
        out_features: output features.
        bias: learn an additive bias.
        sn: spectral-normalise the (out_features, in_features) weight.
        sn_eps: epsilon of the power iteration.
        sn_iters: power iterations per training forward.

    Shape:
        - x: (B, ..., D) -- any number of middle dims (e.g. tokens N).
        - output: (B, ..., out_features)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        sn: bool = False,
        sn_eps: float = 1e-12,
        sn_iters: int = 1,
    ):
        super().__init__()
        _check_positive(self, in_features=in_features, out_features=out_features, sn_iters=sn_iters)
        self.in_features, self.out_features = in_features, out_features
        self.sn = sn
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        if sn:
            spectral_norm(self.linear, n_power_iterations=sn_iters, eps=sn_eps)

    def forward(self, x: Tensor) -> Tensor:
        self.check(x, "B ... D", D=self.in_features)
        return self.linear(x)

    def out_shape(self, x: Shape) -> Shape:
        return (*x[:-1], self.out_features)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"in_features": s.D, "out_features": s.C}, (s.randn(s.B, s.D),))


@LAYERS.register("embedding", paper="Miyato & Koyama 2018, cGANs with Projection Discriminator, sec. 3 "
                 f"(class embedding); optional SN: {_SN_PAPER}")
class EmbeddingLayer(Block):
    """A learned vector per class, looked up from class indices (BigGAN's ``SNEmbedding`` with ``sn=True``).

    Spectral norm treats the (n_classes, embedding_dim) table as the matrix, with the power-iteration
    vector u of size n_classes, as BigGAN-PyTorch does (projection discriminator's embedding).
    Indices are checked: integer dtype, 1-D, and within [0, n_classes) -- the range check reads the
    values, which synchronises with the device on CUDA (an out-of-range index there would otherwise be an
    unrecoverable device-side assert).

    Args:
        n_classes: number of classes (rows of the table).
        embedding_dim: size D of each embedding.
        sn: spectral-normalise the table.
        sn_eps: epsilon of the power iteration.
        sn_iters: power iterations per training forward.

    Shape:
        - y: (B,) -- class indices, int64 or int32.
        - output: (B, embedding_dim)
    """

    def __init__(
        self,
        n_classes: int,
        embedding_dim: int,
        sn: bool = False,
        sn_eps: float = 1e-12,
        sn_iters: int = 1,
    ):
        super().__init__()
        _check_positive(self, n_classes=n_classes, embedding_dim=embedding_dim, sn_iters=sn_iters)
        self.n_classes, self.embedding_dim = n_classes, embedding_dim
        self.sn = sn
        self.embed = nn.Embedding(n_classes, embedding_dim)
        if sn:
            spectral_norm(self.embed, n_power_iterations=sn_iters, eps=sn_eps)

    def forward(self, y: Tensor) -> Tensor:
        self.check_indices(y, self.n_classes)
        return self.embed(y)

    def out_shape(self, y: Shape) -> Shape:
        return (y[0], self.embedding_dim)

    @classmethod
    def example(cls, s: Sizes) -> Example:
        return Example({"n_classes": s.C, "embedding_dim": s.D}, (s.randint(s.C, s.B),))

