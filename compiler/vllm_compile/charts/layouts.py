"""The layouts the recommender weighed: throughput per GPU (or cost per million output tokens when
a GPU price is known) against ITL, the Pareto frontier drawn, the chosen layout and the runner-up marked."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from ..passes.workload import resolve_workload
from ..plan import LayoutPoint, Plan
from .svg import (
    COLORS,
    bottom_legend,
    element,
    name_series,
    new_chart,
    number,
    plot_group,
    rule,
    to_svg,
    tree,
)


def costed(points: list[LayoutPoint]) -> bool:
    live = [p for p in points if p.starts]
    return bool(live) and all(p.usd_per_mtok is not None for p in live)


def y_value(p: LayoutPoint, by_cost: bool) -> float:
    return float(p.usd_per_mtok if by_cost else p.output_tok_s_per_gpu)  # type: ignore[arg-type]


def _xy(p: LayoutPoint, by_cost: bool) -> tuple[float, float]:
    return float(p.itl_ms), y_value(p, by_cost)  # type: ignore[arg-type]


def draw(plan: Plan) -> str:
    points = [p for p in plan.layouts if p.starts and p.itl_ms is not None]
    by_cost = costed(plan.layouts)
    slo = resolve_workload(plan.resolved.profile.workload).slo
    xs = [_xy(p, by_cost)[0] for p in points]
    ys = [_xy(p, by_cost)[1] for p in points]
    x_hi = max([*xs, float(slo.itl_ms or 0.0)], default=0.0) * 1.15 or 1.0  # an empty axis still spans
    y_hi = max(ys, default=0.0) * 1.12 or 1.0
    skipped = sum(1 for p in plan.layouts if not p.starts)
    series: list[tuple[str, str, list[tuple[float, float]], dict[str, object]]] = []
    hollow: list[str] = []
    for within, gid, label in (
        (True, "series-within", "within the profile"),
        (False, "series-whatif", "what-if: lifts a fixed setting or needs more GPUs"),
    ):
        group = [_xy(p, by_cost) for p in points if p.within_profile is within]
        if group:
            series.append((gid, label, group, {"stroke": False, "dots_size": 4}))
            if not within:
                hollow.append(gid)
    frontier = sorted((_xy(p, by_cost) for p in points if p.frontier), key=lambda xy: xy[0])
    if frontier:
        if by_cost:  # a step after each point: the cheapest cost reached at that ITL or lower
            steps = [frontier[0]]
            for (_x0, y0), (x1, y1) in zip(frontier, frontier[1:], strict=False):
                steps += [(x1, y0), (x1, y1)]
            frontier = steps
        series.append(
            ("frontier", "Pareto frontier", frontier, {"show_dots": False, "stroke_style": {"width": 2}})
        )
    for role, size in (("chosen", 9), ("runner-up", 6)):
        marked = [_xy(p, by_cost) for p in points if p.role == role]
        if marked:
            series.append((role, role, marked, {"stroke": False, "dots_size": size}))
            if role == "runner-up":
                hollow.append(role)
    palette = {
        "series-within": COLORS["weights"],
        "series-whatif": COLORS["weights"],
        "frontier": COLORS["frontier"],
        "chosen": COLORS["cuda_graphs"],
        "runner-up": COLORS["point"],
    }
    chart = new_chart(
        "XY",
        "layouts",
        [palette[gid] for gid, *_rest in series],
        height=460,
        title=(
            f"{plan.resolved.name}: layouts weighed ({len(points)} start"
            + (f", {skipped} do not start" if skipped else "")
            + ")"
        ),
        x_title="ITL at the workload's load (ms, lower is better)",
        y_title="USD per million output tokens" if by_cost else "output tok/s per GPU (higher is better)",
        inverse_y_axis=by_cost,  # cheaper up: the frontier is still the upper-left edge
        xrange=(0.0, x_hi),
        range=(0.0, y_hi),
        **bottom_legend(len(series), len(series), 2),
        value_formatter=number,
        x_value_formatter=number,
    )
    for _gid, label, values, options in series:
        chart.add(label, values, **options)

    def decorate(root: ET.Element) -> None:
        name_series(root, [gid for gid, *_rest in series])
        for gid in hollow:  # open markers: a what-if, the runner-up
            for group in root.iter("g"):
                if group.get("id") in (gid, f"{gid}-dots"):
                    for dot in group.iter("circle"):
                        dot.set("style", "fill:none;stroke-width:1.5")
        plot = plot_group(root)
        if slo.itl_ms is not None:
            top, bottom = chart.view((float(slo.itl_ms), y_hi)), chart.view((float(slo.itl_ms), 0.0))
            rule(plot, "slo-itl", bottom, top, COLORS["slo"], "3,3")
            element(
                plot,
                "text",
                f"ITL SLO {slo.itl_ms:g} ms",
                x=f"{top[0] - 3:.2f}",
                y=f"{min(top[1], bottom[1]) + 10:.2f}",
                text_anchor="end",
                font_size="9",
                fill=COLORS["slo"],
            )
        for p in points:
            px, py = chart.view(_xy(p, by_cost))
            element(
                plot,
                "text",
                f"{p.label} ({p.gpus} GPU{'s' if p.gpus > 1 else ''})",
                class_="point-label",
                x=f"{px + 6:.2f}",
                y=f"{py - 4:.2f}",
                font_size="9",
                fill="#333333",
            )

    return to_svg(tree(chart, decorate))
