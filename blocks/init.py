"""Initialisers: normal(0, 0.02), orthogonal, xavier, kaiming."""

__all__: list[str] = []
