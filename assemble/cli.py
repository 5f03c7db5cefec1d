"""The ``ganforge`` command line."""

from __future__ import annotations

import argparse
import sys

import blocks


def _cmd_list(args: argparse.Namespace) -> int:
    kinds = [blocks.kind(args.kind)] if args.kind else list(blocks.KINDS.values())
    for reg in kinds:
        keys = reg.list(args.pattern)
        if keys:
            print(f"{reg.kind} ({len(keys)}):")
            for k in keys:
                print(f"  {k}")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    print(blocks.describe(args.block))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganforge", description="Composable GAN components for PyTorch.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    q = sub.add_parser("list", help="list registered blocks by kind", description="List registered blocks.")
    q.add_argument("kind", nargs="?", help=f"one kind: {', '.join(blocks.KINDS)}")
    q.add_argument("--pattern", default="*", help="shell-style wildcard on keys, e.g. '*norm*'")
    q.set_defaults(func=_cmd_list)
    q = sub.add_parser("describe", help="signature, docstring, consumes and paper of a block",
                       description="Describe one registered block.")
    q.add_argument("block", help="registry key, e.g. modulated_conv")
    q.set_defaults(func=_cmd_describe)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError) as err:
        print(f"ganforge {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
