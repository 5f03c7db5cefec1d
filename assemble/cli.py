"""The ``ganforge`` command line: list, describe, show (and train, sample, eval, export, bench)."""

from __future__ import annotations

import argparse
import json
import os
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


# ---- train --------------------------------------------------------------------------------------------


def _parse_kv(items: list[str]) -> dict:
    from .recipe import parse_set

    return dict(parse_set(i) for i in items)


def _cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .train.objective import TrainingError
    from .train.run import RunOptions, train

    data_options = _parse_kv(args.data_option)
    if args.size is not None:
        data_options["size"] = args.size
    opts = RunOptions(recipe=args.recipe, out=Path(args.out), data=args.data, data_options=data_options,
                      steps=args.steps, sets=args.sets, train_overrides=_parse_kv(args.train), resume=args.resume,
                      device=args.device, deterministic=args.deterministic, progress=not args.no_progress,
                      check_sync=args.check_sync, seed=args.seed)
    try:
        summary = train(opts)
    except TrainingError as err:
        print(f"ganforge train: {err}", file=sys.stderr)
        return 3
    if os.environ.get("RANK", "0") == "0":
        metrics = summary.get("metrics") or {}
        shown = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        print(f"trained {summary['recipe']} for {summary['steps']} steps in {summary['wall_s']:.1f} s; "
              f"outputs in {args.out}")
        if shown:
            print("metrics: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in shown.items()))
    return 0


@command
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a recipe on built-in data or a folder",
        description="Train a recipe. Writes checkpoints (safetensors + JSON), sample grids, a loss plot, "
                    "metrics.jsonl and summary.json to --out. Runs data-parallel under torchrun.")
    _recipe_args(p)
    p.add_argument("--data", help="a built-in dataset (ring8, grid25, swiss_roll, digits, stacked_digits, "
                                  "shapes) or a folder of images / image+label-map pairs (default: the recipe's)")
    p.add_argument("--size", type=int, help="image size for image datasets (e.g. 16 for digits)")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help="another dataset option (n=5000, channels=1, crop=false); repeatable")
    p.add_argument("--steps", type=int, help="generator steps to train (default: the recipe's train.steps)")
    p.add_argument("--out", default="runs/latest", help="run directory (default: runs/latest)")
    p.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                   help="override a train setting (batch=64, n_critic=5, precision=bf16); repeatable")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--seed", type=int, help="override train.seed")
    p.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--check-sync", action="store_true",
                   help="under torchrun: verify after every step that all ranks hold identical parameters")
    p.set_defaults(func=_cmd_train)


# ---- eval -------------------------------------------------------------------------------------------


def _cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .train.distributed import World
    from .train.evaluate import evaluate
    from .train.run import RunOptions, prepare

    run_dir = Path(args.run)
    if not any(run_dir.glob("ckpt-*.json")):
        raise ValueError(f"no checkpoint in {run_dir}: expected a run directory written by `ganforge train`")
    opts = RunOptions(recipe="", out=run_dir, resume=True, progress=False, data=args.data,
                      data_options=_parse_kv(args.data_option))
    trainer, info = prepare(opts, World())
    metrics = evaluate(trainer)
    result = {"checkpoint": info["resumed_from"], "step": trainer.step, "metrics": metrics}
    text = json.dumps(result, indent=1, default=str)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 0


@command
def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="the metrics of a run's latest checkpoint (mode coverage, digit classifier)",
        description="Evaluate the newest valid checkpoint of a run directory with the metrics that fit its "
                    "data: modes covered and high-quality fraction on toy data, the classifier's confident "
                    "fraction and class histogram on digits, modes out of 1000 on stacked digits.")
    p.add_argument("run", help="a run directory written by `ganforge train`")
    p.add_argument("--data", help="evaluate against another dataset than the run's")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", help="also write the result here")
    p.set_defaults(func=_cmd_eval)


# ---- sample ---------------------------------------------------------------------------------------


def _cmd_sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .sample import load_generator, write_all

    G, state = load_generator(args.checkpoint, device=args.device, ema=not args.no_ema)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"samples-{state.get('step', 0)}"
    files = write_all(G, out, n=args.n, seed=args.seed, psis=tuple(args.psi), thresholds=tuple(args.threshold),
                      steps=args.steps, cutoff=args.cutoff)
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


@command
def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample", help="grids, truncation, interpolation, style mixing, latent arithmetic from a checkpoint",
        description="Write sample figures from a checkpoint (its EMA generator when present): grid.png, "
                    "truncation_psi.png (StyleGAN's w-average truncation, or z scaling without a mapping "
                    "network), truncation_z.png (BigGAN's resampling beyond a threshold), interp_lerp.png, "
                    "interp_slerp.png, style_mixing.png (recipes with per-layer styles) and arithmetic.png "
                    "(DCGAN-style vector arithmetic on averaged latents).")
    p.add_argument("checkpoint", help="a checkpoint (.json or .safetensors) or a run directory (its latest)")
    p.add_argument("--out", help="output folder (default: next to the checkpoint)")
    p.add_argument("--n", type=int, default=64, help="samples in the grid (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--psi", type=float, nargs="+", default=[1.0, 0.7, 0.5, 0.0], help="truncation psi values")
    p.add_argument("--cutoff", type=int, help="truncate only the first CUTOFF style layers")
    p.add_argument("--threshold", type=float, nargs="+", default=[2.0, 1.0, 0.5],
                   help="BigGAN truncation thresholds")
    p.add_argument("--steps", type=int, default=8, help="interpolation steps")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-ema", action="store_true", help="use the raw generator instead of its EMA")
    p.set_defaults(func=_cmd_sample)


# ---- convert ------------------------------------------------------------------------------------------


def _cmd_convert(args: argparse.Namespace) -> int:
    from .convert import ConversionError, convert

    try:
        summary = convert(args.src, args.format, args.out, recipe=args.recipe, sets=args.sets)
    except ConversionError as err:
        print(f"ganforge convert: {err}", file=sys.stderr)
        return 2
    nets = ", ".join(summary["networks"])
    print(f"converted {args.src} ({args.format}) into {args.out}: recipe {summary['recipe']}, networks {nets}, "
          f"step {summary['step']}; checkpoint {summary['checkpoint']}")
    return 0


@command
def _add_convert(sub: argparse._SubParsersAction) -> None:
    from .convert import FORMATS, biggan, dcgan, spade, stylegan2  # noqa: F401  (register the formats)

    p = sub.add_parser(
        "convert", help="the authors' checkpoints (StyleGAN2-ADA, rosinality, BigGAN-PyTorch, SPADE, DCGAN) as a run",
        description="Convert a checkpoint of the authors' code into a ganforge run folder (safetensors and the "
                    "recipe): ganforge sample, export and train --resume work on it. The configuration is read "
                    "from the checkpoint; nothing in it is executed. See docs/convert.md.")
    p.add_argument("src", help="the checkpoint file or folder")
    p.add_argument("--from", dest="format", required=True, choices=sorted(FORMATS), help="its format")
    p.add_argument("--out", required=True, help="the run folder to write")
    p.add_argument("--recipe", help="convert into this recipe (default: the format's: stylegan2, biggan, ...)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a recipe setting the checkpoint does not fix; a different value for one it fixes is an "
                        "error naming both")
    p.set_defaults(func=_cmd_convert)


# ---- export -------------------------------------------------------------------------------------------


def _batch_arg(value: str) -> int | None:
    if value == "dynamic":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch takes a number or 'dynamic', got {value!r}") from None


def _psi_arg(value: str) -> float | None:
    if value == "input":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--psi takes a number or 'input', got {value!r}") from None


def _cmd_export(args: argparse.Namespace) -> int:
    from .exporter import export
    from .generator import load_generator

    G = load_generator(args.run, ema=not args.no_ema)
    if args.stage is not None:
        G.network.set_stage(args.stage)
    try:
        sidecar = export(G, args.format, args.out, batch=args.batch, psi=args.psi, noise=args.noise,
                         opset=args.opset, check=args.check)
    except RuntimeError as err:  # a missing optional package: one readable line
        print(f"ganforge export: {err}", file=sys.stderr)
        return 2
    ins = ", ".join(f"{i['name']} {tuple(i['shape'])} {i['dtype']}" for i in sidecar["inputs"])
    print(f"wrote {args.out} ({args.format}, {sidecar['recipe']} step {sidecar['step']}); inputs: {ins}; "
          f"output: image {tuple(sidecar['output']['shape'])}; sidecar {args.out}.json")
    if "check" in sidecar:
        print("check, relative difference to eager: "
              + ", ".join(f"{k.replace('_', ' ')} {v:.2e}" for k, v in sidecar["check"].items()))
    return 0


@command
def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a run's generator to ONNX or torch.export (with a JSON sidecar)",
        description="Export the EMA generator of a run (or checkpoint) in eval mode. Inputs keep the recipe's "
                    "names (z, c, seg, ...), the output is 'image' in [-1, 1]; the batch axis is dynamic unless "
                    "--batch is given. ONNX needs pip install 'ganforge[export]'. See docs/export.md.")
    p.add_argument("run", help="a run directory (its newest checkpoint) or a checkpoint file")
    p.add_argument("--format", required=True, choices=["onnx", "torch-export"])
    p.add_argument("--out", required=True, help="the file to write (.onnx, or .pt2 for torch-export)")
    p.add_argument("--batch", type=_batch_arg, default=None, help="a fixed batch size, or 'dynamic' (default)")
    p.add_argument("--psi", type=_psi_arg, default=1.0,
                   help="truncation folded into the graph (default 1: none), or 'input' for a psi input")
    p.add_argument("--noise", choices=["const", "input"], default="const",
                   help="noise layers: their constant noise (default), or one input per layer")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--stage", type=int, help="progressive recipes: the stage to export (default: the checkpoint's)")
    p.add_argument("--check", action="store_true",
                   help="run the exported file (onnxruntime / torch.export.load) against eager and print the "
                        "relative difference")
    p.add_argument("--no-ema", action="store_true", help="export the raw generator instead of its EMA")
    p.set_defaults(func=_cmd_export)


# ---- bench --------------------------------------------------------------------------------------------


def _cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.cli import run

    return run(args)


@command
def _add_bench(sub: argparse._SubParsersAction) -> None:
    from benchmarks.cli import add_arguments

    p = sub.add_parser(
        "bench", help="time hot blocks and whole recipes, reference vs fast paths, against the device's floor",
        description="Benchmark blocks at their papers' shapes and whole recipes (batch 2), forward and "
                    "forward+backward, every fast path against its reference; report FLOPs, bytes, achieved "
                    "rates and the ratio to the floor measured by a probe in the same run. See "
                    "docs/benchmarks.md.")
    add_arguments(p)
    p.set_defaults(func=_cmd_bench)


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
