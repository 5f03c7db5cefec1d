"""Text and JSON renderings of a recipe's plans: one table per network, totals after each."""

from __future__ import annotations

from typing import Any

from .network import Plan


def human(n: float) -> str:
    """1234567 -> '1.23M' (FLOPs)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def totals(plan: Plan) -> dict[str, int]:
    """The network's parameters (every block's, including blocks a progressive network does not run at the
    stage shown) and the FLOPs per sample of the steps shown."""
    shown = sum(r.params for r in plan.rows)
    return {"params": shown if plan.params is None else plan.params, "flops": sum(r.flops for r in plan.rows)}


def render_table(name: str, plans: dict[str, Plan]) -> str:
    lines = []
    for net, plan in plans.items():
        rows = [("step", "block", "output (C, H, W)", "params", "FLOPs", "consumes")]
        for r in plan.rows:
            ctx = f" [{r.context}]" if r.context else ""
            rows.append((r.path + ctx, r.block, r.shape, f"{r.params:,}", human(r.flops), ",".join(r.consumes)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        widths[0] = min(widths[0], 90)
        t = totals(plan)
        lines.append(f"{name} -- {net}")
        for i, row in enumerate(rows):
            cells = [row[0][: widths[0]].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]),
                     row[3].rjust(widths[3]), row[4].rjust(widths[4]), row[5]]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("-" * (sum(widths) + 10))
        outs = ", ".join(f"{k if k != '_' else 'out'} {v}" for k, v in plan.output_shapes.items())
        shown = sum(r.params for r in plan.rows)
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
                    {"path": r.path, "context": r.context, "block": r.block, "output": r.shape,
                     "params": r.params, "flops": r.flops, "consumes": list(r.consumes)}
                    for r in plan.rows
                ],
            }
            for net, plan in plans.items()
        },
        "vars": recipe.get("vars", {}),
    }
