"""Memory per GPU: one stacked bar per pipeline stage, vLLM's start-up accounting, the budget line."""

from __future__ import annotations

from ..plan import Plan
from .svg import COLORS, figure, gib, to_svg

# (field of RankMemory, legend label, colour key): inside the budget, in vLLM's order of deduction.
SEGMENTS = (
    ("weights_bytes", "weights", "weights"),
    ("activation_peak_bytes", "activation peak", "activation"),
    ("non_torch_bytes", "non-torch", "non_torch"),
    ("cuda_graph_bytes", "CUDA graphs", "cuda_graphs"),
    ("kv_cache_bytes", "KV cache", "kv"),
)


def _gid(bars, name: str) -> None:
    """SVG ids the tests and the web page find a series by (unique: one per stage)."""
    for i, patch in enumerate(bars):
        patch.set_gid(f"series-{name}-{i}")


def draw(plan: Plan) -> str:
    ranks = sorted(plan.memory.ranks, key=lambda r: r.pp_rank)
    util = plan.engine.gpu_memory_utilization
    total = gib(ranks[0].gpu_total_bytes)
    budget = gib(ranks[0].requested_bytes)
    names = [f"PP stage {r.pp_rank}" for r in ranks] if len(ranks) > 1 else ["each GPU"]
    bars_in = 0.55 * len(ranks)  # inches of plot: one bar per stage
    height = 0.42 + bars_in + 1.45  # title above; axis label and a three-row legend below
    margins = {"left": 0.13 if len(ranks) > 1 else 0.1, "top": 1 - 0.42 / height, "bottom": 1.45 / height}
    with figure(7.2, height, margins) as (fig, ax):
        left = [0.0] * len(ranks)
        for field, label, color in SEGMENTS:
            values = [max(gib(getattr(r, field)), 0.0) for r in ranks]
            bars = ax.barh(names, values, left=left, color=COLORS[color], label=label, height=0.55)
            _gid(bars, color)
            left = [a + b for a, b in zip(left, values, strict=True)]
        outside = [gib(r.baseline_bytes) for r in ranks]
        bars = ax.barh(
            names, outside, left=left, color=COLORS["baseline"], label="outside the budget", height=0.55
        )
        _gid(bars, "baseline")
        left = [a + b for a, b in zip(left, outside, strict=True)]
        free = [max(total - x, 0.0) for x in left]
        bars = ax.barh(
            names,
            free,
            left=left,
            color=COLORS["free"],
            label="free",
            height=0.55,
            edgecolor="#BBBBBB",
            linewidth=0.5,
        )
        _gid(bars, "free")
        line = ax.axvline(
            budget,
            color="#000000",
            linestyle="--",
            linewidth=1.2,
            label=f"gpu_memory_utilization {util:.2f} ({budget:.1f} GiB)",
        )
        line.set_gid("utilization")
        for i, r in enumerate(ranks):
            if r.kv_cache_bytes < 0:  # vLLM fails to start: the budget is short by this much
                ax.annotate(
                    f"short by {gib(-r.kv_cache_bytes):.2f} GiB: does not start",
                    xy=(min(left[i], total), i),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                    color=COLORS["slo"],
                )
        ax.set_xlim(0, max(total, max(left)) * 1.02)
        ax.invert_yaxis()
        ax.set_xlabel(f"GiB of {plan.resolved.gpu.name} ({total:.1f} GiB)")
        ax.set_title(f"{plan.resolved.name}: memory per GPU at start-up", loc="left")
        ax.grid(axis="y", visible=False)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.42 / bars_in), ncols=3, frameon=False)
        return to_svg(fig)
