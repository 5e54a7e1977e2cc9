"""Performance vs concurrency: TTFT, ITL and output throughput with their ranges, the SLO lines,
the workload's operating point and the concurrency where the KV cache starts to queue requests.

Three pygal XY panels stacked in one SVG; concurrency on a log2 axis (x drawn as log2, labelled
with the powers of two)."""

from __future__ import annotations

import math
from xml.etree import ElementTree as ET

from ..passes.perf import UNCERTAINTY
from ..passes.workload import resolve_workload
from ..plan import Plan
from .svg import (
    COLORS,
    LABEL_FONT,
    MARGIN,
    element,
    label_width,
    name_series,
    new_chart,
    number,
    plot_group,
    rule,
    stack,
    to_svg,
    tree,
)


def _band(values: list[float], u: float, *, time: bool) -> tuple[list[float], list[float]]:
    """The estimate's range, by passes.perf's rule: times u slower or faster, rates the reciprocal."""
    if time:
        return [v * (1 - u) for v in values], [v * (1 + u) for v in values]
    return [v / (1 + u) for v in values], [v / (1 - u) for v in values]


def _ticks(top: float) -> list[float]:
    """About four round value ticks from 0 to at least `top` (a step of 1, 2, 2.5 or 5 x 10^k)."""
    if top <= 0:
        return [0.0, 1.0]
    base = 10 ** math.floor(math.log10(top / 4))
    step = next(m * base for m in (1, 2, 2.5, 5, 10) if m * base * 4 >= top)
    return [k * step for k in range(0, math.ceil(top / step - 1e-9) + 1)]


def draw(plan: Plan) -> str:
    perf = plan.performance
    assert perf is not None
    workload = resolve_workload(plan.resolved.profile.workload)
    curve = perf.curve
    x = [float(row["concurrency"]) for row in curve]
    kv_requests = int(max(plan.memory.kv.tokens, 0) // max(workload.context_tokens, 1.0))
    slo = workload.slo
    op = float(perf.concurrency)
    point = {
        "ttft_ms": perf.ttft_ms.value,
        "itl_ms": perf.itl_ms.value,
        "output_tok_s": perf.output_tok_s.value,
    }
    panels = (
        (
            "ttft_ms",
            "TTFT (ms)",
            "ttft",
            UNCERTAINTY["ttft"],
            True,
            [("p50", slo.ttft_ms_p50), ("p99", slo.ttft_ms_p99)],
        ),
        ("itl_ms", "ITL (ms)", "itl", UNCERTAINTY["itl"], True, [("", slo.itl_ms)]),
        ("output_tok_s", "output tok/s", "throughput", UNCERTAINTY["throughput"], False, []),
    )
    hi_x = max([*x, op, float(kv_requests)]) * 1.25
    x_lo, x_hi = math.log2(0.8), math.log2(hi_x)
    ticks = [2**k for k in range(0, int(x_hi) + 1)]
    if len(ticks) > 12:
        ticks = ticks[:: math.ceil(len(ticks) / 12)]
    title = (
        f"{plan.resolved.name}: estimate vs concurrency (range: ITL ±{UNCERTAINTY['itl']:.0%}, "
        f"TTFT ±{UNCERTAINTY['ttft']:.0%}, throughput ±{UNCERTAINTY['throughput']:.0%})"
    )
    all_ticks = []
    for key, _label, _color, u, is_time, slos in panels:
        _lo, hi = _band([float(row[key]) for row in curve], u, time=is_time)
        all_ticks.append(
            _ticks(max([*hi, point[key], *(float(v) for _n, v in slos if v is not None)]) * 1.05)
        )
    # The same left edge in every panel: pad the margin by the difference in y-label width.
    widths = [label_width(map(number, t), LABEL_FONT) for t in all_ticks]
    parts = []
    for n, (key, label, color, u, is_time, slos) in enumerate(panels):
        first, last = n == 0, n == len(panels) - 1
        y = [float(row[key]) for row in curve]
        lo, hi = _band(y, u, time=is_time)
        lines = [(name, float(v)) for name, v in slos if v is not None]
        y_ticks = all_ticks[n]
        top = y_ticks[-1]
        chart = new_chart(
            "XY",
            f"performance-{color}",
            [COLORS[color], COLORS["point"]],
            height=210 + (30 if first else 0) + (40 if last else 0),
            title=title if first else None,
            x_title="requests in flight (concurrency, log scale)" if last else None,
            y_title=label,
            show_legend=False,
            xrange=(x_lo, x_hi),
            range=(0, top),
            show_x_labels=last,
            x_value_formatter=lambda v: f"{2**v:.3g}",
            value_formatter=number,
            margin_left=MARGIN + max(widths) - widths[n],
        )
        chart.y_labels = y_ticks
        chart.x_labels = [{"label": f"{t:g}", "value": math.log2(t)} for t in ticks]
        chart.add("estimate", [(math.log2(a), b) for a, b in zip(x, y, strict=True)], dots_size=3)
        chart.add("workload", [(math.log2(op), point[key])], dots_size=7, stroke=False)

        def decorate(
            root: ET.Element,
            chart=chart,
            key=key,
            lo=lo,
            hi=hi,
            color=color,
            lines=lines,
            first=first,
            top=top,
        ):
            name_series(root, [f"series-{color}", f"operating-point-{key}"])
            plot = plot_group(root)
            for axis in plot.iter("g"):  # concurrency 1 is log2 0: a guide, not pygal's bold zero axis
                if axis.get("class") == "axis x":
                    for path in axis.iter("path"):
                        if path.get("class") == "line":
                            path.set("class", "guide line")
            view = chart.view
            edge = [view((math.log2(a), b)) for a, b in zip(x, lo, strict=True)]
            edge += [view((math.log2(a), b)) for a, b in reversed(list(zip(x, hi, strict=True)))]
            band = element(
                plot,
                "path",
                id=f"range-{color}",
                d="M" + " L".join(f"{px:.2f} {py:.2f}" for px, py in edge) + " Z",
                fill=COLORS[color],
                fill_opacity="0.18",
                stroke="none",
            )
            plot.remove(band)
            plot.insert(1, band)  # under the lines, above the background
            rule(
                plot,
                f"operating-point-line-{color}",
                view((math.log2(op), 0)),
                view((math.log2(op), top)),
                COLORS["point"],
                "2,2",
            )
            for name, value in lines:
                px, py = view((x_lo, value))
                rule(
                    plot,
                    f"slo-{color}{'-' + name if name else ''}",
                    (px, py),
                    view((x_hi, value)),
                    COLORS["slo"],
                    "3,3",
                )
                element(
                    plot,
                    "text",
                    f"SLO {name} {value:g}".replace("  ", " "),
                    x=f"{px + 3:.2f}",
                    y=f"{py - 3:.2f}",
                    font_size="9",
                    fill=COLORS["slo"],
                )
            px, _py = view((math.log2(op), 0))
            if first:
                element(
                    plot,
                    "text",
                    f"workload: {perf.concurrency} in flight",
                    x=f"{px + 3:.2f}",
                    y="10",
                    font_size="9",
                )
            if kv_requests >= 1:
                qx, qy = view((math.log2(kv_requests), 0))
                rule(
                    plot,
                    f"kv-queue-{color}",
                    (qx, qy),
                    view((math.log2(kv_requests), top)),
                    COLORS["kv"],
                    "5,3",
                )
                if first:
                    element(
                        plot,
                        "text",
                        f"KV cache full: queues beyond {kv_requests}",
                        x=f"{qx - 3:.2f}",
                        y="22",
                        text_anchor="end",
                        font_size="9",
                        fill=COLORS["kv"],
                    )

        parts.append(tree(chart, decorate))
    return to_svg(stack(parts, title))
