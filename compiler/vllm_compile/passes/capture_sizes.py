"""CUDA-graph capture sizes for the workload: which batch sizes to capture, what they cost, what they cover.

vLLM V1 captures one graph per size in `cudagraph_capture_sizes` (VllmConfig._set_cudagraph_sizes
makes the default list up to `max_cudagraph_capture_size`); a step of n scheduled tokens replays the
smallest captured size >= n, padding the batch, and a step above the largest runs without graphs
(kernel launches on every layer). Since 0.21 the graphs' memory is profiled and taken from the KV
cache before it is allocated (`profile_cudagraph_memory`), so each size trades KV tokens.

This pass measures both sides for the workload: the engine steps the batching simulation produces
(closed loop at the workload's concurrency, or Poisson arrivals at its request rate per replica),
counted by tokens scheduled; for each candidate cap, the graph memory (passes.memory, as the
release accounts it), the KV tokens left, the share of steps a graph serves (coverage), the padding
waste, and the simulated ITL / TTFT / throughput with that KV cache and those graphs. `auto` picks
the best trade for the objective, with its reason and runner-up; explicit sizes are validated.

Input (`CaptureRequest`): the profile's `vllm.max_cudagraph_capture_size` and
`vllm.cudagraph_capture_sizes`; another pass (e.g. one reading `--cudagraph-capture-sizes` from
`vllm.extra_args`) fills `sizes` the same way.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field

from ..facts.vllm_versions import capture_ceiling, cudagraph_capture_sizes
from ..plan import Decision, EngineConfig, Resolved
from ..units import GIB, stable_float
from .batching_sim import mean, simulate
from .workload import Workload
from .workload_sample import requests

SIM_REQUESTS = 160  # requests simulated per candidate (the first 20% are warm-up)
POWERS = (8, 16, 32, 64, 128, 256, 512, 1024)
TIE = 0.005  # gains below 0.5% do not justify more graphs (memory, capture time at start-up)


class CaptureRequest(BaseModel):
    """What the profile asks: `auto` (decide), a cap, explicit sizes, or nothing (vLLM's default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_size: int | str | None = None  # int, "auto", or None (vLLM's default)
    sizes: list[int] | None = None  # explicit list (vllm.cudagraph_capture_sizes / --cudagraph-capture-sizes)
    source: str = "profile"


class CaptureCandidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_size: int
    num_sizes: int
    graph_gib: float  # CUDA graph memory on the binding GPU as the release deducts it
    kv_tokens: int
    coverage: float  # share of engine steps replayed from a captured graph
    decode_coverage: float  # the same over pure decode steps
    padding_waste: float  # padded tokens / computed tokens over the steps a graph serves
    itl_ms: float
    ttft_ms: float
    output_tok_s: float


class CapturePlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: str  # decided | explicit | default | eager
    cudagraph_mode: str  # what the release runs (reported, not decided)
    sizes: list[int]
    max_size: int
    graph_gib: float
    kv_tokens: int
    kv_tokens_traded: int  # KV tokens the graphs take (graph bytes / KV bytes per token)
    coverage: float
    decode_coverage: float
    padding_waste: float
    step_tokens_p50: int  # median tokens per engine step in the simulation
    step_tokens_p99: int
    reason: str
    runner_up: int | None = None
    candidates: list[CaptureCandidate] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class CaptureError(ValueError):
    """Explicit sizes vLLM would reject; `path` is the profile field."""

    def __init__(self, path: tuple[str, ...], message: str):
        super().__init__(message)
        self.path = path


def request_from_profile(resolved: Resolved) -> CaptureRequest:
    """The profile's ask: `vllm.cudagraph_capture_sizes`, else `vllm.max_cudagraph_capture_size`."""
    spec = resolved.profile.vllm
    sizes = spec.cudagraph_capture_sizes
    return CaptureRequest(max_size=spec.max_cudagraph_capture_size, sizes=list(sizes) if sizes else None)


def cudagraph_mode(resolved: Resolved, engine: EngineConfig) -> str:
    """The cudagraph mode the release runs by default (-O2: FULL_AND_PIECEWISE since 0.11; reference
    vllm_memory_model.md "optimization_level"); earlier V1 releases capture PIECEWISE graphs only."""
    from ..facts.vllm_versions import version_key

    if engine.enforce_eager:
        return "NONE"
    return (
        "FULL_AND_PIECEWISE" if version_key(resolved.vllm.version) >= version_key("0.11.0") else "PIECEWISE"
    )


Hist = dict[tuple[int, bool], int]  # (tokens scheduled, has a prefill chunk) -> engine steps


def _histogram(
    resolved: Resolved, engine: EngineConfig, workload: Workload, kv_tokens: int, sm
) -> tuple[Hist, dict]:
    from .perf import token_budget

    hist: Hist = {}
    if workload.request_rate is not None:
        replicas = resolved.profile.deploy.replicas
        per = workload.request_rate / (replicas if isinstance(replicas, int) else 1)
        prompts, gens, arrivals = requests(workload, SIM_REQUESTS, per)
        cap = None
    else:
        prompts, gens, arrivals = requests(workload, SIM_REQUESTS, None)
        cap = workload.concurrency or 1
    n = len(prompts)
    res = simulate(
        sm,
        prompts=prompts,
        gens=gens,
        arrivals=arrivals,
        max_concurrency=cap,
        max_num_seqs=engine.max_num_seqs,
        max_num_batched_tokens=token_budget(engine, workload),
        kv_tokens=max(kv_tokens, 1),
        warmup=n // 5,
        step_tokens=hist,
    )
    return hist, {
        "itl_ms": mean(res.tpot_s) * 1e3,
        "ttft_ms": mean(res.ttft_s) * 1e3,
        "tok_s": res.output_tok_s,
    }


def _coverage(hist: Hist, sizes: list[int], decode_only: bool = False) -> tuple[float, float]:
    """(share of steps replayed from a graph, padded-token waste over those steps)."""
    total = served = 0
    computed = padded = 0.0
    for (tokens, mixed), steps in hist.items():
        if decode_only and mixed:
            continue
        total += steps
        if sizes and tokens <= sizes[-1]:
            served += steps
            size = sizes[bisect.bisect_left(sizes, tokens)]
            computed += tokens * steps
            padded += size * steps
    cov = served / total if total else 0.0
    waste = 1 - computed / padded if padded else 0.0
    return cov, waste


def _percentile(hist: Hist, q: float) -> int:
    by_tokens: dict[int, int] = {}
    for (tokens, _), steps in hist.items():
        by_tokens[tokens] = by_tokens.get(tokens, 0) + steps
    total = sum(by_tokens.values())
    seen = 0
    for tokens in sorted(by_tokens):
        seen += by_tokens[tokens]
        if seen >= q * total:
            return tokens
    return 0


def _evaluate(
    resolved: Resolved, engine: EngineConfig, workload: Workload, sizes: list[int]
) -> tuple[CaptureCandidate, Hist]:
    from .memory import plan_memory
    from .perf import step_model

    e = engine.model_copy(
        update={"cudagraph_capture_sizes": sizes, "max_cudagraph_capture_size": sizes[-1] if sizes else None}
    )
    memory = plan_memory(resolved, e)
    sm = replace(step_model(resolved, e), graph_sizes=tuple(sizes), graph_max_batch=sizes[-1] if sizes else 0)
    hist, sim = _histogram(resolved, e, workload, memory.kv.tokens, sm)
    cov, waste = _coverage(hist, sizes)
    dcov, _ = _coverage(hist, sizes, decode_only=True)
    cand = CaptureCandidate(
        max_size=sizes[-1] if sizes else 0,
        num_sizes=len(sizes),
        graph_gib=stable_float(memory.binding.cuda_graph_bytes / GIB),
        kv_tokens=memory.kv.tokens,
        coverage=stable_float(cov),
        decode_coverage=stable_float(dcov),
        padding_waste=stable_float(waste),
        itl_ms=stable_float(sim["itl_ms"]),
        ttft_ms=stable_float(sim["ttft_ms"]),
        output_tok_s=stable_float(sim["tok_s"]),
    )
    return cand, hist


def _score(c: CaptureCandidate, workload: Workload) -> float:
    """Higher is better, by the workload's objective."""
    if workload.objective == "latency":
        return -(c.itl_ms + c.ttft_ms / max(workload.gen.mean, 1.0))  # per-token latency a user sees
    if workload.objective in ("throughput", "cost"):
        return c.output_tok_s
    return math.log(max(c.output_tok_s, 1e-9)) - math.log(max(c.itl_ms, 1e-9))  # balanced


def _better(a: CaptureCandidate, b: CaptureCandidate, workload: Workload) -> bool:
    """a beats b: a real gain, or a tie won by fewer graphs (less memory, shorter capture at start-up)."""
    sa, sb = _score(a, workload), _score(b, workload)
    gap = (sa - sb) / max(abs(sb), 1e-12)
    if abs(gap) > TIE:
        return gap > 0
    return a.num_sizes < b.num_sizes


def candidate_caps(default_sizes: list[int], hist: Hist) -> list[int]:
    """Caps from the release's own list: powers of two, the default's largest, and the tightest sizes
    covering the largest decode batch and the largest step the simulation schedules."""
    caps = {s for s in default_sizes if s in POWERS or s == default_sizes[-1]}
    decode = [t for (t, mixed) in hist if not mixed]
    for tokens in (max(decode, default=0), max((t for t, _ in hist), default=0)):
        i = bisect.bisect_left(default_sizes, tokens)
        if tokens and i < len(default_sizes):
            caps.add(default_sizes[i])
    return sorted(caps)


def plan_capture(
    resolved: Resolved,
    engine: EngineConfig,
    decisions: dict[str, Decision],
    workload: Workload,
    request: CaptureRequest | None = None,
) -> tuple[EngineConfig, dict[str, Decision], CapturePlan | None]:
    """Decide (auto), validate (explicit) or describe (default) the capture sizes."""
    request = request or request_from_profile(resolved)
    mode_name = cudagraph_mode(resolved, engine)
    if engine.enforce_eager:
        return engine, decisions, None
    version = resolved.vllm
    default_sizes = cudagraph_capture_sizes(
        version, engine.max_num_seqs, engine.max_num_batched_tokens, resolved.gpu
    )
    warnings: list[str] = []
    out = dict(decisions)
    if request.sizes:
        sizes, warnings = validate_sizes(request.sizes, engine, resolved)
        mode, reason = "explicit", f"set in the {request.source}"
        out["cudagraph_capture_sizes"] = Decision(value=sizes, by="user", reason=reason)
    elif isinstance(request.max_size, int):
        ceiling = capture_ceiling(version, resolved.gpu)
        if request.max_size > ceiling:
            warnings.append(
                f"max_cudagraph_capture_size {request.max_size} is above vLLM {version.version}'s default ceiling "
                f"{ceiling} on {resolved.gpu.name}: larger graphs cost memory for batches this size rarely reaches"
            )
        sizes = list(engine.cudagraph_capture_sizes or [])
        mode, reason = (
            "explicit",
            f"max_cudagraph_capture_size {request.max_size} set in the {request.source}",
        )
    elif request.max_size == "auto":
        sizes, reason, runner, cands = _decide(resolved, engine, workload, default_sizes)
        mode = "decided"
        cap = sizes[-1]
        out["max_cudagraph_capture_size"] = Decision(
            value=cap, by="recommended", reason=reason, runner_up=runner
        )
        # The list itself is written too, so what vLLM captures does not depend on how a release fills in
        # sizes below a cap (0.33 appends max_num_seqs to its default list).
        out["cudagraph_capture_sizes"] = Decision(
            value=sizes, by="recommended", reason=f"the release's default sizes <= {cap}"
        )
        engine = engine.model_copy(
            update={"max_cudagraph_capture_size": cap, "cudagraph_capture_sizes": sizes}
        )
        return (
            engine,
            out,
            _plan(resolved, engine, workload, sizes, mode, mode_name, reason, runner, cands, warnings),
        )
    else:
        sizes = list(engine.cudagraph_capture_sizes or default_sizes)
        mode, reason = (
            "default",
            f"vLLM {version.version} default sizes for max_num_seqs {engine.max_num_seqs}",
        )
    engine = engine.model_copy(update={"cudagraph_capture_sizes": sizes})
    return engine, out, _plan(resolved, engine, workload, sizes, mode, mode_name, reason, None, [], warnings)


def _decide(
    resolved: Resolved, engine: EngineConfig, workload: Workload, default_sizes: list[int]
) -> tuple[list[int], str, int | None, list[CaptureCandidate]]:
    first, hist = _evaluate(resolved, engine, workload, default_sizes)
    cands = {first.max_size: first}
    for cap in candidate_caps(default_sizes, hist):
        if cap not in cands:
            cands[cap], _ = _evaluate(resolved, engine, workload, [s for s in default_sizes if s <= cap])
    ordered = sorted(cands.values(), key=lambda c: c.max_size)
    best = ordered[0]
    for c in ordered[1:]:
        if _better(c, best, workload):
            best = c
    others = [c for c in ordered if c is not best]
    runner = None
    for c in others:
        if runner is None or _better(c, runner, workload):
            runner = c
    what = {
        "latency": "per-token latency",
        "throughput": "output throughput",
        "cost": "output throughput",
    }.get(workload.objective, "throughput over ITL")
    reason = (
        f"{workload.objective} objective ({what}) over the simulated engine steps: cap {best.max_size} "
        f"({best.num_sizes} graphs, {best.graph_gib:.2f} GiB) serves {best.coverage:.0%} of steps from a graph "
        f"({best.decode_coverage:.0%} of decode steps, {best.padding_waste:.0%} padding), KV {best.kv_tokens:,} tokens, "
        f"ITL {best.itl_ms:.1f} ms, TTFT {best.ttft_ms:.0f} ms, {best.output_tok_s:,.0f} output tok/s"
    )
    if runner is not None:
        reason += (
            f"; runner-up cap {runner.max_size} ({runner.num_sizes} graphs, {runner.graph_gib:.2f} GiB, "
            f"{runner.coverage:.0%} coverage, KV {runner.kv_tokens:,} tokens): ITL {runner.itl_ms:.1f} ms, "
            f"{runner.output_tok_s:,.0f} tok/s"
        )
    sizes = [s for s in default_sizes if s <= best.max_size]
    return sizes, reason, runner.max_size if runner else None, ordered


def _plan(
    resolved: Resolved,
    engine: EngineConfig,
    workload: Workload,
    sizes: list[int],
    mode: str,
    mode_name: str,
    reason: str,
    runner: int | None,
    cands: list[CaptureCandidate],
    warnings: list[str],
) -> CapturePlan:
    from .memory import plan_memory

    chosen, hist = _evaluate(resolved, engine, workload, sizes)
    memory = plan_memory(resolved, engine)
    per_token = max(memory.kv.bytes_per_token, 1)
    traded = int(memory.binding.cuda_graph_bytes // per_token) if resolved.vllm.cuda_graph_deducted else 0
    if not resolved.vllm.cuda_graph_deducted:
        warnings = [
            *warnings,
            f"vLLM {resolved.vllm.version} captures graphs after the KV cache is allocated: their memory comes out "
            "of the (1 - gpu_memory_utilization) headroom, not the KV cache",
        ]
    return CapturePlan(
        mode=mode,
        cudagraph_mode=mode_name,
        sizes=sizes,
        max_size=sizes[-1] if sizes else 0,
        graph_gib=chosen.graph_gib,
        kv_tokens=chosen.kv_tokens,
        kv_tokens_traded=traded,
        coverage=chosen.coverage,
        decode_coverage=chosen.decode_coverage,
        padding_waste=chosen.padding_waste,
        step_tokens_p50=_percentile(hist, 0.5),
        step_tokens_p99=_percentile(hist, 0.99),
        reason=reason,
        runner_up=runner,
        candidates=cands,
        warnings=warnings,
    )


def validate_sizes(sizes: list[int], engine: EngineConfig, resolved: Resolved) -> tuple[list[int], list[str]]:
    """Explicit sizes as vLLM takes them (CompilationConfig: sorted, de-duplicated; sizes above
    max_num_batched_tokens are never scheduled), with warnings where the list wastes memory."""
    if any(s < 1 for s in sizes):
        raise CaptureError(
            ("vllm", "cudagraph_capture_sizes"), "cudagraph_capture_sizes must be positive integers"
        )
    out = sorted(set(sizes))
    warnings: list[str] = []
    if out != list(sizes):
        warnings.append(f"cudagraph_capture_sizes {sizes} is not sorted and unique: vLLM uses {out}")
    over = [s for s in out if s > engine.max_num_batched_tokens]
    if over:
        warnings.append(
            f"cudagraph_capture_sizes {over} exceed max_num_batched_tokens {engine.max_num_batched_tokens}: no step "
            "schedules that many tokens, the graphs only cost memory"
        )
        out = [s for s in out if s <= engine.max_num_batched_tokens] or out[:1]
    above_seqs = [s for s in out if s > engine.max_num_seqs]
    if above_seqs:
        warnings.append(
            f"cudagraph_capture_sizes {above_seqs} exceed max_num_seqs {engine.max_num_seqs}: decode batches never "
            "reach them (only steps with prefill chunks replay them, as PIECEWISE graphs)"
        )
    return out, warnings
