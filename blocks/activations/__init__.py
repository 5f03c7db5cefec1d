"""Activations and the fused bias + activation (+ gain + clamp) of StyleGAN2."""

__all__: list[str] = []
