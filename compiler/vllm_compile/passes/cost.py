"""Cost pass: what a deployment costs per hour and per million output tokens at its operating point.

Operating point: what the fleet serves for the workload, not what it could serve at saturation. With
a cluster plan (a request rate, or `deploy.replicas: auto`) that is the cluster's output tokens/s at
its replica count; otherwise the performance estimate of one replica at the workload's load, times
the configured replicas. $ per million output tokens = fleet $/hour / (output tok/s x 3600) x 1e6:
the whole bill charged to the generated tokens (prompt tokens ride free), as price lists per
million output tokens are read.

Public functions (the recommender and charts use them): `usd_per_million_tokens`, `plan_cost`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..facts.prices import GpuPrice, gpu_price
from ..plan import EngineConfig, PerfEstimate, Resolved
from ..units import stable_float

SECONDS_PER_HOUR = 3600.0


class CostPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    usd_per_gpu_hour: float
    price: str  # the price's label: provider, list price / estimate / override, date
    price_source: str
    price_estimate: bool
    gpus_per_replica: int
    replicas: int
    total_gpus: int
    replica_usd_per_hour: float
    fleet_usd_per_hour: float
    fleet_output_tok_s: float  # at the operating point
    usd_per_million_output_tokens: float | None  # None when nothing is served (0 tok/s)
    operating_point: str
    notes: list[str] = Field(default_factory=list)


def usd_per_million_tokens(usd_per_hour: float, tok_s: float) -> float | None:
    """Dollars per million tokens for a fleet costing `usd_per_hour` that serves `tok_s` tokens/s."""
    if tok_s <= 0:
        return None
    return usd_per_hour / (tok_s * SECONDS_PER_HOUR) * 1e6


def fleet_cost(
    price: GpuPrice, *, gpus_per_replica: int, replicas: int, fleet_tok_s: float, operating_point: str
) -> CostPlan:
    """The cost figures of `replicas` replicas of `gpus_per_replica` GPUs serving `fleet_tok_s`."""
    replica_h = price.usd_per_gpu_hour * gpus_per_replica
    fleet_h = replica_h * replicas
    per_m = usd_per_million_tokens(fleet_h, fleet_tok_s)
    return CostPlan(
        usd_per_gpu_hour=stable_float(price.usd_per_gpu_hour),
        price=price.label,
        price_source=price.source,
        price_estimate=price.estimate or price.override,
        gpus_per_replica=gpus_per_replica,
        replicas=replicas,
        total_gpus=gpus_per_replica * replicas,
        replica_usd_per_hour=stable_float(replica_h),
        fleet_usd_per_hour=stable_float(fleet_h),
        fleet_output_tok_s=stable_float(fleet_tok_s),
        usd_per_million_output_tokens=stable_float(per_m) if per_m is not None else None,
        operating_point=operating_point,
    )


def plan_cost(
    resolved: Resolved,
    engine: EngineConfig,
    performance: PerfEstimate | None,
    cluster: dict[str, Any] | None = None,
) -> CostPlan | None:
    """The deployment's cost, or None when its GPU has no price or nothing is estimated."""
    price = gpu_price(resolved.gpu, resolved.profile.cost)
    if price is None or performance is None:
        return None
    per_replica = engine.total_gpus  # TP x PP x DP: one deployed replica
    if cluster is not None:
        replicas = int(cluster["replicas"])
        tok_s = float(cluster["cluster_output_tok_s"])
        point = (
            f"cluster plan: {replicas} replica(s) serving {tok_s:,.0f} output tok/s "
            f"({float(cluster['cluster_rps']):.2f} req/s)"
        )
    else:
        wanted = resolved.profile.deploy.replicas
        replicas = int(wanted) if wanted != "auto" else 1
        tok_s = performance.output_tok_s.value * replicas
        point = (
            f"{replicas} replica(s) at concurrency {performance.concurrency} each, "
            f"{performance.output_tok_s.value:,.0f} output tok/s per replica"
        )
    plan = fleet_cost(
        price, gpus_per_replica=per_replica, replicas=replicas, fleet_tok_s=tok_s, operating_point=point
    )
    notes = ["performance figures are estimates: so is the cost per token"]
    rate = resolved.profile.workload.request_rate or (resolved.trace.request_rate if resolved.trace else None)
    served = (
        float(cluster["cluster_rps"]) if cluster is not None else performance.request_rps.value * replicas
    )
    if rate and served < 0.9 * rate:
        notes.append(
            f"the fleet serves {served:.2f} of the {rate:g} req/s offered: this is the cost of a saturated fleet, "
            "not of the workload (deploy.replicas: auto sizes it for the rate)"
        )
    if price.estimate:
        notes.append(f"price is an estimate ({price.offer}; {price.source})")
    return plan.model_copy(update={"notes": notes})
