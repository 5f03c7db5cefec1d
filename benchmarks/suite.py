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
from .env import CpuMeter, environment, loadavg, wait_for_quiet
from .probe import Probe, run_probe
from .timing import peak_memory, time_interleaved
from .work import Work, compulsory_bytes, count_flops, floor, tensors_in

__all__ = ["MODES", "SCHEMA", "Settings", "all_cases", "run_case", "run_suite", "select"]

SCHEMA = "ganforge.bench/1"
# With --wait-quiet: a round counts as disturbed when other processes used more than this share of the CPUs.
QUIET_SHARE = 0.1
MODES = ("fwd", "fwd+bwd")


@dataclass
class Settings:
    """How long to measure: interleaved rounds, seconds per timed block, warm-up calls, passes."""

    rounds: int = 3
    min_run_time: float = 0.1
    warmup: int = 2
    modes: tuple[str, ...] = MODES
    # Before each round wait up to this many seconds for other processes to idle, and run a round again
    # (up to 2 x rounds times per pass) when they were busy during it.
    quiet_wait: float = 0.0


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


def apply_probe(row: dict[str, Any], probe: Probe, device: torch.device) -> dict[str, Any]:
    """Fill a timed row's floor, bound, ratio to the floor and achieved rates from ``probe``."""
    seconds = row["median_s"]
    floor_s, bound = floor(Work(row["flops"], row["bytes"]), probe.bandwidth, probe.compute)
    row.update(floor_s=floor_s, bound=bound, ratio_to_floor=seconds / floor_s if floor_s > 0 else None,
               flops_per_s=row["flops"] / seconds, bytes_per_s=row["bytes"] / seconds)
    if device.type == "cuda":
        row["pct_copy_rate"] = 100 * row["bytes_per_s"] / probe.bandwidth
        if probe.bf16_compute:
            row["pct_bf16_rate"] = 100 * row["flops_per_s"] / probe.bf16_compute
    return row


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
    floor_s, _ = floor(work, probe.bandwidth, probe.compute)
    loads: list[float | None] = []
    foreign: list[float | None] = []
    waited = [0.0]
    meter = CpuMeter()

    def before_round() -> None:
        if settings.quiet_wait > 0:
            waited[0] += wait_for_quiet(settings.quiet_wait, QUIET_SHARE)[0]
        loads.append((loadavg() or [None])[0])
        meter.read()

    def after_round() -> bool:
        share = meter.read()
        foreign.append(share)
        disturbed = settings.quiet_wait > 0 and share is not None and share > QUIET_SHARE
        discarded[0] += disturbed
        return disturbed

    discarded = [0]
    stats = time_interleaved(thunks, ctx.device, settings.rounds, settings.min_run_time, settings.warmup, first,
                             before_round, after_round, retries=2 * settings.rounds if settings.quiet_wait else 0)
    ref_s = stats[ref.name].median if ref is not None and ref.name in stats else None
    rows = []
    for v in built.variants:
        row = {**base, "variant": v.name, "role": v.role, "default": v.default}
        if v.name in failed:
            rows.append({**row, "error": failed[v.name]})
            continue
        s = stats[v.name]
        row.update(median_s=s.median, iqr_s=s.iqr, n=s.n, flops=work.flops, bytes=work.bytes,
                   speedup_vs_ref=ref_s / s.median if ref_s else None, loadavg_1m=loads, foreign_cpu=foreign,
                   quiet_wait_s=round(waited[0], 1), rounds_discarded=discarded[0],
                   peak_memory_bytes=peak_memory(thunks[v.name], ctx.device))
        rows.append(apply_probe(row, probe, ctx.device))
    d = stats[default.name]
    busy = max((f for f in foreign if f is not None), default=0.0)
    log(f"  {case.name:<44} {mode:<8} {default.name:<16} {1e3 * d.median:10.3f} ms  "
        f"x{d.median / floor_s:6.2f} floor" + (f"  {ref_s / d.median:5.2f}x vs {ref.name}" if ref_s else "")
        + (f"  (other processes: up to {100 * busy:.0f}% CPU; {discarded[0]} rounds redone)" if busy > 0.05 else ""))
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


def _probe(ctx: Context, settings: Settings, env: dict[str, Any], log: Callable[[str], None]) -> Probe:
    if settings.quiet_wait > 0:
        wait_for_quiet(settings.quiet_wait, QUIET_SHARE)
    log(f"probe on {ctx.device.type} ({torch.get_num_threads()} threads, {env['allocator']['name']}) ...")
    meter = CpuMeter()
    probe = run_probe(ctx.device, ctx.dtype)
    probe.foreign_cpu = meter.read()
    log(f"  copy {probe.bandwidth / 1e9:.1f} GB/s (fresh tensor {probe.fresh_copy_bytes_per_s / 1e9:.1f} GB/s), "
        f"compute {probe.compute / 1e9:.1f} GFLOP/s")
    return probe


def run_suite(cases: list[Case], ctx: Context, settings: Settings | None = None, probe: Probe | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Probe the device, run ``cases``, and return the JSON document (see docs/benchmarks.md)."""
    from .targets import evaluate

    settings = settings or Settings()
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    env = environment(ctx.device)
    given = probe
    if probe is None:
        probe = _probe(ctx, settings, env, log)
    rows: list[dict[str, Any]] = []
    for case in cases:
        rows += run_case(case, ctx, probe, settings, log)
    probes = [probe]
    if given is None:  # again at the end; the floors use the better of the two (a busy moment only lowers it)
        probes.append(_probe(ctx, settings, env, log))
        probe = probes[0].best(probes[1])
        rows = [apply_probe(r, probe, ctx.device) if "median_s" in r else r for r in rows]
    doc = {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **env,
        "dtype": str(ctx.dtype).removeprefix("torch."),
        "batch_mult": ctx.batch_mult,
        "compile": ctx.compile,
        "settings": asdict(settings),
        "probe": probe.as_dict(),
        "probes": [p.as_dict() for p in probes],
        "loadavg_end": loadavg(),
        "results": rows,
    }
    doc["targets"] = evaluate(doc)
    return doc
