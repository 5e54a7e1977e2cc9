"""REPORT.md data: what a reviewer reads in the pull request, numbers already formatted."""

from __future__ import annotations

import json
import shlex
from typing import Any

from ..plan import Plan, Range
from ..units import GIB
from .context import Context


def md(value: Any) -> str:
    """One Markdown table cell: no newlines, pipes escaped."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return " ".join(text.split()).replace("|", "\\|")


def _gib(n: int) -> str:
    return f"{n / GIB:.2f}"


def _range(r: Range, digits: int) -> str:
    return f"{r.value:.{digits}f} ({r.low:.{digits}f} to {r.high:.{digits}f})"


def build(plan: Plan, ctx: Context) -> dict[str, Any]:
    engine = plan.engine
    mem = plan.memory
    kv = mem.kv
    util = engine.gpu_memory_utilization
    ranks = [
        {
            "pp_rank": r.pp_rank,
            "total": _gib(r.gpu_total_bytes),
            "requested": _gib(r.requested_bytes),
            "weights": _gib(r.weights_bytes),
            "activation": _gib(r.activation_peak_bytes),
            "non_torch": _gib(r.non_torch_bytes),
            "cuda_graphs": _gib(r.cuda_graph_bytes),
            "kv": _gib(r.kv_cache_bytes),
            "blocks": r.num_blocks,
            "binding": r.pp_rank == mem.binding_pp_rank,
        }
        for r in sorted(mem.ranks, key=lambda r: r.pp_rank)
    ]
    settings = [
        {"name": name, "value": md(d.value), "by": d.by, "reason": md(d.reason or "-")}
        for name, d in sorted(plan.decisions.items())
    ]
    perf = None
    if plan.performance is not None:
        p = plan.performance
        perf = {
            "concurrency": p.concurrency,
            "rows": [
                ("Time to first token (ms)", _range(p.ttft_ms, 1)),
                ("Inter-token latency (ms)", _range(p.itl_ms, 2)),
                ("Output throughput (tok/s)", _range(p.output_tok_s, 0)),
                ("Total throughput (tok/s)", _range(p.total_tok_s, 0)),
                ("Requests per second", _range(p.request_rps, 2)),
                ("End-to-end latency (s)", _range(p.e2e_latency_s, 2)),
            ],
            "replicas": p.replicas,
            "slo_met": p.slo_met,
            "assumptions": [md(a) for a in p.assumptions],
            "notes": [md(n) for n in p.notes],
        }
    v = plan.verdict
    charts = []
    if "charts" in ctx.targets:
        from ..charts import chart_files  # names only: matplotlib is not imported here

        titles = {
            "memory.svg": "Memory per GPU",
            "performance.svg": "Performance vs concurrency",
            "layouts.svg": "Layouts weighed",
        }
        charts = [{"file": f, "title": titles[f]} for f in chart_files(plan)]
    return {
        "charts": {c["file"]: c["title"] for c in charts},
        "layouts": _layouts(plan),
        "gpu": plan.resolved.gpu.name,
        "util": f"{util:.2f}",
        "ranks": ranks,
        "kv": {
            "bytes_per_token": kv.bytes_per_token,
            "block_size": kv.block_size,
            "bytes_per_block": kv.bytes_per_block,
            "num_groups": kv.num_groups,
            "num_blocks": kv.num_blocks,
            "tokens": kv.tokens,
            "max_model_len": engine.max_model_len,
            "max_concurrency": f"{kv.max_concurrency:.2f}",
            "largest_max_model_len": mem.largest_max_model_len,
        },
        "verdict": {
            "starts": "yes" if v.starts else "NO",
            "oom_risk": v.oom_risk,
            "reasons": [md(x) for x in v.reasons],
            "capacity": "holds the workload" if v.capacity_ok else "SHORT: requests will queue",
            "capacity_notes": [md(x) for x in v.capacity_notes],
            "warnings": [md(x) for x in v.warnings],
            "fails_policy": v.fails_policy,
        },
        "assumptions": [md(a) for a in mem.assumptions],
        "perf": perf,
        "settings": settings,
        "command": shlex.join(["vllm", "serve", ctx.model_id, *ctx.argv]),
        "replicas": ctx.replicas,
        "nodes": ctx.nodes,
        "notes": [md(n) for n in ctx.notes],
    }


def _layouts(plan: Plan) -> dict[str, Any] | None:
    """The Pareto frontier of the layouts weighed, as table rows (lowest ITL first)."""
    live = [p for p in plan.layouts if p.starts and p.itl_ms is not None]
    if not live:
        return None
    costed = all(p.usd_per_mtok is not None for p in live)
    shown = sorted((p for p in live if p.frontier or p.role), key=lambda p: (p.itl_ms, p.label))
    rows = [
        {
            "layout": md(p.label),
            "gpus": p.gpus,
            "value": f"{p.usd_per_mtok:.3f}" if costed else f"{p.output_tok_s_per_gpu:,.0f}",
            "itl": f"{p.itl_ms:.1f}",
            "ttft": f"{p.ttft_ms:.0f}",
            "kv": f"{p.kv_tokens:,}",
            "mark": ", ".join(
                x
                for x in (
                    p.role,
                    "frontier" if p.frontier else "",
                    "" if p.within_profile else "what-if",
                    "queues" if not p.holds_workload else "",
                    "misses SLO" if p.slo_met is False else "",
                )
                if x
            ),
        }
        for p in shown
    ]
    return {
        "value_label": "USD per million output tokens" if costed else "Output tok/s per GPU",
        "axis": "cost per million output tokens" if costed else "output throughput per GPU",
        "rows": rows,
        "weighed": len(plan.layouts),
        "start": len(live),
        "searched": sum(1 for p in plan.layouts if p.searched),
    }
