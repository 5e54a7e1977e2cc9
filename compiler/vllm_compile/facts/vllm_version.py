"""The typed record of one vLLM release: the defaults and behaviours that change our numbers.

The table of releases lives in `facts/vllm_versions.py`; flags per release in `facts/vllm_flags.py`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class BatchDefaults(BaseModel):
    """`max_num_batched_tokens` / `max_num_seqs` for `vllm serve` (engine/arg_utils.py get_batch_defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_num_batched_tokens: int
    max_num_seqs: int


class VllmVersion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str  # "0.33.0"
    engine: str = "V1"  # V0 | V1: which accounting applies
    gpu_memory_utilization: float  # default
    block_size: int = 16  # default for FLASH_ATTN-class backends
    # Batch defaults by device memory class: >=160 GiB, >=70 GiB (not A100), other.
    batch_large: BatchDefaults
    batch_70g: BatchDefaults
    batch_small: BatchDefaults
    cuda_graph_deducted: bool  # is CUDA graph memory profiled and taken before the KV cache?
    max_cudagraph_capture_size: int = 512
    async_scheduling: bool = True
    prefix_caching_default: bool = True
    chunked_prefill_default: bool = True
    source: str = ""
