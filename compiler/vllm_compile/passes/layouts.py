"""Layouts pass: the trade the recommender weighed, as points for a Pareto view.

The recommend search honours every setting the profile fixed, so on its own it may weigh one layout.
A reviewer still wants to see what the neighbours would give: the other tensor-parallel sizes a node
allows (replicas on the GPUs given, or one replica on more GPUs), fp8 weights and an fp8 KV cache.
This pass evaluates those with the search's own judge and score (passes.recommend.evaluate), keeps the
candidates the search evaluated, and marks the chosen layout, the runner-up and the Pareto frontier of
output throughput per GPU (or cost per million output tokens, when a GPU price is known) against ITL.
Pure: typed data in, typed data out; a few dozen closed-form evaluations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..facts.gpu_spec import GpuSpec
from ..plan import Decision, EngineConfig, LayoutPoint, Resolved
from .recommend import TRADE_FP8_KV, TRADE_FP8_WEIGHTS, Candidate, evaluate, layouts
from .settings import with_capture_sizes
from .workload import Workload

PriceFn = Callable[[GpuSpec], float | None]  # USD per GPU-hour, None when unknown

LAYOUT_FIELDS = (
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "quantization",
    "kv_cache_dtype",
)


def _key(engine: EngineConfig) -> tuple:
    return tuple(getattr(engine, f) for f in LAYOUT_FIELDS)


def _fixed(decisions: dict[str, Decision]) -> dict[str, object]:
    return {f: d.value for f, d in decisions.items() if f in LAYOUT_FIELDS and d.by == "user"}


def _neighbours(resolved: Resolved, engine: EngineConfig) -> Iterable[dict[str, object]]:
    """Layout changes around the chosen engine, the profile's fixed settings lifted."""
    gpu, model = resolved.gpu, resolved.model
    gpus = resolved.profile.hardware.gpus
    per_node = resolved.profile.hardware.gpus_per_node or gpu.gpus_per_node
    shapes = set(layouts(resolved, engine, {}))  # every layout on the GPUs given
    tp = 1
    while tp <= per_node:  # one replica on more GPUs than given: what a bigger node would buy
        if tp > gpus and model.supports_tensor_parallel(tp):
            shapes.add((tp, 1, 1))
        tp *= 2
    quants: list[str | None] = [engine.quantization]
    if model.quantization is None and gpu.sm >= (8, 0):  # vLLM fp8: W8A8 on SM 8.9+, Marlin on Ampere
        quants = [None, "fp8"]
    kvs = [engine.kv_cache_dtype]
    if gpu.sm >= (8, 9):  # fp8 KV cache needs SM 8.9+ (the recommend pass's own rule)
        kvs = ["auto", "fp8"]
    for tp, pp, dp in sorted(shapes):
        for q in quants:
            for kv in kvs:
                yield {
                    "tensor_parallel_size": tp,
                    "pipeline_parallel_size": pp,
                    "data_parallel_size": dp,
                    "quantization": q,
                    "kv_cache_dtype": kv,
                }


def _point(
    c: Candidate, workload: Workload, *, within: bool, searched: bool, price: float | None
) -> LayoutPoint:
    e = c.engine
    point = LayoutPoint(
        **{f: getattr(e, f) for f in LAYOUT_FIELDS},
        gpus=e.total_gpus,
        starts=c.verdict.starts,
        within_profile=within,
        searched=searched,
        kv_tokens=max(c.memory.kv.tokens, 0),
    )
    s = c.state
    if s is None:
        return point
    tok = s.output_tok_s
    return point.model_copy(
        update={
            "holds_workload": s.running >= s.concurrency,
            "slo_met": (not c.misses) if workload.slo.any else None,
            "output_tok_s": round(tok, 3),
            "output_tok_s_per_gpu": round(tok / e.total_gpus, 3),
            "itl_ms": round(s.tpot_s * 1e3, 4),
            "ttft_ms": round(s.ttft_s * 1e3, 3),
            "usd_per_mtok": None
            if price is None or tok <= 0
            else round(price * e.total_gpus / (tok * 3600) * 1e6, 4),
        }
    )


def _trades(resolved: Resolved, e: EngineConfig) -> int:
    """The accuracy trades a layout takes, as the search weighs them (the runner-up prefers fewer)."""
    quantized = e.quantization is not None and resolved.model.quantization is None
    return TRADE_FP8_WEIGHTS * quantized + TRADE_FP8_KV * (e.kv_cache_dtype != "auto")


def _frontier(points: list[LayoutPoint]) -> set[int]:
    """Indices of the starting points no other beats on both axes (throughput or cost, and ITL)."""
    costed = all(p.usd_per_mtok is not None for p in points if p.starts)

    def better(p: LayoutPoint) -> float:  # higher is better
        return -p.usd_per_mtok if costed else p.output_tok_s_per_gpu  # type: ignore[operator,return-value]

    live = [(i, p) for i, p in enumerate(points) if p.starts and p.itl_ms is not None]
    out = set()
    for i, p in live:
        dominated = any(
            better(q) >= better(p) and q.itl_ms <= p.itl_ms and (better(q) > better(p) or q.itl_ms < p.itl_ms)
            for j, q in live
            if j != i
        )
        if not dominated:
            out.add(i)
    return out


def plan_layouts(
    resolved: Resolved,
    engine: EngineConfig,
    decisions: dict[str, Decision],
    workload: Workload,
    searched: list[Candidate],
    price_per_gpu_hour: PriceFn | None = None,
) -> list[LayoutPoint]:
    """The chosen engine, the search's candidates and their neighbours, one point per layout."""
    price = price_per_gpu_hour(resolved.gpu) if price_per_gpu_hour is not None else None
    fixed = _fixed(decisions)
    given = resolved.profile.hardware.gpus

    allow_quant = resolved.profile.policy.allow_quantization

    def within(e: EngineConfig) -> bool:
        quantized = e.quantization is not None and resolved.model.quantization is None
        return (
            e.total_gpus <= given
            and (allow_quant or not quantized or e.quantization == engine.quantization)
            and all(getattr(e, f) == v for f, v in fixed.items())
        )

    chosen_key = _key(engine)
    best: dict[tuple, tuple[Candidate, bool]] = {chosen_key: (evaluate(resolved, engine, workload), True)}
    for c in searched:
        k = _key(c.engine)
        if k != chosen_key and (k not in best or c.key < best[k][0].key):
            best[k] = (c, True)
    for change in _neighbours(resolved, engine):
        e = with_capture_sizes(engine.model_copy(update=change), resolved)
        k = _key(e)
        if k not in best:
            best[k] = (evaluate(resolved, e, workload, _trades(resolved, e)), False)
    keys = sorted(best, key=lambda k: (k[0], k[1], k[2], k[3] or "", k[4]))
    cands = [best[k][0] for k in keys]
    points = [
        _point(c, workload, within=within(c.engine), searched=best[k][1], price=price)
        for k, c in zip(keys, cands, strict=True)
    ]
    on = _frontier(points)
    points = [p.model_copy(update={"frontier": i in on}) for i, p in enumerate(points)]
    chosen = keys.index(chosen_key)
    others = [i for i in range(len(points)) if i != chosen and points[i].starts]
    preferred = [i for i in others if points[i].within_profile] or others
    runner = min(preferred, key=lambda i: cands[i].key) if preferred else None
    points[chosen] = points[chosen].model_copy(update={"role": "chosen"})
    if runner is not None:
        points[runner] = points[runner].model_copy(update={"role": "runner-up"})
    return points
