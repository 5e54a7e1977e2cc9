"""Deterministic SVG charts from a Plan: memory per GPU, performance vs concurrency, the layouts weighed.

Drawn with pygal (pure-Python SVG; charts/svg.py pins its settings), imported only when a chart is
rendered: `render.py` reaches this package from the `charts` target alone, so a compile whose locks
are current never loads it, and `chart_files` (REPORT.md's links) never imports pygal.
"""

from __future__ import annotations

from ..plan import Plan

CHART_FILES = {
    "memory": "memory.svg",
    "performance": "performance.svg",
    "layouts": "layouts.svg",
}


def chart_files(plan: Plan) -> list[str]:
    """The chart files a plan gets, without drawing them (REPORT.md links them)."""
    out = ["memory"]
    if plan.performance is not None and plan.performance.curve:
        out.append("performance")
    if any(p.starts for p in plan.layouts):
        out.append("layouts")
    return [CHART_FILES[k] for k in out]


def render_charts(plan: Plan) -> dict[str, str]:
    """File name -> SVG text, byte-identical for the same plan on any machine."""
    from . import layouts, memory, performance
    from .svg import check_version

    check_version()

    drawers = {"memory.svg": memory.draw, "performance.svg": performance.draw, "layouts.svg": layouts.draw}
    return {name: drawers[name](plan) for name in chart_files(plan)}
