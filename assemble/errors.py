"""Recipe errors: every problem carries its recipe path; all found problems are reported at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem in a recipe: where and what.

    ``path`` names the part: a module path such as ``G.synthesis.b8.conv0.out_channels`` (the same path
    ``show``, the state_dict and ``print(G)`` use), or a recipe key such as ``vars.ch`` outside the
    networks. ``where`` is the place in the recipe text (``generator.steps[1].do[0] (r=8)``) when it helps
    to find the line. ``message`` says what was expected, what was found and how to fix it."""

    path: str
    message: str
    where: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text} [at {self.where}]" if self.where else text


class RecipeError(ValueError):
    """A recipe that cannot be built. ``issues`` lists every problem found; ``str()`` shows them all."""

    def __init__(self, issues: list[Issue] | Issue | str, recipe: str = ""):
        if isinstance(issues, str):
            issues = [Issue("", issues)]
        elif isinstance(issues, Issue):
            issues = [issues]
        self.issues = list(issues)
        self.recipe = recipe
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"recipe '{self.recipe}'" if self.recipe else "recipe"
        if len(self.issues) == 1:
            return f"{where}: {self.issues[0]}"
        lines = [f"{where} has {len(self.issues)} problems:"] + [f"  - {i}" for i in self.issues]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._message()


class Collector:
    """Gathers issues during a pass, so that all of them are reported together."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, path: str, message: str, where: str = "") -> None:
        issue = Issue(path, message, where)
        if issue not in self.issues:
            self.issues.append(issue)

    def raise_if_any(self, recipe: str = "") -> None:
        if self.issues:
            raise RecipeError(self.issues, recipe)

    def __bool__(self) -> bool:
        return bool(self.issues)
