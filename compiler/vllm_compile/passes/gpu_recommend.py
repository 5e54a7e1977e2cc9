"""Which GPU to buy: search GPU type x GPUs per replica x TP/PP x weight quantization x KV dtype x
replicas for one model, workload and SLO, and rank the layouts by $ per million output tokens.

Every layout is planned by the ordinary passes, nothing re-implemented: `settings.decide_engine`
then `recommend.recommend` (utilization, max_model_len, eager, token budget for that layout),
`memory.plan_memory` + `policy.judge` (does it start), `cluster.plan_cluster` (replicas for the
request rate or concurrency within the SLO, by the batching simulation), `perf.estimate` (TTFT/ITL
at the replica count), `cost.fleet_cost` (the bill at that operating point). Data parallelism is
expressed as replicas (independent engines behind a load balancer): the same GPUs, without one
engine's DP coordination.

Order: layouts that start and meet the SLO, cheapest $/Mtok first (fewer GPUs, then lower ITL, on a
tie); then layouts that start but miss the SLO; layouts that do not start are listed apart with why.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..facts.gpu_spec import GpuSpec
from ..facts.prices import GpuPrice, gpu_price
from ..plan import Resolved
from ..profile.v1 import Profile
from ..units import stable_float
from .workload import Workload, workload_of

GPU_COUNTS = (1, 2, 4, 8)
MAX_REPLICAS = 256  # beyond this a layout is not a sensible purchase; reported as such


class Layout(BaseModel):
    """One point of the search: what a profile would fix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: str  # catalog key
    gpu_name: str
    gpus_per_replica: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    quantization: str | None  # None: as the checkpoint is
    kv_cache_dtype: str  # auto | fp8

    @property
    def label(self) -> str:
        q = self.quantization or "as checkpoint"
        return (
            f"{self.gpus_per_replica} x {self.gpu_name} TP{self.tensor_parallel_size} PP{self.pipeline_parallel_size} "
            f"weights {q}, KV {self.kv_cache_dtype}"
        )


class Row(BaseModel):
    """One layout, planned: its verdict, operating point, latency, cost and why it ranks where it does."""

    model_config = ConfigDict(extra="forbid")

    rank: int = 0
    layout: Layout
    starts: bool
    slo_met: bool | None = None
    replicas: int = 0
    total_gpus: int = 0
    max_model_len: int = 0
    gpu_memory_utilization: float = 0.0
    kv_tokens: int = 0
    ttft_ms: float | None = None
    ttft_p99_ms: float | None = None
    itl_ms: float | None = None
    fleet_output_tok_s: float | None = None
    headroom: float | None = None  # spare share of what the fleet sustains within the SLO
    usd_per_gpu_hour: float | None = None
    price: str | None = None
    fleet_usd_per_hour: float | None = None
    usd_per_million_output_tokens: float | None = None
    verdict: str = ""  # the start-up verdict's first reason
    why: str = ""  # why it won, or why it lost to the winner
    notes: list[str] = Field(default_factory=list)

    @property
    def sort_key(self) -> tuple[float, ...]:
        cost = self.usd_per_million_output_tokens
        return (
            0 if self.starts else 1,
            0 if self.slo_met is not False else 1,
            cost if cost is not None else math.inf,
            self.total_gpus,
            self.itl_ms or 0.0,
        )


def layouts_for(
    gpu: GpuSpec,
    model_supports_tp,
    *,
    counts: tuple[int, ...] = GPU_COUNTS,
    quantizations: tuple[str | None, ...] = (None, "fp8"),
    kv_dtypes: tuple[str, ...] = ("auto", "fp8"),
) -> list[Layout]:
    """Layouts one GPU type offers: TP within a node; PP2 as the alternative on GPUs without NVLink
    (two all-reduces per layer over PCIe cost more than one hop per step); fp8 where vLLM runs it
    (W8A8 on SM 8.9+/MI300, weight-only Marlin on Ampere; no fp8 KV cache before SM 8.9)."""
    per_node = gpu.gpus_per_node
    fp8_weights = gpu.vendor == "amd" or gpu.sm >= (8, 0)
    fp8_kv = gpu.vendor == "amd" or gpu.sm >= (8, 9)
    out: list[Layout] = []
    for n in counts:
        shapes: list[tuple[int, int]] = []
        if n <= per_node and model_supports_tp(n):
            shapes.append((n, 1))
        if (
            n >= 2
            and (gpu.nvlink_gbps is None or n > per_node)
            and model_supports_tp(n // 2)
            and n // 2 <= per_node
        ):
            shapes.append((n // 2, 2))
        for tp, pp in dict.fromkeys(shapes):
            for q in quantizations:
                if q == "fp8" and not fp8_weights:
                    continue
                for kv in kv_dtypes:
                    if kv == "fp8" and not fp8_kv:
                        continue
                    out.append(
                        Layout(
                            gpu=gpu.key,
                            gpu_name=gpu.name,
                            gpus_per_replica=n,
                            tensor_parallel_size=tp,
                            pipeline_parallel_size=pp,
                            quantization=q,
                            kv_cache_dtype=kv,
                        )
                    )
    return out


def profile_for(base: Profile, layout: Layout) -> Profile:
    """The profile that fixes `layout` over the base (workload, SLO, vLLM release, policy, cost)."""
    data = base.model_dump(mode="python", exclude_none=False)
    data["hardware"] = {**data["hardware"], "gpu_name": layout.gpu, "gpus": layout.gpus_per_replica}
    for k in ("vram_gib", "vram_gb", "gpus_per_node"):
        data["hardware"][k] = None
    data["parallelism"] = {
        **data["parallelism"],
        "tensor_parallel_size": layout.tensor_parallel_size,
        "pipeline_parallel_size": layout.pipeline_parallel_size,
        "data_parallel_size": 1,
    }
    if layout.quantization is not None:
        data["model"] = {**data["model"], "quantization": layout.quantization}
    data["vllm"] = {**data["vllm"], "kv_cache_dtype": layout.kv_cache_dtype}
    data["model"] = {**data["model"], "kv_cache_dtype": None}
    data["deploy"] = {**data["deploy"], "replicas": "auto"}
    return Profile.model_validate(data)


def plan_layout(base: Resolved, gpu: GpuSpec, layout: Layout, workload: Workload) -> Row:
    """Plan one layout with the ordinary passes and price its operating point."""
    from .cluster import plan_cluster
    from .cost import fleet_cost
    from .memory import plan_memory
    from .perf import estimate
    from .policy import judge
    from .recommend import recommend
    from .settings import SettingsError, decide_engine

    resolved = base.model_copy(update={"profile": profile_for(base.profile, layout), "gpu": gpu})
    try:
        engine, decisions = decide_engine(resolved)
    except SettingsError as exc:
        return Row(layout=layout, starts=False, verdict=str(exc), why="vLLM would reject this layout")
    engine, decisions = recommend(resolved, engine, decisions, workload)
    memory = plan_memory(resolved, engine)
    verdict = judge(resolved, engine, memory)
    row = Row(
        layout=layout,
        starts=verdict.starts,
        max_model_len=engine.max_model_len,
        gpu_memory_utilization=engine.gpu_memory_utilization,
        kv_tokens=max(memory.kv.tokens, 0),
        verdict=(verdict.reasons or [""])[0],
    )
    if not verdict.starts:
        return row.model_copy(update={"why": "does not start"})
    cluster = plan_cluster(resolved, engine, memory, workload)
    replicas = min(cluster.replicas, MAX_REPLICAS)
    fixed = resolved.model_copy(
        update={
            "profile": resolved.profile.model_copy(
                update={"deploy": resolved.profile.deploy.model_copy(update={"replicas": replicas})}
            )
        }
    )
    perf = estimate(fixed, engine, memory, workload)
    fleet_tok = cluster.per_replica_output_tok_s * replicas
    if workload.request_rate is not None:
        capacity = cluster.max_per_replica * replicas
        headroom = capacity / workload.request_rate - 1 if workload.request_rate else None
    else:
        capacity = cluster.max_per_replica * replicas
        headroom = capacity / (workload.concurrency or 1) - 1
    price: GpuPrice | None = gpu_price(gpu, resolved.profile.cost)
    updates: dict[str, Any] = {
        "slo_met": cluster.slo_met,
        "replicas": replicas,
        "total_gpus": replicas * engine.total_gpus,
        "ttft_ms": stable_float(perf.ttft_ms.value),
        "ttft_p99_ms": perf.percentiles.get("ttft_ms_p99"),
        "itl_ms": stable_float(perf.itl_ms.value),
        "fleet_output_tok_s": stable_float(fleet_tok),
        "headroom": stable_float(headroom) if headroom is not None else None,
        "notes": [r for r in cluster.reasons if r.startswith("SLO missed")] + perf.notes,
    }
    if price is not None:
        c = fleet_cost(
            price,
            gpus_per_replica=engine.total_gpus,
            replicas=replicas,
            fleet_tok_s=fleet_tok,
            operating_point="",
        )
        updates.update(
            usd_per_gpu_hour=c.usd_per_gpu_hour,
            price=c.price,
            fleet_usd_per_hour=c.fleet_usd_per_hour,
            usd_per_million_output_tokens=c.usd_per_million_output_tokens,
        )
    return row.model_copy(update=updates)


def _why(row: Row, best: Row | None) -> str:
    if not row.starts:
        return "does not start: " + row.verdict
    if row.slo_met is False:
        missed = [n.split(": ", 1)[-1] for n in row.notes if n.startswith("SLO missed")]
        return "misses the SLO even with one request per replica: " + "; ".join(dict.fromkeys(missed))
    if row.usd_per_million_output_tokens is None:
        return "no price for this GPU (add cost.prices)"
    if best is None or row is best:
        return (
            f"cheapest tokens that meet the SLO: {row.replicas} replica(s) of {row.layout.gpus_per_replica} GPU(s), "
            f"${row.fleet_usd_per_hour:.2f}/h for {row.fleet_output_tok_s:,.0f} output tok/s"
        )
    assert best.usd_per_million_output_tokens is not None and best.fleet_output_tok_s
    extra = row.usd_per_million_output_tokens / best.usd_per_million_output_tokens - 1
    per_gpu = (row.fleet_output_tok_s or 0.0) / max(row.total_gpus, 1)
    best_per_gpu = best.fleet_output_tok_s / max(best.total_gpus, 1)
    return (
        f"+{extra:.0%} $/Mtok vs #1: {per_gpu:,.0f} output tok/s per GPU at ${row.usd_per_gpu_hour:.2f}/GPU-h "
        f"({row.total_gpus} GPUs, ${row.fleet_usd_per_hour:.2f}/h) vs {best_per_gpu:,.0f} at "
        f"${best.usd_per_gpu_hour:.2f} ({best.total_gpus} GPUs, ${best.fleet_usd_per_hour:.2f}/h)"
    )


def rank(rows: list[Row]) -> list[Row]:
    """Rows in ranked order, each with its rank and the reason it won or lost."""
    ordered = sorted(rows, key=lambda r: (r.sort_key, r.layout.label))
    best = next(
        (
            r
            for r in ordered
            if r.starts and r.slo_met is not False and r.usd_per_million_output_tokens is not None
        ),
        None,
    )
    return [r.model_copy(update={"rank": i + 1, "why": _why(r, best)}) for i, r in enumerate(ordered)]


def search_gpus(
    base: Resolved,
    gpus: list[GpuSpec],
    *,
    workload: Workload | None = None,
    counts: tuple[int, ...] = GPU_COUNTS,
    quantizations: tuple[str | None, ...] = (None, "fp8"),
    kv_dtypes: tuple[str, ...] = ("auto", "fp8"),
) -> list[Row]:
    """Every layout of every GPU, planned and ranked."""
    workload = workload or workload_of(base)
    checkpoint_quantized = base.model.quantization is not None
    quants = (None,) if checkpoint_quantized else quantizations
    rows: list[Row] = []
    for gpu in gpus:
        for layout in layouts_for(
            gpu, base.model.supports_tensor_parallel, counts=counts, quantizations=quants, kv_dtypes=kv_dtypes
        ):
            rows.append(plan_layout(base, gpu, layout, workload))
    return rank(rows)
