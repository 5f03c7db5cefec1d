"""Attention: SAGAN/BigGAN self-attention and cross-attention to a token sequence."""

__all__: list[str] = []
