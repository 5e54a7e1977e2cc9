"""Wide expert parallel on one GPU: the all-to-all buffers, EPLB's redundant experts, the DP sync.

Where vLLM counts them: the all-to-all manager builds its buffer when the MoE layers make their
prepare/finalize (`fused_moe/all2all_utils.py: maybe_make_prepare_finalize` -> `get_handle`), during
`load_model`, after the worker's memory snapshot. DeepEP allocates with cudaMalloc and NVSHMEM, not
through torch, so the buffers are *non-torch memory* inside the budget (`utils/mem_utils.py:
memory_profiling`: non_torch_increase), and they shrink the KV cache one for one.

DeepEP sizes (deepseek-ai/DeepEP, the legacy V1 API vLLM calls; csrc/config.hpp, csrc/deep_ep.cpp,
deep_ep/buffer.py) with vLLM's arguments (`distributed/device_communicators/all2all.py`):
- low latency (`DeepEPLLAll2AllManager._make_all2all_kwargs`): num_nvl_bytes = VLLM_DEEPEP_BUFFER_SIZE_MB
  MiB; num_rdma_bytes = `Buffer.get_low_latency_rdma_size_hint(max_num_tokens_per_dp_rank, hidden,
  num_ep_ranks, num_global_experts)` (LowLatencyLayout: two send, two receive and two signalling
  buffers);
- high throughput (`DeepEPHTAll2AllManager._make_all2all_kwargs`): num_nvl_bytes = the same MiB; the
  same again as RDMA bytes when the EP group spans nodes, else none.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import Any

from ..facts.model_facts import ModelFacts
from ..facts.vllm_versions import version_key
from ..facts.weights import dtype_bytes, weight_bytes_per_gpu
from ..facts.wide_ep import WideEpFacts
from ..facts.wide_ep import facts as wide_ep_facts
from ..plan import EngineConfig, MemoryFeature, Resolved
from ..units import GIB, MIB
from .memory_terms import MemoryTerms, gib_bytes

# csrc/kernels/configs.cuh: NUM_MAX_NVL_PEERS 8 (one NVLink domain), NUM_WORKSPACE_BYTES 32 MiB (cudaMalloc'd
# by every Buffer, csrc/deep_ep.cpp), NUM_BUFFER_ALIGNMENT_BYTES 128.
NVL_PEERS = 8
DEEPEP_WORKSPACE = 32 * MIB
ALIGN = 128
# deep_ep/buffer.py: os.environ['NVSHMEM_CUMEM_GRANULARITY'] = 2**29 ("NVSHMEM initialization requires at
# least 256 MiB"): the NVSHMEM symmetric heap maps physical memory in 512 MiB granules.
NVSHMEM_GRANULE = 1 << 29
# Backends whose buffers are sized here; the others are named in a not-modelled warning.
MODELLED = ("naive", "allgather_reducescatter", "deepep_low_latency", "deepep_high_throughput", "pplx")
# Backends that hand the experts a batched (num_local_experts x tokens x hidden) layout: the experts run
# as Batched*Experts (fused_moe/batched_deep_gemm_moe.py, fused_batched_moe.py).
BATCHED = ("deepep_low_latency", "pplx")


@dataclass(frozen=True)
class All2AllMemory:
    """Per-GPU bytes of the all-to-all and DP machinery."""

    backend: str
    nvl_bytes: int = 0  # cudaMalloc'd NVLink (IPC) buffer + DeepEP metadata
    rdma_bytes: int = 0  # NVSHMEM symmetric heap as mapped (granule-rounded)
    rdma_hint_bytes: int = 0  # what DeepEP asked NVSHMEM for
    workspace_bytes: int = 0
    dp_nccl_bytes: int = 0  # NCCL communicator of the DP device group, created in the profile run
    modelled: bool = True

    @property
    def buffer_bytes(self) -> int:
        return self.nvl_bytes + self.rdma_bytes + self.workspace_bytes

    @property
    def non_torch_bytes(self) -> int:
        return self.buffer_bytes + self.dp_nccl_bytes


def ep_size(engine: EngineConfig) -> int:
    """Experts are spread over TP x DP (x PCP) ranks with expert parallelism (FusedMoEParallelConfig.make)."""
    return engine.tensor_parallel_size * engine.data_parallel_size * engine.prefill_context_parallel_size


def uses_all2all(model: ModelFacts, engine: EngineConfig) -> bool:
    return bool(model.is_moe and engine.enable_expert_parallel and ep_size(engine) > 1)


def physical_experts(model: ModelFacts, engine: EngineConfig) -> int:
    """Routed experts plus EPLB's redundant copies (`FusedMoE.global_num_experts`)."""
    return model.num_experts + (engine.num_redundant_experts if engine.enable_eplb else 0)


def dispatch_tokens(engine: EngineConfig, f: WideEpFacts) -> int:
    """The most tokens one DP rank dispatches at once (`FusedMoEConfig.max_num_tokens`):
    VLLM_MOE_DP_CHUNK_SIZE where the release has it, else the step's max_num_batched_tokens (0.20.0+,
    whose default with DeepEP LL and DP > 1 is 256: passes/settings.py batched_dp_batch)."""
    return f.moe_dp_chunk or engine.max_num_batched_tokens


def low_latency_rdma_hint(tokens: int, hidden: int, num_experts: int) -> int:
    """`deep_ep::get_low_latency_rdma_size_hint` (csrc/config.hpp LowLatencyLayout), bytes."""
    num_scales = hidden // 128
    dispatch_msg = 16 + max(hidden * 2, hidden + num_scales * 4)  # int4 header + bf16 or fp8+scales
    combine_msg = num_scales * 4 + hidden * 2  # per-128-channel bf16x2 min/max + bf16 data
    send = max(tokens * dispatch_msg, num_experts * tokens * combine_msg)
    recv = max(num_experts * tokens * dispatch_msg, num_experts * tokens * combine_msg)
    signalling = ceil(num_experts * 4 / 128) * 128
    total = 2 * send + 2 * recv + 2 * signalling
    return (total + ALIGN) // ALIGN * ALIGN


def _heap(nbytes: int) -> int:
    return ceil(nbytes / NVSHMEM_GRANULE) * NVSHMEM_GRANULE if nbytes > 0 else 0


def _nvl(f: WideEpFacts) -> int:
    # num_nvl_bytes + barrier signals (int per peer) + buffer and barrier pointers (csrc/deep_ep.cpp).
    return f.deepep_buffer_mb * MIB + NVL_PEERS * (4 + 8 + 8)


def dp_nccl_bytes(engine: EngineConfig, terms: MemoryTerms, f: WideEpFacts, per_node: int) -> int:
    """The DP ranks all-reduce their batch sizes on the DP *device* group every step (v1/worker/dp_utils.py
    `_get_device_and_group` where NCCL DP sync is on); torch creates that NCCL communicator lazily, in the
    profile run's first step, after the snapshot. Its buffers are sized as the TP communicators the
    memory table measured (memory_terms nccl_base_gib + nccl_per_peer_gib over the NVLink peers)."""
    if engine.data_parallel_size <= 1 or not f.nccl_dp_sync:
        return 0
    peers = min(engine.data_parallel_size, per_node) - 1
    return gib_bytes(terms.nccl_base_gib + terms.nccl_per_peer_gib * peers)


def plan_all2all(
    model: ModelFacts, engine: EngineConfig, terms: MemoryTerms, version: str, per_node: int
) -> All2AllMemory:
    f = wide_ep_facts(version)
    nccl = dp_nccl_bytes(engine, terms, f, per_node)
    if not uses_all2all(model, engine):
        return All2AllMemory(backend=engine.all2all_backend or "none", dp_nccl_bytes=nccl)
    backend = engine.all2all_backend or f.default_backend
    ranks = ep_size(engine)
    if backend == "deepep_low_latency":
        hint = low_latency_rdma_hint(
            dispatch_tokens(engine, f), model.hidden_size, physical_experts(model, engine)
        )
        return All2AllMemory(backend, _nvl(f), _heap(hint), hint, DEEPEP_WORKSPACE, nccl)
    if backend == "deepep_high_throughput":
        internode = ranks > min(per_node, NVL_PEERS)
        hint = f.deepep_buffer_mb * MIB if internode else 0
        return All2AllMemory(backend, _nvl(f), _heap(hint), hint, DEEPEP_WORKSPACE, nccl)
    if backend == "pplx":
        nvl, rdma = pplx_buffers(model, engine, f, internode=ranks > per_node)
        return All2AllMemory(backend, nvl, _heap(rdma), rdma, 0, nccl)
    # naive / allgather_reducescatter: NCCL collectives on the EP group, whose communicator is made (and
    # warmed up) before the snapshot; no buffer of their own.
    return All2AllMemory(backend, dp_nccl_bytes=nccl, modelled=backend in MODELLED)


def _r16(n: int) -> int:
    return (n + 15) // 16 * 16


def pplx_buffers(
    model: ModelFacts, engine: EngineConfig, f: WideEpFacts, *, internode: bool
) -> tuple[int, int]:
    """(cudaMalloc bytes, NVSHMEM bytes) of pplx-kernels' AllToAll with vLLM's arguments.

    vLLM (`PplxAll2AllManager.get_handle`, fused_moe `pplx_hidden_dim_scale_bytes`): max_num_tokens = the
    DP chunk, num_experts = global experts, dp_size = the TP size ("dp_size actually means tp_size"),
    hidden_dim_bytes = hidden x 1 (fp8 dispatch) or x 2, scale bytes = round16(hidden/128 x 4) for block fp8.
    pplx-kernels (ppl-ai/pplx-kernels csrc/all_to_all): internode.cpp nvshmem_mallocs xDispatchIn
    (T x perToken), xDispatchOut and xCombineIn (maxBatchTokens = localExperts x DPgroups x T, per token
    perToken and hidden x 4 bytes), xCombineOut (T x experts x hidden x 4), plus five uint32 index
    buffers of maxBatchTokens (cudaMalloc); intranode.cpp cudaMallocs one IPC buffer per peer of
    max(T x localExperts x perToken, T x localExperts x round16(hidden x 4)) plus six index buffers of
    localExperts x T x worldSize uint32."""
    t = dispatch_tokens(engine, f)
    e = physical_experts(model, engine)
    ranks = ep_size(engine)
    local = ceil(e / ranks)
    h = model.hidden_size
    fp8 = (engine.quantization or "") in ("fp8", "compressed-tensors", "modelopt")
    per_token = _r16(
        h * (1 if fp8 else dtype_bytes(engine.dtype)) + (_r16(ceil(h / 128) * 4) if fp8 else 0) + 4
    )
    if internode:
        groups = ceil(ranks / max(1, engine.tensor_parallel_size))
        batch = local * groups * t
        nvshmem = t * per_token + batch * per_token + batch * h * 4 + t * e * h * 4
        nvshmem += 8 * (2 * local * groups + t + ranks)  # token counts and signals
        return 5 * batch * 4 + local * groups * 4, nvshmem
    head = 16 + _r16(local * 4)
    buffer = max(head + t * local * per_token, head + t * local * _r16(h * 4))
    return ranks * buffer + 6 * local * t * ranks * 4 + 4 * t, 0


def _moe_shape(model: ModelFacts, engine: EngineConfig, version: str) -> tuple[int, int, int, int]:
    """(local experts, M, K, N) of the batched experts: M = max_num_tokens x num_dispatchers
    (`BatchedDeepGemmExperts` / `BatchedTritonExperts.workspace_shapes`; num_dispatchers = the EP world
    size for DeepEP LL, fused_moe/layer.py 0.11.0 / all2all_utils.py 0.12.0), K = hidden, N = 2 x the
    expert intermediate size (w13)."""
    f = wide_ep_facts(version)
    ranks = ep_size(engine)
    local = ceil(physical_experts(model, engine) / ranks)
    m = dispatch_tokens(engine, f) * ranks
    return local, m, model.hidden_size, 2 * (model.moe_intermediate_size or model.intermediate_size)


def batched_moe_bytes(model: ModelFacts, engine: EngineConfig, version: str) -> int:
    """Transient tensors inside one MoE layer with a batched backend: the dispatch receive tensor (local
    experts x tokens x ranks x hidden, fp8 + per-128 fp32 scales: deepep_ll_prepare_finalize.py
    use_fp8_dispatch; DeepEP allocates it with torch::empty, so it is torch memory). The experts'
    workspaces are not transient: `persistent_workspace_bytes`."""
    local, m, k, _ = _moe_shape(model, engine, version)
    return local * m * (k + k // 128 * 4)


def persistent_workspace_bytes(model: ModelFacts, engine: EngineConfig, version: str) -> int:
    """The batched experts' workspaces, which outlive the MoE layer.

    `FusedMoEModularKernel.shared_buffers` (fused_moe/modular_kernel.py, 0.11.0 and 0.12.0) is a class
    attribute: `SharedResizableBuffer`s shared by every MoE layer, allocated lazily in the profile run's
    first MoE layer and kept, so they are still allocated when the sampler peaks after the forward.
    Shapes (`BatchedDeepGemmExperts.workspace_shapes`, the same in `BatchedTritonExperts`):
    workspace13 = (E_local, M, max(K, N)), workspace2 = (E_local, M, N / 2), in the activation dtype;
    the output reuses workspace13 (`_resize_cache(workspace13, fused_out_shape)`: batched experts do not
    chunk, `supports_chunking() -> False`)."""
    local, m, k, n = _moe_shape(model, engine, version)
    return local * m * (max(k, n) + n // 2) * dtype_bytes(engine.dtype)


# FusedMoE's DP-chunking staging tensors (`batched_hidden_states` (chunk, hidden) and
# `batched_router_logits` (chunk, logical experts), moe.in_dtype, one pair per MoE layer, two with DBO):
# 0.11.0 allocates them in `FusedMoE.__init__` (fused_moe/layer.py), inside load_model's
# DeviceMemoryProfiler, so vLLM counts them as weights; 0.12.0 allocates them in the first forward
# (`ensure_dp_chunking_init`), inside the profile run: activation. 0.11.1/0.11.2 were not read (assumed
# as 0.11.0); the sum is the same either way.
_LAZY_STAGING_SINCE = "0.12.0"


def staging_bytes(model: ModelFacts, engine: EngineConfig, version: str, layers: tuple[int, int]) -> int:
    """FusedMoE's staging tensors of the MoE layers in [start, end) with a DP-chunking backend (pplx,
    DeepEP LL: `use_dp_chunking`)."""
    start, end = layers
    moe_layers = sum(1 for i in (model.moe_layers or range(model.num_hidden_layers)) if start <= i < end)
    chunk = dispatch_tokens(engine, wide_ep_facts(version))
    per_layer = chunk * (model.hidden_size + model.num_experts) * dtype_bytes(engine.dtype)
    return moe_layers * per_layer


def staging_in_weights(version: str) -> bool:
    return version_key(version) < version_key(_LAZY_STAGING_SINCE)


def redundant_expert_bytes(model: ModelFacts, engine: EngineConfig, cc: str | None, version: str) -> int:
    """EPLB's redundant experts on one rank: ceil((E + R) / ep) - ceil(E / ep) more whole experts."""
    if not (uses_all2all(model, engine) and engine.enable_eplb and engine.num_redundant_experts):
        return 0
    ranks = ep_size(engine)
    e = model.num_experts

    def w(ep_ranks: int) -> int:
        return weight_bytes_per_gpu(
            model,
            dtype=engine.dtype,
            quantization=engine.quantization,
            tp=1,
            dp=ep_ranks,
            expert_parallel=True,
            compute_capability=cc,
            vllm_version=version,
        )

    share = ceil(e / ranks) / e
    if share >= 1:
        return 0
    all_experts = (w(1) - w(ranks)) / (1 - share)  # every routed expert's bytes, all MoE layers
    extra = ceil(physical_experts(model, engine) / ranks) - ceil(e / ranks)
    return int(all_experts * extra / e)


def memory_features(mem: All2AllMemory, redundant: int) -> list[MemoryFeature]:
    out: list[MemoryFeature] = []
    if mem.buffer_bytes:
        out.append(
            MemoryFeature(
                name=f"all-to-all buffers ({mem.backend})",
                bytes_per_gpu=mem.buffer_bytes,
                detail=f"non-torch, allocated at model load after the snapshot: NVLink buffer "
                f"{mem.nvl_bytes / GIB:.2f} GiB, NVSHMEM heap {mem.rdma_bytes / GIB:.2f} GiB (DeepEP asked "
                f"{mem.rdma_hint_bytes / GIB:.2f} GiB; 512 MiB granules), workspace {mem.workspace_bytes / GIB:.2f} GiB",
            )
        )
    if mem.dp_nccl_bytes:
        out.append(
            MemoryFeature(
                name="DP sync NCCL communicator",
                bytes_per_gpu=mem.dp_nccl_bytes,
                detail="non-torch: the DP device group's NCCL buffers, created by the profile run's first "
                "batch-size all-reduce (v1/worker/dp_utils.py)",
            )
        )
    if redundant:
        out.append(
            MemoryFeature(
                name="EPLB redundant experts",
                bytes_per_gpu=redundant,
                detail="weights: whole expert copies EPLB places on this rank",
            )
        )
    return out


def moe_buffer_features(workspace: int, staging: int, staging_in_weights: bool) -> list[MemoryFeature]:
    out: list[MemoryFeature] = []
    if workspace:
        out.append(
            MemoryFeature(
                name="MoE batched-experts workspaces",
                bytes_per_gpu=workspace,
                detail="activation: workspace13 + workspace2 shared by every MoE layer "
                "(fused_moe/modular_kernel.py SharedResizableBuffer), kept from the first MoE layer "
                "through the sampler's peak",
            )
        )
    if staging:
        where = (
            "weights: allocated in FusedMoE.__init__ while the model loads"
            if staging_in_weights
            else "activation: allocated in the profile run's first forward (ensure_dp_chunking_init)"
        )
        out.append(
            MemoryFeature(
                name="MoE DP-chunk staging buffers",
                bytes_per_gpu=staging,
                detail=f"{where}; one (chunk x hidden) + (chunk x experts) pair per MoE layer",
            )
        )
    return out


def notes(resolved: Resolved, engine: EngineConfig, mem: All2AllMemory) -> list[str]:
    out: list[str] = []
    if not uses_all2all(resolved.model, engine):
        return out
    out.append(
        f"wide EP: {ep_size(engine)} EP ranks, all-to-all {mem.backend}; attention data-parallel ranks are "
        "alike (each DP rank is its own engine with these batch limits): one memory table stands for every GPU"
    )
    if not mem.modelled:
        out.append(
            f"not modelled: the {mem.backend} all-to-all buffers (only DeepEP low-latency / high-throughput, "
            "pplx and the NCCL backends are sized); the KV cache is overestimated by their size"
        )
    return out


def startup_hint(memory: Any, engine: EngineConfig) -> str:
    """For a failed start-up with all-to-all buffers: name them and the utilizations that would start.

    vLLM's budget is ceil(total x u) (v1/worker/utils.py request_memory); it must hold the non-KV terms and
    one max_model_len request, and it may not exceed what is free when the worker starts."""
    feats = [f for f in memory.features if f.name.startswith(("all-to-all", "DP sync"))]
    if not feats:
        return ""
    r = min(memory.ranks, key=lambda x: x.kv_cache_bytes)
    non_kv = r.weights_bytes + r.activation_peak_bytes + r.non_torch_bytes + r.cuda_graph_bytes
    one_request = memory.kv.blocks_per_request * memory.kv.bytes_per_block
    total, free = r.gpu_total_bytes, r.gpu_total_bytes - r.baseline_bytes
    low = ceil((non_kv + one_request) / total * 100) / 100
    high = int(free / total * 100) / 100
    named = ", ".join(f"{f.name} {f.bytes_per_gpu / GIB:.2f} GiB" for f in feats)
    if low <= high:
        span = f"the largest gpu_memory_utilization that starts is {high:g} (from {low:g} up)"
    else:
        span = "no gpu_memory_utilization starts: shrink the buffers (fewer dispatch tokens, another backend) or add GPUs"
    return f" Non-torch memory includes the {named}; {span}."


def rank_types(engine: EngineConfig) -> str:
    """The start-up verdict stands for which GPUs: with data parallelism every DP rank is an engine of the
    same shape (same weights share, buffers, batch limits), so one verdict per PP stage covers them all."""
    dp = engine.data_parallel_size
    if dp <= 1:
        return ""
    return (
        f" The {dp} attention data-parallel ranks are alike (each its own engine with these batch limits"
        + (f", experts over {ep_size(engine)} EP ranks" if engine.enable_expert_parallel else "")
        + "): the verdict holds for every one."
    )
