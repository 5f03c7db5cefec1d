"""ganforge's assembler: recipes, validation, shape inference, building, training and the CLI.

    >>> import assemble
    >>> gan = assemble.build("dcgan")
    >>> gan.G(torch.randn(4, 100)).shape       # doctest: +SKIP
    torch.Size([4, 3, 64, 64])
"""

from .builder import Net, Recipe, Steps
from .errors import Issue, RecipeError
from .exporter import export
from .gan import GAN, build, plan
from .generator import Generator, load_generator
from .network import Network
from .recipe import list_recipes, load

__all__ = ["GAN", "Generator", "Issue", "Net", "Network", "Recipe", "RecipeError", "Steps", "build", "export",
           "list_recipes", "load", "load_generator", "plan"]
