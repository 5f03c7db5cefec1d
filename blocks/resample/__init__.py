"""Resampling: nearest/bilinear/transposed/pixel-shuffle/FIR up, avg-pool/strided/FIR/unshuffle down."""

__all__: list[str] = []
