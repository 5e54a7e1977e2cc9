"""Recommend pass: decide every `auto` engine setting by a bounded search, and warn about risky choices.

Search: layouts (TP x PP x DP within and across nodes, passes.layout), then for each layout
the cheapest memory fix that makes vLLM start and hold the workload (fp8 KV cache, a higher
gpu_memory_utilization up to the policy's cap, fp8 weights when the policy allows quantization,
eager mode, a shorter max_model_len), then the batch settings. Every candidate is judged by the
start-up verdict (passes.memory + passes.policy) and scored with the closed-form performance model
at the workload's load. Order of preference: starts > meets the SLOs > holds the workload's
concurrency > needs no accuracy trade (quantization, fp8 KV) > the objective. A few dozen
candidates, each a closed-form evaluation: well under 0.1 s.

Settings the user set (`by: user`) are never changed; every searched setting gets `by: recommended`,
a reason with numbers, and the runner-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..plan import Decision, EngineConfig, MemoryPlan, PerfEstimate, Resolved, Verdict
from . import perf_model as pm
from .batching_sim import SteadyState
from .layout import candidates, no_layout_message
from .memory import plan_memory
from .perf import kv_limit, slo_check, steady_at, step_model
from .policy import judge
from .settings import SettingsError, with_capture_sizes
from .workload import Workload, workload_of

DESKTOP_MAX_UTILIZATION = 0.95  # a desktop GPU also drives a display: its compositor needs headroom
TRADE_FP8_KV = 2  # trade costs of the search's fixes (see _memory_fixes), cheapest first
TRADE_FP8_WEIGHTS = 4


@dataclass
class Candidate:
    engine: EngineConfig
    memory: MemoryPlan
    verdict: Verdict
    state: SteadyState | None
    misses: list[str]
    cost: int  # accuracy/safety trades taken: quantization, fp8 KV, raised utilization, eager
    score: float  # the objective, higher is better
    notes: list[str] = field(default_factory=list)
    cost_objective: bool = False  # objective `cost`: $ per million tokens before the trades taken
    # 1: pipeline stages inside a node where a larger TP would shard the heads. The step model's PP
    # (micro-batches, no bubble beyond the stages) is calibrated on fewer logs than its TP, so PP inside a
    # node is chosen only where TP cannot go (heads that do not divide, an odd GPU count).
    layout_rank: int = 0

    @property
    def key(self) -> tuple[float, ...]:
        short = 0 if self.state is None or self.state.running >= self.state.concurrency else 1
        starts = 0 if self.verdict.starts else 1
        # Of candidates that do not start, the closest to fitting: the most memory left on the
        # tightest GPU (whole GiB missing: a near tie goes to the preferred layout), not the first tried.
        missing = (
            0 if self.verdict.starts else math.ceil(-min(r.kv_cache_bytes for r in self.memory.ranks) / 2**30)
        )
        if self.cost_objective:
            return (starts, missing, len(self.misses), short, self.layout_rank, -self.score, self.cost)
        return (starts, missing, len(self.misses), short, self.layout_rank, self.cost, -self.score)


def _fixed(decisions: dict[str, Decision], name: str) -> bool:
    d = decisions.get(name)
    return d is not None and d.by == "user"


def layouts(
    resolved: Resolved, engine: EngineConfig, decisions: dict[str, Decision]
) -> list[tuple[int, int, int]]:
    """(tp, pp, dp) using every GPU given, TP x PP x DP within and across nodes (passes.layout has
    vLLM's rules). Sizes the user set are kept; no replicas (DP) are added to a layout the user fixed."""
    gpus = resolved.profile.hardware.gpus
    per_node = resolved.profile.hardware.gpus_per_node or resolved.gpu.gpus_per_node
    cur = (engine.tensor_parallel_size, engine.pipeline_parallel_size, engine.data_parallel_size)
    names = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")
    fixed = [_fixed(decisions, n) for n in names]
    layers = resolved.model.num_hidden_layers
    if all(fixed):
        return [cur]
    found = candidates(
        gpus,
        per_node,
        layers,
        resolved.model.supports_tensor_parallel,
        tuple(v if f else None for v, f in zip(cur, fixed, strict=True)),  # type: ignore[arg-type]
    )
    if found:
        return found
    if not any(fixed):
        raise SettingsError(
            ("hardware", "gpus"),
            no_layout_message(gpus, per_node, layers, resolved.model.supports_tensor_parallel),
        )
    return [cur]  # the user's sizes, as set (validate() says when they leave GPUs idle)


def _evaluate(resolved: Resolved, engine: EngineConfig, workload: Workload, cost: int) -> Candidate:
    memory = plan_memory(resolved, engine)
    verdict = judge(resolved, engine, memory)
    state, misses, score = None, [], -math.inf
    if verdict.starts:
        sm = step_model(resolved, engine)
        conc = workload.concurrency or _little(sm, engine, memory, workload)
        state = steady_at(sm, engine, memory, workload, conc)
        misses = slo_check(
            workload, ttft_s=state.ttft_s, ttft_p99_s=state.ttft_s, tpot_s=state.tpot_s, e2e_s=state.e2e_s
        )
        dp = engine.data_parallel_size
        # Replicas (DP) share the load: each sees concurrency / dp.
        if dp > 1:
            per = steady_at(sm, engine, memory, workload, max(1, math.ceil(conc / dp)))
            state = SteadyState(
                concurrency=per.concurrency,
                running=per.running,
                ttft_s=per.ttft_s,
                tpot_s=per.tpot_s,
                e2e_s=per.e2e_s,
                request_rps=per.request_rps * dp,
                output_tok_s=per.output_tok_s * dp,
                total_tok_s=per.total_tok_s * dp,
                queue_s=per.queue_s,
            )
            misses = slo_check(
                workload, ttft_s=per.ttft_s, ttft_p99_s=per.ttft_s, tpot_s=per.tpot_s, e2e_s=per.e2e_s
            )
        score = _objective(workload, state, engine)
        if workload.objective == "cost":
            score = -cost_per_mtok(resolved, engine, state.output_tok_s)
    return Candidate(
        engine, memory, verdict, state, misses, cost, score, cost_objective=workload.objective == "cost"
    )


def cost_per_mtok(resolved: Resolved, engine: EngineConfig, output_tok_s: float) -> float:
    """$ per million output tokens of this engine at `output_tok_s` (all replicas it spans). Without a
    price, GPU-hours per million tokens: the same order between candidates on one GPU type."""
    from ..facts.prices import gpu_price
    from .cost import usd_per_million_tokens

    price = gpu_price(resolved.gpu, resolved.profile.cost)
    usd_h = (price.usd_per_gpu_hour if price else 1.0) * engine.total_gpus
    per_m = usd_per_million_tokens(usd_h, output_tok_s)
    return per_m if per_m is not None else math.inf


def _little(sm: pm.StepModel, engine: EngineConfig, memory: MemoryPlan, workload: Workload) -> int:
    """Requests in flight under an open-loop rate (Little's law: rate x latency), by fixed point."""
    limit = kv_limit(memory, engine, workload)
    rate = (workload.request_rate or 0.0) / max(engine.data_parallel_size, 1) * engine.data_parallel_size
    c = 1
    for _ in range(6):
        c = max(1, min(limit, math.ceil(rate * steady_at(sm, engine, memory, workload, c).e2e_s)))
    return c


def _objective(workload: Workload, s: SteadyState, engine: EngineConfig) -> float:
    if workload.objective == "throughput":
        return s.output_tok_s
    if workload.objective == "latency":
        return -s.e2e_s
    if workload.objective == "cost":
        return s.output_tok_s / engine.total_gpus
    return math.log(max(s.output_tok_s, 1e-9)) - math.log(max(s.e2e_s, 1e-9))  # balanced


def _memory_fixes(
    resolved: Resolved, engine: EngineConfig, decisions: dict[str, Decision]
) -> list[tuple[dict, int]]:
    """Engine changes that buy KV cache or start-up room, with their trade cost, cheapest first."""
    policy, gpu = resolved.profile.policy, resolved.gpu
    fixes: list[tuple[dict, int]] = [({}, 0)]
    kv_ok = not _fixed(decisions, "kv_cache_dtype") and engine.kv_cache_dtype == "auto" and gpu.sm >= (8, 9)
    cap = min(policy.max_gpu_memory_utilization, DESKTOP_MAX_UTILIZATION if gpu.desktop else 1.0)
    util_ok = not _fixed(decisions, "gpu_memory_utilization") and cap > engine.gpu_memory_utilization
    quant_ok = (
        policy.allow_quantization
        and not _fixed(decisions, "quantization")
        and engine.quantization is None
        and resolved.model.quantization is None
        and gpu.sm >= (8, 0)  # vLLM fp8: W8A8 on SM 8.9+, weight-only Marlin on Ampere
    )
    if util_ok:
        fixes.append(({"gpu_memory_utilization": cap}, 1))
    if kv_ok:
        fixes.append(({"kv_cache_dtype": "fp8"}, TRADE_FP8_KV))
        if util_ok:
            fixes.append(({"kv_cache_dtype": "fp8", "gpu_memory_utilization": cap}, 3))
    if quant_ok:
        fixes.append(({"quantization": "fp8"}, TRADE_FP8_WEIGHTS))
        if util_ok:
            fixes.append(({"quantization": "fp8", "gpu_memory_utilization": cap}, 5))
        if kv_ok:
            fixes.append(({"quantization": "fp8", "kv_cache_dtype": "fp8"}, 6))
    if not _fixed(decisions, "enforce_eager") and not engine.enforce_eager:
        fixes.append(({"enforce_eager": True}, 7))
    return fixes


def _fit_len(
    resolved: Resolved, engine: EngineConfig, decisions: dict[str, Decision], workload: Workload
) -> EngineConfig:
    """max_model_len `auto` that does not fit shrinks to the largest that does (vLLM's own
    `--max-model-len auto` rule), never below what the workload's longest request needs."""
    if _fixed(decisions, "max_model_len"):
        return engine
    mem = plan_memory(resolved, engine)
    fit = mem.largest_max_model_len
    if fit is None or fit >= engine.max_model_len:
        return engine
    need = int(workload.prompt.max + workload.gen.max)
    new = max(fit - fit % engine.block_size, min(need, engine.max_model_len))
    return engine.model_copy(update={"max_model_len": new})


def _with(resolved: Resolved, engine: EngineConfig, **update: object) -> EngineConfig:
    return with_capture_sizes(engine.model_copy(update=update), resolved)


def search(
    resolved: Resolved, engine: EngineConfig, decisions: dict[str, Decision], workload: Workload
) -> tuple[Candidate, list[Candidate]]:
    """The best candidate and all evaluated ones (for runner-ups)."""
    evaluated: list[Candidate] = []
    per_node = resolved.profile.hardware.gpus_per_node or resolved.gpu.gpus_per_node
    for tp, pp, dp in layouts(resolved, engine, decisions):
        rank = int(pp > 1 and tp * 2 <= per_node and resolved.model.supports_tensor_parallel(tp * 2))
        base = _with(
            resolved, engine, tensor_parallel_size=tp, pipeline_parallel_size=pp, data_parallel_size=dp
        )
        for fix, cost in _memory_fixes(resolved, base, decisions):
            cand_engine = _with(resolved, base, **fix)
            cand_engine = _fit_len(resolved, cand_engine, decisions, workload)
            c = _evaluate(resolved, cand_engine, workload, cost)
            c.layout_rank = rank
            evaluated.append(c)
            if c.verdict.starts and not c.misses and c.state and c.state.running >= c.state.concurrency:
                break  # cheaper fixes come first: the first that fully works is this layout's pick
    best = min(evaluated, key=lambda c: c.key)
    # Batch settings for the winner: the token budget trades TTFT (fewer chunks) against ITL spikes.
    if not _fixed(decisions, "max_num_batched_tokens") and best.verdict.starts:
        options = sorted({best.engine.max_num_batched_tokens, 2048, 8192, 16384})
        for mnbt in options:
            if mnbt == best.engine.max_num_batched_tokens or mnbt < best.engine.max_num_seqs and mnbt < 2048:
                continue
            e = _with(resolved, best.engine, max_num_batched_tokens=mnbt)
            c = _evaluate(resolved, e, workload, best.cost)
            c.layout_rank = best.layout_rank
            evaluated.append(c)
            if c.key < best.key and (best.score == 0 or abs(c.score - best.score) / abs(best.score) > 0.02):
                best = c  # only for a real (>2%) gain: otherwise keep vLLM's default
    return best, evaluated


def _fmt(v: object) -> str:
    if v is None:
        return "none"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _describe(c: Candidate) -> str:
    if c.state is None:
        return "does not start"
    s = c.state
    return (
        f"ITL {s.tpot_s * 1e3:.1f} ms, TTFT {s.ttft_s * 1e3:.0f} ms, {s.output_tok_s:,.0f} output tok/s "
        f"at {s.concurrency} in flight; KV {c.memory.kv.tokens:,} tokens"
    )


def _runner_up(best: Candidate, evaluated: list[Candidate], name: str) -> Candidate | None:
    """The best candidate with another value for `name`, preferring ones that differ only there."""
    value = getattr(best.engine, name)
    others = [c for c in evaluated if getattr(c.engine, name) != value]
    if not others:
        return None

    def diff(c: Candidate) -> int:
        return sum(getattr(c.engine, n) != getattr(best.engine, n) for n in SEARCHED if n != name)

    return min(others, key=lambda c: (diff(c), c.key))


SEARCHED = (
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "quantization",
    "kv_cache_dtype",
    "gpu_memory_utilization",
    "enforce_eager",
    "max_model_len",
    "max_num_batched_tokens",
)


def evaluate(resolved: Resolved, engine: EngineConfig, workload: Workload, cost: int = 0) -> Candidate:
    """One engine judged (start-up verdict) and scored at the workload's load, as the search does;
    `cost`: the accuracy/safety trades it takes, on the scale of `_memory_fixes`."""
    return _evaluate(resolved, engine, workload, cost)


def recommend(
    resolved: Resolved, engine: EngineConfig, decisions: dict[str, Decision], workload: Workload | None = None
) -> tuple[EngineConfig, dict[str, Decision]]:
    """Search the settings the profile left to us; return the engine and the updated decisions."""
    final, out, _ = recommend_with_candidates(resolved, engine, decisions, workload)
    return final, out


def recommend_with_candidates(
    resolved: Resolved, engine: EngineConfig, decisions: dict[str, Decision], workload: Workload | None = None
) -> tuple[EngineConfig, dict[str, Decision], list[Candidate]]:
    """`recommend`, also returning every candidate the search evaluated (the layouts view draws them)."""
    workload = workload or workload_of(resolved)
    best, evaluated = search(resolved, engine, decisions, workload)
    out = dict(decisions)
    why = f"{workload.objective} objective for the {workload.name} workload: {_describe(best)}"
    if not best.verdict.starts:
        why = "no candidate starts; kept the closest: " + "; ".join(best.verdict.reasons[:1])
    for name in SEARCHED:
        if _fixed(decisions, name):
            continue
        value = getattr(best.engine, name)
        runner = _runner_up(best, evaluated, name)
        reason = why
        if best.misses:
            reason += "; SLO still missed: " + ", ".join(best.misses)
        if runner is not None:
            reason += f"; runner-up {name}={_fmt(getattr(runner.engine, name))}: {_describe(runner)}"
        prev = decisions.get(name)
        if prev is not None and prev.value == value and runner is None:
            continue  # nothing was searched for this one: keep the default's own reason
        out[name] = Decision(
            value=value,
            by="recommended",
            reason=reason,
            runner_up=getattr(runner.engine, name) if runner is not None else None,
        )
    final = best.engine
    if (
        "max_num_seqs" in out
        and out["max_num_seqs"].by != "user"
        and final.max_num_seqs > final.max_num_batched_tokens
    ):
        final = _with(resolved, final, max_num_seqs=final.max_num_batched_tokens)
    return final, out, evaluated


def validate(
    resolved: Resolved,
    engine: EngineConfig,
    decisions: dict[str, Decision],
    memory: MemoryPlan | None = None,
    perf: PerfEstimate | None = None,
    workload: Workload | None = None,
) -> list[str]:
    """Warnings where a choice is risky, each with what would fix it."""
    gpu, hw = resolved.gpu, resolved.profile.hardware
    workload = workload or workload_of(resolved)
    out: list[str] = []
    if gpu.desktop and engine.gpu_memory_utilization > DESKTOP_MAX_UTILIZATION:
        out.append(
            f"gpu_memory_utilization {engine.gpu_memory_utilization:g} on {gpu.name}, a desktop GPU that also drives "
            f"a display: the desktop's own memory can make vLLM fail to start; use <= {DESKTOP_MAX_UTILIZATION:g}"
        )
    tp = engine.tensor_parallel_size
    per_node = hw.gpus_per_node or gpu.gpus_per_node
    if tp > 1 and (hw.interconnect == "pcie" or (gpu.nvlink_gbps is None and hw.interconnect != "nvlink")):
        link = pm.PCIE_GBPS.get(gpu.pcie_gen, 32.0)
        out.append(
            f"tensor parallel {tp} over PCIe gen{gpu.pcie_gen} (~{link:g} GB/s vs NVLink hundreds): two all-reduces "
            "per layer per step cost ITL; prefer pipeline parallel or replicas (data parallel) where the model fits"
        )
    if tp > per_node:
        out.append(
            f"tensor parallel {tp} spans nodes ({per_node} GPUs per node): all-reduces cross the network; use "
            f"TP {per_node} x PP {math.ceil(tp / per_node) * engine.pipeline_parallel_size}"
        )
    longest = workload.prompt.max + workload.gen.max
    if longest > engine.max_model_len:
        out.append(
            f"the workload's longest request ({workload.prompt.max:,.0f} prompt + {workload.gen.max:,.0f} generated "
            f"tokens) exceeds max_model_len {engine.max_model_len:,}: vLLM rejects such prompts (HTTP 400) and stops "
            "generating at the limit; the estimate assumes they are served"
        )
    if memory is not None and workload.concurrency:
        limit = kv_limit(memory, engine, workload)
        if limit < workload.concurrency:
            out.append(
                f"capacity: the KV cache holds {limit} request{'s' if limit != 1 else ''} of {workload.context_tokens:,.0f} tokens "
                f"({memory.kv.tokens:,} tokens) but the workload keeps {workload.concurrency} in flight; the rest queue "
                "(fp8 KV cache, a higher gpu_memory_utilization, more GPUs or replicas would hold them)"
            )
    if perf is not None and perf.slo_met is False and memory is not None:
        out.extend(_slo_advice(resolved, engine, memory, perf, workload))
    return out


def _slo_advice(
    resolved: Resolved, engine: EngineConfig, memory: MemoryPlan, perf: PerfEstimate, workload: Workload
) -> list[str]:
    """What would meet a missed SLO: fewer requests per replica (more replicas), or more TP."""
    from .cluster import max_concurrency_for_slo

    sm = step_model(resolved, engine)
    missed = [n.removeprefix("SLO missed: ") for n in perf.notes if n.startswith("SLO missed")]
    conc = workload.concurrency or perf.concurrency
    per = max_concurrency_for_slo(sm, engine, memory, workload)
    if per >= 1:
        replicas = math.ceil(conc / per)
        return [
            f"SLO not met at {conc} requests per replica ({'; '.join(missed)}): one replica meets it up to {per} "
            f"in flight, so {replicas} replicas (deploy.replicas: {replicas}) would"
        ]
    hint = ""
    one = steady_at(sm, engine, memory, workload, 1)
    if engine.tensor_parallel_size < (resolved.profile.hardware.gpus_per_node or resolved.gpu.gpus_per_node):
        tp2 = engine.tensor_parallel_size * 2
        sm2 = replace(  # the same engine (async scheduling, graphs, serving features) at TP x2
            sm,
            shape=pm.model_shape(
                resolved.model,
                dtype=engine.dtype,
                quantization=engine.quantization,
                kv_cache_dtype=engine.kv_cache_dtype,
                tp=tp2,
            ),
            tp=tp2,
        )
        hint = f"; TP {tp2} gives ITL {sm2.step_time(1, workload.prompt.mean) * 1e3:.1f} ms at one request"
    return [
        f"SLO not met even with one request per replica ({'; '.join(missed)}; ITL {one.tpot_s * 1e3:.1f} ms, TTFT "
        f"{one.ttft_s * 1e3:.0f} ms at 1): more tensor parallelism, a faster GPU or fp8 weights would{hint}"
    ]
