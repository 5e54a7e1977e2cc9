"""The workload a deployment serves: request lengths, load (closed or open loop), SLOs and objective.

A profile names a preset, gives the vLLM Config Wizard's fields (`prompt_tokens`, `gen_tokens`,
`concurrency`, `mode`) or custom distributions; any field it gives overrides the preset's. The
presets' numbers and where they come from:

- `chatbot`: ShareGPT conversations as vLLM's `benchmark_serving.py --dataset-name sharegpt` samples
  them: 1000 prompts give about 215k input and 198k output tokens with a Llama tokenizer (the
  "Total input tokens / Total generated tokens" lines of vLLM's nightly benchmark tables), so mean
  prompt 215 / generation 198 tokens; p99s are the long tail of the same set (~1k prompt, ~800 out).
  SLOs: the MLPerf Inference v4.1 Llama-2-70B *server* scenario (TTFT p99 2 s, TPOT p99 200 ms).
  Concurrency 32: a busy chat front end (our choice, stated as such).
- `interactive`: the MLPerf Inference v5.0 Llama-2-70B *interactive* scenario (TTFT p99 450 ms,
  TPOT p99 40 ms) on the same ShareGPT-like lengths; concurrency 8 (our choice), objective latency.
- `batch_inference`: vLLM's random dataset defaults (`--random-input-len 1024 --random-output-len
  128`, benchmarks/datasets.py), no SLOs, objective throughput, concurrency 256 (vLLM's
  max_num_seqs default on large GPUs: as many as the engine admits).
- `long_context`: 32k-token prompts and 256-token answers (document QA / RAG; the 32000/100
  shape of vLLM's long-prompt benchmarks), concurrency 4; SLOs from the MLPerf Inference v5.0
  Llama-3.1-405B server scenario (TTFT p99 6 s, TPOT p99 175 ms), whose prompts reach 20k tokens.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from ..facts.trace import Trace
from ..profile.v1 import Distribution, WorkloadSpec

if TYPE_CHECKING:
    from ..plan import Resolved

Objective = Literal["throughput", "latency", "balanced", "cost"]


class WorkloadError(ValueError):
    """A workload section that cannot be turned into numbers."""

    path: tuple[str, ...] = ("workload",)  # where the diagnostic points (the error boundary reads it)


class Lengths(BaseModel):
    """A token-length distribution: the mean drives throughput, the tail drives p99 and memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float
    p50: float
    p99: float
    max: float
    p90: float | None = None  # None: interpolated between p50 and p99
    histogram: tuple[tuple[float, float], ...] | None = None  # (tokens, share), shares summing to 1


class Slo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ttft_ms_p50: float | None = None
    ttft_ms_p99: float | None = None
    itl_ms: float | None = None
    e2e_s: float | None = None
    ttft_ms_p90: float | None = None
    itl_ms_p90: float | None = None
    itl_ms_p99: float | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in self.model_dump().values())


class Workload(BaseModel):
    """A resolved workload. Exactly one of `concurrency` (closed loop) or `request_rate` (open loop)
    drives the estimate; with a request rate, `concurrency` is None until the perf pass derives it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # preset name, or "custom"
    prompt: Lengths
    gen: Lengths
    concurrency: int | None = None
    request_rate: float | None = None
    objective: Objective = "balanced"
    slo: Slo = Slo()
    source: str = ""
    burstiness: float = 1.0  # gamma-distributed gaps of this shape (vLLM bench serve --burstiness)
    trace: Trace | None = None  # arrivals and lengths replayed as given (scaled to the simulated rate)

    @property
    def context_tokens(self) -> float:
        """Mean tokens a request holds in the KV cache at its end."""
        return self.prompt.mean + self.gen.mean


_SHAREGPT_SRC = "ShareGPT via vLLM benchmark_serving (215k in / 198k out tokens per 1000 prompts)"

# name -> (prompt, gen, concurrency, objective, slo, source)
_PRESETS: dict[str, tuple[Lengths, Lengths, int, Objective, Slo, str]] = {
    "chatbot": (
        Lengths(mean=215, p50=120, p99=1024, max=2048),
        Lengths(mean=198, p50=150, p99=800, max=1024),
        32,
        "balanced",
        Slo(ttft_ms_p99=2000, itl_ms=200),  # MLPerf Inference v4.1 Llama-2-70B server
        _SHAREGPT_SRC + "; SLO: MLPerf v4.1 Llama-2-70B server (TTFT p99 2 s, TPOT 200 ms)",
    ),
    "interactive": (
        Lengths(mean=215, p50=120, p99=1024, max=2048),
        Lengths(mean=198, p50=150, p99=800, max=1024),
        8,
        "latency",
        Slo(ttft_ms_p99=450, itl_ms=40),  # MLPerf Inference v5.0 Llama-2-70B interactive
        _SHAREGPT_SRC + "; SLO: MLPerf v5.0 Llama-2-70B interactive (TTFT p99 450 ms, TPOT 40 ms)",
    ),
    "batch_inference": (
        Lengths(mean=1024, p50=1024, p99=1024, max=1024),
        Lengths(mean=128, p50=128, p99=128, max=128),
        256,
        "throughput",
        Slo(),
        "vLLM random dataset defaults (--random-input-len 1024 --random-output-len 128)",
    ),
    "long_context": (
        Lengths(mean=32768, p50=32768, p99=32768, max=32768),
        Lengths(mean=256, p50=256, p99=256, max=256),
        4,
        "balanced",
        Slo(ttft_ms_p99=6000, itl_ms=175),  # MLPerf Inference v5.0 Llama-3.1-405B server
        "32k-token document prompts; SLO: MLPerf v5.0 Llama-3.1-405B server (TTFT p99 6 s, TPOT 175 ms)",
    ),
}
PRESETS = tuple(sorted(_PRESETS))

_MODE_TO_OBJECTIVE: dict[str, Objective] = {
    "balanced": "balanced",
    "throughput": "throughput",
    "latency": "latency",
}


def _hist_quantile(hist: tuple[tuple[float, float], ...], q: float) -> float:
    seen = 0.0
    for tokens, share in hist:
        seen += share
        if seen >= q - 1e-12:
            return tokens
    return hist[-1][0]


def _histogram(value: Distribution) -> tuple[tuple[float, float], ...] | None:
    if not value.histogram:
        return None
    pairs = sorted((float(t), float(w)) for t, w in value.histogram if w > 0)
    if not pairs or any(t < 1 for t, _ in pairs):
        raise WorkloadError("length histogram needs [tokens >= 1, share > 0] pairs")
    total = sum(w for _, w in pairs)
    return tuple((t, w / total) for t, w in pairs)


def _lengths(value: int | Distribution) -> Lengths:
    if isinstance(value, int):
        v = float(value)
        return Lengths(mean=v, p50=v, p99=v, max=v)
    hist = _histogram(value)
    if hist is not None:
        mean = sum(t * w for t, w in hist)
        given = {"p50": value.p50, "p90": value.p90, "p99": value.p99, "max": value.max}
        q = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "max": 1.0}
        derived = {k: float(v) if v is not None else _hist_quantile(hist, q[k]) for k, v in given.items()}
        mean = float(value.mean) if value.mean is not None else mean
        p50, p90, p99, mx = derived["p50"], derived["p90"], derived["p99"], derived["max"]
    else:
        if value.mean is None and value.p50 is None:
            raise WorkloadError("a length distribution needs a mean, a p50 or a histogram")
        mean = float(value.mean) if value.mean is not None else float(value.p50)  # type: ignore[arg-type]
        p50 = float(value.p50) if value.p50 is not None else mean
        p99 = float(value.p99) if value.p99 is not None else max(mean, p50, value.p90 or 0.0)
        p90 = float(value.p90) if value.p90 is not None else None
        mx = float(value.max) if value.max is not None else max(p99, mean)
    if not p50 <= p99 <= mx or mean > mx or (p90 is not None and not p50 <= p90 <= p99):
        raise WorkloadError(
            f"length distribution must satisfy p50 <= p99 <= max, p50 <= p90 <= p99 and mean <= max (got mean={mean:g}, "
            f"p50={p50:g}, p90={p90 if p90 is not None else '-'}, p99={p99:g}, max={mx:g})"
        )
    return Lengths(mean=mean, p50=p50, p90=p90, p99=p99, max=mx, histogram=hist)


def _trace_lengths(values: tuple[int, ...]) -> Lengths:
    ys = sorted(values)

    def q(x: float) -> float:
        return float(ys[min(len(ys) - 1, max(0, math.ceil(x * len(ys)) - 1))])

    return Lengths(mean=sum(ys) / len(ys), p50=q(0.5), p90=q(0.9), p99=q(0.99), max=float(ys[-1]))


def workload_of(resolved: Resolved) -> Workload:
    """The resolved profile's workload, its trace included (what every pass should call)."""
    return resolve_workload(resolved.profile.workload, trace=resolved.trace)


def resolve_workload(spec: WorkloadSpec | None, trace: Trace | None = None) -> Workload:
    """Turn the profile's workload section into numbers: the preset (default `chatbot`) under any
    field the profile sets; a trace sets the lengths and the request rate (the concurrency it would
    replace is dropped)."""
    spec = spec or WorkloadSpec()
    if trace is not None:
        spec = spec.model_copy(update={"preset": spec.preset or "custom", "prompt_tokens": 1, "gen_tokens": 1,
                                       "request_rate": spec.request_rate or trace.request_rate, "concurrency": None})  # fmt: skip
    preset = spec.preset if spec.preset not in (None, "custom") else None
    if spec.preset == "custom" and (spec.prompt_tokens is None or spec.gen_tokens is None):
        raise WorkloadError("workload.preset: custom needs workload.prompt_tokens and workload.gen_tokens")
    base_name = preset or "chatbot"
    prompt, gen, conc, objective, slo, source = _PRESETS[base_name]
    custom = spec.preset == "custom" or spec.prompt_tokens is not None or spec.gen_tokens is not None
    if spec.prompt_tokens is not None:
        prompt = _lengths(spec.prompt_tokens)
    if spec.gen_tokens is not None:
        gen = _lengths(spec.gen_tokens)
    if spec.mode is not None:
        objective = _MODE_TO_OBJECTIVE[spec.mode]
    if spec.objective is not None:
        objective = spec.objective
    if spec.slo is not None:
        # Explicit SLO fields replace the preset's; fields left out keep the preset's only for a preset.
        given = spec.slo.model_dump()
        keep = slo.model_dump() if preset else {}
        slo = Slo(**{k: given[k] if given[k] is not None else keep.get(k) for k in given})
    elif custom and not preset:
        slo = Slo()
    request_rate = spec.request_rate
    concurrency: int | None = spec.concurrency
    if concurrency is None and request_rate is None:
        concurrency = conc
    name = preset or ("custom" if custom else base_name)
    if custom:
        source = "profile workload" + (f" over preset {preset}" if preset else "")
    if trace is not None:
        prompt, gen = _trace_lengths(trace.prompts), _trace_lengths(trace.gens)
        name = "trace"
        source = (
            f"trace {trace.source}: {len(trace.arrivals)} requests over {trace.duration_s:.1f} s "
            f"({trace.request_rate:.2f} req/s), sha256 {trace.sha256[:12]}"
        )
    return Workload(
        name=name,
        prompt=prompt,
        gen=gen,
        concurrency=concurrency,
        request_rate=request_rate,
        objective=objective,
        slo=slo,
        source=source,
        burstiness=spec.burstiness or 1.0,
        trace=trace,
    )
