"""The requests a simulation replays for a workload: lengths drawn from its distributions (or its
trace), arrivals at a rate with its burstiness (or the trace's own, time-scaled). Deterministic:
quantiles at evenly spaced probabilities in a seeded order, so every machine simulates the same run.

Length quantiles: a histogram is its own inverse CDF; percentiles are joined piecewise-linearly
through (0, low), (0.5, p50), (0.9, p90), (0.99, p99), (1, max), the low end mirrored from the
p50-p90 spread (a fixed length stays fixed). Arrivals: gamma-distributed gaps of shape
`burstiness` and mean 1/rate, as vLLM's bench serve draws them (burstiness 1 = Poisson).
"""

from __future__ import annotations

import bisect
import random
from functools import lru_cache

from .batching_sim import poisson_arrivals
from .workload import Lengths, Workload


def quantile(lengths: Lengths, q: float) -> float:
    """The length at probability `q` in [0, 1]."""
    if lengths.histogram:
        seen = 0.0
        for tokens, share in lengths.histogram:
            seen += share
            if seen >= q - 1e-12:
                return tokens
        return lengths.histogram[-1][0]
    p50, p99, mx = lengths.p50, lengths.p99, lengths.max
    p90 = lengths.p90 if lengths.p90 is not None else p50 + (p99 - p50) * (0.4 / 0.49)
    low = min(p50, max(1.0, p50 - (p90 - p50)))
    xs, ys = (0.0, 0.5, 0.9, 0.99, 1.0), (low, p50, p90, p99, mx)
    i = min(max(bisect.bisect_right(xs, q) - 1, 0), len(xs) - 2)
    t = (q - xs[i]) / (xs[i + 1] - xs[i])
    return ys[i] + t * (ys[i + 1] - ys[i])


def draw_lengths(lengths: Lengths, n: int, seed: int) -> list[int]:
    """`n` lengths at evenly spaced quantiles, in a seeded order."""
    return list(_drawn(lengths, n, seed))


@lru_cache(maxsize=256)
def _drawn(lengths: Lengths, n: int, seed: int) -> tuple[int, ...]:
    # Cached: the recommender and the cluster bisection draw the same workload's lengths many times.
    if lengths.p50 == lengths.p99 == lengths.max and not lengths.histogram:
        return (max(1, int(round(lengths.p50))),) * n
    values = [max(1, int(round(quantile(lengths, (i + 0.5) / n)))) for i in range(n)]
    random.Random(seed).shuffle(values)
    return tuple(values)


def arrivals(n: int, rate: float, burstiness: float = 1.0, seed: int = 0) -> list[float]:
    """Arrival times of `n` requests at `rate`/s; gamma gaps of shape `burstiness` (1: Poisson)."""
    if burstiness == 1.0:
        return poisson_arrivals(n, rate, seed=seed)
    rng = random.Random(seed)
    theta = 1.0 / (
        rate * burstiness
    )  # vllm benchmarks/serve.py get_request: gamma(shape=burstiness, scale=theta)
    t, out = 0.0, []
    for _ in range(n):
        out.append(t)
        t += rng.gammavariate(burstiness, theta)
    return out


def requests(
    workload: Workload, n: int, rate: float | None
) -> tuple[list[int], list[int], list[float] | None]:
    """(prompts, gens, arrivals) for `n` requests (a trace: all its requests); `rate` None = closed loop."""
    tr = workload.trace
    if tr is not None:
        arr = None
        if rate is not None:
            scale = tr.request_rate / rate if rate > 0 else 1.0
            arr = [a * scale for a in tr.arrivals]
        return list(tr.prompts), list(tr.gens), arr
    prompts = draw_lengths(workload.prompt, n, seed=1)
    gens = draw_lengths(workload.gen, n, seed=2)
    arr = arrivals(n, rate, workload.burstiness, seed=0) if rate is not None else None
    return prompts, gens, arr
