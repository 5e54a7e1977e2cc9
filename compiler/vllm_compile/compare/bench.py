"""A performance estimate against a real `vllm bench serve` run, at that run's concurrency and lengths.

The lock's estimate is re-planned for the benchmark's workload (same engine: the lock's settings are
pinned) and each figure compared with its range: a figure outside the estimate's low..high range drifts.
Benchmarks report the median TTFT and TPOT (vLLM's TPOT is the lock's ITL: (e2e - TTFT) / (tokens - 1)).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..observe.bench_result import BenchResult
from ..plan import PerfEstimate
from .verify import TermDrift


class BenchReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    log: str
    log_sha256: str
    concurrency: int
    prompt_tokens: int
    gen_tokens: int
    terms: list[TermDrift] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def drift(self) -> bool:
        return any(t.beyond for t in self.terms)


def verify_bench(
    name: str, log_name: str, bench: BenchResult, estimate: PerfEstimate, how: str
) -> BenchReport:
    rows = (
        ("ttft_ms", "TTFT (median)", "ms", bench.median_ttft_ms or bench.mean_ttft_ms, estimate.ttft_ms),
        ("itl_ms", "TPOT (median)", "ms", bench.median_tpot_ms or bench.mean_tpot_ms, estimate.itl_ms),
        ("output_tok_s", "output throughput", "tok/s", bench.output_throughput, estimate.output_tok_s),
        ("request_rps", "request throughput", "req/s", bench.request_throughput, estimate.request_rps),
    )
    terms = []
    for term, label, unit, observed, predicted in rows:
        if observed is None:
            continue
        delta = observed - predicted.value
        terms.append(
            TermDrift(
                term=term,
                label=f"{label} (estimate {predicted.low:.4g}..{predicted.high:.4g})",
                unit=unit,
                predicted=round(predicted.value, 4),
                observed=round(observed, 4),
                delta=round(delta, 4),
                relative=round(delta / predicted.value, 4) if predicted.value else None,
                beyond=not predicted.low <= observed <= predicted.high,
            )
        )
    concurrency, _ = bench.concurrency()
    notes = [
        f"estimate re-planned at concurrency {concurrency} ({how}), {bench.prompt_tokens} prompt / "
        f"{bench.gen_tokens} generated tokens, with the lock's engine settings"
    ]
    if "at once" in how and concurrency > 1:
        notes.append(
            "every request arrived at once: the benchmark's TTFT includes waiting behind the others' prefills, "
            "the estimate is the steady state of a closed loop"
        )
    return BenchReport(
        name=name,
        log=log_name,
        log_sha256=bench.sha256,
        concurrency=concurrency,
        prompt_tokens=bench.prompt_tokens,
        gen_tokens=bench.gen_tokens,
        terms=terms,
        notes=notes,
    )
