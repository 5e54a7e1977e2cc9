"""Explicit overrides checked against the memory they imply, so a verdict cannot lie.

vLLM takes these as given, past its own memory profiling:
- `num_gpu_blocks_override` replaces the block count profiling found (v1/core/kv_cache_utils.py
  `get_num_blocks`: "Overriding num_gpu_blocks=%d with num_gpu_blocks_override=%d"), then allocates
  that many blocks on every GPU; more than the GPU has free is a CUDA out-of-memory at start-up.
- `kv_cache_memory_bytes` replaces the utilization budget for the KV cache (config/cache.py) and is
  allocated as it is, with the same failure.
- `cpu_offload_gb` moves up to that much of each GPU's weights to pinned host memory; past the weights
  there is nothing left to move.
- `hardware.vram_gib`/`vram_gb` replace the catalog's memory: said, so a typo is seen.
The room a KV cache can take is what is physically free after the CUDA context, the weights, the
non-torch allocations and the CUDA graphs (the activation peak is freed after profiling).
"""

from __future__ import annotations

from ..facts.gpus import lookup_gpu
from ..facts.weights import pp_layer_range
from ..plan import EngineConfig, MemoryPlan, Resolved
from ..units import GIB
from . import kv_cache as kv


def _g(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def start_failures(resolved: Resolved, engine: EngineConfig, memory: MemoryPlan) -> list[str]:
    """Why vLLM would run out of memory allocating an explicitly sized KV cache (empty: it fits)."""
    out: list[str] = []
    if engine.num_gpu_blocks_override is None and engine.kv_cache_memory_bytes is None:
        return out
    model = resolved.model
    for rank in memory.ranks:
        room = rank.gpu_total_bytes - rank.baseline_bytes - rank.weights_bytes - rank.non_torch_bytes
        room -= rank.cuda_graph_bytes
        if engine.num_gpu_blocks_override is not None:
            layers = pp_layer_range(model.num_hidden_layers, engine.pipeline_parallel_size, rank.pp_rank)
            block = kv.stage_kv(model, engine, layers).block_bytes
            need = engine.num_gpu_blocks_override * block
            what = f"num_gpu_blocks_override {engine.num_gpu_blocks_override:,} x {block:,} bytes per block"
        else:
            need = int(engine.kv_cache_memory_bytes or 0)
            what = f"kv_cache_memory_bytes {need:,}"
        if need > room:
            stage = f" on pipeline stage {rank.pp_rank}" if engine.pipeline_parallel_size > 1 else ""
            out.append(
                f"vLLM would not start{stage}: {what} = {_g(need)} of KV cache per GPU, but only {_g(room)} "
                f"is free after the CUDA context {_g(rank.baseline_bytes)}, weights {_g(rank.weights_bytes)}, "
                f"non-torch {_g(rank.non_torch_bytes)} and CUDA graphs {_g(rank.cuda_graph_bytes)} of "
                f"{_g(rank.gpu_total_bytes)}: CUDA out of memory allocating the cache. At most "
                + (
                    f"{max(0, room // block):,} blocks fit"
                    if engine.num_gpu_blocks_override is not None
                    else f"{max(0, room):,} bytes fit"
                )
            )
            break
    return out


def override_warnings(resolved: Resolved, engine: EngineConfig, memory: MemoryPlan) -> list[str]:
    """Notes where a user's value replaces a fact or goes past vLLM's own budget."""
    out: list[str] = []
    hw = resolved.profile.hardware
    if hw.vram_gib is not None or hw.vram_gb is not None:
        catalog = lookup_gpu(hw.gpu_name)
        if catalog is not None and catalog.memory_bytes != resolved.gpu.memory_bytes:
            given = f"vram_gib {hw.vram_gib:g}" if hw.vram_gib is not None else f"vram_gb {hw.vram_gb:g}"
            more = resolved.gpu.memory_bytes > catalog.memory_bytes
            out.append(
                f"hardware.{given} ({_g(resolved.gpu.memory_bytes)}) overrides the catalog's {catalog.name}: "
                f"{_g(catalog.memory_bytes)} as CUDA reports it"
                + (
                    "; more than the part has: the plan assumes memory the GPU may not have"
                    if more
                    else f" (vram_gb is decimal: {hw.vram_gb:g} GB = {_g(hw.vram_gb * 1e9)})"
                    if hw.vram_gb is not None
                    else ""
                )
            )
    if engine.num_gpu_blocks_override is not None:
        budget_blocks = min(r.num_blocks for r in memory.ranks)
        if engine.num_gpu_blocks_override > budget_blocks:
            out.append(
                f"num_gpu_blocks_override {engine.num_gpu_blocks_override:,} is more than the {max(budget_blocks, 0):,} "
                f"blocks gpu_memory_utilization {engine.gpu_memory_utilization:g} leaves: vLLM allocates them "
                "anyway, past its budget, leaving less room for other processes"
            )
    if engine.cpu_offload_gb > 0:
        if any(r.weights_bytes == 0 for r in memory.ranks):  # memory.py: weights less the offload, >= 0
            out.append(
                f"cpu_offload_gb {engine.cpu_offload_gb:g} is at least the weights on one GPU: every weight is "
                "read from host memory each step, and the rest of the offload is unused"
            )
        out.append(
            f"cpu_offload_gb {engine.cpu_offload_gb:g}: each GPU's engine pins {engine.cpu_offload_gb:g} GiB of "
            "host memory for weights read over PCIe every step; the plan does not check the host's memory"
        )
    return out
