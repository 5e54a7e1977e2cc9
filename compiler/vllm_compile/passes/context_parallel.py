"""Decode context parallel (`-dcp N`): the TP ranks of an engine each keep 1/N of every request's tokens.

vLLM (v1/core/kv_cache_utils.py `get_kv_cache_config`/`_report_kv_cache_config`): the bytes per GPU and
the block count are unchanged (each rank holds the same per-token page: for MLA the one latent, which
TP does not shard), but a block on a rank now holds every N-th token, so the engine reports
`num_tokens *= decode_context_parallel_size` ("Multiplying the GPU KV cache size by the dcp_world_size")
and a request of L tokens takes `ceil(ceil(L / N) / block_size)` blocks on each rank
(`FullAttentionSpec.max_memory_usage_bytes`, reference/vllm_memory_model.md 2.4).
vLLM requires tensor_parallel_size to be a multiple of the DCP size (config/parallel.py).
"""

from __future__ import annotations

from math import ceil

from ..facts.model_facts import ModelFacts
from ..plan import EngineConfig, KvCachePlan
from . import kv_cache as kv


def dcp_request_len(engine: EngineConfig) -> int:
    """Tokens of one max_model_len request that land on one rank."""
    return ceil(engine.max_model_len / max(1, engine.decode_context_parallel_size))


def with_decode_context_parallel(
    plan: KvCachePlan,
    engine: EngineConfig,
    groups: list[kv.KvGroup],
    in_flight_batches: int,
    tokens_formula: str = "blocks",
) -> KvCachePlan:
    n = engine.decode_context_parallel_size
    if n <= 1 or not groups:
        return plan
    bs, L = engine.block_size, engine.max_model_len
    in_flight = kv.in_flight_tokens(engine, in_flight_batches)
    per_rank_len = dcp_request_len(engine)
    per_req = sum(kv.blocks_per_request(g, per_rank_len, bs, in_flight) for g in groups)
    concurrency = plan.num_blocks / per_req if per_req else 0.0
    if tokens_formula == "concurrency":
        tokens = int(concurrency * L)
    else:
        tokens = plan.num_blocks // len(groups) * bs * n
    return plan.model_copy(
        update={"blocks_per_request": per_req, "tokens": tokens, "max_concurrency": round(concurrency, 2)}
    )


def largest_len(fit: int | None, engine: EngineConfig, model: ModelFacts) -> int | None:
    """`--max-model-len auto` with DCP: a rank holds ceil(L / N) of a request's tokens, so the longest
    request is N x what one rank's KV fits, up to the model's own maximum."""
    n = engine.decode_context_parallel_size
    if fit is None or n <= 1:
        return fit
    longest = fit * n
    return min(longest, model.max_model_len) if model.max_model_len else longest


def notes(engine: EngineConfig) -> list[str]:
    n = engine.decode_context_parallel_size
    if n <= 1:
        return []
    return [
        f"decode context parallel {n}: each of the {engine.tensor_parallel_size} TP ranks keeps 1/{n} of every "
        f"request's KV tokens; vLLM reports {n}x the tokens of the same KV bytes (kv_cache_utils.py)"
    ]
