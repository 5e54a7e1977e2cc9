"""Cluster planning: how many replicas (data parallel copies) meet the load and SLOs, on how many GPUs
and nodes, and what one replica and the cluster deliver.

A closed-loop workload (concurrency) needs ceil(concurrency / c*) replicas, c* being the most requests
one replica keeps in flight within the SLOs (closed-form steady state). A request-rate workload needs
ceil(rate / r*) replicas, r* being the highest rate one replica sustains within the SLOs, found by
bisection over the discrete-event simulation (perf.simulate_rate). Layout within a replica: TP inside
a node, PP across nodes (`layout_for`), as vLLM multi-node deployments do.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from ..plan import EngineConfig, MemoryPlan, Resolved
from ..units import stable_float
from . import perf_model as pm
from .perf import kv_limit, simulate_rate, slo_check, steady_at, step_model
from .workload import Workload, workload_of

MAX_REPLICAS = 1024


class ClusterPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replicas: int
    gpus_per_replica: int
    total_gpus: int
    nodes_per_replica: int
    total_nodes: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    multi_node: bool
    per_replica_rps: float
    per_replica_output_tok_s: float
    cluster_rps: float
    cluster_output_tok_s: float
    max_per_replica: float  # concurrency (closed loop) or requests/s (open loop) one replica takes
    slo_met: bool | None = None
    reasons: list[str] = Field(default_factory=list)


def layout_for(gpus: int, gpus_per_node: int) -> tuple[int, int]:
    """(TP, PP) for one replica on `gpus` GPUs: TP fills a node, PP spans the nodes."""
    tp = min(gpus, gpus_per_node)
    return tp, max(1, math.ceil(gpus / tp))


def max_concurrency_for_slo(
    sm: pm.StepModel, engine: EngineConfig, memory: MemoryPlan, workload: Workload
) -> int:
    """Most requests one replica keeps in flight within the SLOs (0: not even one); capped at what
    the engine admits (KV cache, max_num_seqs). ITL and TTFT grow with concurrency, so bisect."""
    limit = kv_limit(memory, engine, workload)

    def ok(c: int) -> bool:
        s = steady_at(sm, engine, memory, workload, c)
        return not slo_check(workload, ttft_s=s.ttft_s, ttft_p99_s=s.ttft_s, tpot_s=s.tpot_s, e2e_s=s.e2e_s)

    if not ok(1):
        return 0
    lo, hi = 1, limit
    if ok(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def max_rate_for_slo(sm: pm.StepModel, engine: EngineConfig, memory: MemoryPlan, workload: Workload) -> float:
    """Highest request rate one replica sustains within the SLOs (or below saturation without SLOs)."""
    cap = steady_at(sm, engine, memory, workload, kv_limit(memory, engine, workload)).request_rps

    def ok(rate: float) -> bool:
        r = simulate_rate(sm, engine, memory, workload, rate)
        if r["request_rps"] < 0.9 * rate:  # the queue grows: not sustainable
            return False
        return not _simulated_misses(workload, r)

    lo, hi = 0.0, cap
    if ok(hi):
        return hi
    for _ in range(12):  # 1/4096 of the capacity
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _simulated_misses(workload: Workload, r: dict[str, float]) -> list[str]:
    """The SLOs a simulated rate misses (its percentiles included)."""
    return slo_check(
        workload,
        ttft_s=r["ttft_s"],
        ttft_p99_s=r["ttft_p99_s"],
        tpot_s=r["tpot_s"],
        e2e_s=r["e2e_s"],
        percentiles=r,
    )


def plan_cluster(
    resolved: Resolved,
    engine: EngineConfig,
    memory: MemoryPlan,
    workload: Workload | None = None,
    *,
    replicas: int | None = None,
) -> ClusterPlan:
    """Replicas for the workload (or the given count), GPUs and nodes, per-replica and cluster rates."""
    workload = workload or workload_of(resolved)
    if replicas is None and resolved.profile.deploy.replicas != "auto":
        replicas = int(resolved.profile.deploy.replicas)
    sm = step_model(resolved, engine)
    per_node = resolved.profile.hardware.gpus_per_node or resolved.gpu.gpus_per_node
    gpus = engine.gpus_per_replica * engine.data_parallel_size
    reasons: list[str] = []
    if workload.request_rate is not None:
        r_max = max_rate_for_slo(sm, engine, memory, workload)
        need = math.ceil(workload.request_rate / r_max) if r_max > 0 else None
        per_load = r_max
        what = f"one replica sustains {r_max:.2f} req/s within the SLOs; the workload sends {workload.request_rate:g}/s"
    else:
        c_max = max_concurrency_for_slo(sm, engine, memory, workload)
        conc = workload.concurrency or 1
        need = math.ceil(conc / c_max) if c_max > 0 else None
        per_load = float(c_max)
        what = f"one replica keeps {c_max} requests in flight within the SLOs; the workload keeps {conc}"
    if need is None:
        reasons.append(f"{what}: no replica count meets the SLOs (one request alone misses them)")
        need = 1
    chosen = replicas if replicas is not None else min(max(need, 1), MAX_REPLICAS)
    reasons.append(
        f"{what} -> {need} replica(s) needed" + (f", {chosen} configured" if replicas is not None else "")
    )
    # What each replica then serves.
    if workload.request_rate is not None:
        offered = workload.request_rate / chosen
        r = simulate_rate(sm, engine, memory, workload, offered)
        # A finite simulation's rate includes its ramp and drain: a sustained replica serves what it is offered.
        per_rps = offered if r["request_rps"] >= 0.9 * offered else r["request_rps"]
        per_tok = per_rps * workload.gen.mean
        misses = _simulated_misses(workload, r)
    else:
        s = steady_at(sm, engine, memory, workload, max(1, math.ceil((workload.concurrency or 1) / chosen)))
        per_rps, per_tok = s.request_rps, s.output_tok_s
        misses = slo_check(workload, ttft_s=s.ttft_s, ttft_p99_s=s.ttft_s, tpot_s=s.tpot_s, e2e_s=s.e2e_s)
    per_replica_gpus = gpus
    nodes = math.ceil(per_replica_gpus / per_node)
    if nodes > 1:
        reasons.append(
            f"multi-node replica: TP {engine.tensor_parallel_size} within a node x PP {engine.pipeline_parallel_size} "
            f"across {nodes} nodes of {per_node} GPUs"
        )
    total_nodes = nodes * chosen if nodes > 1 else math.ceil(per_replica_gpus * chosen / per_node)
    return ClusterPlan(
        replicas=chosen,
        gpus_per_replica=per_replica_gpus,
        total_gpus=per_replica_gpus * chosen,
        nodes_per_replica=nodes,
        total_nodes=total_nodes,
        tensor_parallel_size=engine.tensor_parallel_size,
        pipeline_parallel_size=engine.pipeline_parallel_size,
        multi_node=nodes > 1,
        per_replica_rps=stable_float(per_rps),
        per_replica_output_tok_s=stable_float(per_tok),
        cluster_rps=stable_float(per_rps * chosen),
        cluster_output_tok_s=stable_float(per_tok * chosen),
        max_per_replica=stable_float(per_load),
        slo_met=(not misses) if workload.slo.any else None,
        reasons=reasons + [f"SLO missed per replica: {m}" for m in misses],
    )
