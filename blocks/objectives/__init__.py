"""Objectives: adversarial and auxiliary losses, and regularizers."""

__all__: list[str] = []
