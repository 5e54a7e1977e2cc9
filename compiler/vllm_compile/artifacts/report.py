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
                *_percentile_rows(p.percentiles),
            ],
            "replicas": p.replicas,
            "slo_met": p.slo_met,
            "assumptions": [md(a) for a in p.assumptions],
            "notes": [md(n) for n in p.notes],
        }
    cost = _cost(plan)
    graphs = _graphs(plan)
    v = plan.verdict
    report = plan.resolved.extra_args
    extra_args = [
        *({"flag": md(f), "kind": "modelled", "detail": md(field)} for f, field in report.modelled.items()),
        *(
            {"flag": md(f), "kind": "neutral", "detail": "cannot change memory or speed"}
            for f in report.neutral
        ),
        *(
            {"flag": md(n.flag), "kind": "**not modelled**", "detail": md(f"may change {n.may_change}")}
            for n in report.not_modelled
        ),
    ]
    features = [
        {"name": md(f.name), "gib": _gib(f.bytes_per_gpu), "detail": md(f.detail)} for f in mem.features
    ]
    charts = []
    if "charts" in ctx.targets:
        from ..charts import chart_files  # names only: pygal is not imported here

        titles = {
            "memory.svg": "Memory per GPU",
            "performance.svg": "Performance vs concurrency",
            "layouts.svg": "Layouts weighed",
        }
        charts = [{"file": f, "title": titles[f]} for f in chart_files(plan)]
    return {
        "features": features,
        "kv_connector": _connector(plan),
        "extra_args": extra_args,
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
        "cost": cost,
        "graphs": graphs,
        "settings": settings,
        "command": shlex.join(["vllm", "serve", ctx.model_id, *ctx.argv]),
        "replicas": ctx.replicas,
        "nodes": ctx.nodes,
        "notes": [md(n) for n in ctx.notes],
        "cluster": _cluster(plan.cluster),
    }


def _cluster(cluster: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cluster plan the lock holds (passes.cluster.ClusterPlan), as REPORT.md rows."""
    if not cluster:
        return None
    layout = f"TP {cluster['tensor_parallel_size']} x PP {cluster['pipeline_parallel_size']}"
    return {
        "rows": [
            ("Replicas", str(cluster["replicas"])),
            ("GPUs per replica", f"{cluster['gpus_per_replica']} ({layout})"),
            ("GPUs in all", str(cluster["total_gpus"])),
            ("Nodes per replica", str(cluster["nodes_per_replica"])),
            ("Nodes in all", str(cluster["total_nodes"])),
            ("Load one replica sustains within the SLOs", f"{cluster['max_per_replica']:.2f}"),
            (
                "Requests per second, one replica / all",
                f"{cluster['per_replica_rps']:.2f} / {cluster['cluster_rps']:.2f}",
            ),
            (
                "Output tokens per second, one replica / all",
                f"{cluster['per_replica_output_tok_s']:.0f} / {cluster['cluster_output_tok_s']:.0f}",
            ),
            ("SLO met", "-" if cluster.get("slo_met") is None else ("yes" if cluster["slo_met"] else "NO")),
        ],
        "reasons": [md(r) for r in cluster.get("reasons", [])],
    }


def _cost(plan: Plan) -> dict[str, Any] | None:
    """The cost lines: price and its source, $/hour per replica and fleet, $ per million output tokens."""
    c = plan.cost
    if c is None:
        return None
    per_m = c["usd_per_million_output_tokens"]
    return {
        "rows": [
            ("GPU price", md(c["price"])),
            ("Per replica ($/hour)", f"{c['replica_usd_per_hour']:.2f} ({c['gpus_per_replica']} GPU(s))"),
            (
                "Fleet ($/hour)",
                f"{c['fleet_usd_per_hour']:.2f} ({c['replicas']} replica(s), {c['total_gpus']} GPU(s))",
            ),
            ("Output tokens/s at the operating point", f"{c['fleet_output_tok_s']:,.0f}"),
            ("$ per million output tokens", f"{per_m:.3f}" if per_m is not None else "- (nothing served)"),
        ],
        "operating_point": md(c["operating_point"]),
        "source": md(c["price_source"]),
        "notes": [md(n) for n in c["notes"]],
    }


def _graphs(plan: Plan) -> dict[str, Any] | None:
    """CUDA graphs: the sizes, their memory and the KV tokens they take, how much of the workload they serve."""
    g = plan.cuda_graphs
    if g is None:
        return None
    sizes = g["sizes"]
    shown = ", ".join(str(s) for s in sizes[:12]) + (f", ... {sizes[-1]}" if len(sizes) > 12 else "")
    cands = [
        {
            "max_size": c["max_size"],
            "num_sizes": c["num_sizes"],
            "graph_gib": f"{c['graph_gib']:.2f}",
            "kv_tokens": f"{c['kv_tokens']:,}",
            "coverage": f"{c['coverage']:.1%}",
            "decode_coverage": f"{c['decode_coverage']:.1%}",
            "padding": f"{c['padding_waste']:.1%}",
            "itl": f"{c['itl_ms']:.1f}",
            "ttft": f"{c['ttft_ms']:.0f}",
            "tok_s": f"{c['output_tok_s']:,.0f}",
            "chosen": c["max_size"] == g["max_size"],
        }
        for c in g["candidates"]
    ]
    return {
        "rows": [
            ("Sizes chosen by", g["mode"]),
            ("cudagraph_mode (release default, not decided)", g["cudagraph_mode"]),
            ("Captured sizes", f"{len(sizes)}: {shown}"),
            ("Graph memory (binding GPU, GiB)", f"{g['graph_gib']:.2f}"),
            ("KV tokens the graphs take", f"{g['kv_tokens_traded']:,}"),
            ("Engine steps served by a graph (coverage)", f"{g['coverage']:.1%}"),
            ("Decode steps served by a graph", f"{g['decode_coverage']:.1%}"),
            ("Padding waste (padded tokens computed for nothing)", f"{g['padding_waste']:.1%}"),
            (
                "Tokens per engine step, p50 / p99 (simulated)",
                f"{g['step_tokens_p50']} / {g['step_tokens_p99']}",
            ),
        ],
        "reason": md(g["reason"]),
        "runner_up": g["runner_up"],
        "candidates": cands,
    }


def _percentile_rows(pct: dict[str, float]) -> list[tuple[str, str]]:
    """p50 / p90 / p99 over the simulated requests (length distributions, arrivals, burstiness)."""
    rows = []
    for key, label, digits in (
        ("ttft_ms", "TTFT p50 / p90 / p99 (ms, simulated)", 0),
        ("itl_ms", "ITL p50 / p90 / p99 (ms, simulated, per-request TPOT)", 2),
        ("e2e_s", "End-to-end p50 / p90 / p99 (s, simulated)", 2),
    ):
        values = [pct.get(f"{key}_p{q}") for q in (50, 90, 99)]
        if all(v is not None for v in values):
            rows.append((label, " / ".join(f"{v:.{digits}f}" for v in values)))
    return rows


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


def roles_report(plan: Plan, ctxs: dict[str, Context]) -> dict[str, Any]:
    """REPORT.md data of a `roles:` plan: each pool's memory table and the disaggregation estimate."""
    assert plan.roles is not None
    d = plan.disaggregation or {}
    pools = []
    for role, p in plan.roles.items():
        kv = p.kv_connector or {}
        pools.append(
            {
                "role": role,
                "gpu": p.resolved.gpu.name,
                "gpus": p.engine.total_gpus,
                "replicas": (d.get("replicas") or {}).get(role, ctxs[role].replicas),
                "starts": "yes" if p.verdict.starts else "NO",
                "oom_risk": p.verdict.oom_risk,
                "kv_tokens": p.memory.kv.tokens,
                "host_gib": f"{kv.get('host_pinned_gib_per_pod', 0.0):.2f}",
                "r": build(p, ctxs[role]),
                "connectors": [
                    {
                        "connector": md(c["connector"]),
                        "gpu": _gib(c["gpu_bytes_per_gpu"]),
                        "host": _gib(c["host_pinned_bytes_per_gpu"]),
                        "detail": md(c["detail"]),
                    }
                    for c in kv.get("connectors", [])
                ],
            }
        )
    est = None
    if "comparison" in d:
        est = {
            "comparison": md(d["comparison"]["text"]),
            "agg": _figures(d["aggregated"]),
            "dis": _figures(d["disaggregated"]),
            "kv": d["kv_transfer"],
            "prefill": d["prefill"],
            "decode": d["decode"],
            "ratio": md(d["ratio"]["text"]),
            "assumptions": [md(a) for a in d["assumptions"]],
        }
    v = plan.verdict
    return {
        "d": {"connector": d.get("connector") or "a KV connector"},
        "pools": pools,
        "verdict": {"reasons": [md(x) for x in v.reasons], "warnings": [md(x) for x in v.warnings]},
        "est": est,
    }


_DIGITS = {"ttft_ms": 1, "itl_ms": 2, "e2e_s": 2, "output_tok_s": 0, "output_tok_s_per_gpu": 1}


def _figures(layout: dict[str, Any]) -> dict[str, Any]:
    """One layout's figures as the report prints them."""
    out = dict(layout)
    for key, digits in _DIGITS.items():
        out[key] = f"{layout[key]:.{digits}f}"
    out["slo_met"] = {True: "yes", False: "NO", None: "no SLO"}[layout["slo_met"]]
    return out


def _connector(plan: Plan) -> dict[str, Any] | None:
    """The KV connector's memory rows (passes/kv_transfer.py), when the profile has one."""
    kv = plan.kv_connector
    if kv is None:
        return None
    return {
        "config": md(kv["kv_transfer_config"]),
        "host_gib": f"{kv['host_pinned_gib_per_pod']:.2f}",
        "gpus_per_pod": kv["gpus_per_pod"],
        "rows": [
            {
                "connector": md(c["connector"]),
                "gpu": _gib(c["gpu_bytes_per_gpu"]),
                "host": _gib(c["host_pinned_bytes_per_gpu"]),
                "detail": md(c["detail"]),
            }
            for c in kv["connectors"]
        ],
        "not_modelled": [md(x) for x in kv["not_modelled"]],
    }
