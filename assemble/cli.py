"""The ``ganforge`` command line: list, describe, show (and train, sample, eval, bench)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import blocks

from .errors import RecipeError

COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {}


def command(fn: Callable[[argparse._SubParsersAction], None]) -> Callable[[argparse._SubParsersAction], None]:
    COMMANDS[fn.__name__.removeprefix("_add_")] = fn
    return fn


def _recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="a built-in recipe name (see `ganforge list recipes`) or a YAML path")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a variable (resolution=1024) or a dotted path (generator.init=normal); repeatable")


# ---- list / describe / show -----------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    from .recipe import list_recipes

    if args.kind in (None, "recipes"):
        names = list_recipes()
        if args.kind == "recipes" or names:
            print(f"recipes ({len(names)}):")
            for n in names:
                print(f"  {n}")
        if args.kind == "recipes":
            return 0
    kinds = [blocks.kind(args.kind)] if args.kind else list(blocks.KINDS.values())
    for reg in kinds:
        keys = reg.list(args.pattern)
        if keys:
            print(f"{reg.kind} ({len(keys)}):")
            for k in keys:
                e = reg.entry(k)
                extra = f"  [consumes {', '.join(e.consumes)}]" if e.consumes else ""
                print(f"  {k}{extra}")
    return 0


@command
def _add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered blocks by kind, and the built-in recipes",
                       description="List registered blocks (by kind) and built-in recipes.")
    p.add_argument("kind", nargs="?", help=f"'recipes' or one kind: {', '.join(blocks.KINDS)}")
    p.add_argument("--pattern", default="*", help="shell-style wildcard on keys, e.g. '*norm*'")
    p.set_defaults(func=_cmd_list)


def _cmd_describe(args: argparse.Namespace) -> int:
    print(blocks.describe(args.block))
    return 0


@command
def _add_describe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("describe", help="signature, docstring, consumes and paper of a block",
                       description="Describe one registered block, loss, regularizer or initialiser.")
    p.add_argument("block", help="registry key, e.g. modulated_conv")
    p.set_defaults(func=_cmd_describe)


def _cmd_show(args: argparse.Namespace) -> int:
    from .gan import plan
    from .show import as_json, render_table

    recipe, _, plans = plan(args.recipe, sets=args.sets, stage=args.stage)
    name = recipe.get("name", args.recipe)
    if args.json:
        print(json.dumps(as_json(name, recipe, plans), indent=1))
    else:
        print(render_table(name, plans))
    return 0


@command
def _add_show(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show", help="table of steps, shapes, parameters and FLOPs (computed on meta tensors)",
        description="Show a recipe: one table per network with each step's recipe path, block, output "
                    "shape, parameters, FLOPs per sample and consumed conditioning. Nothing is allocated.")
    _recipe_args(p)
    p.add_argument("--stage", type=int, default=None, help="progressive recipes: the stage to show")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=_cmd_show)


# ---- entry point ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganforge", description="Composable GAN components for PyTorch.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS.values():
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RecipeError as err:
        print(f"ganforge {args.command}: {err}", file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError) as err:
        print(f"ganforge {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ganforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
