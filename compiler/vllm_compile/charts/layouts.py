"""The layouts the recommender weighed: throughput per GPU (or cost per million output tokens when
a GPU price is known) against ITL, the Pareto frontier drawn, the chosen layout and the runner-up marked."""

from __future__ import annotations

from ..passes.workload import resolve_workload
from ..plan import LayoutPoint, Plan
from .svg import COLORS, figure, to_svg


def costed(points: list[LayoutPoint]) -> bool:
    live = [p for p in points if p.starts]
    return bool(live) and all(p.usd_per_mtok is not None for p in live)


def y_value(p: LayoutPoint, by_cost: bool) -> float:
    return float(p.usd_per_mtok if by_cost else p.output_tok_s_per_gpu)  # type: ignore[arg-type]


def draw(plan: Plan) -> str:
    points = [p for p in plan.layouts if p.starts and p.itl_ms is not None]
    by_cost = costed(plan.layouts)
    slo = resolve_workload(plan.resolved.profile.workload).slo
    with figure(7.2, 5.2, {"left": 0.1, "right": 0.72, "top": 0.93, "bottom": 0.1}) as (fig, ax):
        for within, gid, label in (
            (True, "series-within", "within the profile"),
            (False, "series-whatif", "what-if: lifts a fixed\nsetting or needs more GPUs"),
        ):
            group = [p for p in points if p.within_profile is within]
            if not group:
                continue
            sc = ax.scatter(
                [p.itl_ms for p in group],
                [y_value(p, by_cost) for p in group],
                s=30,
                facecolors=COLORS["weights"] if within else "none",
                edgecolors=COLORS["weights"],
                linewidths=1.0,
                label=label,
                zorder=3,
            )
            sc.set_gid(gid)
        frontier = sorted((p for p in points if p.frontier), key=lambda p: p.itl_ms)
        if frontier:
            (line,) = ax.plot(
                [p.itl_ms for p in frontier],
                [y_value(p, by_cost) for p in frontier],
                color=COLORS["frontier"],
                linewidth=1.5,
                drawstyle="steps-post" if by_cost else "default",
                label="Pareto frontier",
                zorder=2,
            )
            line.set_gid("frontier")
        for role, marker, size, gid in (("chosen", "*", 220, "chosen"), ("runner-up", "D", 80, "runner-up")):
            marked = [p for p in points if p.role == role]
            if marked:
                m = ax.scatter(
                    [p.itl_ms for p in marked],
                    [y_value(p, by_cost) for p in marked],
                    marker=marker,
                    s=size,
                    facecolors=COLORS["cuda_graphs"] if role == "chosen" else "none",
                    edgecolors="#000000",
                    linewidths=1.0,
                    label=role,
                    zorder=4,
                )
                m.set_gid(gid)
        for p in points:
            ax.annotate(
                f"{p.label} ({p.gpus} GPU{'s' if p.gpus > 1 else ''})",
                xy=(p.itl_ms, y_value(p, by_cost)),
                xytext=(5, 3),
                textcoords="offset points",
                fontsize=6.5,
                color="#333333",
            )
        if slo.itl_ms is not None:
            s = ax.axvline(
                slo.itl_ms,
                color=COLORS["slo"],
                linestyle=":",
                linewidth=1.2,
                label=f"ITL SLO {slo.itl_ms:g} ms",
            )
            s.set_gid("slo-itl")
        ax.set_xlabel("ITL at the workload's load (ms, lower is better)")
        ax.set_ylabel(
            "USD per million output tokens" if by_cost else "output tok/s per GPU (higher is better)"
        )
        if by_cost:
            ax.invert_yaxis()  # cheaper up: the frontier is still the upper-left edge
        ax.set_xlim(left=0)
        skipped = sum(1 for p in plan.layouts if not p.starts)
        ax.set_title(
            f"{plan.resolved.name}: layouts weighed ({len(points)} start"
            + (f", {skipped} do not start" if skipped else "")
            + ")",
            loc="left",
        )
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=7)
        return to_svg(fig)
