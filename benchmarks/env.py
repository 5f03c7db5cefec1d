"""What a benchmark ran on: commit, versions, device, threads, memory allocator and machine load."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

__all__ = ["allocator", "commit", "describe_device", "environment", "loadavg"]

_ROOT = Path(__file__).resolve().parent.parent

# Shared objects whose presence in the process map means they replaced glibc's malloc (LD_PRELOAD).
_ALLOCATORS = (("jemalloc", "libjemalloc"), ("tcmalloc", "libtcmalloc"), ("mimalloc", "libmimalloc"))
# Environment variables that tune the allocators (recorded with the results).
_ALLOC_ENV = ("LD_PRELOAD", "MALLOC_CONF", "TCMALLOC_RELEASE_RATE", "MALLOC_MMAP_THRESHOLD_",
              "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def commit() -> dict[str, Any]:
    """The git commit of the checkout and whether the benchmark code or blocks had uncommitted changes."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", "blocks", "benchmarks", "assemble", "recipes")
    return {"sha": sha, "dirty": bool(dirty) if dirty is not None else None}


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
