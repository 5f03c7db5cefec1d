"""What a benchmark ran on: commit, versions, device, threads, memory allocator and machine load."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["CpuMeter", "allocator", "commit", "describe_device", "environment", "loadavg", "wait_for_quiet"]

_ROOT = Path(__file__).resolve().parent.parent

# Shared objects whose presence in the process map means they replaced glibc's malloc (LD_PRELOAD).
_ALLOCATORS = (("jemalloc", "libjemalloc"), ("tcmalloc", "libtcmalloc"), ("mimalloc", "libmimalloc"))
# Environment variables that tune the allocators (recorded with the results).
_ALLOC_ENV = ("LD_PRELOAD", "MALLOC_CONF", "TCMALLOC_RELEASE_RATE", "MALLOC_MMAP_THRESHOLD_",
              "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def commit() -> dict[str, Any]:
    """The git commit of the checkout, and the files of blocks/, benchmarks/ (results aside), assemble/ and
    recipes/ that differed from it (uncommitted work of anyone sharing the checkout)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", "blocks", "benchmarks", "assemble", "recipes",
                 ":(exclude)benchmarks/results")
    changed = [line[3:] for line in status.splitlines() if line.strip()] if status else []  # "XY path"
    sha = sha.strip() if sha else None
    return {"sha": sha, "dirty": bool(changed) if status is not None else None, "changed": changed[:20]}


def allocator() -> dict[str, Any]:
    """The malloc in use: ``glibc`` unless jemalloc/tcmalloc/mimalloc is mapped into this process."""
    name = "glibc"
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps, name = "", "unknown"
    for label, lib in _ALLOCATORS:
        if lib in maps:
            name = label
            break
    env = {k: os.environ[k] for k in _ALLOC_ENV if k in os.environ}
    return {"name": name, "env": env}


def loadavg() -> list[float] | None:
    """``os.getloadavg()`` (1, 5 and 15 minutes), or None where the platform has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return total - idle, total


def _own_ticks() -> int:
    """User + system clock ticks of this process (all its threads)."""
    t = os.times()
    return round((t.user + t.system) * os.sysconf("SC_CLK_TCK"))


class CpuMeter:
    """How busy the CPUs were with *other* processes between two calls of :meth:`read`.

    The load average counts this benchmark's own threads too; this does not: it is (all CPUs' busy
    time - this process's CPU time) / all CPUs' time, between 0 (nothing else ran) and 1.
    """

    def __init__(self) -> None:
        self._last = self._now()

    @staticmethod
    def _now() -> tuple[int, int, int] | None:
        ticks = _cpu_ticks()
        return None if ticks is None else (*ticks, _own_ticks())

    def read(self) -> float | None:
        now, last = self._now(), self._last
        self._last = now
        if now is None or last is None or now[1] <= last[1]:
            return None
        busy, total, own = (a - b for a, b in zip(now, last))
        return round(min(1.0, max(0.0, (busy - own) / total)), 3)


def wait_for_quiet(max_wait: float, threshold: float = 0.1, window: float = 1.0) -> tuple[float, float | None]:
    """Sleep until other processes used less than ``threshold`` of the CPUs over ``window`` seconds, or
    ``max_wait`` seconds have passed. Returns (seconds waited, the last window's foreign CPU share)."""
    start, meter = time.monotonic(), CpuMeter()
    while True:
        time.sleep(window)
        share = meter.read()
        waited = time.monotonic() - start
        if share is None or share < threshold or waited >= max_wait:
            return waited, share


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device: torch.device) -> dict[str, Any]:
    """Name and capabilities of the device the benchmark runs on."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {"type": "cuda", "name": props.name, "capability": f"{props.major}.{props.minor}",
                "memory_bytes": props.total_memory, "sm_count": props.multi_processor_count,
                "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    return {"type": device.type, "name": _cpu_name(), "logical_cpus": os.cpu_count(),
            "capability": torch.backends.cpu.get_cpu_capability()}


def environment(device: torch.device) -> dict[str, Any]:
    """Everything recorded beside the results: commit, versions, device, threads, allocator, load."""
    return {
        "commit": commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": describe_device(device),
        "threads": torch.get_num_threads(),
        "allocator": allocator(),
        "loadavg_start": loadavg(),
    }
