"""LoRA serving: the adapter slots vLLM allocates on every GPU, and their activation.

vLLM (`lora/layers/base_linear.py: BaseLinearLayerWithLoRA.create_lora_weights`, per wrapped linear
and per packed slice) allocates at model load, whatever adapters are later loaded:

    lora_a_stacked: (max_loras, 1, max_lora_rank, input_size)     # input: whole for column-parallel,
    lora_b_stacked: (max_loras, 1, output_size, max_lora_rank)    #   the TP shard for row-parallel;
                                                                   # output: the shard for column-parallel
in `lora_dtype` (`auto` = the model dtype). The LoRAModelManager wraps these right after the model is
built inside `load_model`, so vLLM prints them in "Model loading took". Packed layers: qkv_proj (3
slices: q, k, v), gate_up_proj (2), o_proj and down_proj (1 each). Releases that still have
`--lora-extra-vocab-size` (up to 0.10.x in the flag sets we carry) also wrap embed_tokens and lm_head
(`VocabParallelEmbeddingWithLoRA`, `LogitsProcessorWithLoRA`: rank x vocab A/B plus
extra_vocab x hidden embeddings per slot).

The profile run goes through `maybe_dummy_run_with_lora` with max_loras dummy adapters active: the
punica kernels' fp32 shrink buffer [slices, tokens, rank] (`lora/punica_wrapper/punica_gpu.py
add_lora_linear`) is the only activation on top.
"""

from __future__ import annotations

from ..facts import vllm_flags
from ..facts.model_facts import ModelFacts
from ..facts.weights import dtype_bytes
from ..plan import EngineConfig, MemoryFeature, Resolved
from ..profile.v1 import LoraSpec

# Module names users give (PEFT target_modules) -> the packed module vLLM wraps.
_PACKED = {
    "q_proj": "qkv_proj", "k_proj": "qkv_proj", "v_proj": "qkv_proj", "qkv_proj": "qkv_proj",
    "o_proj": "o_proj", "gate_proj": "gate_up_proj", "up_proj": "gate_up_proj",
    "gate_up_proj": "gate_up_proj", "down_proj": "down_proj",
    "embed_tokens": "embed_tokens", "lm_head": "lm_head",
}  # fmt: skip
DEFAULT_EXTRA_VOCAB = 256  # LoRAConfig.lora_extra_vocab_size default (releases that have it)
LORA_VOCAB_PADDING = 256  # LoRAConfig.lora_vocab_padding_size


def spec_of(resolved: Resolved) -> LoraSpec | None:
    return resolved.profile.vllm.lora


def _modules(lora: LoraSpec, with_vocab: bool) -> set[str]:
    default = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"} | (
        {"embed_tokens", "lm_head"} if with_vocab else set()
    )
    if not lora.target_modules:
        return default
    return {_PACKED[m] for m in lora.target_modules if m in _PACKED} & default


def has_vocab_lora(version: str) -> bool:
    """embed_tokens / lm_head LoRA layers exist while the release has --lora-extra-vocab-size."""
    return vllm_flags.resolve_flag(vllm_flags.flag_set(version), "--lora-extra-vocab-size") is not None


def lora_dtype_bytes(lora: LoraSpec, engine: EngineConfig) -> int:
    return dtype_bytes(engine.dtype if lora.lora_dtype == "auto" else lora.lora_dtype)


def layer_elements(model: ModelFacts, tp: int, rank: int, modules: set[str]) -> int:
    """Elements of one adapter slot in one decoder layer on one GPU (A and B of every wrapped slice)."""
    h, inter = model.hidden_size, model.intermediate_size
    q = model.num_attention_heads * model.head_dim
    kv_out = model.num_key_value_heads * model.head_dim
    kv_shard = max(kv_out // tp, model.head_dim)  # KV heads replicated below one per rank
    n = 0
    if "qkv_proj" in modules:  # column-parallel, 3 slices: A reads the whole hidden state
        n += 3 * rank * h + rank * (q // tp + 2 * kv_shard)
    if "o_proj" in modules:  # row-parallel: A reads the shard, B writes the whole hidden state
        n += rank * (q // tp) + h * rank
    if "gate_up_proj" in modules and not model.is_moe:
        n += 2 * rank * h + 2 * (inter // tp) * rank
    if "down_proj" in modules and not model.is_moe:
        n += rank * (inter // tp) + h * rank
    return n


def weight_bytes(resolved: Resolved, engine: EngineConfig, layers: tuple[int, int], last_stage: bool) -> int:
    """LoRA slots on one GPU of the PP stage holding decoder layers [start, end)."""
    lora = spec_of(resolved)
    if lora is None:
        return 0
    model, tp, r = resolved.model, engine.tensor_parallel_size, lora.max_lora_rank
    vocab_lora = has_vocab_lora(resolved.vllm.version)
    modules = _modules(lora, vocab_lora)
    n = (layers[1] - layers[0]) * layer_elements(model, tp, r, modules)
    h, v = model.hidden_size, model.vocab_size
    padded = -(-v // LORA_VOCAB_PADDING) * LORA_VOCAB_PADDING
    if "embed_tokens" in modules and layers[0] == 0:
        # embeddings_tensors (extra_vocab, H) + lora_a (vocab/tp + extra, r) + lora_b (H, r)
        n += DEFAULT_EXTRA_VOCAB * h + (v // tp + DEFAULT_EXTRA_VOCAB) * r + h * r
    if "lm_head" in modules and last_stage:
        n += r * h + (padded // tp) * r
    return lora.max_loras * n * lora_dtype_bytes(lora, engine)


def activation_bytes(resolved: Resolved, engine: EngineConfig) -> int:
    """The punica shrink buffer of the widest wrapped layer (3 slices of qkv), fp32."""
    lora = spec_of(resolved)
    if lora is None:
        return 0
    return 3 * engine.max_num_batched_tokens * lora.max_lora_rank * 4


def notes(resolved: Resolved) -> list[str]:
    lora = spec_of(resolved)
    if lora is None:
        return []
    out = []
    if resolved.vllm.cuda_graph_deducted:
        out.append(
            "LoRA: the CUDA graph estimate is the one without LoRA; releases that capture graphs with and "
            "without active adapters (compilation_config.cudagraph_specialize_lora) may deduct more"
        )
    if resolved.model.is_moe:
        out.append("LoRA on MoE experts is not modelled: only the attention projections' slots are counted")
    if resolved.model.is_mla:
        out.append("LoRA on MLA projections is counted as standard attention (an approximation)")
    return out


def memory_features(resolved: Resolved, engine: EngineConfig, stage_bytes: int) -> list[MemoryFeature]:
    lora = spec_of(resolved)
    if lora is None:
        return []
    modules = sorted(_modules(lora, has_vocab_lora(resolved.vllm.version)))
    return [
        MemoryFeature(
            name="LoRA buffers",
            bytes_per_gpu=stage_bytes,
            detail=f"{lora.max_loras} slot(s) x rank {lora.max_lora_rank} on {', '.join(modules)} "
            f"({lora.lora_dtype if lora.lora_dtype != 'auto' else engine.dtype}), TP {engine.tensor_parallel_size}",
        ),
        MemoryFeature(
            name="LoRA profile run",
            bytes_per_gpu=activation_bytes(resolved, engine),
            detail="punica fp32 shrink buffer [3, max_num_batched_tokens, rank]",
        ),
    ]
