"""Readable output of a run: the full table, a markdown summary, and a comparison of two runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["compare", "markdown", "table"]


def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def _ms(s: float | None) -> str:
    if s is None:
        return "-"
    ms = 1e3 * s
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _grid(rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    if markdown:
        lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _variant_label(r: dict[str, Any]) -> str:
    mark = "*" if r.get("default") else ""
    return f"{r['variant']}{mark}" + (" (ref)" if r.get("role") == "ref" else "")


def table(doc: dict[str, Any]) -> str:
    """Every row: time, spread, work, rates, floor, ratio, speedup (and CUDA's memory and percentages)."""
    cuda = doc["device"]["type"] == "cuda"
    head = ["case", "pass", "variant", "median ms", "IQR ms", "GFLOP/s", "GB/s", "floor ms", "bound",
            "x floor", "vs ref"]
    if cuda:
        head += ["peak MiB", "% copy", "% bf16"]
    rows = [head]
    for r in doc["results"]:
        if "error" in r:
            rows.append([r["case"], r.get("mode", "-"), r.get("variant", "-"), "error: " + r["error"][:60]]
                        + [""] * (len(head) - 4))
            continue
        row = [r["case"], r["mode"], _variant_label(r), _ms(r["median_s"]), _ms(r["iqr_s"]),
               _fmt(r["flops_per_s"] / 1e9 if r["flops"] else None), _fmt(r["bytes_per_s"] / 1e9),
               _ms(r["floor_s"]), r["bound"], _fmt(r["ratio_to_floor"], ".2f"), _fmt(r["speedup_vs_ref"], ".2f")]
        if cuda:
            peak = r.get("peak_memory_bytes")
            row += [_fmt(peak / 2**20 if peak is not None else None, ".0f"), _fmt(r.get("pct_copy_rate"), ".0f"),
                    _fmt(r.get("pct_bf16_rate"), ".1f")]
        rows.append(row)
    return _grid(rows)


def _header(doc: dict[str, Any]) -> list[str]:
    p, dev, alloc = doc["probe"], doc["device"], doc["allocator"]
    env = ", ".join(f"{k}={v}" for k, v in alloc["env"].items()) or "no allocator variables"
    changed = doc["commit"].get("changed") or []
    sha = (doc["commit"]["sha"] or "?")[:10] + (
        f" (uncommitted changes: {', '.join(changed) or 'yes'})" if doc["commit"]["dirty"] else "")
    lines = [
        f"- commit {sha}, torch {doc['torch']}, Python {doc['python']}, {doc['created']}",
        f"- device: {dev['name']} ({dev['type']}), {doc['threads']} threads, dtype {doc['dtype']}",
        f"- allocator: **{alloc['name']}** ({env})",
        f"- load average (1, 5, 15 min): {doc['loadavg_start']} at the start, {doc['loadavg_end']} at the end",
        f"- probe: copy **{p['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s** (read + write; into a fresh tensor "
        f"{p['fresh_copy_bytes_per_s'] / 1e9:.1f} GB/s), compute **{p['compute_flops_per_s'] / 1e9:.1f} GFLOP/s** "
        f"(matmul {p['matmul_flops_per_s'] / 1e9:.1f}, conv {p['conv_flops_per_s'] / 1e9:.1f})",
        f"- timing: {doc['settings']['rounds']} interleaved rounds of >= {doc['settings']['min_run_time']} s "
        f"per variant, {doc['settings']['warmup']} warm-up calls; fwd under no_grad, fwd+bwd = autograd.grad "
        "w.r.t. inputs and parameters",
    ]
    shares = [f for r in doc["results"] for f in r.get("foreign_cpu") or [] if f is not None]
    if shares:
        mean = 100 * sum(shares) / len(shares)
        lines.append(f"- other processes' share of the CPUs during the timing rounds: mean {mean:.0f}%, max "
                     f"{100 * max(shares):.0f}% over {len(shares)} rounds (100% = every core busy with other work)")
    if p.get("bf16_compute_flops_per_s"):
        lines.append(f"- bf16 compute: {p['bf16_compute_flops_per_s'] / 1e12:.1f} TFLOP/s")
    return lines


def markdown(doc: dict[str, Any], title: str = "Benchmark results") -> str:
    """A summary: environment and probe; per case and pass the default's time, ratio to the floor and
    speedup over the reference, with every other variant's time; the targets."""
    out = [f"# {title}", "", *_header(doc), ""]
    for kind, heading in (("block", "Blocks"), ("recipe", "Whole networks (batch 2), reference vs default paths")):
        rows = [["case", "pass", "default", "ms", "IQR", "x floor", "bound", "vs ref", "other variants (ms)"]]
        by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in doc["results"]:
            if r.get("kind") == kind and "mode" in r:
                by_key.setdefault((r["case"], r["mode"]), []).append(r)
        for (case, mode), rs in by_key.items():
            d = next((r for r in rs if r.get("default") and "error" not in r), None)
            others = ", ".join(f"{_variant_label(r)} {_ms(r.get('median_s')) if 'error' not in r else 'error'}"
                               for r in rs if r is not d)
            if d is None:
                rows.append([case, mode, "error", "", "", "", "", "", others])
                continue
            rows.append([case, mode, d["variant"], _ms(d["median_s"]), _ms(d["iqr_s"]),
                         _fmt(d["ratio_to_floor"], ".2f"), d["bound"], _fmt(d["speedup_vs_ref"], ".2f"), others])
        if len(rows) > 1:
            out += [f"## {heading}", "", _grid(rows, markdown=True), ""]
    errors = [r for r in doc["results"] if "error" in r]
    if errors:
        out += ["## Errors", "", *(f"- {r['case']} {r.get('mode', '')} {r.get('variant', '')}: {r['error']}"
                                    for r in errors), ""]
    if doc.get("targets"):
        rows = [["target", "value", "met"]]
        for t in doc["targets"]:
            met = {True: "yes", False: "**no**", None: "not run"}[t["met"]]
            rows.append([t["target"], _fmt(t["value"], ".3g"), met])
        out += ["## Targets", "", _grid(rows, markdown=True), ""]
    out += ["`*` marks the device's default formulation; x floor = median / max(bytes / copy rate, FLOPs / "
            "compute rate); vs ref = reference median / this median.", ""]
    return "\n".join(out)


def compare(base: dict[str, Any], new: dict[str, Any], markdown_out: bool = True) -> str:
    """Per (case, pass, variant) in both runs: the two medians and base / new (> 1: new is faster)."""
    index = {(r["case"], r["mode"], r["variant"]): r for r in base["results"] if "error" not in r and "mode" in r}
    rows = [["case", "pass", "variant", f"{base['allocator']['name']} ms", f"{new['allocator']['name']} ms",
             "speedup"]]
    for r in new["results"]:
        b = index.get((r.get("case"), r.get("mode"), r.get("variant")))
        if b is None or "error" in r:
            continue
        rows.append([r["case"], r["mode"], _variant_label(r), _ms(b["median_s"]), _ms(r["median_s"]),
                     f"{b['median_s'] / r['median_s']:.2f}"])
    pb, pn = base["probe"], new["probe"]
    probe = [["probe", base["allocator"]["name"], new["allocator"]["name"]],
             ["copy into an existing tensor, GB/s", f"{pb['copy_bytes_per_s'] / 1e9:.1f}",
              f"{pn['copy_bytes_per_s'] / 1e9:.1f}"],
             ["copy into a fresh tensor, GB/s", f"{pb['fresh_copy_bytes_per_s'] / 1e9:.1f}",
              f"{pn['fresh_copy_bytes_per_s'] / 1e9:.1f}"]]
    return _grid(probe, markdown_out) + "\n\n" + _grid(rows, markdown_out) + "\n"
