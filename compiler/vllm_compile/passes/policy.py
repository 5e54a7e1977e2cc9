"""Policy pass: two verdicts, never mixed.

Start-up: would vLLM fail while starting? (less memory free at start-up than the budget asks for:
`request_memory`; weights + activation + non-torch + CUDA graphs exceed the budget; or the KV cache
cannot hold one max_model_len request: `_check_enough_kv_cache_memory`).
Capacity: does the KV cache hold the workload's concurrent requests? vLLM queues the rest, so a short
cache is a warning and a performance fact, not an out-of-memory.
"""

from __future__ import annotations

import math

from ..plan import EngineConfig, MemoryPlan, RankMemory, Resolved, Risk, Verdict
from ..units import GB, GIB
from . import all2all
from .inert import inert_settings
from .workload import workload_of

_RISK_ORDER: dict[str, int] = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}


def _g(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def _workload_tokens(resolved: Resolved) -> tuple[int | None, int | None]:
    """(concurrency, tokens per request) of the declared workload, when it says so. The means are the
    workload pass's (a distribution may give only a p50 or a histogram)."""
    w = resolved.profile.workload
    if w.concurrency is None or w.prompt_tokens is None:
        return w.concurrency, None
    lengths = workload_of(resolved)
    gen = lengths.gen.mean if w.gen_tokens is not None else 0.0
    return w.concurrency, int(round(lengths.prompt.mean + gen))


def _what_would_fit(rank: RankMemory, engine: EngineConfig) -> str:
    """The user's next question: how many such GPUs the weights need (they shard over TP x PP)."""
    room = rank.requested_bytes - rank.activation_peak_bytes - rank.non_torch_bytes - rank.cuda_graph_bytes
    weights_total = rank.weights_bytes * engine.tensor_parallel_size * engine.pipeline_parallel_size
    if engine.enable_expert_parallel and engine.data_parallel_size > 1:
        return ""  # experts are sharded over the DP ranks too: TP x PP GPUs is not what holds the weights
    if room <= 0:
        return ""
    needed = math.ceil(weights_total / room)
    if needed <= engine.gpus_per_replica:
        return ""
    return (
        f" The weights ({_g(weights_total)} in all) need at least {needed} such GPUs before any KV cache,"
        " or a smaller checkpoint (quantized or fewer parameters)."
    )


def judge(resolved: Resolved, engine: EngineConfig, memory: MemoryPlan) -> Verdict:
    policy = resolved.profile.policy
    reasons: list[str] = []
    # What the model's facts had to guess (an estimate from params_b, an unpinned revision) and the
    # settings that do nothing here come first.
    warnings: list[str] = [*resolved.model.warnings, *inert_settings(resolved, engine)]
    capacity_notes: list[str] = []
    starts = True
    b = memory.binding
    stage = f" on pipeline stage {b.pp_rank}" if engine.pipeline_parallel_size > 1 else ""

    # --- start-up -----------------------------------------------------------------------------
    worst = min(memory.ranks, key=lambda r: r.kv_cache_bytes)
    non_kv = (
        worst.weights_bytes + worst.activation_peak_bytes + worst.non_torch_bytes + worst.cuda_graph_bytes
    )
    free_at_start = b.gpu_total_bytes - b.baseline_bytes
    if resolved.vllm.engine == "V1" and b.requested_bytes > free_at_start:
        starts = False
        # vLLM takes the utilization as given; two decimals is what users write.
        largest = math.floor(free_at_start / b.gpu_total_bytes * 100) / 100
        reasons.append(
            f"vLLM would not start: about {_g(free_at_start)} is free when the worker starts (the GPU less "
            f"{_g(b.baseline_bytes)} for the CUDA context and NCCL buffers) but the budget asks for "
            f"{_g(b.requested_bytes)} ({engine.gpu_memory_utilization:g} x {_g(b.gpu_total_bytes)}). "
            + (
                f"gpu_memory_utilization {largest:g} or lower starts."
                if non_kv < free_at_start
                # ... unless the weights and the rest do not fit in what is free either: then a lower
                # utilization cannot help, and the hint says what would.
                else f"A lower gpu_memory_utilization would not start either: weights {_g(worst.weights_bytes)} "
                f"+ activation peak {_g(worst.activation_peak_bytes)} + non-torch {_g(worst.non_torch_bytes)} + "
                f"CUDA graphs {_g(worst.cuda_graph_bytes)} = {_g(non_kv)} exceed the {_g(free_at_start)} free."
                + _what_would_fit(worst, engine)
            )
        )
    elif engine.kv_cache_memory_bytes is None and worst.kv_cache_bytes <= 0:
        starts = False
        where = f" on pipeline stage {worst.pp_rank}" if engine.pipeline_parallel_size > 1 else ""
        reasons.append(
            f"vLLM would not start{where}: weights {_g(worst.weights_bytes)} + activation peak "
            f"{_g(worst.activation_peak_bytes)} + non-torch {_g(worst.non_torch_bytes)} + CUDA graphs "
            f"{_g(worst.cuda_graph_bytes)} = {_g(non_kv)} exceed the budget of {_g(worst.requested_bytes)} "
            f"({engine.gpu_memory_utilization:g} x {_g(worst.gpu_total_bytes)}); KV cache would be {_g(worst.kv_cache_bytes)}."
            + _what_would_fit(worst, engine)
            + all2all.startup_hint(memory, engine)
        )
    elif memory.kv.max_concurrency < 1.0 or memory.kv.num_blocks <= 0:
        starts = False
        fit = memory.largest_max_model_len
        hint = (
            f" The largest max_model_len that fits is {fit:,} (what --max-model-len auto would pick)."
            if fit
            else " No max_model_len fits."
        )
        reasons.append(
            f"vLLM would not start{stage}: one {engine.max_model_len:,}-token request needs more KV cache than the "
            f"{_g(b.kv_cache_bytes)} left ({memory.kv.tokens:,} tokens, max concurrency "
            f"{memory.kv.max_concurrency:.2f}x).{hint}" + all2all.startup_hint(memory, engine)
        )
    else:
        reasons.append(
            f"Starts{stage}: {_g(b.kv_cache_bytes)} KV cache after weights {_g(b.weights_bytes)}, activation "
            f"{_g(b.activation_peak_bytes)}, non-torch {_g(b.non_torch_bytes)} and CUDA graphs "
            f"{_g(b.cuda_graph_bytes)} in a budget of {_g(b.requested_bytes)}: {memory.kv.tokens:,} tokens, "
            f"{memory.kv.max_concurrency:.2f}x concurrency at {engine.max_model_len:,} tokens per request."
        )
    reasons[-1] += all2all.rank_types(engine)

    # Explicitly sized KV caches (num_gpu_blocks_override, kv_cache_memory_bytes) bypass the budget.
    from .overrides import override_warnings, start_failures

    failures = start_failures(resolved, engine, memory) if starts else []
    if failures:
        starts = False
        reasons[:] = failures
    warnings.extend(override_warnings(resolved, engine, memory))

    # --- risk ---------------------------------------------------------------------------------
    risk: Risk = "LOW" if starts else "HIGH"
    if starts:
        # A safety factor on the non-KV estimate: the cache must still be there if it is low.
        padded_kv = b.requested_bytes - int(non_kv * policy.fragmentation_factor)
        margin = b.kv_cache_bytes / b.requested_bytes if b.requested_bytes else 0.0
        if policy.fragmentation_factor > 1.0 and padded_kv <= 0:
            risk = "HIGH"
            reasons.append(
                f"With fragmentation factor {policy.fragmentation_factor:g} on the {_g(non_kv)} outside the KV "
                f"cache, nothing would be left for it: HIGH risk."
            )
        elif margin < policy.medium_kv_margin:
            risk = "MEDIUM"
            reasons.append(
                f"The KV cache is {margin:.1%} of the budget, below the policy's {policy.medium_kv_margin:.0%}: "
                "a small estimation error could stop start-up."
            )
        # The process uses baseline + u x T; what is left is all other processes get.
        headroom = b.gpu_total_bytes - b.baseline_bytes - b.requested_bytes
        if headroom < policy.headroom_gb * GB:
            if risk == "LOW":
                risk = "MEDIUM"
            reasons.append(
                f"Only {_g(headroom)} of the GPU stays free beside vLLM (its budget plus "
                f"{_g(b.baseline_bytes)} for the CUDA context and NCCL), below the policy's "
                f"{policy.headroom_gb:g} GB headroom for other processes and allocator slack."
            )
        if resolved.profile.vllm.enable_chunked_prefill is False and engine.enable_chunked_prefill:
            warnings.append(
                f"enable_chunked_prefill: false is not what runs: vLLM {resolved.vllm.version} turns chunked "
                "prefill on at start-up for generative models; the plan assumes it on."
            )
        if engine.kv_cache_memory_bytes is not None:
            warnings.append(
                f"kv_cache_memory_bytes={engine.kv_cache_memory_bytes} bypasses vLLM's profiling: the budget is not checked."
            )

    # --- capacity -----------------------------------------------------------------------------
    capacity_ok = True
    concurrency, per_request = _workload_tokens(resolved)
    if starts and concurrency and per_request:
        need = concurrency * per_request
        if need > memory.kv.tokens:
            capacity_ok = False
            fits = memory.kv.tokens // per_request if per_request else 0
            capacity_notes.append(
                f"The workload holds {concurrency} x {per_request:,} = {need:,} tokens but the KV cache has "
                f"{memory.kv.tokens:,}: about {fits} requests run at once and vLLM queues (or preempts) the rest. "
                "A capacity warning, not an out-of-memory."
            )
        else:
            capacity_notes.append(
                f"The workload's {concurrency} x {per_request:,} = {need:,} tokens fit in the {memory.kv.tokens:,}-token KV cache."
            )
        if concurrency > engine.max_num_seqs:
            capacity_notes.append(
                f"Concurrency {concurrency} exceeds max_num_seqs={engine.max_num_seqs}: the excess waits in the queue."
            )

    fail_on = policy.fail_on
    fails = fail_on != "never" and _RISK_ORDER[risk] >= _RISK_ORDER[fail_on.upper()]
    return Verdict(
        starts=starts,
        oom_risk=risk,
        reasons=reasons,
        capacity_ok=capacity_ok,
        capacity_notes=capacity_notes,
        warnings=warnings,
        fails_policy=fails,
    )
