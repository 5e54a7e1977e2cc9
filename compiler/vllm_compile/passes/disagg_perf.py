"""Performance of disaggregated prefill/decode, and the comparison with an aggregated layout.

A request's path (vLLM's P/D flow with a routing proxy: tests/v1/kv_connector/nixl_integration/
toy_proxy_server.py, llm-d's routing sidecar): the proxy sends it to a prefill engine with
max_tokens=1, the decode engine then pulls its KV blocks over the connector and generates. So

    TTFT = prefill-pool queue + prefill(prompt) + KV transfer(prompt's KV bytes / fabric) + one decode step
    ITL  = the decode pool's step at its running batch (no prefill chunks in its steps)

Step times come from the same physics as the aggregated estimate (perf_model.StepModel of each pool's
engine). The fabric is `hardware.interconnect`; its bandwidths are the parts' datasheets, the
efficiency and per-transfer latency are assumptions (not calibrated: no public P/D benchmark the
repository holds gives them) and the result says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..plan import Plan
from ..profile.v1 import Profile
from ..units import stable_float
from .perf import estimate, kv_limit, slo_check, step_model
from .workload import Workload

# Link bandwidth per GPU, one direction, bytes/s.
IB_NDR_BPS = 400e9 / 8  # ConnectX-7 NDR 400 Gb/s, one per GPU (NVIDIA DGX H100 datasheet)
ETHERNET_BPS = 100e9 / 8  # 100 GbE per node: NIXL's UCX over TCP (the common cloud NIC without RDMA)
PCIE_BPS = {3: 16e9, 4: 32e9, 5: 64e9, 6: 128e9}  # x16 per direction (PCI-SIG base specifications)
# Assumptions (not calibrated): the share of the link a NIXL/UCX READ of MB-sized blocks reaches, and
# the fixed cost per request (NIXL notification, descriptor lists, the proxy's second hop).
FABRIC_EFFICIENCY = 0.8
TRANSFER_LATENCY_S = 0.5e-3


@dataclass(frozen=True)
class Fabric:
    bytes_per_s: float
    label: str


def fabric(plans: dict[str, Plan], profile: Profile) -> Fabric:
    """The path KV takes from a prefill rank to a decode rank (each TP rank moves its own share)."""
    pre, dec = plans["prefill"], plans["decode"]
    gpu = dec.resolved.gpu
    ranks = min(pre.engine.gpus_per_replica, dec.engine.gpus_per_replica)
    kind = profile.hardware.interconnect
    per_node = profile.hardware.gpus_per_node or gpu.gpus_per_node
    if kind == "unknown":
        one_node = pre.engine.total_gpus + dec.engine.total_gpus <= per_node
        kind = "nvlink" if one_node and gpu.nvlink_gbps else "pcie" if one_node else "ethernet"
        assumed = f" (hardware.interconnect unknown: assumed {kind}, " + (
            "both pools on one node)" if one_node else "pools on different nodes without RDMA)"
        )
    else:
        assumed = ""
    if kind == "nvlink" and gpu.nvlink_gbps:
        bw = gpu.nvlink_gbps * 1e9 / 2 * ranks  # nvlink_gbps is bidirectional per GPU (catalog)
        label = f"NVLink {gpu.nvlink_gbps / 2:g} GB/s per GPU per direction x {ranks} rank(s) (UCX cuda_ipc)"
    elif kind == "infiniband":
        bw = IB_NDR_BPS * ranks
        label = f"InfiniBand NDR 400 Gb/s per GPU x {ranks} rank(s) (NIXL over RDMA, GPUDirect)"
    elif kind == "pcie" or (kind == "nvlink" and not gpu.nvlink_gbps):
        bw = PCIE_BPS.get(gpu.pcie_gen, 32e9) * ranks
        label = f"PCIe gen{gpu.pcie_gen} x16 per GPU x {ranks} rank(s)"
    else:
        bw = ETHERNET_BPS
        label = "100 GbE per node, NIXL/UCX over TCP"
    return Fabric(bw * FABRIC_EFFICIENCY, label + assumed)


def kv_bytes_per_request(plan: Plan, tokens: float) -> float:
    """A request's KV on every rank of the prefill engine: per-GPU bytes/token x TP x PP ranks."""
    return plan.memory.kv.bytes_per_token * tokens * plan.engine.gpus_per_replica


def _prefill_capacity(plan: Plan, prompt: float) -> tuple[float, float]:
    """(seconds to prefill one prompt alone, prompts/s one prefill engine sustains)."""
    sm = step_model(plan.resolved, plan.engine)
    budget = plan.engine.max_num_batched_tokens
    alone = sm.prefill_time(prompt, budget)
    per_step = max(1, int(budget // max(prompt, 1.0)))
    if per_step == 1:
        return alone, 1.0 / alone
    step = sm.step_time(0.0, 0.0, per_step * prompt, prompt / 2)
    return alone, per_step / step


def _decode_itl(plan: Plan, workload: Workload):
    sm = step_model(plan.resolved, plan.engine)
    ctx = workload.prompt.mean + workload.gen.mean / 2  # mean KV a decoding request attends over

    def itl(batch: float) -> float:
        b = max(batch, 1.0)
        return sm.step_time(b, b * ctx)

    return itl


def _solve(
    *,
    concurrency: float | None,
    rate: float | None,
    prefill_s: float,
    prefill_cap: float,
    transfer_s: float,
    itl,
    gen: float,
    decode_limit: int,
    rp: int,
    rd: int,
) -> dict[str, float]:
    """Throughput, TTFT and ITL of the split layout (closed loop at `concurrency` or open at `rate`)."""
    cap_p = prefill_cap * rp

    def at(x: float) -> tuple[float, float, float, float]:
        b = min(x * gen * itl(1.0) / rd, decode_limit)
        for _ in range(30):  # decode batch: Little's law over its own step time
            b = min(x * gen * itl(b) / rd, decode_limit)
        t = itl(b)
        rho = min(x / cap_p, 0.999)
        queue = rho / (2 * (1 - rho)) * prefill_s  # M/D/1 wait at the prefill pool
        ttft = queue + prefill_s + transfer_s + t
        return ttft, t, b, ttft + gen * t

    cap_d = rd * decode_limit / (gen * itl(decode_limit))
    cap = min(cap_p, cap_d)
    notes: list[str] = []
    if rate is not None:
        x = min(rate, cap * 0.999)
        if rate >= cap:
            notes.append("saturated")
        ttft, t, b, e2e = at(x)
    else:
        c = float(concurrency or 1)
        lo, hi = 0.0, cap * 0.999
        if hi * at(hi)[3] < c:  # the pools cannot take that much load: the rest queue for a slot
            x = hi
            ttft, t, b, e2e = at(x)
            extra = c / x - e2e
            ttft, e2e = ttft + extra, e2e + extra
            notes.append("saturated")
        else:
            for _ in range(60):
                mid = (lo + hi) / 2
                if mid * at(mid)[3] < c:
                    lo = mid
                else:
                    hi = mid
            x = (lo + hi) / 2
            ttft, t, b, e2e = at(x)
    return {
        "request_rps": x,
        "ttft_s": ttft,
        "itl_s": t,
        "e2e_s": e2e,
        "decode_batch": b,
        "prefill_utilization": x / cap_p,
        "saturated": 1.0 if notes else 0.0,
    }


MAX_AUTO_PREFILL = 256  # replicas `auto` may pick for one decode pool (a bound, not a recommendation)


def _prefill_replicas(load: float, prefill_s: float, cap: float, rest_s: float, workload: Workload) -> int:
    """Prefill engines for `load` requests/s: enough to keep the queue stable, then enough for the TTFT
    SLO where one is set (the M/D/1 wait shrinks as engines are added; the prompt's own prefill,
    the transfer and the first decode step do not)."""
    rp = max(1, math.floor(load / cap) + 1)
    slo = workload.slo
    targets = [t for t in (slo.ttft_ms_p50, slo.ttft_ms_p90, slo.ttft_ms_p99) if t is not None]
    if not targets:
        return rp
    target_s = min(targets) / 1e3

    def ttft(n: int) -> float:
        rho = load / (n * cap)
        return rho / (2 * (1 - rho)) * prefill_s + prefill_s + rest_s

    if prefill_s + rest_s >= target_s:
        return (
            rp  # the prompt's own prefill misses the SLO: more engines only shorten a queue it does not have
        )
    while rp < MAX_AUTO_PREFILL and ttft(rp) > target_s:
        rp += 1
    return rp


def _pct(a: float, b: float) -> float:
    return stable_float(100.0 * (a - b) / b, 3) if b else 0.0


def disaggregated_estimate(plans: dict[str, Plan], workload: Workload, profile: Profile) -> dict[str, Any]:
    """The split layout's latency and throughput, the prefill:decode ratio, and the comparison."""
    pre, dec = plans["prefill"], plans["decode"]
    prompt, gen = workload.prompt.mean, max(workload.gen.mean, 1.0)
    prefill_s, prefill_cap = _prefill_capacity(pre, prompt)
    link = fabric(plans, profile)
    kv_bytes = kv_bytes_per_request(pre, prompt)
    transfer_s = TRANSFER_LATENCY_S + kv_bytes / link.bytes_per_s
    itl = _decode_itl(dec, workload)
    limit = kv_limit(dec.memory, dec.engine, workload)
    slo_itl = workload.slo.itl_ms
    slo_limit = limit
    if slo_itl is not None:  # the largest decode batch whose step meets the ITL SLO
        while slo_limit > 1 and itl(slo_limit) * 1e3 > slo_itl:
            slo_limit -= 1
    decode_cap = slo_limit / (gen * itl(slo_limit))  # requests/s one decode engine finishes
    ratio = decode_cap / prefill_cap  # prefill engines per decode engine the workload keeps busy
    # Replicas: as the roles say, or (auto) what the load needs at that ratio.
    wanted = {role: plans[role].resolved.profile.deploy.replicas for role in ("prefill", "decode")}
    load = workload.request_rate
    if load is None:
        load = (workload.concurrency or 1) / (prefill_s + transfer_s + gen * itl(slo_limit))
    rd = wanted["decode"] if isinstance(wanted["decode"], int) else max(1, math.ceil(load / decode_cap))
    if isinstance(wanted["prefill"], int):
        rp = wanted["prefill"]
    else:
        rp = _prefill_replicas(load, prefill_s, prefill_cap, transfer_s + itl(slo_limit), workload)
    split = _solve(
        concurrency=workload.concurrency if workload.request_rate is None else None,
        rate=workload.request_rate,
        prefill_s=prefill_s,
        prefill_cap=prefill_cap,
        transfer_s=transfer_s,
        itl=itl,
        gen=gen,
        decode_limit=limit,
        rp=rp,
        rd=rd,
    )
    gpus = rp * pre.engine.total_gpus + rd * dec.engine.total_gpus
    dis_tok = split["request_rps"] * gen
    misses = slo_check(
        workload,
        ttft_s=split["ttft_s"],
        ttft_p99_s=split["ttft_s"],
        tpot_s=split["itl_s"],
        e2e_s=split["e2e_s"],
    )
    disaggregated = {
        "replicas": {"prefill": rp, "decode": rd},
        "gpus": gpus,
        "ttft_ms": stable_float(split["ttft_s"] * 1e3),
        "itl_ms": stable_float(split["itl_s"] * 1e3),
        "e2e_s": stable_float(split["e2e_s"]),
        "request_rps": stable_float(split["request_rps"]),
        "output_tok_s": stable_float(dis_tok),
        "output_tok_s_per_gpu": stable_float(dis_tok / gpus),
        "prefill_utilization": stable_float(split["prefill_utilization"]),
        "decode_batch": stable_float(split["decode_batch"]),
        "slo_met": (not misses) if workload.slo.any else None,
        "slo_missed": misses,
        "saturated": bool(split["saturated"]),
    }
    aggregated = _aggregated(dec, workload, gpus)
    comparison = _compare(aggregated, disaggregated, workload)
    return {
        "replicas": {"prefill": rp, "decode": rd},
        "kv_transfer": {
            "bytes_per_request": int(kv_bytes),
            "prompt_tokens": stable_float(prompt),
            "fabric": link.label,
            "effective_gb_s": stable_float(link.bytes_per_s / 1e9),
            "ms": stable_float(transfer_s * 1e3),
        },
        "prefill": {
            "ms_per_prompt": stable_float(prefill_s * 1e3),
            "requests_per_s_per_replica": stable_float(prefill_cap),
        },
        "decode": {
            "requests_per_s_per_replica": stable_float(decode_cap),
            "max_batch": slo_limit,
        },
        "ratio": {
            "prefill_per_decode": stable_float(ratio, 3),
            "text": f"{ratio:.2f} prefill engine(s) per decode engine keep both pools busy",
        },
        "disaggregated": disaggregated,
        "aggregated": aggregated,
        "comparison": comparison,
        "assumptions": [
            "TTFT = prefill-pool queue (M/D/1) + prefill of the mean prompt + KV transfer + one decode step; "
            "ITL = the decode pool's step at its running batch (no prefill chunks)",
            f"KV transfer: {int(kv_bytes)} B per request over {link.label}, {FABRIC_EFFICIENCY:g} of the link and "
            f"{TRANSFER_LATENCY_S * 1e3:g} ms per request assumed (not calibrated)",
            "aggregated layout: the decode pool's engine, one replica per "
            f"{dec.engine.total_gpus} GPU(s) of the same {gpus} GPUs, the load split evenly",
            "prefix caching and chunked-prefill interference inside the prefill pool are not modelled",
        ],
    }


def _aggregated(dec: Plan, workload: Workload, gpus: int) -> dict[str, Any]:
    """An aggregated layout on the same GPUs: the decode engine serving whole requests."""
    n = max(1, gpus // dec.engine.total_gpus)
    resolved = dec.resolved
    deploy = resolved.profile.deploy.model_copy(update={"replicas": n})
    profile = resolved.profile.model_copy(update={"deploy": deploy})
    resolved = resolved.model_copy(update={"profile": profile})
    if workload.request_rate is None:
        workload = workload.model_copy(
            update={"concurrency": max(1, math.ceil((workload.concurrency or 1) / n))}
        )
    est = estimate(resolved, dec.engine, dec.memory, workload)
    saturated = any("exceeds its capacity" in x for x in est.notes)  # perf.estimate's note past capacity
    out_tok = est.output_tok_s.value * n
    rps = est.request_rps.value * n
    if workload.request_rate is not None and not saturated:
        # A stable open loop delivers the offered rate (the simulation's window measures it with noise).
        rps = workload.request_rate
        out_tok = rps * workload.gen.mean
    return {
        "replicas": n,
        "gpus": n * dec.engine.total_gpus,
        "ttft_ms": est.ttft_ms.value,
        "itl_ms": est.itl_ms.value,
        "e2e_s": est.e2e_latency_s.value,
        "request_rps": stable_float(rps),
        "output_tok_s": stable_float(out_tok),
        "output_tok_s_per_gpu": stable_float(out_tok / (n * dec.engine.total_gpus)),
        "slo_met": est.slo_met,
        "slo_missed": [x.removeprefix("SLO missed: ") for x in est.notes if x.startswith("SLO missed")],
        "saturated": saturated,
    }


def _compare(agg: dict[str, Any], dis: dict[str, Any], workload: Workload) -> dict[str, Any]:
    """Which layout wins for the workload and its SLO, and by how much."""
    rate = workload.request_rate
    if rate is not None:
        keeps = {name: not x["saturated"] for name, x in (("aggregated", agg), ("disaggregated", dis))}
        if keeps["aggregated"] != keeps["disaggregated"]:
            winner = "aggregated" if keeps["aggregated"] else "disaggregated"
            loser = "disaggregated" if winner == "aggregated" else "aggregated"
            return {
                "winner": winner,
                "basis": "sustains the request rate",
                "by_pct": None,
                "text": f"{winner} sustains {rate:g} requests/s; {loser} saturates at "
                f"{(agg if loser == 'aggregated' else dis)['request_rps']:.2f}/s (its queue grows without bound)",
            }
    if workload.slo.any and agg["slo_met"] != dis["slo_met"]:
        winner = "disaggregated" if dis["slo_met"] else "aggregated"
        loser = "aggregated" if winner == "disaggregated" else "disaggregated"
        missed = "; ".join((agg if loser == "aggregated" else dis)["slo_missed"])
        return {
            "winner": winner,
            "basis": "SLO",
            "by_pct": None,
            "text": f"{winner} meets the SLO and {loser} does not ({missed})",
        }
    if workload.objective == "latency":
        a, d = agg["e2e_s"], dis["e2e_s"]
        winner = "disaggregated" if d < a else "aggregated"
        by = abs(_pct(a, d)) if winner == "disaggregated" else abs(_pct(d, a))
        basis = "mean end-to-end latency (objective: latency)"
        text = f"{winner} wins on {basis} by {by:.0f}% ({min(a, d):.2f} s vs {max(a, d):.2f} s)"
    else:
        a, d = agg["output_tok_s_per_gpu"], dis["output_tok_s_per_gpu"]
        winner = "disaggregated" if d > a else "aggregated"
        by = _pct(d, a) if winner == "disaggregated" else _pct(a, d)
        basis = "output tokens/s per GPU at the workload's load"
        text = f"{winner} wins on {basis} by {by:.0f}% ({max(a, d):.1f} vs {min(a, d):.1f})"
    return {
        "winner": winner,
        "basis": basis,
        "by_pct": stable_float(by, 3),
        "text": text + f"; TTFT {agg['ttft_ms']:.0f} ms aggregated vs {dis['ttft_ms']:.0f} ms disaggregated, "
        f"ITL {agg['itl_ms']:.1f} vs {dis['itl_ms']:.1f} ms",
    }
