"""Convolutions and linear layers: plain (with optional spectral norm), equalized, modulated, styled."""

__all__: list[str] = []
