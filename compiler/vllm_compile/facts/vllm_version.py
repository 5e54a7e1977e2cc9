"""The typed record of one vLLM release: the defaults and behaviours that change our numbers.

The table of releases lives in `facts/vllm_versions.py`; flags per release in `facts/vllm_flags.py`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
    # engine/arg_utils.py _set_default_args(_v1) sets enable_chunked_prefill = True for generative
    # models at start-up whatever the flag says ("V1 always uses chunked prefills", 0.8.5-0.11.0).
    chunked_prefill_forced: bool = False
    source: str = ""
    # --- added by helper "gpu" (all optional; see facts/data/vllm_versions.json for the sources) ---
    v0_available: bool = False  # can VLLM_USE_V1=0 still select the V0 engine?
    # How get_batch_defaults picks a tier: "mem70" (>=70 GiB) or "mem160" (>=160 GiB, then >=70 GiB).
    batch_rule: str = "mem160"
    batch_excluded_names: list[str] = Field(default_factory=lambda: ["a100"])  # kept out of the >=70 GiB tier
    # The same tiers for the offline `LLM` class (UsageContext.LLM_CLASS); None = as `vllm serve`.
    batch_large_offline: BatchDefaults | None = None
    batch_70g_offline: BatchDefaults | None = None
    batch_small_offline: BatchDefaults | None = None
    # VllmConfig._set_cudagraph_sizes era: fixed512 | seqs2_step8 | seqs2_stride16 | seqs2q_stride16.
    cudagraph_rule: str = "seqs2q_stride16"
    cudagraph_capture_ceiling_sm100: int = 512  # the cap on data-center Blackwell (compute capability 10.x)
    cudagraph_append_batch_sizes: bool = False  # off-stride max_num_batched_tokens / max_num_seqs appended
    performance_mode: bool = False  # --performance-mode exists (throughput doubles the batch defaults)
    mla_block_size_sm90: int = 16  # default block size of the MLA backend vLLM picks on Hopper
    mla_block_size_sm100: int = 16  # ... on data-center Blackwell
    sources: dict[str, str] = Field(default_factory=dict)  # field -> where its value comes from
    note: str = ""  # e.g. "0.19.1 is not in the table; using 0.19.0"
