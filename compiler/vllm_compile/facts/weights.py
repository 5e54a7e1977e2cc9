"""Weight bytes one GPU holds after vLLM loads a model ("Model loading took X GiB").

vLLM shards a model this way (vllm/model_executor/...):
- TP: column/row-parallel linears split evenly; K/V projections split down to one KV head per rank
  and replicated beyond (`QKVParallelLinear`); norms, routers and ReplicatedLinear stay whole.
- Vocabulary: padded to a multiple of 64, then split over TP (`layers/vocab_parallel_embedding.py`).
- PP: decoder layers partitioned by `get_pp_indices` (`distributed/utils.py`); the embedding (and the
  vision tower) on the first stage, final norm and lm_head on the last; a tied lm_head is a second
  copy of the embedding on the last stage when PP > 1.
- MoE experts: split over TP x DP without expert parallelism, whole experts over TP x DP with it
  (`layers/fused_moe/config.py: FusedMoEParallelConfig.make`).
- One rotary cos/sin cache per distinct rope, in the model dtype (`layers/rotary_embedding`).
"""

from __future__ import annotations

import math

from vllm_compile.facts.model_facts import LayerGroup, ModelFacts, QuantizationFacts
from vllm_compile.facts.vllm_versions import version_key

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
_DTYPE_ALIASES = {
    "auto": "auto",
    "half": "float16",
    "fp16": "float16",
    "float16": "float16",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "float": "float32",
    "fp32": "float32",
    "float32": "float32",
}
VOCAB_PADDING = 64  # vocab_parallel_embedding.py DEFAULT_VOCAB_PADDING_SIZE


class WeightsError(ValueError):
    """A dtype/quantization/parallelism request vLLM would refuse for this model."""


def dtype_bytes(dtype: str) -> int:
    name = _DTYPE_ALIASES.get(dtype, dtype)
    if name not in _DTYPE_BYTES:
        raise WeightsError(f"unknown dtype {dtype!r}: use auto, float16, bfloat16 or float32")
    return _DTYPE_BYTES[name]


def _cc(compute_capability: str | None) -> tuple[int, int]:
    if not compute_capability:
        return (9, 0)
    try:
        major, _, minor = str(compute_capability).partition(".")
        return int(major), int(minor or 0)
    except ValueError as exc:
        raise WeightsError(f"compute capability {compute_capability!r} is not like '8.0'") from exc


def resolve_dtype(model: ModelFacts, requested: str, compute_capability: str) -> str:
    """The torch dtype vLLM runs in (config/model.py `_get_and_verify_dtype`, `_resolve_auto_dtype`).

    `auto` keeps a float16/bfloat16 checkpoint's dtype and downcasts float32 to the platform's
    preferred dtype: bfloat16 on compute capability >= 8.0, float16 before (platforms/cuda.py
    `supported_dtypes`); a bfloat16 checkpoint on a pre-Ampere GPU falls back to float16.
    """
    name = _DTYPE_ALIASES.get(str(requested).lower())
    if name is None:
        raise WeightsError(f"unknown dtype {requested!r}: use auto, float16, bfloat16 or float32")
    bf16_ok = _cc(compute_capability) >= (8, 0)
    if name == "auto":
        config = _DTYPE_ALIASES.get(model.dtype, "float32")
        if config == "float32":
            return "bfloat16" if bf16_ok else "float16"
        if config == "bfloat16" and not bf16_ok:
            return "float16"
        return config
    if name == "bfloat16" and not bf16_ok:
        raise WeightsError(
            f"bfloat16 needs compute capability >= 8.0 (this GPU: {compute_capability}); use dtype: float16"
        )
    return name


def pp_layer_range(num_layers: int, pp: int, pp_rank: int) -> tuple[int, int]:
    """[start, end) decoder layers of one PP stage (vLLM distributed/utils.py `get_pp_indices`).

    The remainder goes one layer each to the stages before the last, from the second-to-last back.
    """
    if pp < 1 or not 0 <= pp_rank < pp:
        raise WeightsError(f"pipeline rank {pp_rank} is outside 0..{pp - 1}")
    if num_layers < pp:
        raise WeightsError(f"{num_layers} layers cannot be split into {pp} pipeline stages")
    per = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        per[-i] += 1
    start = sum(per[:pp_rank])
    return start, start + per[pp_rank]


def padded_vocab(vocab: int, tp: int = 1) -> int:
    """Vocabulary rows on one TP rank: padded to 64, then split."""
    padded = math.ceil(vocab / VOCAB_PADDING) * VOCAB_PADDING
    return math.ceil(padded / tp)


# ---------------------------------------------------------------------------------------------
# Bytes per parameter of a quantized linear layer
# ---------------------------------------------------------------------------------------------


class _Scheme:
    """Byte costs of one linear layer's weights under a quantization method."""

    def __init__(
        self, *, per_param: float, per_in_row: float = 0.0, per_out_row: float = 0.0, per_linear: float = 0.0
    ):
        self.per_param = per_param  # weight (+ per-group scales/zeros) bytes per parameter
        self.per_in_row = per_in_row  # bytes per input row (GPTQ act-order g_idx)
        self.per_out_row = per_out_row  # bytes per output row (per-channel scales)
        self.per_linear = per_linear  # fixed bytes per linear (per-tensor scales)


def _scheme(q: QuantizationFacts | None, runtime: str | None, act_bytes: int) -> _Scheme | None:
    """How the quantized linears are stored once vLLM has loaded (and repacked) them."""
    if q is None:
        if runtime in ("fp8", "fp8_per_tensor"):
            # Fp8OnlineLinearMethod: e4m3 weight + one fp32 weight scale (quantization/fp8.py).
            return _Scheme(per_param=1.0, per_linear=4.0)
        return None
    bits = q.bits or 16
    m = q.method
    if m in ("awq", "gptq", "awq_marlin", "gptq_marlin") or (
        m == "compressed-tensors" and q.strategy and q.strategy.startswith("int-group")
    ):
        g = q.group_size if q.group_size and q.group_size > 0 else None
        w = bits / 8
        scales = act_bytes / g if g else 0.0  # one fp16/bf16 scale per group and output
        per_out = 0.0 if g else act_bytes  # channel-wise: one scale per output row
        # Zero points: AWQ stores them packed (bits/8 per group); Marlin drops symmetric GPTQ's
        # (gptq_marlin.py replaces qzeros with an empty tensor when sym=True).
        zeros = (bits / 8) / g if (q.zero_point or m.startswith("awq")) and g else 0.0
        # Act-order: g_idx + g_idx_sort_indices, int32 per input row (marlin_utils.marlin_sort_g_idx).
        in_row = 8.0 if q.desc_act else 0.0
        return _Scheme(per_param=w + scales + zeros, per_in_row=in_row, per_out_row=per_out)
    if m == "compressed-tensors":
        strat = q.strategy or "int-channel"
        if strat.endswith("tensor_group"):  # NVFP4: e2m1 + fp8 scale per 16 + fp32 globals
            return _Scheme(per_param=0.5 + 1 / 16, per_linear=8.0)
        w = bits / 8
        if strat.endswith("block"):
            blk = q.weight_block_size or [128, 128]
            return _Scheme(per_param=w + 4 / (blk[0] * blk[1]))
        if strat.endswith("tensor"):
            return _Scheme(per_param=w, per_linear=8.0)
        return _Scheme(per_param=w, per_out_row=4.0)  # per-channel fp32 scales
    if m == "fp8":
        if q.weight_block_size:
            b0, b1 = q.weight_block_size[:2]
            return _Scheme(per_param=1.0 + 4 / (b0 * b1))  # fp32 weight_scale_inv per block
        return _Scheme(per_param=1.0, per_linear=8.0)
    if m == "modelopt":
        return _Scheme(per_param=1.0, per_linear=8.0)
    if m == "modelopt_fp4":
        g = q.group_size or 16
        return _Scheme(per_param=0.5 + 1 / g, per_linear=12.0)
    if m == "mxfp4":
        return _Scheme(per_param=0.5 + 1 / 32)
    if m == "bitsandbytes":
        g = q.group_size or 64
        return _Scheme(per_param=bits / 8 + (4 / g if bits == 4 else 4 / 4096))
    return _Scheme(per_param=bits / 8)


# Linear modules of one layer after vLLM's fusions (qkv_proj, o_proj, gate_up_proj, down_proj):
# each carries its own per-tensor scales.
_LINEARS_PER_LAYER = 4


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------


def weight_bytes_per_gpu(
    model: ModelFacts,
    *,
    dtype: str,
    quantization: str | None,
    tp: int = 1,
    pp: int = 1,
    pp_rank: int = 0,
    dp: int = 1,
    expert_parallel: bool = False,
    compute_capability: str | None = None,
    vllm_version: str | None = None,
) -> int:
    """Bytes of weights (and load-time buffers) on one GPU of PP stage `pp_rank`.

    `dtype` is the resolved run dtype; `quantization` the vLLM method in use (None or "none" =
    the checkpoint as it is; "fp8" on an unquantized checkpoint = online FP8). `vllm_version`
    (default: the newest) matters where a kernel's weight layout changed between releases.
    """
    if tp < 1 or dp < 1:
        raise WeightsError("tensor/data parallel sizes must be >= 1")
    act = dtype_bytes(dtype)
    runtime = None if quantization in (None, "none", "auto") else quantization
    q = model.quantization
    scheme = _scheme(q, runtime, act)
    experts_only = bool(q and q.experts_only)
    start, end = pp_layer_range(model.num_hidden_layers, pp, pp_rank)
    first, last = pp_rank == 0, pp_rank == pp - 1

    if not model.layer_groups:
        # No layout (a `params_b` estimate): spread the total evenly.
        per_param = scheme.per_param if scheme else act
        share = (end - start) / model.num_hidden_layers
        return int(model.params_total * per_param * share / tp)

    total = 0.0
    kv_keep = (
        max(1, model.num_key_value_heads // tp) / model.num_key_value_heads
        if model.num_key_value_heads
        else 1 / tp
    )
    ep_size = tp * dp
    if expert_parallel and model.num_experts:
        # Whole experts per rank: num_experts // ep_size, the remainder to the first ranks.
        expert_share = math.ceil(model.num_experts / ep_size) / model.num_experts
    else:
        expert_share = 1 / ep_size

    mxfp4 = bool(q and q.method == "mxfp4")
    for g in model.layer_groups:
        n = sum(1 for i in g.layers if start <= i < end)
        if not n:
            continue
        total += n * _layer_bytes(
            model,
            g,
            act,
            scheme,
            experts_only,
            mxfp4,
            tp,
            kv_keep,
            expert_share,
            expert_parallel,
            compute_capability,
            vllm_version,
        )

    # Embedding / lm_head / final norm / vision tower.
    vrows = padded_vocab(model.vocab_size, tp)
    head_q = scheme if (scheme and q and q.lm_head_quantized) else None
    if first:
        total += vrows * model.hidden_size * act
        total += model.params_vision / tp * act
    if last:
        total += model.final_params * act
        if not model.tie_word_embeddings or pp > 1:
            rows = vrows * model.hidden_size
            total += rows * head_q.per_param if head_q else rows * act
    # Rotary cos/sin caches: one per distinct rope, on every stage that has layers.
    total += model.rope_cache_elements * act
    return int(round(total))


def _layer_bytes(
    model: ModelFacts,
    g: LayerGroup,
    act: int,
    scheme: _Scheme | None,
    experts_only: bool,
    mxfp4: bool,
    tp: int,
    kv_keep: float,
    expert_share: float,
    ep: bool,
    cc: str | None,
    vllm_version: str | None,
) -> float:
    dense_q = scheme if (scheme and not experts_only) else None
    b = 0.0
    # Dense linears: TP-split, K/V down to one head per rank, replicated linears whole.
    for params, share in ((g.tp_linear, 1 / tp), (g.kv_linear, kv_keep), (g.rep_linear, 1.0)):
        b += params * share * (dense_q.per_param if dense_q else act)
    if dense_q:
        b += g.linear_in_rows * dense_q.per_in_row + g.linear_out_rows / tp * dense_q.per_out_row
        b += _LINEARS_PER_LAYER * dense_q.per_linear
        if model.kv_lora_rank and model.v_head_dim:
            # MLA with quantized kv_b_proj: process_weights_after_loading keeps dequantized W_UK_T
            # and W_UV copies (model dtype) beside it (layers/attention/mla_attention.py).
            nope = model.head_dim - (model.qk_rope_head_dim or 0)
            b += model.kv_lora_rank * (model.num_attention_heads / tp) * (nope + model.v_head_dim) * act
    b += (g.tp_other / tp + g.kv_other * kv_keep + g.rep_other) * act

    if g.expert_linear:
        if mxfp4 and scheme:
            b += _mxfp4_expert_bytes(model, g, tp, expert_share, ep, act, cc, vllm_version)
        else:
            eq = scheme
            per = eq.per_param if eq else act
            b += g.expert_linear * expert_share * per
            if eq:
                b += g.expert_in_rows * model.num_experts * expert_share * eq.per_in_row
            b += g.expert_other * expert_share * act
    return b


# Before the MXFP4 MoE backend oracle (read in 0.12-era mxfp4.py), the Triton backend that SM90
# picks created experts with the intermediate size padded to 64 only, and the triton_kernels Hopper
# swizzle padded each contraction (K) dimension to 256 with fp32 biases. That layout reproduces both
# gpt-oss logs of 0.11.0 (calib:gpt-oss-20b-h100-tp1-v011-planner 13.47 GiB,
# gpt-oss-120b-h100-tp1-v011-planner 64.38 GiB); the padding below reproduces 0.19.0
# (calib:gpt-oss-20b-h100-tp2-util09-v019 and -util095-v019-oom). Where between the two the layout
# changed is not known: 0.12.0 is assumed.
_MXFP4_SWIZZLE_LAYOUT_UNTIL = "0.12.0"


def _mxfp4_expert_bytes(
    model: ModelFacts,
    g: LayerGroup,
    tp: int,
    share: float,
    ep: bool,
    act: int,
    cc: str | None,
    vllm_version: str | None,
) -> float:
    """gpt-oss MXFP4 experts with the kernel padding of quantization/mxfp4.py `create_weights`.

    Marlin/Hopper/Ampere kernels: intermediate per partition rounded up to 128 and hidden to 256
    (SM100 TRT-LLM kernels: both to 256). Weights e2m1 (0.5 B), one uint8 e8m0 scale per 32.
    """
    E = model.num_experts
    H = model.hidden_size
    inter = model.moe_intermediate_size or model.intermediate_size
    ranks = round(1 / share) if share else 1
    if ep:
        per_part, experts = inter, E * share
    else:
        per_part, experts = math.ceil(inter / ranks), E
    major, _ = _cc(cc)
    if major == 9 and vllm_version and version_key(vllm_version) < version_key(_MXFP4_SWIZZLE_LAYOUT_UNTIL):
        i_part = _round_up(per_part, 64)
        # w13 is (2I x H) with K = H; w2 is (H x I) with K = I.
        params = experts * (2 * i_part * _round_up(H, 256) + H * _round_up(i_part, 256))
        biases = experts * (2 * i_part + H)
        return params * (0.5 + 1 / 32) + biases * 4
    i_pad = _round_up(per_part, 256 if major >= 10 else 128)
    h_pad = _round_up(H, 256)
    params = experts * 3 * h_pad * i_pad
    biases = experts * (2 * i_pad + h_pad)
    return params * (0.5 + 1 / 32) + biases * act


def _round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def weight_bytes_total(model: ModelFacts, *, dtype: str | None = None) -> int:
    """The checkpoint as vLLM would hold it on one GPU (TP = PP = 1), in `dtype` (default: the
    dtype `auto` gives on an SM 9.0 GPU)."""
    dt = dtype or resolve_dtype(model, "auto", "9.0")
    return weight_bytes_per_gpu(model, dtype=dt, quantization=None)
