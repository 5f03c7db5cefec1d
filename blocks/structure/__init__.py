"""Structure: residual, fade-in, ProGAN toRGB/fromRGB, minibatch statistics, register combinators."""

__all__: list[str] = []
