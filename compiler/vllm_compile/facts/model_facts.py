"""Model facts: the architecture numbers every later pass starts from.

This module holds the typed record only. Building it from a `config.json`, the catalog or the Hub
lives in `facts/model_config.py`, `facts/model_catalog.py` and `facts/hub.py`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Attention kind of one decoder layer, as vLLM's KV-cache spec classes distinguish them
# (vllm/v1/kv_cache_interface.py: FullAttentionSpec, SlidingWindowSpec, ChunkedLocalAttentionSpec,
# MLAAttentionSpec, MambaSpec).
LayerKind = Literal["full", "sliding", "chunked", "mla", "mamba", "none"]

ModelSource = Literal["catalog", "local", "hub", "lock", "params_b"]


class QuantizationFacts(BaseModel):
    """The checkpoint's own quantization (from `quantization_config` or the files beside it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str  # vLLM's name: awq, gptq, fp8, compressed-tensors, modelopt, modelopt_fp4, mxfp4, ...
    bits: int | None = None  # weight bits of the quantized linear layers
    group_size: int | None = None  # -1 = per channel
    zero_point: bool = False
    desc_act: bool = False  # GPTQ act-order: an int32 g_idx per input row
    weight_block_size: list[int] | None = None  # FP8 block quantization, e.g. [128, 128]
    strategy: str | None = None  # compressed-tensors/fp8: tensor | channel | block | group
    lm_head_quantized: bool = False
    experts_only: bool = False  # MXFP4 on gpt-oss quantizes the MoE experts only
    ignored_modules: list[str] = Field(default_factory=list)
    kv_cache_scheme: str | None = None  # a checkpoint KV scale scheme makes vLLM default to fp8 KV


class LayerGroup(BaseModel):
    """Parameters of decoder layers that share one shape, split by how vLLM shards them.

    `*_linear` are Linear/MoE weights (quantizable); `*_other` are biases, norms, routers, sinks.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: list[int]  # decoder layer indices with this shape
    tp_linear: int = 0  # column/row-parallel weights: split over TP
    tp_other: int = 0  # biases of column-parallel layers (split with them)
    kv_linear: int = 0  # k/v projections: split over TP down to one KV head per rank, then replicated
    kv_other: int = 0  # k/v biases
    rep_linear: int = 0  # ReplicatedLinear weights (MLA latent down-projections): whole on every rank
    rep_other: int = 0  # norms, routers, row-parallel biases: whole on every rank
    expert_linear: int = 0  # routed experts: split over TP x DP, or whole experts with EP
    expert_other: int = 0  # routed-expert biases
    # Sum of input widths of the quantizable linears (GPTQ g_idx rows, per-group scale rows).
    linear_in_rows: int = 0
    expert_in_rows: int = 0  # the same for one routed expert
    linear_out_rows: int = 0  # sum of output widths (per-channel scales)
    expert_out_rows: int = 0


class ModelFacts(BaseModel):
    """Everything the planner needs to know about one model checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    revision: str | None = None  # a commit sha when resolved from the Hub
    source: ModelSource
    source_note: str = ""  # where the numbers come from (catalog row source, file, Hub commit)
    architecture: str  # first entry of `architectures`, e.g. LlamaForCausalLM
    model_type: str  # config `model_type` of the text model, e.g. llama

    dtype: str  # checkpoint dtype: float16 | bfloat16 | float32
    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int  # explicit `head_dim` when present, else hidden_size // num_attention_heads
    v_head_dim: int | None = None  # when the V head differs from the K head (MLA)
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_model_len: int  # as vLLM derives it from the config (rope scaling rules)

    # One entry per decoder layer (length == num_hidden_layers).
    layer_kinds: list[LayerKind]
    sliding_window: int | None = None
    attention_chunk_size: int | None = None
    kv_lora_rank: int | None = None  # MLA
    qk_rope_head_dim: int | None = None  # MLA
    mamba_state_bytes_per_layer: int | None = None  # conv + ssm state of one sequence, bf16

    num_experts: int = 0  # routed experts; 0 = dense
    num_experts_per_tok: int = 0
    num_shared_experts: int = 0
    moe_intermediate_size: int | None = None
    shared_expert_intermediate_size: int | None = None
    moe_layers: list[int] = Field(default_factory=list)  # indices of the MoE layers

    quantization: QuantizationFacts | None = None

    params_total: int  # every parameter of the checkpoint, vision tower included
    params_active: int  # per token (MoE: shared + experts_per_tok experts)
    params_vision: int = 0  # the multimodal encoder and projector
    multimodal: bool = False
    mm_tokens_per_item: int | None = None  # encoder tokens of the largest image item

    warnings: list[str] = Field(default_factory=list)  # what was guessed, for unknown architectures

    # Added by the model helper: the parameter layout `facts/weights.py` shards (empty = unknown,
    # weights then fall back to params_total), and checkpoint facts from the Hub.
    layer_groups: list[LayerGroup] = Field(default_factory=list)
    final_params: int = 0  # final norm (+ lm_head bias): last PP rank, replicated
    rope_cache_elements: int = 0  # vLLM's rotary cos/sin caches (max_position x rotary_dim), model dtype
    params_mtp: int = 0  # multi-token-prediction layers in the checkpoint that vLLM skips for serving
    checkpoint_params: dict[str, int] = Field(default_factory=dict)  # safetensors counts by dtype
    gated: bool = False  # the Hub repo needs an accepted license + HF_TOKEN

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    def supports_tensor_parallel(self, tp: int) -> bool:
        """vLLM shards attention heads evenly over TP, and KV heads either evenly or replicated
        (config/model.py verify_with_parallel_config; models/llama.py: `tp % num_kv_heads == 0`)."""
        kv = self.num_key_value_heads
        return tp >= 1 and self.num_attention_heads % tp == 0 and (kv % tp == 0 or tp % kv == 0)
