"""The KV cache as vLLM's V1 engine sizes it: page sizes, layer groups, blocks, tokens, concurrency.

Pure functions of (ModelFacts, EngineConfig, available bytes). Sources, all in vLLM:
- per-layer page size: `v1/kv_cache_interface.py` (AttentionSpec.page_size_bytes, MLAAttentionSpec, MambaSpec)
- KV heads per rank: `config/model.py: ModelConfig.get_num_kv_heads` (replicated when fewer than TP)
- groups: `v1/core/kv_cache_utils.py: get_kv_cache_groups` / `_get_kv_cache_groups_uniform_page_size`
- blocks: `get_kv_cache_config_from_groups` (num_blocks = available // page_size // group_size, min over ranks)
- per-request blocks: `*Spec.max_memory_usage_bytes`; concurrency and tokens: `_report_kv_cache_config`,
  `get_max_concurrency_for_kv_cache_config`; start-up check: `_check_enough_kv_cache_memory`,
  `estimate_max_model_len` (a binary search on max_model_len).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from math import ceil

from ..facts.model_facts import ModelFacts
from ..plan import EngineConfig, KvCachePlan


class KvCacheError(ValueError):
    """A KV cache setting vLLM would reject (unknown dtype, impossible head split)."""


# Bytes of one KV element (vllm/utils/torch_utils.py STR_DTYPE_TO_TORCH_DTYPE; fp8 variants are 1 byte,
# their per-tensor scales are layer parameters, not pages).
_KV_DTYPE_BYTES: dict[str, int] = {
    "float32": 4,
    "float": 4,
    "float16": 2,
    "half": 2,
    "fp16": 2,
    "bfloat16": 2,
    "bf16": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_inc": 1,
    "fp8_ds_mla": 1,
}

# DeepSeek sparse-MLA packed page per token per layer (layers/attention/mla_attention.py get_kv_cache_spec):
# 512 fp8 latent + 4x fp32 scales + 64 bf16 rope = 656 bytes.
_FP8_DS_MLA_BYTES_PER_TOKEN = 656


def kv_dtype_bytes(kv_cache_dtype: str, model_dtype: str) -> int:
    """Bytes per KV element; `auto` follows the dtype the model runs in (vLLM CacheConfig.cache_dtype)."""
    name = model_dtype if kv_cache_dtype in ("auto", "", None) else kv_cache_dtype
    try:
        return _KV_DTYPE_BYTES[name]
    except KeyError:
        raise KvCacheError(
            f"unknown kv_cache_dtype {kv_cache_dtype!r}; use auto, float16, bfloat16 or an fp8 variant"
        ) from None


def kv_heads_per_rank(num_kv_heads: int, tp: int) -> int:
    """vLLM's ModelConfig.get_num_kv_heads: heads split over TP, at least one (replicated) per rank."""
    if tp < 1:
        raise KvCacheError(f"tensor_parallel_size must be >= 1, got {tp}")
    if num_kv_heads >= tp and num_kv_heads % tp != 0:
        raise KvCacheError(f"{num_kv_heads} KV heads cannot be split evenly over tensor_parallel_size={tp}")
    if num_kv_heads < tp and tp % num_kv_heads != 0:
        raise KvCacheError(
            f"tensor_parallel_size={tp} must be a multiple of the {num_kv_heads} KV heads to replicate them"
        )
    return max(1, num_kv_heads // tp)


@dataclass(frozen=True)
class LayerSpec:
    """One decoder layer's KV spec on one GPU."""

    kind: str  # full | sliding | chunked | mla | mamba
    bytes_per_token: int  # page bytes per token of this layer (mamba: state bytes per sequence)
    window: int | None = None  # sliding window or attention chunk size


@dataclass(frozen=True)
class KvGroup:
    """One KV cache group: layers that share a block table (kv_cache_utils KVCacheGroupSpec)."""

    kind: str
    window: int | None
    num_layers: int
    page_bytes_per_token: int  # per layer (uniform within a group)


def layer_bytes_per_token(model: ModelFacts, engine: EngineConfig, kind: str) -> int:
    """Page bytes per token of one layer on one GPU (AttentionSpec.page_size_bytes / block_size)."""
    b = kv_dtype_bytes(engine.kv_cache_dtype, engine.dtype)
    if kind == "mla":
        # MLA keeps one latent per token, replicated on every TP rank (mla_attention.py: max_tp_shards=1).
        if engine.kv_cache_dtype == "fp8_ds_mla":
            return _FP8_DS_MLA_BYTES_PER_TOKEN
        return ((model.kv_lora_rank or 0) + (model.qk_rope_head_dim or 0)) * b
    if kind == "mamba":
        return model.mamba_state_bytes_per_layer or 0
    heads = kv_heads_per_rank(model.num_key_value_heads, engine.tensor_parallel_size)
    head_v = model.v_head_dim if model.v_head_dim is not None else model.head_dim
    return heads * (model.head_dim + head_v) * b


def layer_specs(
    model: ModelFacts,
    engine: EngineConfig,
    layers: tuple[int, int] | None = None,
    *,
    promote_chunked: bool = True,
) -> list[LayerSpec]:
    """The KV specs of the decoder layers [start, end) on one GPU.

    Llama-4 chunked local attention runs with the hybrid manager off by default (vLLM config/vllm.py:
    VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE unset), so its local layers pay full KV.
    """
    start, end = layers if layers is not None else (0, model.num_hidden_layers)
    kinds = list(model.layer_kinds) or ["full"] * model.num_hidden_layers
    by_kind: dict[str, LayerSpec | None] = {}  # every layer of a kind has the same spec: build it once
    specs: list[LayerSpec] = []
    for kind in kinds[start:end]:
        if kind not in by_kind:
            by_kind[kind] = _layer_spec(model, engine, kind, promote_chunked)
        spec = by_kind[kind]
        if spec is not None:
            specs.append(spec)
    return specs


def _layer_spec(
    model: ModelFacts, engine: EngineConfig, kind: str, promote_chunked: bool
) -> LayerSpec | None:
    if kind == "none":
        return None
    if kind == "mla" or (model.is_mla and kind == "full"):
        return LayerSpec("mla", layer_bytes_per_token(model, engine, "mla"))
    if kind == "sliding" and model.sliding_window:
        return LayerSpec("sliding", layer_bytes_per_token(model, engine, "full"), model.sliding_window)
    if kind == "chunked" and model.attention_chunk_size and not promote_chunked:
        return LayerSpec("chunked", layer_bytes_per_token(model, engine, "full"), model.attention_chunk_size)
    if kind == "mamba":
        return LayerSpec("mamba", layer_bytes_per_token(model, engine, "mamba"))
    return LayerSpec("full", layer_bytes_per_token(model, engine, "full"))


def kv_groups(specs: list[LayerSpec]) -> list[KvGroup]:
    """Group layers as vLLM's get_kv_cache_groups does.

    One spec -> one group. Several kinds -> bucket by (kind, window); group size = the smallest bucket
    (or the largest when max < 1.5 x min); each bucket is split into ceil(n / group_size) groups
    (`_get_kv_cache_groups_uniform_page_size`). Attention layers of different page sizes in one type
    form one UniformTypeKVCacheSpecs group.
    """
    if not specs:
        return []
    buckets: dict[tuple[str, int | None], list[LayerSpec]] = {}
    for s in specs:
        buckets.setdefault((s.kind, s.window), []).append(s)
    if len(buckets) == 1:
        (kind, window), layers = next(iter(buckets.items()))
        page = max(s.bytes_per_token for s in layers)
        return [KvGroup(kind, window, len(layers), page)]
    counts = [len(v) for v in buckets.values()]
    lo, hi = min(counts), max(counts)
    group_size = hi if hi < 1.5 * lo else lo
    groups: list[KvGroup] = []
    for (kind, window), layers in buckets.items():
        page = max(s.bytes_per_token for s in layers)
        for _ in range(ceil(len(layers) / group_size)):
            groups.append(KvGroup(kind, window, group_size, page))
    return groups


def bytes_per_block(groups: list[KvGroup], block_size: int) -> int:
    """Memory of one block id across every group (page size x group size; padded groups pay in full)."""
    if not groups:
        return 0
    attn = [g for g in groups if g.kind != "mamba"]
    page_per_layer = max(g.page_bytes_per_token for g in attn) * block_size if attn else 0
    # Mamba pages are padded to the attention page (kv_cache_interface.MambaSpec page_size_padded).
    mamba = [g.page_bytes_per_token for g in groups if g.kind == "mamba"]
    page_per_layer = max([page_per_layer, *mamba])
    return page_per_layer * max(g.num_layers for g in groups)


def in_flight_tokens(engine: EngineConfig, batches: int = 1) -> int:
    """Tokens a sliding-window request may hold beyond the window (`batches` scheduled steps)."""
    return engine.max_num_batched_tokens * batches


def _blocks(kind: str, window: int | None, max_model_len: int, block_size: int, in_flight: int) -> int:
    if kind == "sliding" and window:
        tokens = min(window - 1 + in_flight, max_model_len)
        return ceil(tokens / block_size) + 1  # +1: the window may not start at a block boundary
    if kind == "chunked" and window:
        return ceil(min(window + in_flight, max_model_len) / block_size)
    if kind == "mamba":
        return 1
    return ceil(max_model_len / block_size)


def blocks_per_request(group: KvGroup, max_model_len: int, block_size: int, in_flight: int) -> int:
    """Blocks one max_model_len request takes in one group (`*Spec.max_memory_usage_bytes` / page)."""
    return _blocks(group.kind, group.window, max_model_len, block_size, in_flight)


LayerCounts = dict[tuple[str, int | None, int], int]


def layer_counts(specs: list[LayerSpec]) -> LayerCounts:
    """Layers of one kind, window and size cost the same: (kind, window, bytes per token) -> count."""
    return dict(Counter((s.kind, s.window, s.bytes_per_token) for s in specs))


def request_bytes(counts: LayerCounts, max_model_len: int, block_size: int, in_flight: int) -> int:
    """Bytes one max_model_len request needs, summed per layer (`max_memory_usage_bytes` over layers)."""
    total = 0
    for (kind, window, per_token), count in counts.items():
        if kind == "mamba":
            total += count * per_token
        else:
            total += (
                count * _blocks(kind, window, max_model_len, block_size, in_flight) * block_size * per_token
            )
    return total


def num_blocks(available_bytes: int, block_bytes: int) -> int:
    """floor(available / bytes per block); 0 when nothing is left (get_kv_cache_config_from_groups)."""
    if block_bytes <= 0 or available_bytes <= 0:
        return 0
    return available_bytes // block_bytes


def max_concurrency(
    blocks: int, groups: list[KvGroup], max_model_len: int, block_size: int, in_flight: int
) -> float:
    """`get_max_concurrency_for_kv_cache_config`: blocks / blocks one max_model_len request needs."""
    per_request = sum(blocks_per_request(g, max_model_len, block_size, in_flight) for g in groups)
    return blocks / per_request if per_request else 0.0


def kv_tokens(
    blocks: int,
    groups: list[KvGroup],
    max_model_len: int,
    block_size: int,
    in_flight: int,
    *,
    formula: str = "blocks",
) -> int:
    """ "GPU KV cache size: N tokens" (`_report_kv_cache_config`).

    `blocks` (vLLM <= 0.2x): num_blocks // num_groups * block_size; `concurrency` (newer): int(concurrency x L).
    """
    if not groups:
        return 0
    if formula == "concurrency":
        return int(max_concurrency(blocks, groups, max_model_len, block_size, in_flight) * max_model_len)
    return blocks // len(groups) * block_size


def largest_fitting_len(
    available_bytes: int,
    groups: list[KvGroup],
    specs: list[LayerSpec],
    block_size: int,
    in_flight: int,
    upper: int,
) -> int | None:
    """The largest max_model_len whose request fits (`estimate_max_model_len`'s binary search)."""
    if available_bytes <= 0 or not specs:
        return None
    counts = layer_counts(specs)  # once: the binary search below calls request_bytes ~20 times
    if request_bytes(counts, 1, block_size, in_flight) > available_bytes:
        return None
    if all(_grows_per_block(kind, window) for kind, window, _ in counts):
        return _largest_whole_blocks(counts, available_bytes, block_size, upper)
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if request_bytes(counts, mid, block_size, in_flight) <= available_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _grows_per_block(kind: str, window: int | None) -> bool:
    """A layer whose request takes ceil(len / block_size) blocks (`_blocks`' last case): full attention."""
    return kind != "mamba" and not (window and kind in ("sliding", "chunked"))


def _largest_whole_blocks(counts: LayerCounts, available_bytes: int, block_size: int, upper: int) -> int:
    """`largest_fitting_len`'s binary search in closed form where every layer grows per block: a request
    of len L needs ceil(L / block_size) * per_block bytes, so the most whole blocks that fit, capped at
    `upper` (the search's bounds: at least 1, which the caller checked fits)."""
    per_block = block_size * sum(count * per_token for (_kind, _window, per_token), count in counts.items())
    if per_block == 0:
        return max(1, upper)
    return max(1, min(upper, available_bytes // per_block * block_size))


@dataclass(frozen=True)
class StageKv:
    """The KV layout of one PP stage."""

    specs: list[LayerSpec]
    groups: list[KvGroup]
    block_bytes: int

    @property
    def bytes_per_token(self) -> int:
        return sum(s.bytes_per_token for s in self.specs if s.kind != "mamba")


def stage_kv(model: ModelFacts, engine: EngineConfig, layers: tuple[int, int] | None = None) -> StageKv:
    specs = layer_specs(model, engine, layers)
    groups = kv_groups(specs)
    return StageKv(specs, groups, bytes_per_block(groups, engine.block_size))


def plan_kv_cache(
    model: ModelFacts,
    engine: EngineConfig,
    stages: list[StageKv],
    available_bytes: list[int],
    *,
    in_flight_batches: int = 1,
    tokens_formula: str = "blocks",
) -> tuple[KvCachePlan, int]:
    """KvCachePlan over every PP stage, and the index of the binding stage (fewest blocks)."""
    if not stages or len(stages) != len(available_bytes):
        raise KvCacheError("one available-bytes figure per pipeline stage is needed")
    avail = list(available_bytes)
    if engine.kv_cache_memory_bytes is not None:
        avail = [engine.kv_cache_memory_bytes] * len(stages)
    blocks = [num_blocks(a, s.block_bytes) for a, s in zip(avail, stages, strict=True)]
    binding = min(range(len(stages)), key=lambda i: (blocks[i], -i))
    n = blocks[binding]
    if engine.num_gpu_blocks_override is not None:
        n = engine.num_gpu_blocks_override
    st = stages[binding]
    bs, L = engine.block_size, engine.max_model_len
    in_flight = in_flight_tokens(engine, in_flight_batches)
    per_req = sum(blocks_per_request(g, L, bs, in_flight) for g in st.groups)
    plan = KvCachePlan(
        bytes_per_token=st.bytes_per_token,
        block_size=bs,
        bytes_per_block=st.block_bytes,
        num_groups=len(st.groups),
        num_blocks=n,
        blocks_per_request=per_req,
        tokens=kv_tokens(n, st.groups, L, bs, in_flight, formula=tokens_formula),
        max_concurrency=round(max_concurrency(n, st.groups, L, bs, in_flight), 2),
    )
    return plan, binding
