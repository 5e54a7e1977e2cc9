"""Performance estimate of one deployment: TTFT, ITL, throughput and latency for the workload.

Physics first (`perf_model.StepModel`: weight and KV bytes over HBM bandwidth, FLOPs over tensor
peak, TP all-reduce, PP hops, MoE experts touched, chunked prefill in decode steps, CUDA graphs vs
eager), times a handful of efficiencies calibrated on real vLLM benchmarks. A closed-loop workload
(`concurrency` requests in flight) is answered by the closed-form steady state of continuous
batching; a request-rate workload by a small discrete-event simulation of the scheduler (see
`batching_sim` for why a simulation rather than a queueing formula). These are estimates: the
assumptions travel with them into the lock and the report.
"""

from __future__ import annotations

from typing import Any

from ..facts.gpu_spec import GpuSpec
from ..plan import EngineConfig, MemoryPlan, PerfEstimate, Range, Resolved
from ..profile.v1 import WorkloadSpec
from ..units import stable_float
from . import perf_model as pm
from .batching_sim import SteadyState, mean, p99, percentile, simulate, steady_state
from .workload import Workload, resolve_workload, workload_of
from .workload_sample import requests

# Relative uncertainty of each figure, so a range holds most, not all, real runs: at or above the
# 80th-percentile absolute error of the model on the in-scope controlled calibration entries
# (bench/perf_accuracy.py: ITL 13%, throughput 18%, TTFT at concurrency <= 4 30%), and on the entries
# held out one GPU family at a time (--cv: ITL 13%, throughput 41%, TTFT 35%); throughput's range
# holds 88% of the calibration entries and 75% of the held-out ones.
UNCERTAINTY = {"itl": 0.20, "ttft": 0.50, "throughput": 0.35}
SIM_REQUESTS = 240  # simulated requests for a request-rate workload (first 20% are warm-up)


def step_model(
    resolved: Resolved, engine: EngineConfig, *, gpu: GpuSpec | None = None, acceptance: float | None = None
) -> pm.StepModel:
    """The step-time model of one replica of `engine` on the resolved GPU."""
    gpu = gpu or resolved.gpu
    tp, pp = engine.tensor_parallel_size, engine.pipeline_parallel_size
    shape = pm.model_shape(
        resolved.model,
        dtype=engine.dtype,
        quantization=engine.quantization,
        kv_cache_dtype=engine.kv_cache_dtype,
        tp=tp,
    )
    per_node = resolved.profile.hardware.gpus_per_node or gpu.gpus_per_node
    hw = pm.hardware(
        gpu,
        dtype=engine.dtype,
        fp8_compute=shape.fp8_compute,
        tp=tp,
        multi_node_pp=tp * pp > per_node,
        fp4_compute=shape.fp4_compute,
        # vllm/envs.py: VLLM_ROCM_USE_AITER is off unless set to 1/true.
        rocm_aiter=str(resolved.profile.deploy.env.get("VLLM_ROCM_USE_AITER", "")).lower() in ("1", "true"),
    )
    if engine.enforce_eager:
        graph_max = 0
    elif engine.cudagraph_capture_sizes:
        graph_max = max(engine.cudagraph_capture_sizes)
    else:
        graph_max = engine.max_cudagraph_capture_size or resolved.vllm.max_cudagraph_capture_size
    from .all2all_perf import cost as all2all_cost  # wide EP: dispatch/combine per MoE layer

    a2a = all2all_cost(resolved.model, engine, gpu, per_node, resolved.profile.hardware.interconnect)
    sm = pm.StepModel(
        shape=shape,
        hw=hw,
        tp=tp,
        pp=pp,
        eager=engine.enforce_eager,
        graph_max_batch=graph_max,
        ep_dp=engine.data_parallel_size if a2a is not None else 1,
        all2all=a2a,
        # vllm/config/vllm.py turns it on unless an incompatible option is set (pipeline parallelism).
        async_scheduling=resolved.vllm.async_scheduling and pp == 1,
    )
    from .speculative import acceptance_rate, serving_step

    # Speculative decoding and LoRA change the step (passes/speculative.py, passes/lora.py).
    return serving_step(
        sm, resolved, engine, acceptance if acceptance is not None else acceptance_rate(resolved)
    )


def _range(value: float, u: float, *, time: bool) -> Range:
    """Times can be u slower or faster; rates are the reciprocal view of the same error."""
    lo, hi = (
        (value * (1 - u), value * (1 + u)) if time else (value / (1 + u), value / (1 - u) if u < 1 else value)
    )
    return Range(value=stable_float(value), low=stable_float(lo), high=stable_float(hi))


def _assumptions(resolved: Resolved, engine: EngineConfig, workload: Workload, sm: pm.StepModel) -> list[str]:
    gpu = resolved.gpu
    out = [
        "estimates, not measurements: physics (bytes / HBM bandwidth, FLOPs / tensor peak) times efficiencies "
        f"calibrated on public vLLM benchmarks (bandwidth {pm.BW_EFF:.2f}, compute {pm.COMPUTE_EFF:.2f}, "
        f"{pm.STEP_OVERHEAD_S * 1e3:.1f} ms host overhead per step)",
        f"{gpu.name}: {gpu.memory_bandwidth_gbps:g} GB/s HBM, {sm.hw.peak / 1e12:g} TFLOP/s dense peak in the GEMM dtype",
        f"means ({workload.prompt.mean:g} prompt / {workload.gen.mean:g} generated tokens) for the closed form; the "
        "simulation (percentiles, request rates) draws lengths from the workload's distributions"
        + (f" ({workload.source})" if workload.trace is not None else ""),
        (
            "no prefix-cache hits (distinct prompts)"
            if not resolved.profile.workload.prefix_reuse
            else "prefix-cache hits as below"
        )
        + ("; no speculative decoding" if resolved.profile.vllm.speculative is None else "")
        + "; uniform MoE routing",
        "ITL is TPOT: (end-to-end - TTFT) / (generated - 1), prefills of other requests included",
    ]
    if engine.tensor_parallel_size > 1:
        link = "NVLink" if gpu.nvlink_gbps else f"PCIe gen{gpu.pcie_gen}"
        out.append(
            f"TP {engine.tensor_parallel_size}: 2 all-reduces per layer over {link} ({sm.hw.link_bw / 1e9:g} GB/s one way)"
        )
    if engine.pipeline_parallel_size > 1:
        out.append(
            f"PP {engine.pipeline_parallel_size}: one micro-batch per stage in flight; fewer requests than stages leave bubbles"
        )
    if resolved.model.is_moe:
        out.append("MoE: a step reads the experts its tokens touch, E(1-(1-k/E)^tokens) of E per layer")
    if gpu.vendor == "amd":
        out.append(
            "ROCm with AITER (VLLM_ROCM_USE_AITER=1): AITER kernels taken at the common efficiencies (not calibrated)"
            if sm.hw.compute_eff == pm.COMPUTE_EFF
            else "ROCm without AITER: GEMM, fused-MoE and prefill-attention shares fitted on MI300X runs "
            f"(GEMM {pm.ROCM_GEMM_RATIO:g} of CUDA's, attention {pm.ROCM_ATTN_EFF:g} of the bf16 peak)"
        )
    if sm.async_scheduling:
        out.append(
            "async scheduling (this release's default): the host's step preparation overlaps the GPU step"
        )
    if engine.enforce_eager:
        out.append("enforce_eager: no CUDA graphs, kernel launches on every layer of every step")
    from .all2all_perf import assumption as all2all_assumption

    out += all2all_assumption(sm.all2all)
    if workload.request_rate is not None:
        out.append(
            f"request rate {workload.request_rate:g}/s: discrete-event simulation of continuous batching, "
            + (
                "the trace's arrivals time-scaled to the rate, first 20% as warm-up"
                if workload.trace is not None
                else f"{SIM_REQUESTS} arrivals with gamma gaps of burstiness {workload.burstiness:g} (1 = Poisson, "
                "seed 0), first 20% as warm-up"
            )
        )
    return out


def _curve(
    sm: pm.StepModel, engine: EngineConfig, memory: MemoryPlan, workload: Workload, limit: int
) -> list[dict[str, float]]:
    levels, c = [], 1
    while c < limit:
        levels.append(c)
        c *= 2
    levels.append(max(limit, 1))
    rows = []
    for c in sorted(set(levels)):
        s = steady_at(sm, engine, memory, workload, c)
        rows.append(
            {
                "concurrency": float(c),
                "ttft_ms": stable_float(s.ttft_s * 1e3),
                "itl_ms": stable_float(s.tpot_s * 1e3),
                "output_tok_s": stable_float(s.output_tok_s),
                "request_rps": stable_float(s.request_rps),
            }
        )
    return rows


def steady_at(
    sm: pm.StepModel, engine: EngineConfig, memory: MemoryPlan, workload: Workload, c: int
) -> SteadyState:
    """The closed-form steady state with `c` requests in flight, within what the KV cache admits."""
    return steady_state(
        sm,
        prompt=workload.prompt.mean,
        gen=workload.gen.mean,
        concurrency=c,
        max_num_seqs=engine.max_num_seqs,
        max_num_batched_tokens=token_budget(engine, workload),
        kv_tokens=max(memory.kv.tokens, 0),
    )


def token_budget(engine: EngineConfig, workload: Workload) -> int:
    """Tokens one engine step may schedule (max_num_batched_tokens as vLLM applies it)."""
    # Without chunked prefill a prompt is scheduled whole (vLLM raises the budget to max_model_len).
    if engine.enable_chunked_prefill:
        return engine.max_num_batched_tokens
    return max(engine.max_num_batched_tokens, int(workload.prompt.max))


def kv_limit(memory: MemoryPlan, engine: EngineConfig, workload: Workload) -> int:
    """Requests the engine can run at once for this workload: KV tokens and max_num_seqs."""
    per = max(workload.context_tokens, 1.0)
    return max(1, min(engine.max_num_seqs, int(max(memory.kv.tokens, 0) // per)))


def simulate_rate(
    sm: pm.StepModel, engine: EngineConfig, memory: MemoryPlan, workload: Workload, rate: float
) -> dict[str, float]:
    """Open-loop run at `rate` requests/s; steady-state metrics after a 20% warm-up. Lengths follow the
    workload's distributions (or its trace), arrivals its burstiness (workload_sample)."""
    prompts, gens, arrivals = requests(workload, SIM_REQUESTS, rate)
    res = _run(sm, engine, memory, workload, prompts, gens, arrivals=arrivals)
    return {
        "ttft_s": mean(res.ttft_s),
        "ttft_p99_s": p99(res.ttft_s),
        "tpot_s": mean(res.tpot_s),
        "e2e_s": mean(res.e2e_s),
        "request_rps": res.request_rps,
        "output_tok_s": res.output_tok_s,
        "total_tok_s": res.total_tok_s,
        "concurrency": res.mean_batch,
        **_percentiles(res),
    }


def simulate_closed(
    sm: pm.StepModel, engine: EngineConfig, memory: MemoryPlan, workload: Workload, concurrency: int
) -> dict[str, float]:
    """Closed loop at `concurrency` with the workload's length distributions: the percentiles the
    closed-form steady state (means only) cannot give."""
    n = min(max(SIM_REQUESTS, 2 * concurrency), 600)  # enough rounds for tails; bounded cost
    prompts, gens, _ = requests(workload, n, None)
    return _percentiles(_run(sm, engine, memory, workload, prompts, gens, max_concurrency=concurrency))


def _run(
    sm: pm.StepModel,
    engine: EngineConfig,
    memory: MemoryPlan,
    workload: Workload,
    prompts: list[int],
    gens: list[int],
    **client: Any,
):
    """The batching simulation of this engine, its KV cache and token budget; the first 20% warm up.
    `client`: arrivals (open loop) or max_concurrency (closed loop)."""
    return simulate(
        sm,
        prompts=prompts,
        gens=gens,
        max_num_seqs=engine.max_num_seqs,
        max_num_batched_tokens=token_budget(engine, workload),
        kv_tokens=max(memory.kv.tokens, 1),
        warmup=len(prompts) // 5,
        **client,
    )


def _percentiles(res) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, xs, scale in (
        ("ttft_ms", res.ttft_s, 1e3),
        ("itl_ms", res.tpot_s, 1e3),
        ("e2e_s", res.e2e_s, 1.0),
    ):
        for q in (50, 90, 99):
            out[f"{name}_p{q}"] = stable_float(percentile(xs, q / 100) * scale)
    return out


def slo_check(
    workload: Workload,
    *,
    ttft_s: float,
    ttft_p99_s: float,
    tpot_s: float,
    e2e_s: float,
    percentiles: dict[str, float] | None = None,
) -> list[str]:
    """The SLOs this point misses, each with the numbers. Percentile SLOs (TTFT p90, ITL p90/p99)
    need the simulation's `percentiles`; without them the mean stands in (closed-form points)."""
    slo, miss = workload.slo, []
    pct = percentiles or {}
    if slo.ttft_ms_p50 is not None and ttft_s * 1e3 > slo.ttft_ms_p50:
        miss.append(f"TTFT p50 {ttft_s * 1e3:.0f} ms > {slo.ttft_ms_p50:g} ms")
    if slo.ttft_ms_p99 is not None and ttft_p99_s * 1e3 > slo.ttft_ms_p99:
        miss.append(f"TTFT p99 {ttft_p99_s * 1e3:.0f} ms > {slo.ttft_ms_p99:g} ms")
    if slo.itl_ms is not None and tpot_s * 1e3 > slo.itl_ms:
        miss.append(f"ITL {tpot_s * 1e3:.1f} ms > {slo.itl_ms:g} ms")
    if slo.e2e_s is not None and e2e_s > slo.e2e_s:
        miss.append(f"end-to-end {e2e_s:.1f} s > {slo.e2e_s:g} s")
    for key, label, fallback in (
        ("ttft_ms_p90", "TTFT p90", ttft_p99_s * 1e3),
        ("itl_ms_p90", "ITL p90", tpot_s * 1e3),
        ("itl_ms_p99", "ITL p99", tpot_s * 1e3),
    ):
        target = getattr(slo, key)
        value = pct.get(key, fallback)
        if target is not None and value > target:
            miss.append(f"{label} {value:.1f} ms > {target:g} ms")
    return miss


def p99_ttft_closed(sm: pm.StepModel, s: SteadyState, workload: Workload, budget: int) -> float:
    """p99 TTFT in a closed loop: the p99 prompt's prefill plus the queue."""
    extra = sm.prefill_time(workload.prompt.p99, budget) - sm.prefill_time(workload.prompt.mean, budget)
    return s.ttft_s + max(extra, 0.0)


def estimate(
    resolved: Resolved,
    engine: EngineConfig,
    memory: MemoryPlan,
    workload: Workload | WorkloadSpec | None = None,
) -> PerfEstimate:
    """The estimate at the workload's concurrency (closed loop) or request rate (open loop), with a
    curve over concurrency up to what the KV cache and max_num_seqs admit."""
    if not isinstance(workload, Workload):
        workload = (
            resolve_workload(workload, trace=resolved.trace)
            if workload is not None
            else workload_of(resolved)
        )
    from . import prefix_reuse
    from . import speculative as spec

    workload, reuse_notes = prefix_reuse.apply(workload, resolved, engine)
    sm = step_model(resolved, engine)
    limit = kv_limit(memory, engine, workload)
    notes: list[str] = []
    budget = token_budget(engine, workload)
    replicas = _replicas(resolved, engine, memory, workload)
    if workload.request_rate is not None:
        # The load balancer splits the rate over the replicas; each replica is estimated alone.
        r = simulate_rate(sm, engine, memory, workload, workload.request_rate / (replicas or 1))
        conc = max(1, round(r["concurrency"]))
        ttft, ttft99, tpot, e2e = r["ttft_s"], r["ttft_p99_s"], r["tpot_s"], r["e2e_s"]
        out_tok, total_tok, rps = r["output_tok_s"], r["total_tok_s"], r["request_rps"]
        cap = steady_at(sm, engine, memory, workload, limit).request_rps
        if workload.request_rate / (replicas or 1) > cap:
            notes.append(
                f"request rate {workload.request_rate / (replicas or 1):g}/s per replica exceeds its capacity (~{cap:.2f}/s at "
                f"{limit} running): the queue grows without bound; see the cluster plan for replicas"
            )
    else:
        conc = workload.concurrency or 1
        s = steady_at(sm, engine, memory, workload, conc)
        ttft, tpot, e2e = s.ttft_s, s.tpot_s, s.e2e_s
        ttft99 = p99_ttft_closed(sm, s, workload, budget)
        out_tok, total_tok, rps = s.output_tok_s, s.total_tok_s, s.request_rps
        if conc > limit:
            notes.append(
                f"concurrency {conc} > {limit} requests the engine runs at once (KV cache {memory.kv.tokens} tokens "
                f"/ max_num_seqs {engine.max_num_seqs}): the rest queue ({s.queue_s:.2f} s on average)"
            )
    if workload.request_rate is not None:
        pct = {k: r[k] for k in r if k.startswith(("ttft_ms_", "itl_ms_", "e2e_s_"))}
    else:
        pct = simulate_closed(sm, engine, memory, workload, conc)
    misses = slo_check(workload, ttft_s=ttft, ttft_p99_s=ttft99, tpot_s=tpot, e2e_s=e2e, percentiles=pct)
    notes.extend(f"SLO missed: {m}" for m in misses)
    u = UNCERTAINTY
    itl = _range(tpot * 1e3, u["itl"], time=True)
    spec_notes: list[str] = []
    if spec.num_speculative_tokens(resolved):
        # The acceptance rate is an assumption that dominates ITL: the range spans it too.
        alpha, k = spec.acceptance_rate(resolved), spec.num_speculative_tokens(resolved)
        lo_a, hi_a = (
            max(0.0, alpha - spec.ACCEPTANCE_UNCERTAINTY),
            min(0.99, alpha + spec.ACCEPTANCE_UNCERTAINTY),
        )
        at = {
            a: steady_at(step_model(resolved, engine, acceptance=a), engine, memory, workload, conc).tpot_s
            for a in (lo_a, hi_a)
        }
        itl = Range(
            value=itl.value,
            low=stable_float(min(itl.low, at[hi_a] * 1e3 * (1 - u["itl"]))),
            high=stable_float(max(itl.high, at[lo_a] * 1e3 * (1 + u["itl"]))),
        )
        method = resolved.profile.vllm.speculative.method  # type: ignore[union-attr]
        given = resolved.profile.workload.spec_acceptance_rate is not None
        spec_notes.append(
            f"speculative decoding ({method}, K={k}): acceptance rate {alpha:g} per draft token "
            f"({'workload.spec_acceptance_rate' if given else 'default for ' + method + ', passes/speculative.py'}), "
            f"{spec.tokens_per_step(alpha, k):.2f} tokens per step; ITL range spans acceptance {lo_a:g}-{hi_a:g}"
        )
    if resolved.profile.vllm.lora is not None:
        spec_notes.append(
            "LoRA: every adapter slot read each step and 8 punica launches per layer (worst case)"
        )
    return PerfEstimate(
        concurrency=conc,
        ttft_ms=_range(ttft * 1e3, u["ttft"], time=True),
        itl_ms=itl,
        output_tok_s=_range(out_tok, u["throughput"], time=False),
        total_tok_s=_range(total_tok, u["throughput"], time=False),
        request_rps=_range(rps, u["throughput"], time=False),
        e2e_latency_s=_range(e2e, u["itl"], time=True),
        assumptions=[*_assumptions(resolved, engine, workload, sm), *reuse_notes, *spec_notes],
        curve=_curve(sm, engine, memory, workload, limit),
        slo_met=(not misses) if workload.slo.any else None,
        replicas=replicas,
        notes=notes,
        percentiles=pct,
    )


def _replicas(resolved: Resolved, engine: EngineConfig, memory: MemoryPlan, workload: Workload) -> int | None:
    """deploy.replicas, or with `auto` what the cluster plan needs for the load and SLOs."""
    wanted = resolved.profile.deploy.replicas
    if wanted != "auto":
        return int(wanted)
    from .cluster import plan_cluster

    return plan_cluster(resolved, engine, memory, workload).replicas
