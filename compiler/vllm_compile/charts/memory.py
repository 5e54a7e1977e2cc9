"""Memory per GPU: one stacked bar per pipeline stage, vLLM's start-up accounting, the budget line."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from ..plan import Plan
from .svg import COLORS, bottom_legend, element, gib, new_chart, number, plot_group, rule, to_svg, tree

# (field of RankMemory, legend label, colour key): inside the budget, in vLLM's order of deduction.
SEGMENTS = (
    ("weights_bytes", "weights", "weights"),
    ("activation_peak_bytes", "activation peak", "activation"),
    ("non_torch_bytes", "non-torch", "non_torch"),
    ("cuda_graph_bytes", "CUDA graphs", "cuda_graphs"),
    ("kv_cache_bytes", "KV cache", "kv"),
)
KEYS = [key for *_x, key in SEGMENTS] + ["baseline", "free"]


def draw(plan: Plan) -> str:
    ranks = sorted(plan.memory.ranks, key=lambda r: r.pp_rank)
    util = plan.engine.gpu_memory_utilization
    total = gib(ranks[0].gpu_total_bytes)
    budget = gib(ranks[0].requested_bytes)
    names = [f"PP stage {r.pp_rank}" for r in ranks] if len(ranks) > 1 else ["each GPU"]
    rows: dict[str, list[float]] = {}
    left = [0.0] * len(ranks)
    for field, _label, key in SEGMENTS:
        rows[key] = [max(gib(getattr(r, field)), 0.0) for r in ranks]
    rows["baseline"] = [gib(r.baseline_bytes) for r in ranks]
    for key in KEYS[:-1]:
        left = [a + b for a, b in zip(left, rows[key], strict=True)]
    rows["free"] = [max(total - x, 0.0) for x in left]
    used = [a + b for a, b in zip(left, rows["free"], strict=True)]
    hi = max(total, *used) * 1.02
    labels = dict((key, label) for _f, label, key in SEGMENTS) | {
        "baseline": "outside the budget",
        "free": "free",
    }
    chart = new_chart(
        "HorizontalStackedBar",
        "memory",
        [COLORS[k] for k in KEYS],
        height=190 + 50 * len(ranks),
        title=f"{plan.resolved.name}: memory per GPU at start-up",
        x_title=f"GiB of {plan.resolved.gpu.name} ({total:.1f} GiB)",
        range=(0, hi),
        value_formatter=number,
        **bottom_legend(len(KEYS), len(KEYS), 4),
    )
    order = list(range(len(ranks)))[::-1]  # pygal draws the first category at the bottom: stage 0 on top
    chart.x_labels = [names[i] for i in order]
    for key in KEYS:
        chart.add(labels[key], [rows[key][i] for i in order])

    def decorate(root: ET.Element) -> None:
        bars = [
            g for g in plot_group(root).findall("g") if "series" in (g.get("class") or "").split()
        ]  # one group per segment, in KEYS order
        for key, group in zip(KEYS, bars, strict=False):
            for bar in group.iter("g"):  # each bar names its stage in <desc class="x_label">
                rect, stage = bar.find("rect"), bar.find("desc[@class='x_label']")
                if rect is not None and stage is not None:
                    rect.set("id", f"series-{key}-{names.index(stage.text or '')}")
        plot = plot_group(root)
        x = _x(chart, budget)
        bottom = chart.view.height
        rule(plot, "utilization", (x, 0.0), (x, bottom), "#000000", "5,3")
        element(  # the line's label at its top, inside the plot, on a white halo over the bars
            plot,
            "text",
            f"gpu_memory_utilization {util:.2f} ({budget:.1f} GiB)",
            id="utilization-label",
            x=f"{x - 4:.2f}",
            y="12",
            text_anchor="end",
            font_size="10",
            fill="#000000",
            stroke="#FFFFFF",
            stroke_width="3",
            paint_order="stroke",
        )
        for i, r in enumerate(ranks):
            if r.kv_cache_bytes < 0:  # vLLM fails to start: the budget is short by this much
                rect = root.find(f".//rect[@id='series-free-{i}']")
                assert rect is not None
                y = float(rect.get("y", "0")) + float(rect.get("height", "0")) / 2
                element(
                    plot,
                    "text",
                    f"short by {gib(-r.kv_cache_bytes):.2f} GiB: does not start",
                    id=f"does-not-start-{i}",
                    x=f"{_x(chart, min(left[i], total)) + 4:.2f}",
                    y=f"{y + 3:.2f}",
                    font_size="10",
                    fill=COLORS["slo"],
                )

    return to_svg(tree(chart, decorate))


def _x(chart: object, value: float) -> float:
    """The pixel column of a GiB value (pygal's horizontal view maps (category, value) to (y, x))."""
    return float(chart.view((0, value))[1])  # type: ignore[attr-defined]
