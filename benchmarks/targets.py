"""The issue's performance targets, checked against a run's results (reported, never asserted in tests).

CPU targets are ratios to the floor in float32 forward, speedups and overheads; CUDA targets are
percentages of the measured copy rate, modulated conv against a plain conv of the same shape, attention
memory growth and spectral-norm overhead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TARGETS", "Target", "evaluate"]


@dataclass(frozen=True)
class Target:
    """One target.

    Attributes:
        case: the case name.
        metric: ``"ratio"`` (default variant's time / floor, at most ``limit``), ``"speedup"`` (reference
            time / default time, at least), ``"vs"`` (default time / ``other`` variant's time, at most),
            ``"overhead"`` (default time / reference time - 1, at most), ``"pct_copy"`` (achieved bytes/s in
            percent of the copy rate, at least), ``"memory_growth"`` (peak memory of ``other`` case / this
            case's, per unit of growth in positions, at most).
        limit: the bound.
        mode: ``"fwd"`` or ``"fwd+bwd"``.
        device: device type the target applies to.
        other: the variant (``vs``) or case (``memory_growth``) compared with.
        dtype: only for this dtype (``None``: any).
    """

    case: str
    metric: str
    limit: float
    mode: str = "fwd"
    device: str = "cpu"
    other: str | None = None
    dtype: str | None = "float32"

    def describe(self) -> str:
        what = {
            "ratio": f"<= {self.limit:g}x floor",
            "speedup": f">= {self.limit:g}x faster than ref",
            "vs": f"<= {self.limit:g}x the time of {self.other}",
            "overhead": f"overhead <= {100 * self.limit:g}%",
            "pct_copy": f">= {self.limit:g}% of the copy rate",
            "memory_growth": f"peak memory grows <= {self.limit:g}x as fast as positions (vs {self.other})",
        }[self.metric]
        return f"{self.case} {self.mode}: {what}"


_MOD = "modulated_conv/"
_LAYOUTS = ("", " channels_last")  # the FIR cases run on NCHW and on channels_last input
_BANDWIDTH_BOUND = ("blur_up/128ch 64->128 channels_last", "blur/128ch 64x64 channels_last",
                    "blur_down/128ch 64->32 channels_last",
                    "bias_act/lrelu 256ch 32x32", "pixel_norm/512ch 32x32", "adain/512ch 32x32",
                    "conditional_batch_norm/384ch 32x32", "minibatch_stddev/512ch 4x4")

TARGETS: list[Target] = [
    *(Target(_MOD + c, "ratio", 1.2) for c in ("demod 512ch 16x16", "demod 512ch 32x32", "no demod 512ch 32x32",
                                               "up 512ch 16->32", "down 512ch 32->16")),
    *(Target(f"blur_up/128ch 64->128{cl}", "ratio", 2.5) for cl in _LAYOUTS),
    *(Target(f"blur/128ch 64x64{cl}", "ratio", 3.0) for cl in _LAYOUTS),
    *(Target(f"blur_down/128ch 64->32{cl}", "ratio", 8.0) for cl in _LAYOUTS),
    Target("up_conv/256ch 32->64", "ratio", 2.0),
    Target("bias_act/lrelu 256ch 32x32", "ratio", 2.5),
    Target("adain/512ch 32x32", "ratio", 7.0),
    Target("pixel_norm/512ch 32x32", "ratio", 3.0),
    Target("conditional_batch_norm/384ch 32x32", "ratio", 6.0),
    Target("minibatch_stddev/512ch 4x4", "ratio", 5.0),
    Target("self_attention/192ch 64x64", "vs", 1.0, other="bmm"),
    Target("self_attention/192ch 64x64", "vs", 1.0, "fwd+bwd", other="bmm"),
    Target("spectral_norm/conv 256ch 32x32", "overhead", 0.05),
    Target("spectral_norm/conv 256ch 32x32", "overhead", 0.05, "fwd+bwd"),
    Target("stylegan2/G batch 2", "speedup", 1.5, "fwd+bwd"),
    # CUDA, every dtype run
    *(Target(c, "pct_copy", 70.0, device="cuda", dtype=None) for c in _BANDWIDTH_BOUND),
    *(Target(_MOD + c, "vs", 1.1, device="cuda", other="conv", dtype=None)
      for c in ("demod 512ch 16x16", "demod 512ch 32x32", "up 512ch 16->32", "down 512ch 32->16")),
    Target("self_attention/192ch 32x32 (memory)", "memory_growth", 1.5, "fwd+bwd", "cuda",
           "self_attention/192ch 128x128 (memory)", None),
    Target("spectral_norm/conv 256ch 32x32", "overhead", 0.05, "fwd+bwd", "cuda", dtype=None),
]


def _row(rows: list[dict[str, Any]], case: str, mode: str, variant: str | None = None) -> dict[str, Any] | None:
    for r in rows:
        if r.get("case") == case and r.get("mode") == mode and "error" not in r and (
                r.get("variant") == variant if variant else r.get("default")):
            return r
    return None


def _positions(row: dict[str, Any]) -> int:
    _, _, h, w = row["config"]["x"]
    return h * w


def _value(t: Target, rows: list[dict[str, Any]]) -> float | None:
    r = _row(rows, t.case, t.mode)
    if r is None:
        return None
    if t.metric == "ratio":
        return r["ratio_to_floor"]
    if t.metric == "speedup":
        return r["speedup_vs_ref"]
    if t.metric == "overhead":
        return 1 / r["speedup_vs_ref"] - 1 if r["speedup_vs_ref"] else None
    if t.metric == "pct_copy":
        return r.get("pct_copy_rate")
    if t.metric == "vs":
        o = _row(rows, t.case, t.mode, t.other)
        return r["median_s"] / o["median_s"] if o else None
    if t.metric == "memory_growth":
        big = _row(rows, t.other or "", t.mode)
        if big is None or not r.get("peak_memory_bytes") or big.get("peak_memory_bytes") is None:
            return None
        return (big["peak_memory_bytes"] / r["peak_memory_bytes"]) / (_positions(big) / _positions(r))
    raise ValueError(f"unknown metric {t.metric!r}")


def evaluate(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target that applies to the run's device and dtype, with its value and whether it was met
    (``None`` when the case was not run)."""
    device, dtype, rows = doc["device"]["type"], doc["dtype"], doc["results"]
    out = []
    for t in TARGETS:
        if t.device != device or (t.dtype is not None and t.dtype != dtype):
            continue
        value = _value(t, rows)
        lower_is_better = t.metric in ("ratio", "vs", "overhead", "memory_growth")
        met = None if value is None else (value <= t.limit if lower_is_better else value >= t.limit)
        out.append({"target": t.describe(), "case": t.case, "mode": t.mode, "metric": t.metric,
                    "limit": t.limit, "value": value, "met": met})
    return out
