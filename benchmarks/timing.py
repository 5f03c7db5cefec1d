"""Timing with ``torch.utils.benchmark``: warm-up, interleaved rounds, median and interquartile range.

``torch.utils.benchmark``'s timer synchronises the accelerator when it reads the clock, so every timed
block of calls ends with a synchronisation inside the timed region. Formulations that are compared are
measured in interleaved rounds (A B C, B C A, C A B, ...) and each one's samples are merged, so a burst of
load from other processes on a shared machine hits all of them rather than one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.benchmark import Measurement, Timer

__all__ = ["Stats", "peak_memory", "time_fn", "time_interleaved"]


@dataclass
class Stats:
    """Seconds per call: the median and interquartile range over ``n`` timed blocks."""

    median: float
    iqr: float
    n: int

    @classmethod
    def from_measurement(cls, m: Measurement) -> Stats:
        return cls(m.median, m.iqr, len(m.times))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timer(fn: Callable[[], object], label: str) -> Timer:
    return Timer("fn()", globals={"fn": fn}, label=label, num_threads=torch.get_num_threads())


def _warm_up(fn: Callable[[], object], device: torch.device, warmup: int) -> float:
    """Run ``fn`` ``warmup`` times (at least once); return the last call's seconds."""
    last = 0.0
    for _ in range(max(1, warmup)):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        last = time.perf_counter() - t0
    return last


def time_fn(fn: Callable[[], object], device: torch.device, min_run_time: float = 0.2,
            warmup: int = 2) -> Stats:
    """Median and IQR of ``fn`` after ``warmup`` calls (``blocked_autorange``)."""
    _warm_up(fn, device, warmup)
    return Stats.from_measurement(_timer(fn, "probe").blocked_autorange(min_run_time=min_run_time))


def time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device, rounds: int = 3,
                     min_run_time: float = 0.1, warmup: int = 2, first_call: dict[str, float] | None = None,
                     on_round: Callable[[], None] | None = None,
                     after_round: Callable[[], bool] | None = None, retries: int = 0) -> dict[str, Stats]:
    """Time every function in ``rounds`` interleaved rounds; merge each one's samples.

    ``first_call`` gives the seconds of a call the caller already made (it counts as the first warm-up
    call). Functions slower than a second skip further warm-up, and a function whose warm-up call takes
    longer than ``min_run_time`` is timed one call per round (``Timer.timeit(1)``) instead of with
    ``blocked_autorange`` (which would spend extra calls sizing blocks). ``on_round`` runs before each
    round (to wait for a quiet machine, record the load); ``after_round`` after it, and a round for which
    it returns True (disturbed by other processes) is discarded and run again, at most ``retries`` times
    in all.
    """
    names = list(fns)
    first_call = first_call or {}
    last = {}
    for name in names:
        done = first_call.get(name)
        if done is not None and (done > 1.0 or warmup <= 1):
            last[name] = done
        else:
            last[name] = _warm_up(fns[name], device, warmup - (done is not None))
    samples: dict[str, list[Measurement]] = {name: [] for name in names}
    r = 0
    while r < rounds:
        if on_round is not None:
            on_round()
        taken = {}
        for name in names[r % len(names):] + names[: r % len(names)]:
            timer = _timer(fns[name], name)
            slow = last[name] > min_run_time
            taken[name] = timer.timeit(1) if slow else timer.blocked_autorange(min_run_time=min_run_time)
        if after_round is not None and after_round() and retries > 0:
            retries -= 1
            continue
        for name, m in taken.items():
            samples[name].append(m)
        r += 1
    out = {}
    for name, ms in samples.items():
        merged = Measurement.merge(ms)
        out[name] = Stats.from_measurement(merged[0])
    return out


def peak_memory(fn: Callable[[], object], device: torch.device) -> int | None:
    """Bytes allocated at the peak of one call of ``fn`` beyond what was allocated before it (CUDA only)."""
    if device.type != "cuda":
        return None
    _sync(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    _sync(device)
    return torch.cuda.max_memory_allocated(device) - before
