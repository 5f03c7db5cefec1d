"""Conditioning injectors: concatenation, embeddings, heads, augmentation, skip-z, coordinates, noise."""

__all__: list[str] = []
