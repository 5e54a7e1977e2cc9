"""A small discrete-event simulation of vLLM V1 continuous batching, and its closed-form steady state.

Why a simulation for request-rate workloads: a queueing formula (M/G/1, M/D/c) needs a service time
that does not depend on the load, but in continuous batching every request's speed depends on how
many others share the step (the decode step time grows with batch and KV), prefills steal steps
from decodes, and admission is capped by max_num_seqs and the KV cache. Simulating the scheduler
step by step captures all three with no fitted queueing constants. It jumps over runs of identical
decode steps (nothing arrives, nothing finishes), so it costs O(requests log requests), ~ms.

The scheduler follows vllm/v1/core/sched/scheduler.py: running requests first (one token each for
decodes, then continuing partial prefills), then waiting requests FIFO while the token budget
(max_num_batched_tokens), max_num_seqs and free KV blocks allow. KV is reserved for the whole
request at admission (vLLM allocates block by block and preempts when full; reserving up front is
the conservative steady-state equivalent and never preempts).
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections import deque
from dataclasses import dataclass, field

from . import perf_model
from .perf_model import StepModel


@dataclass
class _Req:
    arrival: float
    prompt: int
    gen: int
    prefilled: int = 0
    first_token: float | None = None
    finish: float | None = None
    k0: int = 0  # decode-step counter when its first token was emitted


@dataclass(frozen=True)
class SimResult:
    ttft_s: list[float]
    tpot_s: list[float]
    e2e_s: list[float]
    duration_s: float
    prompt_tokens: int
    gen_tokens: int
    completed: int
    mean_batch: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def output_tok_s(self) -> float:
        return self.gen_tokens / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def total_tok_s(self) -> float:
        return (self.prompt_tokens + self.gen_tokens) / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def request_rps(self) -> float:
        return self.completed / self.duration_s if self.duration_s > 0 else 0.0


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    ys = sorted(xs)
    i = min(len(ys) - 1, max(0, math.ceil(q * len(ys)) - 1))
    return ys[i]


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else 0.0


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def p99(xs: list[float]) -> float:
    return _pct(xs, 0.99)


def percentile(xs: list[float], q: float) -> float:
    """The nearest-rank q-quantile (0 < q <= 1) of `xs` (0 for an empty list)."""
    return _pct(xs, q)


def poisson_arrivals(n: int, rate: float, seed: int = 0) -> list[float]:
    """Seeded exponential gaps (vLLM bench serve's default, burstiness 1): deterministic output."""
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(rate)
    return out


def simulate(
    sm: StepModel,
    *,
    prompts: list[int],
    gens: list[int],
    arrivals: list[float] | None = None,
    max_concurrency: int | None = None,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    kv_tokens: int,
    cached_prompt_fraction: float = 0.0,
    warmup: int = 0,
    step_tokens: dict[tuple[int, bool], int] | None = None,
) -> SimResult:
    """Run requests through the scheduler. `arrivals` None = all at t=0 (request_rate=inf);
    `max_concurrency` = the client's cap (closed loop when arrivals are all 0). The first `warmup`
    finished requests are left out of the latency lists. `step_tokens`, when given, counts the engine
    steps by (tokens scheduled, has a prefill chunk): what CUDA graphs are captured by."""
    n = len(prompts)
    if len(gens) != n or (arrivals is not None and len(arrivals) != n):
        raise ValueError("simulate: prompts, gens and arrivals must have one entry per request")
    arr = arrivals if arrivals is not None else [0.0] * n
    pending = deque(sorted(range(n), key=lambda i: (arr[i], i)))
    reqs = [_Req(arrival=arr[i], prompt=prompts[i], gen=max(1, gens[i])) for i in range(n)]
    waiting: deque[int] = deque()
    prefilling: list[int] = []
    decoding: list[tuple[int, int]] = []  # heap of (finish step, idx)
    ctx_base = 0  # sum over decoders of (context at k0 - k0); ctx = ctx_base + d * k
    kv_used = 0
    in_flight = 0
    now, k = 0.0, 0
    budget = max(1, max_num_batched_tokens)
    done: list[int] = []
    batch_time = 0.0
    notes: list[str] = []
    if any(p + g > kv_tokens for p, g in zip(prompts, gens, strict=True)):
        notes.append("a request is longer than the KV cache: it was admitted alone")

    def finish(i: int) -> None:
        nonlocal kv_used, in_flight
        r = reqs[i]
        r.finish = now
        kv_used -= r.prompt + r.gen
        in_flight -= 1
        done.append(i)

    while len(done) < n:
        # Client side (a request reaches the scheduler after the API server's fixed latency): release what has arrived (a capped client holds the rest).
        while pending and arr[pending[0]] <= now and (max_concurrency is None or in_flight < max_concurrency):
            i = pending.popleft()
            reqs[i].arrival = max(reqs[i].arrival, now) if max_concurrency else reqs[i].arrival
            waiting.append(i)
            in_flight += 1
        # Scheduler admission.
        while waiting and len(decoding) + len(prefilling) < max_num_seqs:
            i = waiting[0]
            need = reqs[i].prompt + reqs[i].gen
            if kv_used + need > kv_tokens and (decoding or prefilling):
                break
            waiting.popleft()
            kv_used += need
            reqs[i].prefilled = int(reqs[i].prompt * cached_prompt_fraction)
            prefilling.append(i)
        d = len(decoding)
        if not d and not prefilling:
            if not pending:
                break
            now = max(now, arr[pending[0]])
            continue
        ctx = ctx_base + d * k
        if prefilling:
            left = max(budget - d, 0)
            chunks: list[tuple[int, int]] = []
            for i in prefilling:
                if left <= 0:
                    break
                r = reqs[i]
                c = min(r.prompt - r.prefilled, left)
                chunks.append((i, c))
                left -= c
            p_tok = sum(c for _, c in chunks)
            p_pos = sum(c * (reqs[i].prefilled + c / 2) for i, c in chunks) / p_tok if p_tok else 0.0
            # A long prompt is a run of identical steps (one full chunk, the same decoders): like a decode
            # run, jump over it, so the cost is bounded by requests, not by prompt tokens / budget.
            steps = 1
            if len(chunks) == 1 and chunks[0][1] == budget - d and chunks[0][1] > 0:
                i, c = chunks[0]
                steps = (reqs[i].prompt - reqs[i].prefilled - 1) // c  # full chunks before the last one
                if decoding:
                    steps = min(steps, decoding[0][0] - k)
                if pending and (max_concurrency is None or in_flight < max_concurrency):
                    dt0 = sm.step_time(d, ctx, p_tok, p_pos)
                    steps = min(steps, max(1, math.ceil((arr[pending[0]] - now) / dt0)))
                steps = max(1, steps)
            mid = (steps - 1) / 2  # the run's mean step: contexts and prompt positions grow linearly
            dt = steps * sm.step_time(d, ctx + d * mid, p_tok, p_pos + p_tok * mid)
            if step_tokens is not None:
                step_tokens[(d + p_tok, True)] = step_tokens.get((d + p_tok, True), 0) + steps
            now += dt
            batch_time += d * dt
            k += steps
            for i, c in chunks:
                reqs[i].prefilled += c * steps
            while decoding and decoding[0][0] <= k:
                _, i = heapq.heappop(decoding)
                ctx_base -= reqs[i].prompt + 1 - reqs[i].k0
                finish(i)
            for i, _ in chunks:
                r = reqs[i]
                if r.prefilled >= r.prompt:
                    prefilling.remove(i)
                    r.first_token = now
                    if r.gen <= 1:
                        finish(i)
                    else:
                        r.k0 = k
                        ctx_base += r.prompt + 1 - k
                        heapq.heappush(decoding, (k + r.gen - 1, i))
            continue
        # Pure decode: jump to the next finish or the next arrival that could be admitted.
        steps = decoding[0][0] - k
        can_admit = d < max_num_seqs and (max_concurrency is None or in_flight < max_concurrency)
        if pending and can_admit:
            dt0 = sm.step_time(d, ctx)
            steps = min(steps, max(1, math.ceil((arr[pending[0]] - now) / dt0)))
        steps = max(1, steps)
        dt = steps * sm.step_time(d, ctx + d * (steps - 1) / 2)
        if step_tokens is not None:
            step_tokens[(d, False)] = step_tokens.get((d, False), 0) + steps
        now += dt
        batch_time += d * dt
        k += steps
        while decoding and decoding[0][0] <= k:
            _, i = heapq.heappop(decoding)
            ctx_base -= reqs[i].prompt + 1 - reqs[i].k0
            finish(i)

    kept = [reqs[i] for i in done[warmup:]] or [reqs[i] for i in done]
    ttft = [
        r.first_token - r.arrival + perf_model.REQUEST_OVERHEAD_S for r in kept if r.first_token is not None
    ]
    tpot = [
        (r.finish - r.first_token) / (r.gen - 1)
        for r in kept
        if r.finish is not None and r.first_token is not None and r.gen > 1
    ]
    e2e = [r.finish - r.arrival + perf_model.REQUEST_OVERHEAD_S for r in kept if r.finish is not None]
    start = min(r.arrival for r in reqs) if reqs else 0.0
    return SimResult(
        ttft_s=ttft,
        tpot_s=tpot,
        e2e_s=e2e,
        duration_s=max(now - start, 1e-12),
        prompt_tokens=sum(prompts),
        gen_tokens=sum(gens),
        completed=len(done),
        mean_batch=batch_time / now if now > 0 else 0.0,
        notes=notes,
    )


@dataclass(frozen=True)
class SteadyState:
    """Closed loop with `concurrency` requests always in flight."""

    concurrency: int
    running: int  # what the engine admits at once (max_num_seqs, KV cache)
    ttft_s: float
    tpot_s: float
    e2e_s: float
    request_rps: float
    output_tok_s: float
    total_tok_s: float
    queue_s: float


# Prefill chunks of one prompt whose step times the closed form sums one by one; beyond it (a prompt over
# SUMMED_CHUNKS x the step budget, e.g. 2M tokens at 8,192) it sums that many groups of chunks at their
# midpoints: the context grows linearly over the chunks, so the error is second order in 1/SUMMED_CHUNKS.
SUMMED_CHUNKS = 256


def steady_state(
    sm: StepModel,
    *,
    prompt: float,
    gen: float,
    concurrency: int,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    kv_tokens: int,
) -> SteadyState:
    """Closed form of the simulation's steady state: during one request's life (G token steps) each
    running request brings one new prompt, whose chunks ride in decode steps; the step with a chunk
    costs more (the chunk's FLOPs), the others are plain decode steps. Little's law gives the rates."""
    prompt, gen = max(prompt, 1.0), max(gen, 1.0)
    fit = int(kv_tokens // (prompt + gen)) if prompt + gen > 0 else concurrency
    r = max(1, min(concurrency, max_num_seqs, max(fit, 1)))
    budget = max(max_num_batched_tokens - (r - 1), 1)
    chunks = max(1, math.ceil(prompt / budget))
    chunk = prompt / chunks
    ctx_dec = (r - 1) * (prompt + gen / 2)  # the other requests, mid-life on average
    # Each of the r requests brings `chunks` prefill steps per life; beyond `gen` steps they share.
    n_pf = r * chunks
    steps = max(gen, math.ceil(r * prompt / budget), 1)
    per_step = chunk if n_pf <= steps else r * prompt / steps
    n_pf = min(n_pf, steps)
    dec_batch = max(r - 1, 0) if r > 1 else 0
    t_dec = sm.step_time(r, r * (prompt + gen / 2)) if r else 0.0
    t_mix = sm.step_time(dec_batch, ctx_dec, per_step, prompt / 2)
    if chunks <= SUMMED_CHUNKS:
        t_own = sum(sm.step_time(dec_batch, ctx_dec, chunk, i * chunk + chunk / 2) for i in range(chunks))
    else:  # a composite midpoint rule: bounded work for any prompt length (issue #11)
        group = chunks / SUMMED_CHUNKS
        t_own = group * sum(
            sm.step_time(dec_batch, ctx_dec, chunk, (j + 0.5) * group * chunk) for j in range(SUMMED_CHUNKS)
        )
    life = (steps - n_pf) * t_dec + n_pf * t_mix  # one request's life = one full cycle of the loop
    tpot = max(life - t_own, t_dec * (gen - 1)) / max(gen - 1, 1) if gen > 1 else 0.0
    ttft = perf_model.REQUEST_OVERHEAD_S + t_own + 0.5 * t_dec  # arrives mid-step on average
    e2e = ttft + (gen - 1) * tpot
    rps = r / e2e
    queue = max(concurrency / rps - e2e, 0.0) if concurrency > r else 0.0
    return SteadyState(
        concurrency=concurrency,
        running=r,
        ttft_s=ttft + queue,
        tpot_s=tpot,
        e2e_s=e2e + queue,
        request_rps=rps,
        output_tok_s=rps * gen,
        total_tok_s=rps * (prompt + gen),
        queue_s=queue,
    )
