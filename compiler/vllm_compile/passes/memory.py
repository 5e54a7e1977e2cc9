"""Memory pass: vLLM's start-up accounting on every GPU, and the KV cache it leaves.

V1 (`v1/worker/gpu_worker.py: Worker.determine_available_memory`, `utils/mem_utils.py: memory_profiling`):

    available_kv = requested - weights - activation_peak - non_torch - cuda_graph (where deducted)
    requested    = ceil(total x gpu_memory_utilization)

Everything allocated before the memory snapshot (CUDA context, other processes) is outside the budget.
Each PP stage sizes its own KV cache; the engine takes the fewest blocks over all ranks.
V0 (`worker/worker.py: determine_num_available_blocks`) has the same shape with its own profile batch.
"""

from __future__ import annotations

from math import ceil

from ..facts.model_facts import ModelFacts
from ..facts.weights import dtype_bytes, pp_layer_range, weight_bytes_per_gpu
from ..plan import EngineConfig, MemoryPlan, RankMemory, Resolved
from ..units import GIB
from . import all2all
from . import context_parallel as cp
from . import kv_cache as kv
from . import lora as lora_terms
from . import multimodal as mm
from . import speculative as spec_terms
from .memory_terms import (
    CUDA_CONTEXT_GIB,
    CUDA_GRAPH_BASE_GIB,
    CUDA_GRAPH_FIT_SIZES,
    CUDA_GRAPH_MOE_GIB,
    CUDA_GRAPH_PER_LAYER_GIB,
    CUDA_GRAPH_TP_GIB,
    DIST_PP2_GIB,
    DIST_PP_PER_STAGE_GIB,
    DIST_TP_GIB,
    DIST_TP_MOE_GIB,
    MemoryTerms,
    gib_bytes,
    terms_for,
)

# Kernels whose MoE path does not keep fused_moe's cache13/cache2 workspaces (gpt-oss MXFP4 runs on
# triton_kernels / Marlin): calib gpt-oss-20b-h100-util095-v019-oom and -tp2-util09-v019 show no MoE term.
_NO_MOE_WORKSPACE_QUANT = {"mxfp4", "gpt_oss_mxfp4"}

# fused_moe processes at most VLLM_FUSED_MOE_CHUNK_SIZE tokens at a time (envs.py default 16384 * 4 = 65536
# in 0.19; only matters for max_num_batched_tokens above it).
_FUSED_MOE_CHUNK = 65536


def stage_weights(
    model: ModelFacts,
    engine: EngineConfig,
    pp_rank: int,
    compute_capability: str | None = None,
    vllm_version: str | None = None,
) -> int:
    """Weights on one GPU of one PP stage (the model-facts pass's per-rank accounting), less CPU offload."""
    w = weight_bytes_per_gpu(
        model,
        dtype=engine.dtype,
        quantization=engine.quantization,
        tp=engine.tensor_parallel_size,
        pp=engine.pipeline_parallel_size,
        pp_rank=pp_rank,
        dp=engine.data_parallel_size,
        expert_parallel=engine.enable_expert_parallel,
        compute_capability=compute_capability,
        vllm_version=vllm_version,
    )
    return max(0, w - int(engine.cpu_offload_gb * GIB))


def _moe_workspace(model: ModelFacts, engine: EngineConfig, layers: int) -> int:
    """fused_moe keeps `cache13` (M x topk x max(2I, H)) and `cache2` (M x topk x I) alive between calls."""
    if not model.is_moe or layers == 0 or (engine.quantization or "") in _NO_MOE_WORKSPACE_QUANT:
        return 0
    tp = engine.tensor_parallel_size
    shard = tp * (engine.data_parallel_size if engine.enable_expert_parallel else 1)
    inter = (model.moe_intermediate_size or model.intermediate_size) // max(
        1, tp if not engine.enable_expert_parallel else 1
    )
    m = min(engine.max_num_batched_tokens, _FUSED_MOE_CHUNK)
    topk = max(1, model.num_experts_per_tok)
    if engine.enable_expert_parallel:
        topk = max(1, ceil(topk / shard)) if shard > 1 else topk
    dt = dtype_bytes(engine.dtype)
    return m * topk * (max(2 * inter, model.hidden_size) + inter) * dt


def _forward_peak(model: ModelFacts, engine: EngineConfig) -> int:
    """Transient peak inside one decoder layer of the dummy forward (attention kernels skipped).

    Dense MLP: gate_up output (T x 2I/tp) and activation output (T x I/tp) live together, with the
    qkv projection output and hidden/residual/normed (3 x T x H) around them.
    """
    tp = engine.tensor_parallel_size
    t = engine.max_num_batched_tokens
    dt = dtype_bytes(engine.dtype)
    inter = model.intermediate_size
    if model.is_moe and model.shared_expert_intermediate_size:
        inter = model.shared_expert_intermediate_size
    qkv = (model.num_attention_heads + 2 * model.num_key_value_heads) * model.head_dim
    return t * dt * (3 * inter // tp + qkv // tp + 3 * model.hidden_size)


def _sampler_peak(model: ModelFacts, engine: EngineConfig, terms: MemoryTerms) -> int:
    """Last stage: hidden states of the batch, logits [min(mnbt, S), vocab] (full vocab on every TP
    rank) and the sampler's fp32 working copies (`_dummy_sampler_run`)."""
    t = engine.max_num_batched_tokens
    n = min(t, engine.max_num_seqs)
    dt = dtype_bytes(engine.dtype)
    v = model.vocab_size
    return int(t * model.hidden_size * dt + n * v * dt + terms.sampler_fp32_copies * n * v * 4)


def activation_peak(
    model: ModelFacts,
    engine: EngineConfig,
    terms: MemoryTerms,
    pp_rank: int,
    *,
    text_only: bool = False,
    batched_moe: int = 0,
    persistent_moe: int = 0,
) -> int:
    """ "torch peak memory increase" of the profile run on one GPU of stage `pp_rank`.

    `text_only`: a multimodal model served without its encoder (passes/multimodal.py).
    `persistent_moe`: torch memory the MoE layers allocate in the profile run and keep (the batched
    experts' shared workspaces, passes/all2all.py): it sits under every later peak, the sampler's too."""
    pp = engine.pipeline_parallel_size
    start, end = pp_layer_range(model.num_hidden_layers, pp, pp_rank)
    moe_layers = [i for i in (model.moe_layers or range(model.num_hidden_layers)) if start <= i < end]
    dt = dtype_bytes(engine.dtype)
    t = engine.max_num_batched_tokens
    peak = _forward_peak(model, engine)
    if pp_rank == pp - 1:
        peak = max(peak, _sampler_peak(model, engine, terms))
    extra = _moe_workspace(model, engine, len(moe_layers) if model.is_moe else 0)
    if batched_moe:
        # Batched all-to-all experts (passes/all2all.py) replace fused_moe's cached workspaces; theirs
        # live only inside the MoE layer, so the peak is the larger of that layer and the sampler.
        extra = 0
        peak = max(peak, _forward_peak(model, engine) + batched_moe)
    if pp_rank > 0:
        extra += 2 * t * model.hidden_size * dt  # received intermediate tensors: hidden + residual
    if model.multimodal and pp_rank == 0 and not text_only:
        extra += mm.encoder_activation(model, engine)
    return gib_bytes(terms.activation_base_gib) + peak + extra + persistent_moe


def non_torch(engine: EngineConfig, terms: MemoryTerms) -> int:
    tp, pp = engine.tensor_parallel_size, engine.pipeline_parallel_size
    if tp > 1:
        return gib_bytes(terms.non_torch_gib + terms.nccl_base_gib + terms.nccl_per_peer_gib * (tp - 1))
    if pp > 1:
        return gib_bytes(terms.non_torch_pp_gib)
    return gib_bytes(terms.non_torch_gib)


def baseline(model: ModelFacts, engine: EngineConfig) -> int:
    """Memory in use when the worker takes its snapshot: outside the budget (see memory_terms)."""
    tp, pp = engine.tensor_parallel_size, engine.pipeline_parallel_size
    dist_tp = DIST_TP_GIB + (DIST_TP_MOE_GIB if model.is_moe else 0.0) if tp > 1 else 0.0
    dist_pp = DIST_PP2_GIB + DIST_PP_PER_STAGE_GIB * (pp - 2) if pp > 1 else 0.0
    return gib_bytes(CUDA_CONTEXT_GIB + max(dist_tp, dist_pp))


def cuda_graph_estimate(model: ModelFacts, engine: EngineConfig, layers: int) -> int:
    """vLLM's pre-KV CUDA graph pool estimate (`profile_cudagraph_memory`); 0 in eager mode."""
    if engine.enforce_eager or engine.cudagraph_capture_sizes == []:
        return 0
    # The per-layer part is the piecewise graphs: one per layer piece per captured size (vLLM captures
    # every PIECEWISE size, `profile_cudagraph_memory`), so it scales with the number of sizes; the fit's
    # logs captured the default 51. The fixed part (pool of the largest graph) does not.
    n_sizes = len(engine.cudagraph_capture_sizes) if engine.cudagraph_capture_sizes else CUDA_GRAPH_FIT_SIZES
    gib = CUDA_GRAPH_BASE_GIB + CUDA_GRAPH_PER_LAYER_GIB * layers * n_sizes / CUDA_GRAPH_FIT_SIZES
    if engine.tensor_parallel_size > 1:
        gib += CUDA_GRAPH_TP_GIB
    if model.is_moe:
        gib += CUDA_GRAPH_MOE_GIB
    return gib_bytes(gib)


def plan_memory(resolved: Resolved, engine: EngineConfig) -> MemoryPlan:
    model, gpu, version = resolved.model, resolved.gpu, resolved.vllm
    terms = terms_for(version.version, version.engine)
    total = gpu.memory_bytes
    requested = ceil(total * engine.gpu_memory_utilization)
    pp = engine.pipeline_parallel_size
    per_node = resolved.profile.hardware.gpus_per_node or gpu.gpus_per_node
    a2a = all2all.plan_all2all(model, engine, terms, version.version, per_node)
    nt = non_torch(engine, terms) + a2a.non_torch_bytes
    redundant = all2all.redundant_expert_bytes(model, engine, gpu.compute_capability, version.version)
    batched = (
        all2all.batched_moe_bytes(model, engine, version.version)
        if all2all.uses_all2all(model, engine) and a2a.backend in all2all.BATCHED
        else 0
    )
    batched_on = bool(batched)
    persistent = all2all.persistent_workspace_bytes(model, engine, version.version) if batched_on else 0
    base = baseline(model, engine)
    ranks: list[RankMemory] = []
    stages: list[kv.StageKv] = []
    available: list[int] = []
    text_only = mm.text_only(resolved)
    features: list = []
    for r in range(pp):
        layers = pp_layer_range(model.num_hidden_layers, pp, r)
        stage = kv.stage_kv(model, engine, layers)
        w = stage_weights(model, engine, r, gpu.compute_capability, version.version) + redundant
        staging = all2all.staging_bytes(model, engine, version.version, layers) if batched_on else 0
        staged_w = staging if all2all.staging_in_weights(version.version) else 0
        w += staged_w
        act = activation_peak(
            model,
            engine,
            terms,
            r,
            text_only=text_only,
            batched_moe=batched,
            persistent_moe=persistent + staging - staged_w,
        )
        graph_layers = layers[1] - layers[0]
        # Serving features (their own modules, each citing vLLM): LoRA slots on every stage; the draft
        # (weights, KV layers, profile buffers) with the last stage, where vLLM runs the proposer.
        lora_w = lora_terms.weight_bytes(resolved, engine, layers, r == pp - 1)
        w += lora_w + (0 if r else -mm.skipped_vision_bytes(resolved, engine))
        act += lora_terms.activation_bytes(resolved, engine)
        if r == pp - 1 and resolved.profile.vllm.speculative is not None:
            w += spec_terms.draft_weight_bytes(resolved, engine)
            act += spec_terms.activation_bytes(resolved, engine)
            graph_layers += spec_terms.draft_graph_layers(resolved)
            draft_specs = spec_terms.draft_layer_specs(resolved, engine)
            if draft_specs:
                specs = [*stage.specs, *draft_specs]
                groups = kv.kv_groups(specs)
                stage = kv.StageKv(specs, groups, kv.bytes_per_block(groups, engine.block_size))
        if r == pp - 1:
            features = [
                *spec_terms.memory_features(resolved, engine),
                *lora_terms.memory_features(resolved, engine, lora_w),
                *mm.memory_features(resolved, engine),
                *all2all.memory_features(a2a, redundant),
                *all2all.moe_buffer_features(persistent, staging, staged_w > 0),
            ]
        cg = cuda_graph_estimate(model, engine, graph_layers) if version.cuda_graph_deducted else 0
        kv_bytes = requested - w - act - nt - cg
        if engine.kv_cache_memory_bytes is not None:
            kv_bytes = engine.kv_cache_memory_bytes
        stages.append(stage)
        available.append(kv_bytes)
        ranks.append(
            RankMemory(
                pp_rank=r,
                gpu_total_bytes=total,
                requested_bytes=requested,
                baseline_bytes=base,
                weights_bytes=w,
                activation_peak_bytes=act,
                non_torch_bytes=nt,
                cuda_graph_bytes=cg,
                kv_cache_bytes=kv_bytes,
                num_blocks=kv.num_blocks(kv_bytes, stage.block_bytes),
            )
        )
    # Scheduled steps a sliding-window request may hold beyond its window: one in 0.19; pp + 1 with the
    # V2 runner's async scheduling in 0.33.0 (reference/vllm_memory_model.md 2.4).
    in_flight_batches = pp + 1 if terms.sw_in_flight_async else 1
    plan, binding = kv.plan_kv_cache(
        model,
        engine,
        stages,
        available,
        in_flight_batches=in_flight_batches,
        tokens_formula=terms.tokens_formula,
    )
    plan = cp.with_decode_context_parallel(
        plan, engine, stages[binding].groups, in_flight_batches, terms.tokens_formula
    )
    largest = cp.largest_len(_largest_len(model, engine, stages, available, in_flight_batches), engine, model)
    draft_per_token = sum(x.bytes_per_token for x in spec_terms.draft_layer_specs(resolved, engine))
    features = [  # the draft layers' share of the KV cache: their pages in every block
        f.model_copy(update={"bytes_per_gpu": plan.num_blocks * engine.block_size * draft_per_token})
        if f.name == "draft KV cache"
        else f
        for f in features
    ]
    assumptions = [
        f"vLLM {version.version} ({terms.engine}) accounting: {terms.source}",
        "activation peak modelled from the profile run's shapes (max_num_batched_tokens="
        f"{engine.max_num_batched_tokens}, max_num_seqs={engine.max_num_seqs}, vocab={model.vocab_size})",
    ]
    if version.cuda_graph_deducted and not engine.enforce_eager:
        assumptions.append("CUDA graph pool estimated and deducted before the KV cache, as this version does")
    assumptions += lora_terms.notes(resolved) + mm.notes(resolved) + all2all.notes(resolved, engine, a2a)
    assumptions += cp.notes(engine)
    return MemoryPlan(
        ranks=ranks,
        binding_pp_rank=binding,
        kv=plan,
        largest_max_model_len=largest,
        assumptions=assumptions,
        features=features,
    )


def _largest_len(
    model: ModelFacts, engine: EngineConfig, stages: list[kv.StageKv], available: list[int], batches: int
) -> int | None:
    """Largest max_model_len every stage can hold one request of (vLLM `--max-model-len auto`)."""
    best: int | None = model.max_model_len
    in_flight = kv.in_flight_tokens(engine, batches)
    for stage, avail in zip(stages, available, strict=True):
        fit = kv.largest_fitting_len(
            avail, stage.groups, stage.specs, engine.block_size, in_flight, model.max_model_len
        )
        if fit is None:
            return None
        best = min(best, fit) if best is not None else fit
    return best


largest_max_model_len = (
    _largest_len  # public: the calibration pass sizes the KV cache again with measured terms
)
