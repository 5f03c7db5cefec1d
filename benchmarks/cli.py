"""Command-line glue shared by ``ganforge bench`` and ``python -m benchmarks``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_arguments", "main", "run"]

DTYPES = ("float32", "bfloat16", "float16")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bench options (cheap: nothing heavy is imported here)."""
    p.add_argument("--block", action="append", metavar="KEY",
                   help="benchmark this block (registry key or case name, wildcards allowed); repeatable")
    p.add_argument("--recipe", action="append", metavar="NAME",
                   help="benchmark this recipe's G and D at batch 2 (ref vs fast paths); repeatable")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="device (default: cpu)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="dtype of inputs and weights")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    p.add_argument("--markdown", metavar="PATH", help="write a markdown summary here")
    p.add_argument("--pass", dest="modes", action="append", choices=("fwd", "fwd+bwd"),
                   help="only this pass (default: both)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default: 3)")
    p.add_argument("--min-run-time", type=float, default=0.1,
                   help="seconds per timed block of calls, per round (default: 0.1)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up calls per variant (default: 2)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each timing round, wait up to SECONDS for other processes to leave the CPUs idle "
                        "(shared machines; default: 0, no wait)")
    p.add_argument("--batch-mult", type=int, default=1, help="multiply the block cases' batch sizes")
    p.add_argument("--compile", action="store_true", help="add torch.compile rows (optional; slow to build)")
    p.add_argument("--quick", action="store_true",
                   help="tiny probe, one short round: checks the plumbing (the numbers mean nothing)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--compare", nargs=2, metavar=("BASE", "NEW"),
                   help="compare two result files (e.g. glibc vs jemalloc) and exit")


def run(args: argparse.Namespace) -> int:
    import torch

    from .cases import Context
    from .probe import run_probe
    from .report import compare, markdown, table
    from .suite import MODES, Settings, all_cases, run_suite, select

    if args.compare:
        base, new = (json.loads(Path(f).read_text()) for f in args.compare)
        print(compare(base, new))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("ganforge bench: --device cuda, but CUDA is not available here", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cases = select(all_cases(), device, args.block, args.recipe)
    if not cases:
        print(f"ganforge bench: no case matches --block {args.block} --recipe {args.recipe} on {args.device} "
              "(see --list)", file=sys.stderr)
        return 2
    if args.list:
        for c in cases:
            print(f"{c.kind:<7} {c.name:<48} {c.paper}")
        return 0
    ctx = Context(device, getattr(torch, args.dtype), args.batch_mult, args.compile)
    modes = tuple(args.modes or MODES)
    if args.quick:
        settings = Settings(1, 0.001, 1, modes)
        probe = run_probe(device, ctx.dtype, min_run_time=0.001, small=True)
    else:
        settings, probe = Settings(args.rounds, args.min_run_time, args.warmup, modes, args.wait_quiet), None
    doc = run_suite(cases, ctx, settings, probe)
    print(table(doc))
    for t in doc["targets"]:
        met = {True: "met", False: "MISSED", None: "not run"}[t["met"]]
        value = "-" if t["value"] is None else f"{t['value']:.3g}"
        print(f"target {met:<7} {t['target']}  (value {value})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(doc, f"ganforge benchmarks: {args.device}, {args.dtype}") + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    add_arguments(p)
    return run(p.parse_args(argv))
