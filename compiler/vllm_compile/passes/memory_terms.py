"""The version-dependent terms of vLLM's start-up memory accounting, in one table.

Every constant names where it comes from. "calib:<id>" points at an entry of the team's calibration set
(public vLLM start-up logs, ../shared/calibration/memory_observations.yaml); a constant fitted on several
entries lists them all. Physics terms (tensor shapes) live in `memory.py`; only what vLLM's code does not
let us derive from shapes alone is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ..facts.vllm_versions import version_key
from ..units import GIB


@dataclass(frozen=True)
class MemoryTerms:
    since: str  # first release the row applies to (rows are cumulative: the newest row <= version wins)
    engine: str  # V0 | V1
    # Live fp32 logits-sized buffers at the sampler's peak of the dummy sampler run, on top of the
    # model-dtype logits (top-k/top-p sort values + int64 indices, probs, cumsum, logprobs...).
    sampler_fp32_copies: float
    # Allocations of the profile run that do not scale with shapes (rotary caches, sampler metadata,
    # allocator rounding), GiB.
    activation_base_gib: float
    # "non-torch forward increase" on one GPU with no collectives (cuBLAS/cuDNN workspaces grown after
    # the memory snapshot), GiB.
    non_torch_gib: float
    # The same on a TP1 pipeline-parallel worker (multiproc executor), GiB.
    non_torch_pp_gib: float
    # NCCL/custom all-reduce buffers created lazily during the profile run at TP >= 2: a fixed part and a
    # part per peer rank, GiB.
    nccl_base_gib: float
    nccl_per_peer_gib: float
    # "GPU KV cache size" formula in `_report_kv_cache_config`: blocks // groups x block_size, or
    # int(max_concurrency x max_model_len).
    tokens_formula: str
    # Sliding-window requests may hold pp + 1 scheduled steps beyond the window (V2 runner, async
    # scheduling) instead of one step of max_num_batched_tokens (SlidingWindowSpec up to 0.2x).
    sw_in_flight_async: bool
    source: str


# Rows, oldest first. Sources of the fitted numbers:
#  - sampler 8.93 fp32 copies: calib:llama-31-8b-instruct-h100-tp1-v011-planner (4.76 GiB),
#    qwen3-06b-h100-tp1-v011-planner (5.56), gpt-oss-20b-h100-tp1-v011-planner (7.38) and the 0.15/0.16
#    Qwen3-14B sweep (5.64 GiB, note of calib:qwen3-14b-h100-v0170-sweep-planner): all within 1% of
#    base + T*H*dt + N*V*(dt + 8.93*4).
#  - sampler 3.11 copies from 0.17: calib:llama31-8b-h100-len8k-v019 (1.89), qwen25-7b-h100-v019 (2.21),
#    gemma2-9b-h100-v019 (3.65), gemma-7b-h100-v019 (3.63), granite-vision-33-2b-h100-v019 (0.79),
#    qwen3-14b-h100-v0170-sweep-planner (2.23: "activation 5.64 GiB in 0.15/0.16 vs 2.23 GiB from 0.17").
#  - activation base 0.085 GiB: intercept of the same fit (both eras).
#  - non-torch 0.13 GiB up to 0.17: the four 0.11 planner entries and qwen3-14b-h100-v0170; 0.25 GiB
#    from 0.18: qwen3-14b-h100-v0180-sweep-planner and every 0.19.0 TP1 entry (0.24-0.27).
#  - non-torch 0.07 GiB on a TP1 pipeline worker: llama31-8b-h100-pp2-v019, llama31-8b-h100-pp4-v019.
#  - NCCL 1.77 + 0.05/peer GiB: TP2 0.19.0 entries (2.07-2.09 - 0.25) and llama4-scout-h100-tp4-v019
#    (2.17 - 0.25); vllm-project/vllm#10511 shows the same jump (1.79 -> 3.58 GiB) at TP2 in V0.
#  - tokens formula: `num_blocks // len(kv_cache_groups) * min_block_size` in 0.19 (calib gemma3/gpt-oss
#    entries reproduce it exactly); int(max_concurrency x max_model_len) by 0.24.0 (odd token count in
#    calib qwen36-35b-a3b-nvfp4-rtx5090-len128k-v024) and in 0.33.0 (reference/vllm_memory_model.md 2.4).
#  - in-flight steps for sliding windows: `max_num_batched_tokens` in 0.19 (SlidingWindowSpec); pp+1 with
#    async scheduling in 0.33.0 (reference 2.4), which only matters when window + steps < max_model_len.
_ROWS: tuple[MemoryTerms, ...] = (
    MemoryTerms("0.0.0", "V0", 3.11, 0.085, 0.25, 0.25, 0.0, 0.0, "blocks", False,
                "V0 worker.py determine_num_available_blocks; calib V0 entries (pr10511, #15815, #13882)"),
    MemoryTerms("0.8.0", "V1", 8.93, 0.085, 0.13, 0.07, 1.77, 0.05, "blocks", False,
                "V1 default engine from 0.8.0; sampler/non-torch as measured on 0.11.0 (llm-d planner)"),
    MemoryTerms("0.17.0", "V1", 3.11, 0.085, 0.13, 0.07, 1.77, 0.05, "blocks", False,
                "0.17.0: smaller dummy-sampler peak (llm-d planner version sweep)"),
    MemoryTerms("0.18.0", "V1", 3.11, 0.085, 0.25, 0.07, 1.77, 0.05, "blocks", False,
                "0.18.0: non-torch 0.25 GiB at TP1 (llm-d planner version sweep, 0.19.0 logs)"),
    MemoryTerms("0.21.0", "V1", 3.11, 0.085, 0.25, 0.07, 1.77, 0.05, "concurrency", True,
                "KV tokens = int(concurrency x L) (vllm-project/vllm#40691, fixed after 0.19.0; 0.24.0 logs "
                "print it: calib qwen36-35b-a3b-nvfp4-rtx5090-len128k-v024) and pp+1 in-flight steps as read "
                "in 0.33.0; assumed from 0.21.0"),
)  # fmt: skip


@cache  # pure over the fixed rows; asked once per candidate the search weighs
def terms_for(version: str, engine: str = "V1") -> MemoryTerms:
    """The newest row at or below `version` for that engine."""
    key = version_key(version)
    rows = [r for r in _ROWS if r.engine == engine and version_key(r.since) <= key]
    if not rows:
        rows = [r for r in _ROWS if r.engine == engine]
    return rows[-1]


def gib_bytes(x: float) -> int:
    return int(round(x * GIB))


# CUDA graph pool estimate where the version deducts it before the KV cache (VllmVersion.cuda_graph_deducted:
# VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS defaults to 1 from the 0.20.0 wheel, although its log says
# "default since v0.21.0"; reference/vllm_memory_model.md 1).
# Least-squares fit on vLLM's own "CUDA graph pool memory: ... (estimated)" figures of the 25 0.19.0
# calibration logs (0.49-1.69 GiB; mean absolute error of the fit 0.17 GiB): a fixed pool, a part per
# decoder layer on the GPU, more with custom all-reduce (TP >= 2) and with MoE layers.
CUDA_GRAPH_BASE_GIB = 0.50
CUDA_GRAPH_PER_LAYER_GIB = 0.0094
CUDA_GRAPH_TP_GIB = 0.36
CUDA_GRAPH_MOE_GIB = 0.12
# Sizes those 0.19.0 logs captured: the default list up to 512 ([1, 2, 4] + 8..248 step 8 + 256..512 step
# 16, reference/vllm_memory_model.md "CUDA-graph sizes"): the per-layer part above is for 51 sizes.
CUDA_GRAPH_FIT_SIZES = 51


# Memory in use before the worker's memory snapshot (`Worker.init_device`: CUDA context, cuBLAS handles,
# then NCCL communicators and custom all-reduce buffers): outside the budget, and vLLM V1 refuses to
# start when what is left is less than the budget (`v1/worker/utils.py request_memory`). Measured as
# total - free_memory in the "worker init memory snapshot" of the 0.19.0 H100 logs (llm-d planner):
#  - one GPU: 0.51 GiB (every TP1 log: free 78.68 of 79.19 GiB);
#  - tensor parallel: +1.03 GiB, flat in TP (TP2 dense 77.66 free: calib:llama31-8b-h100-tp2-v019,
#    qwen25-72b-h100-tp2-v019, mistral-small-24b-w8a8-h100-tp2-v019; TP4 dense 77.64: the Llama-3.3-70B
#    fp8-dynamic TP4 log), and +0.48 GiB more for MoE models (TP2 77.18: calib:mixtral-8x7b-h100-tp2-v019,
#    gpt-oss-20b-h100-tp2-util09-v019; TP4 77.12: calib:llama4-scout-h100-tp4-v019);
#  - pipeline stages only: +0.92 GiB at PP2, +0.97 at PP4 (calib:llama31-8b-h100-pp2-v019, -pp4-v019).
CUDA_CONTEXT_GIB = 0.51
DIST_TP_GIB = 1.03
DIST_TP_MOE_GIB = 0.48
DIST_PP2_GIB = 0.92
DIST_PP_PER_STAGE_GIB = 0.025
