"""Performance vs concurrency: TTFT, ITL and output throughput with their ranges, the SLO lines,
the workload's operating point and the concurrency where the KV cache starts to queue requests."""

from __future__ import annotations

import math

from matplotlib.ticker import FixedFormatter, FixedLocator, MaxNLocator, NullLocator

from ..passes.perf import UNCERTAINTY
from ..passes.workload import resolve_workload
from ..plan import Plan
from .svg import COLORS, figure, to_svg


def _band(values: list[float], u: float, *, time: bool) -> tuple[list[float], list[float]]:
    """The estimate's range, by passes.perf's rule: times u slower or faster, rates the reciprocal."""
    if time:
        return [v * (1 - u) for v in values], [v * (1 + u) for v in values]
    return [v / (1 + u) for v in values], [v / (1 - u) for v in values]


def draw(plan: Plan) -> str:
    perf = plan.performance
    assert perf is not None
    workload = resolve_workload(plan.resolved.profile.workload)
    curve = perf.curve
    x = [row["concurrency"] for row in curve]
    kv_requests = int(max(plan.memory.kv.tokens, 0) // max(workload.context_tokens, 1.0))
    slo = workload.slo
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
    margins = {"left": 0.1, "top": 0.93, "bottom": 0.08, "hspace": 0.12}
    with figure(7.2, 6.4, margins, nrows=3, ncols=1, sharex=True) as (fig, axes):
        for ax, (key, label, color, u, is_time, slos) in zip(axes, panels, strict=True):
            y = [row[key] for row in curve]
            lo, hi = _band(y, u, time=is_time)
            band = ax.fill_between(x, lo, hi, color=COLORS[color], alpha=0.18, linewidth=0, label="range")
            band.set_gid(f"range-{color}")
            (line,) = ax.plot(
                x, y, color=COLORS[color], marker="o", markersize=3, linewidth=1.6, label="estimate"
            )
            line.set_gid(f"series-{color}")
            for name, value in slos:
                if value is not None:
                    s = ax.axhline(value, color=COLORS["slo"], linestyle=":", linewidth=1.2)
                    s.set_gid(f"slo-{color}{'-' + name if name else ''}")
                    ax.annotate(
                        f"SLO {name} {value:g}".replace("  ", " "),
                        xy=(0.0, value),
                        xycoords=("axes fraction", "data"),
                        xytext=(3, 2),
                        textcoords="offset points",
                        fontsize=7,
                        color=COLORS["slo"],
                    )
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
        op = float(perf.concurrency)
        point = {
            "ttft_ms": perf.ttft_ms.value,
            "itl_ms": perf.itl_ms.value,
            "output_tok_s": perf.output_tok_s.value,
        }
        for ax, (key, *_rest) in zip(axes, panels, strict=True):
            v = ax.axvline(op, color=COLORS["point"], linewidth=0.8, alpha=0.6)
            v.set_gid("operating-point-line")
            (m,) = ax.plot(
                [op], [point[key]], marker="*", markersize=11, color=COLORS["point"], linestyle="none"
            )
            m.set_gid(f"operating-point-{key}")
            if kv_requests >= 1:
                q = ax.axvline(kv_requests, color=COLORS["kv"], linestyle="--", linewidth=1.2)
                q.set_gid("kv-queue")
        top = axes[0]
        top.annotate(
            f"workload: {perf.concurrency} in flight",
            xy=(op, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -10),
            textcoords="offset points",
            fontsize=7,
        )
        if kv_requests >= 1:
            top.annotate(
                f"KV cache full: queues beyond {kv_requests}",
                xy=(kv_requests, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(-3, -20),
                textcoords="offset points",
                ha="right",
                fontsize=7,
                color=COLORS["kv"],
            )
        last = axes[-1]
        last.set_xscale("log", base=2)
        hi_x = max([*x, op, float(kv_requests)]) * 1.25
        last.set_xlim(0.8, hi_x)
        ticks = [2.0**k for k in range(0, int(math.log2(hi_x)) + 1)]
        if len(ticks) > 12:
            ticks = ticks[:: math.ceil(len(ticks) / 12)]
        last.xaxis.set_major_locator(FixedLocator(ticks))
        last.xaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in ticks]))
        last.xaxis.set_minor_locator(NullLocator())
        last.set_xlabel("requests in flight (concurrency, log scale)")
        top.set_title(
            f"{plan.resolved.name}: estimate vs concurrency (range: ITL ±{UNCERTAINTY['itl']:.0%}, "
            f"TTFT ±{UNCERTAINTY['ttft']:.0%}, throughput ±{UNCERTAINTY['throughput']:.0%})",
            loc="left",
        )
        for ax in axes:
            ax.yaxis.set_major_locator(MaxNLocator(4))
        axes[-1].legend(loc="upper left", frameon=False, ncols=2)
        return to_svg(fig)
