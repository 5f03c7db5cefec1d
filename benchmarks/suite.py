"""Run benchmark cases: time every variant forward and forward + backward, account the work, compare.

For each case and pass (``fwd``: under ``torch.no_grad()``; ``fwd+bwd``: the forward with autograd, then
``torch.autograd.grad`` of the outputs with respect to the float inputs and the parameters, with a fixed
random output gradient), every variant is timed in interleaved rounds. Each row reports the median and
IQR, the work (FLOPs, compulsory bytes, from the default variant), the achieved rates, the floor and the
ratio to it, and the speedup over the case's reference variant.
"""

from __future__ import annotations

import datetime
import fnmatch
import gc
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .block_cases import BLOCK_CASES
from .cases import Built, Case, Context, Variant
from .env import environment, loadavg
from .probe import Probe, run_probe
from .timing import peak_memory, time_interleaved
from .work import Work, compulsory_bytes, count_flops, floor, tensors_in

__all__ = ["MODES", "SCHEMA", "Settings", "all_cases", "run_case", "run_suite", "select"]

SCHEMA = "ganforge.bench/1"
MODES = ("fwd", "fwd+bwd")


@dataclass
class Settings:
    """How long to measure: interleaved rounds, seconds per timed block, warm-up calls, passes."""

    rounds: int = 3
    min_run_time: float = 0.1
    warmup: int = 2
    modes: tuple[str, ...] = MODES


def all_cases() -> list[Case]:
    """Block cases, then the whole recipes that exist."""
    from .recipe_cases import recipe_cases

    return [*BLOCK_CASES, *recipe_cases()]


def select(cases: Iterable[Case], device: torch.device, blocks: list[str] | None = None,
           recipes: list[str] | None = None) -> list[Case]:
    """Cases for the device; ``blocks``/``recipes`` are key patterns (shell wildcards). With neither, all
    cases; with only one of them, only that kind."""
    out = []
    for c in cases:
        if device.type not in c.devices:
            continue
        if blocks is None and recipes is None:
            out.append(c)
            continue
        pats = blocks if c.kind == "block" else recipes
        if pats and any(fnmatch.fnmatch(c.key, p) or fnmatch.fnmatch(c.name, p) for p in pats):
            out.append(c)
    return out


def _thunk(v: Variant, mode: str, grads: list[torch.Tensor]) -> Callable[[], Any]:
    if mode == "fwd":
        def forward() -> Any:
            with torch.no_grad():
                return v.forward()
        return forward

    def forward_backward() -> Any:
        outs = [t for t in tensors_in(v.forward()) if t.requires_grad]
        return torch.autograd.grad(outs, v.wrt, grad_outputs=grads[: len(outs)], allow_unused=True)
    return forward_backward


def _rate_fields(seconds: float, work: Work, probe: Probe, device: torch.device) -> dict[str, Any]:
    flops_per_s, bytes_per_s = work.flops / seconds, work.bytes / seconds
    out = {"flops_per_s": flops_per_s, "bytes_per_s": bytes_per_s}
    if device.type == "cuda":
        out["pct_copy_rate"] = 100 * bytes_per_s / probe.bandwidth
        if probe.bf16_compute:
            out["pct_bf16_rate"] = 100 * flops_per_s / probe.bf16_compute
    return out


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"


_ERRORS = (RuntimeError, NotImplementedError, ValueError, TypeError)


def _run_pass(case: Case, built: Built, mode: str, grads: list[torch.Tensor], work_bytes: int, ctx: Context,
              probe: Probe, settings: Settings, log: Callable[[str], None]) -> list[dict[str, Any]]:
    default, ref = built.default, built.ref
    base: dict[str, Any] = {"case": case.name, "kind": case.kind, "key": case.key, "paper": case.paper,
                            "mode": mode, "config": built.config}
    # One call of each variant: it checks that the formulation runs here, serves as the first warm-up
    # call and, for the default variant, counts the FLOPs.
    thunks, failed, first, flops = {}, {}, {}, 0
    for v in built.variants:
        thunk = _thunk(v, mode, grads)
        try:
            t0 = time.perf_counter()
            if v is default:
                flops = count_flops(thunk)
            else:
                thunk()
            if ctx.device.type == "cuda":
                torch.cuda.synchronize(ctx.device)
            first[v.name] = time.perf_counter() - t0
            thunks[v.name] = thunk
        except _ERRORS as err:
            failed[v.name] = _error(err)
    if default.name not in thunks:
        log(f"  {case.name} {mode}: {failed[default.name]}")
        return [{**base, "variant": default.name, "role": default.role, "default": True,
                 "error": failed[default.name]}]
    work = Work(flops, work_bytes)
    floor_s, bound = floor(work, probe.bandwidth, probe.compute)
    loads: list[float | None] = []
    stats = time_interleaved(thunks, ctx.device, settings.rounds, settings.min_run_time, settings.warmup, first,
                             on_round=lambda: loads.append((loadavg() or [None])[0]))
    ref_s = stats[ref.name].median if ref is not None and ref.name in stats else None
    rows = []
    for v in built.variants:
        row = {**base, "variant": v.name, "role": v.role, "default": v.default}
        if v.name in failed:
            rows.append({**row, "error": failed[v.name]})
            continue
        s = stats[v.name]
        row.update(median_s=s.median, iqr_s=s.iqr, n=s.n, flops=work.flops, bytes=work.bytes, floor_s=floor_s,
                   bound=bound, ratio_to_floor=s.median / floor_s if floor_s > 0 else None,
                   speedup_vs_ref=ref_s / s.median if ref_s else None, loadavg_1m=loads,
                   peak_memory_bytes=peak_memory(thunks[v.name], ctx.device),
                   **_rate_fields(s.median, work, probe, ctx.device))
        rows.append(row)
    d = stats[default.name]
    log(f"  {case.name:<44} {mode:<8} {default.name:<16} {1e3 * d.median:10.3f} ms  "
        f"x{d.median / floor_s:6.2f} floor" + (f"  {ref_s / d.median:5.2f}x vs {ref.name}" if ref_s else ""))
    return rows


def run_case(case: Case, ctx: Context, probe: Probe, settings: Settings,
             log: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    """Time every variant of ``case`` in every pass; one row per (pass, variant); errors become rows."""
    try:
        built = case.build(ctx)
        with torch.no_grad():
            out = built.default.forward()
        fwd_bytes, fb_bytes = compulsory_bytes(built.inputs, built.state, tensors_in(out))
        del out
        grads = [torch.randn_like(t) for t in tensors_in(built.default.forward()) if t.requires_grad]
    except (*_ERRORS, torch.cuda.OutOfMemoryError) as err:
        log(f"  {case.name}: {_error(err)}")
        return [{"case": case.name, "kind": case.kind, "key": case.key, "error": _error(err)}]
    rows = []
    for mode in settings.modes:
        if mode == "fwd+bwd" and not grads:
            continue
        try:
            rows += _run_pass(case, built, mode, grads, fwd_bytes if mode == "fwd" else fb_bytes, ctx, probe,
                              settings, log)
        except (*_ERRORS, torch.cuda.OutOfMemoryError) as err:
            log(f"  {case.name} {mode}: {_error(err)}")
            rows.append({"case": case.name, "kind": case.kind, "key": case.key, "mode": mode, "error": _error(err)})
    del built
    gc.collect()
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def run_suite(cases: list[Case], ctx: Context, settings: Settings | None = None, probe: Probe | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Probe the device, run ``cases``, and return the JSON document (see docs/benchmarks.md)."""
    from .targets import evaluate

    settings = settings or Settings()
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    env = environment(ctx.device)
    if probe is None:
        log(f"probe on {ctx.device.type} ({torch.get_num_threads()} threads, {env['allocator']['name']}) ...")
        probe = run_probe(ctx.device, ctx.dtype)
    log(f"  copy {probe.bandwidth / 1e9:.1f} GB/s (fresh tensor {probe.fresh_copy_bytes_per_s / 1e9:.1f} GB/s), "
        f"compute {probe.compute / 1e9:.1f} GFLOP/s")
    rows: list[dict[str, Any]] = []
    for case in cases:
        rows += run_case(case, ctx, probe, settings, log)
    doc = {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **env,
        "dtype": str(ctx.dtype).removeprefix("torch."),
        "batch_mult": ctx.batch_mult,
        "compile": ctx.compile,
        "settings": asdict(settings),
        "probe": probe.as_dict(),
        "loadavg_end": loadavg(),
        "results": rows,
    }
    doc["targets"] = evaluate(doc)
    return doc
