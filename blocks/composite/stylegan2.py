"""Placeholder: filled in by the composite-block work."""

__all__: list[str] = []
