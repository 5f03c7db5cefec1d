"""Mapping networks (StyleGAN)."""

__all__: list[str] = []
