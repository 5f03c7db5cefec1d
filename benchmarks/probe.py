"""The device's limits, measured in the same run as the benchmarks: copy bandwidth and compute rate.

- Bandwidth: ``dst.copy_(src)`` of a tensor much larger than the last-level cache into a destination
  allocated beforehand, counting the bytes read plus the bytes written. The same copy into a fresh tensor
  (``src.clone()``) is measured beside it: the difference is what the memory allocator costs (with
  glibc's malloc every fresh tensor over 32 MiB is a new mmap, so each page faults on first touch).
- Compute rate: a large matmul and a large 3x3 convolution in the run's dtype; the rate is the faster of
  the two. On CUDA the bfloat16 rates are measured too (the reference for "percent of the bf16 rate").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from .timing import time_fn

__all__ = ["Probe", "run_probe"]


@dataclass
class Probe:
    """Measured limits. Rates in bytes/s and FLOP/s; ``sizes`` says what was measured."""

    copy_bytes_per_s: float
    fresh_copy_bytes_per_s: float
    matmul_flops_per_s: float
    conv_flops_per_s: float
    bf16_matmul_flops_per_s: float | None = None
    bf16_conv_flops_per_s: float | None = None
    sizes: dict[str, str] = field(default_factory=dict)
    foreign_cpu: float | None = None  # share of the CPUs other processes used while it ran

    @property
    def bandwidth(self) -> float:
        """The copy rate (read + write) used for the bandwidth floor."""
        return self.copy_bytes_per_s

    @property
    def compute(self) -> float:
        """The compute rate used for the compute floor: the faster of the matmul and the conv."""
        return max(self.matmul_flops_per_s, self.conv_flops_per_s)

    @property
    def bf16_compute(self) -> float | None:
        rates = [r for r in (self.bf16_matmul_flops_per_s, self.bf16_conv_flops_per_s) if r]
        return max(rates) if rates else None

    def best(self, other: Probe) -> Probe:
        """Each rate the higher of the two measurements (load from other processes only lowers them)."""
        def hi(a: float | None, b: float | None) -> float | None:
            return max(a, b) if a is not None and b is not None else a or b

        return Probe(*(hi(getattr(self, k), getattr(other, k)) for k in (
            "copy_bytes_per_s", "fresh_copy_bytes_per_s", "matmul_flops_per_s", "conv_flops_per_s",
            "bf16_matmul_flops_per_s", "bf16_conv_flops_per_s")), sizes=self.sizes)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(bandwidth_bytes_per_s=self.bandwidth, compute_flops_per_s=self.compute,
                 bf16_compute_flops_per_s=self.bf16_compute)
        return d


def _sizes(device: torch.device, small: bool) -> tuple[int, int, tuple[int, int, int, int]]:
    """(copy elements, matmul n, conv (B, C, H, W)) for the device; ``small`` for the tests."""
    if small:
        return 1 << 16, 64, (1, 16, 8, 8)
    if device.type == "cuda":
        return 1 << 28, 8192, (64, 512, 64, 64)  # 1 GiB of float32; ~1.1 TFLOP each
    return 1 << 25, 2048, (8, 512, 32, 32)  # 128 MiB of float32 (4x the L3); 17 and 39 GFLOP


def _copy_times(numel: int, device: torch.device, min_run_time: float) -> tuple[float, float]:
    """Seconds to copy ``numel`` float32 into an existing tensor, and into a fresh one."""
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    copy = time_fn(lambda: dst.copy_(src), device, min_run_time).median
    fresh = time_fn(lambda: src.clone(), device, min_run_time).median
    return copy, fresh


def _rates(device: torch.device, dtype: torch.dtype, n: int, conv: tuple[int, int, int, int],
           min_run_time: float) -> tuple[float, float]:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    mm = time_fn(lambda: torch.mm(a, b), device, min_run_time).median
    B, C, H, W = conv
    x = torch.randn(B, C, H, W, device=device, dtype=dtype)
    w = torch.randn(C, C, 3, 3, device=device, dtype=dtype)
    if device.type == "cpu":  # oneDNN's fastest layout on CPU
        x = x.contiguous(memory_format=torch.channels_last)
        w = w.contiguous(memory_format=torch.channels_last)
    cv = time_fn(lambda: F.conv2d(x, w, padding=1), device, min_run_time).median
    return 2 * n**3 / mm, 2 * B * C * C * 9 * H * W / cv


def run_probe(device: torch.device, dtype: torch.dtype = torch.float32, min_run_time: float = 0.5,
              small: bool = False) -> Probe:
    """Measure copy bandwidth and compute rate on ``device`` (``small``: tiny sizes, for tests)."""
    numel, n, conv = _sizes(device, small)
    copy, fresh = _copy_times(numel, device, min_run_time)
    moved = 2 * numel * 4  # float32, read + written
    mm, cv = _rates(device, dtype, n, conv, min_run_time)
    probe = Probe(moved / copy, moved / fresh, mm, cv, sizes={
        "copy": f"{numel} float32 ({moved // 2 / 2**20:.0f} MiB) read + written",
        "matmul": f"{n}x{n} @ {n}x{n} {str(dtype).removeprefix('torch.')}",
        "conv": f"3x3 conv {conv[1]}->{conv[1]} on {conv} {str(dtype).removeprefix('torch.')}",
    })
    if device.type == "cuda":
        probe.bf16_matmul_flops_per_s, probe.bf16_conv_flops_per_s = (
            (mm, cv) if dtype == torch.bfloat16 else _rates(device, torch.bfloat16, n, conv, min_run_time))
    return probe
