"""Text and JSON renderings of a recipe's plans: one table per network, totals after each.

Each row is one step, by the path that also names it in the state_dict and in errors (``G.synthesis.b8``),
with the registers it reads and writes (``_`` is the current tensor), its output shape, parameters, FLOPs
per sample and the conditioning it consumes (``w[1:4]``: layers 1 to 3 of the per-layer register w).
Steps inside a residual are listed under it, indented; their parameters and FLOPs are in its row.
"""

from __future__ import annotations

from typing import Any

from .infer import Plan, StepReport


def human(n: float) -> str:
    """1234567 -> '1.23M' (FLOPs)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def totals(plan: Plan) -> dict[str, int]:
    """The network's parameters (every block's, including blocks a progressive network does not run at the
    stage shown) and the FLOPs per sample of the steps shown."""
    rows = [r for r in plan.rows if not r.nested]
    shown = sum(r.params for r in rows)
    return {"params": shown if plan.params is None else plan.params, "flops": sum(r.flops for r in rows)}


def _flow(r: StepReport) -> str:
    if r.nested:
        return ""
    reads = ", ".join(r.reads) if r.reads else "-"
    return f"{reads} -> {', '.join(r.writes)}"


def render_table(name: str, plans: dict[str, Plan]) -> str:
    lines = []
    for net, plan in plans.items():
        rows = [("step", "block", "reads -> writes", "output", "params", "FLOPs", "consumes")]
        for r in plan.rows:
            path = f"  {r.path}" if r.nested else r.path
            rows.append((path, r.block, _flow(r), r.shape, f"{r.params:,}", "" if r.nested else human(r.flops),
                         ", ".join(r.consumes)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        widths[0] = min(widths[0], 60)
        t = totals(plan)
        lines.append(f"{name} -- {net}")
        for i, row in enumerate(rows):
            cells = [row[0][: widths[0]].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]),
                     row[3].ljust(widths[3]), row[4].rjust(widths[4]), row[5].rjust(widths[5]), row[6]]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("-" * (sum(widths) + 12))
        outs = ", ".join(f"{k if k != '_' else 'out'} {v}" for k, v in plan.output_shapes.items())
        shown = sum(r.params for r in plan.rows if not r.nested)
        part = f" ({shown:,} in the steps shown)" if shown != t["params"] else ""
        lines.append(f"total: {t['params']:,} parameters{part}, {human(t['flops'])} FLOPs per sample; "
                     f"output: {outs}")
        lines.append("")
    return "\n".join(lines)


def as_json(name: str, recipe: dict[str, Any], plans: dict[str, Plan]) -> dict[str, Any]:
    return {
        "recipe": name,
        "networks": {
            net: {
                "total_params": totals(plan)["params"],
                "total_flops": totals(plan)["flops"],
                "outputs": {k: list(v) for k, v in plan.output_shapes.items()},
                "steps": [
                    {"path": r.path, "block": r.block, "reads": r.reads, "writes": r.writes, "output": r.shape,
                     "params": r.params, "flops": r.flops, "consumes": r.consumes, "nested": r.nested,
                     "where": r.where}
                    for r in plan.rows
                ],
            }
            for net, plan in plans.items()
        },
        "vars": recipe.get("vars", {}),
    }
