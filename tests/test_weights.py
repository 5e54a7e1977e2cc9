"""weight_bytes_per_gpu against vLLM's "Model loading took X GiB", and the sharding rules."""

from __future__ import annotations

import pytest

from vllm_compile.facts.model_catalog import catalog_facts
from vllm_compile.facts.model_config import facts_from_config
from vllm_compile.facts.model_facts import ModelFacts
from vllm_compile.facts.weights import (
    WeightsError,
    padded_vocab,
    pp_layer_range,
    resolve_dtype,
    weight_bytes_per_gpu,
)

GIB = 1 << 30

# (model, dtype, tp, pp, pp_rank, compute capability, observed GiB) copied from
# ../shared/calibration/memory_observations.yaml ("weights_gib", rank noted in each entry).
OBSERVED = [
    ("meta-llama/Meta-Llama-3-8B", "bfloat16", 1, 1, 0, "9.0", 14.96),  # llama3-8b-tp1-80gb-v0-pr10511
    ("meta-llama/Meta-Llama-3-8B", "bfloat16", 2, 1, 0, "9.0", 7.48),  # llama3-8b-tp2-80gb-v0-pr10511
    ("meta-llama/Llama-3.1-8B-Instruct", "bfloat16", 1, 1, 0, "9.0", 14.99),  # llama31-8b-h100-len8k-v019
    ("meta-llama/Llama-3.1-8B-Instruct", "float32", 1, 1, 0, "9.0", 29.98),  # llama31-8b-h100-float32-v019
    ("meta-llama/Llama-3.1-8B-Instruct", "bfloat16", 2, 1, 0, "9.0", 7.51),  # llama31-8b-h100-tp2-v019
    ("meta-llama/Llama-3.1-8B-Instruct", "bfloat16", 1, 2, 0, "9.0", 7.51),  # llama31-8b-h100-pp2-v019
    ("meta-llama/Llama-3.1-8B-Instruct", "bfloat16", 1, 4, 0, "9.0", 4.26),  # pp4: stage 0
    ("meta-llama/Llama-3.1-8B-Instruct", "bfloat16", 1, 4, 1, "9.0", 3.28),  # pp4: middle stage
    ("meta-llama/Llama-3.1-8B-Instruct", "bfloat16", 1, 4, 3, "9.0", 4.26),  # pp4: last stage (lm_head)
    ("Qwen/Qwen2.5-32B-Instruct", "bfloat16", 2, 1, 0, "8.9", 30.71),  # qwen25-32b-2xl40s-tp2-len10k-v0
    ("Qwen/Qwen2.5-7B-Instruct", "bfloat16", 1, 1, 0, "9.0", 14.25),  # qwen25-7b-h100-v019
    ("Qwen/Qwen2.5-72B-Instruct", "bfloat16", 2, 1, 0, "9.0", 67.80),  # qwen25-72b-h100-tp2-v019
    ("Qwen/Qwen3-0.6B", "bfloat16", 1, 1, 0, "9.0", 1.12),  # qwen3-06b-h100-tp1-v011-planner
    ("Qwen/Qwen3-8B", "bfloat16", 1, 1, 0, "9.0", 15.27),  # qwen3-8b-h100-v019
    ("Qwen/Qwen3-14B", "bfloat16", 1, 1, 0, "9.0", 27.52),  # qwen3-14b-h100-v0180-sweep-planner
    ("Qwen/Qwen3-30B-A3B", "bfloat16", 1, 1, 0, "9.0", 56.88),  # qwen3-30b-a3b-h100-v019
    ("Qwen/Qwen1.5-MoE-A2.7B", "bfloat16", 1, 1, 0, "9.0", 26.67),  # qwen15-moe-a27b-h100-v019
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "bfloat16", 2, 1, 0, "9.0", 43.51),  # mixtral-8x7b-h100-tp2-v019
    (
        "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
        "bfloat16",
        1,
        1,
        0,
        "9.0",
        44.76,
    ),  # vision tower included
    ("google/gemma-2-9b-it", "bfloat16", 1, 1, 0, "9.0", 17.22),  # gemma2-9b-h100-v019
    ("google/gemma-3-4b-it", "bfloat16", 1, 1, 0, "9.0", 8.58),  # gemma3-4b-h100-v019
    ("google/gemma-3-12b-it", "bfloat16", 1, 1, 0, "9.0", 23.31),  # gemma3-12b-h100-v019
    ("google/gemma-7b", "bfloat16", 1, 1, 0, "9.0", 15.91),  # gemma-7b-h100-v019
    ("microsoft/phi-2", "float16", 1, 1, 0, "9.0", 5.19),  # phi2-h100-len2k-v019
    ("ibm-granite/granite-vision-3.3-2b", "bfloat16", 1, 1, 0, "9.0", 5.54),  # granite-vision-33-2b-h100-v019
    ("meta-llama/Llama-3.2-11B-Vision", "bfloat16", 1, 1, 0, "9.0", 19.86),  # dummy weights, V0
    (
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        "bfloat16",
        4,
        1,
        0,
        "9.0",
        53.12,
    ),  # llama4-scout-h100-tp4-v019
    ("moonshotai/Kimi-VL-A3B-Instruct", "bfloat16", 1, 1, 0, "9.0", 30.74),  # kimi-vl-a3b-h100-v019 (MLA)
    ("openai/gpt-oss-20b", "bfloat16", 1, 1, 0, "9.0", 13.64),  # gpt-oss-20b-h100-util095-v019-oom
    ("openai/gpt-oss-20b", "bfloat16", 1, 1, 0, "8.0", 13.72),  # gpt-oss-20b-a100 (Marlin)
    ("openai/gpt-oss-20b", "bfloat16", 2, 1, 0, "9.0", 7.01),  # gpt-oss-20b-h100-tp2-util09-v019
    ("openai/gpt-oss-120b", "bfloat16", 1, 1, 0, "9.0", 65.97),  # gpt-oss-120b-h100-negative-kv
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16", "float16", 1, 1, 0, "9.0", 5.38),  # W4A16
    (
        "RedHatAI/Mistral-Small-3.1-24B-Instruct-2503-quantized.w8a8",
        "bfloat16",
        2,
        1,
        0,
        "9.0",
        12.11,
    ),  # W8A8
]


def _facts(model_id: str) -> ModelFacts:
    facts = catalog_facts(model_id)
    assert facts is not None, model_id
    return facts


@pytest.mark.parametrize(("model_id", "dtype", "tp", "pp", "rank", "cc", "observed"), OBSERVED)
def test_weights_within_one_percent_of_vllm(
    model_id: str, dtype: str, tp: int, pp: int, rank: int, cc: str, observed: float
) -> None:
    got = weight_bytes_per_gpu(
        _facts(model_id), dtype=dtype, quantization=None, tp=tp, pp=pp, pp_rank=rank, compute_capability=cc
    )
    assert abs(got / GIB - observed) / observed < 0.01, (got / GIB, observed)


def test_gpt_oss_experts_take_the_layout_of_their_release() -> None:
    """0.11 on SM90: intermediate padded to 64, each contraction dim to 256, fp32 biases; 0.19: 128/256."""
    gpt = _facts("openai/gpt-oss-20b")
    old = weight_bytes_per_gpu(
        gpt, dtype="bfloat16", quantization=None, compute_capability="9.0", vllm_version="0.11.0"
    )
    new = weight_bytes_per_gpu(
        gpt, dtype="bfloat16", quantization=None, compute_capability="9.0", vllm_version="0.19.0"
    )
    experts = 24 * 32
    # Per expert, e2m1 + one e8m0 scale per 32 values: old (2*2880*3072 + 2880*3072), new 3*3072*2944.
    per_value = 0.5 + 1 / 32
    old_experts = experts * ((2 * 2880 * 3072 + 2880 * 3072) * per_value + (2 * 2880 + 2880) * 4)
    new_experts = experts * (3 * 3072 * 2944 * per_value + (2 * 2944 + 3072) * 2)
    assert new - old == round(new_experts - old_experts)
    assert abs(old / GIB - 13.47) / 13.47 < 0.005  # calib gpt-oss-20b-h100-tp1-v011-planner
    big = weight_bytes_per_gpu(
        _facts("openai/gpt-oss-120b"),
        dtype="bfloat16",
        quantization=None,
        compute_capability="9.0",
        vllm_version="0.11.0",
    )
    assert abs(big / GIB - 64.38) / 64.38 < 0.005  # calib gpt-oss-120b-h100-tp1-v011-planner
    # Ampere runs Marlin in every release: the version does not matter there.
    assert weight_bytes_per_gpu(
        gpt, dtype="bfloat16", quantization=None, compute_capability="8.0", vllm_version="0.11.0"
    ) == weight_bytes_per_gpu(gpt, dtype="bfloat16", quantization=None, compute_capability="8.0")


@pytest.mark.parametrize(
    ("layers", "pp", "expected"),
    [
        (32, 2, [(0, 16), (16, 32)]),
        (32, 4, [(0, 8), (8, 16), (16, 24), (24, 32)]),
        # vLLM get_pp_indices: the remainder goes to the stages before the last, from the back.
        (61, 4, [(0, 15), (15, 30), (30, 46), (46, 61)]),
        (10, 4, [(0, 2), (2, 5), (5, 8), (8, 10)]),
        (22, 4, [(0, 5), (5, 11), (11, 17), (17, 22)]),  # [5, 6, 6, 5]
        (5, 3, [(0, 2), (2, 4), (4, 5)]),  # [2, 2, 1]
        (126, 8, [(0, 15), (15, 31), (31, 47), (47, 63), (63, 79), (79, 95), (95, 111), (111, 126)]),
    ],
)
def test_pp_layer_range_matches_vllm(layers: int, pp: int, expected: list[tuple[int, int]]) -> None:
    assert [pp_layer_range(layers, pp, r) for r in range(pp)] == expected


def test_pp_layer_range_rejects_bad_input() -> None:
    with pytest.raises(WeightsError):
        pp_layer_range(4, 8, 0)
    with pytest.raises(WeightsError):
        pp_layer_range(32, 2, 2)


def test_vocab_padding() -> None:
    assert padded_vocab(32000) == 32000
    assert padded_vocab(49155) == 49216  # granite: padded to a multiple of 64
    assert padded_vocab(32064, 4) == 8016
    assert padded_vocab(51200, 8) == 6400


def test_tied_embedding_copied_on_last_stage_only_with_pp() -> None:
    m = _facts("meta-llama/Llama-3.2-1B-Instruct")
    emb = padded_vocab(m.vocab_size) * m.hidden_size * 2
    one = weight_bytes_per_gpu(m, dtype="bfloat16", quantization=None)
    first = weight_bytes_per_gpu(m, dtype="bfloat16", quantization=None, pp=2, pp_rank=0)
    last = weight_bytes_per_gpu(m, dtype="bfloat16", quantization=None, pp=2, pp_rank=1)
    rope = m.rope_cache_elements * 2
    # The two stages together hold the embedding twice (and the rotary cache once each).
    assert first + last == one + emb + rope


def test_kv_heads_replicate_when_tp_exceeds_them() -> None:
    m = _facts("Qwen/Qwen3-235B-A22B")  # 4 KV heads
    g = m.layer_groups[0]
    tp4 = weight_bytes_per_gpu(m, dtype="bfloat16", quantization=None, tp=4)
    tp8 = weight_bytes_per_gpu(m, dtype="bfloat16", quantization=None, tp=8)
    # At TP8 each rank still holds one whole KV head: K/V bytes do not halve from TP4 to TP8.
    kv_tp4 = g.kv_linear / 4 * 2 * m.num_hidden_layers
    assert tp8 > tp4 / 2 + kv_tp4 / 2 - 1e6


def test_experts_split_over_tp_times_dp_or_whole_with_ep() -> None:
    m = _facts("Qwen/Qwen3-30B-A3B")
    tp2dp2 = weight_bytes_per_gpu(m, dtype="bfloat16", quantization=None, tp=2, dp=2)
    tp2dp2_ep = weight_bytes_per_gpu(m, dtype="bfloat16", quantization=None, tp=2, dp=2, expert_parallel=True)
    tp2 = weight_bytes_per_gpu(m, dtype="bfloat16", quantization=None, tp=2)
    experts = sum(g.expert_linear * len(g.layers) for g in m.layer_groups) * 2
    assert tp2 - tp2dp2 == pytest.approx(experts / 2 - experts / 4, rel=1e-6)
    assert tp2dp2_ep == pytest.approx(tp2dp2, rel=1e-6)  # 128 experts divide evenly into 4 ranks


def test_awq_and_gptq_bytes() -> None:
    awq = _facts("TheBloke/Llama-2-7B-AWQ")
    base = _facts("meta-llama/Llama-2-7b-hf")
    linear = sum(g.tp_linear + g.kv_linear for g in base.layer_groups) * base.num_hidden_layers
    rest = base.params_total - linear
    got = weight_bytes_per_gpu(awq, dtype="float16", quantization="awq_marlin")
    # 4-bit weights + fp16 scale and packed 4-bit zero point per 128-group; the rest fp16.
    expected = linear * (0.5 + 2 / 128 + 0.5 / 128) + rest * 2 + awq.rope_cache_elements * 2
    assert got == pytest.approx(expected, rel=1e-4)
    gptq = _facts("TheBloke/Llama-2-7B-GPTQ")  # sym, no act-order: Marlin drops the zero points
    got = weight_bytes_per_gpu(gptq, dtype="float16", quantization=None)
    assert got == pytest.approx(linear * (0.5 + 2 / 128) + rest * 2 + gptq.rope_cache_elements * 2, rel=1e-4)


def test_gptq_act_order_adds_g_idx() -> None:
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 2,
        "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 32000,
        "max_position_embeddings": 4096, "torch_dtype": "float16",
    }  # fmt: skip
    off = facts_from_config(
        cfg, model_id="t", source="local", quant_config={"bits": 4, "group_size": 128, "desc_act": False}
    )
    on = facts_from_config(
        cfg, model_id="t", source="local", quant_config={"bits": 4, "group_size": 128, "desc_act": True}
    )
    diff = weight_bytes_per_gpu(on, dtype="float16", quantization=None) - weight_bytes_per_gpu(
        off, dtype="float16", quantization=None
    )
    # g_idx + sort indices, int32 each, per input row of qkv (4096), o (4096), gate_up (4096), down (14336).
    assert diff == 2 * 8 * (4096 * 3 + 14336)


def test_runtime_fp8_on_bf16_roughly_halves_linears() -> None:
    m = _facts("meta-llama/Llama-3.1-70B-Instruct")
    bf16 = weight_bytes_per_gpu(m, dtype="bfloat16", quantization=None, tp=2)
    fp8 = weight_bytes_per_gpu(m, dtype="bfloat16", quantization="fp8", tp=2)
    emb = padded_vocab(m.vocab_size, 2) * m.hidden_size * 2 * 2  # embedding + lm_head stay bf16
    assert fp8 == pytest.approx((bf16 - emb) / 2 + emb, rel=0.002)
    # A ModelOpt FP8 checkpoint lands at the same size.
    mo = weight_bytes_per_gpu(
        _facts("nvidia/Llama-3.1-70B-Instruct-FP8"), dtype="bfloat16", quantization=None, tp=2
    )
    assert mo == pytest.approx(fp8, rel=0.001)


def test_fp8_block_checkpoint_deepseek_v3_tp8() -> None:
    m = _facts("deepseek-ai/DeepSeek-V3")
    per_gpu = weight_bytes_per_gpu(m, dtype="bfloat16", quantization=None, tp=8) / GIB
    # ~671B params at ~1 byte, split 8 ways, plus bf16 embeddings/norms and MLA replicated parts.
    assert 78 < per_gpu < 86


def test_awq_70b_fits_the_wizard_example() -> None:
    m = _facts("TheBloke/Llama-2-70B-AWQ")
    gib = weight_bytes_per_gpu(m, dtype="float16", quantization="awq") / GIB
    assert 33.5 < gib < 35.0  # 68.98B params at ~0.52 B/param + fp16 embeddings


def test_params_b_only_fallback_spreads_evenly() -> None:
    from vllm_compile.facts.models import estimate_from_params

    m = estimate_from_params("x/y", 7.0)
    total = weight_bytes_per_gpu(m, dtype="bfloat16", quantization=None)
    assert total / 2 == pytest.approx(7e9, rel=0.03)


@pytest.mark.parametrize(
    ("checkpoint", "requested", "cc", "expected"),
    [
        ("bfloat16", "auto", "9.0", "bfloat16"),
        ("float16", "auto", "9.0", "float16"),
        ("float32", "auto", "8.0", "bfloat16"),  # fp32 checkpoints run in bf16 on SM >= 8.0
        ("float32", "auto", "7.5", "float16"),  # ... and in fp16 before
        ("bfloat16", "auto", "7.0", "float16"),  # bf16 unsupported: falls back to fp16
        ("bfloat16", "half", "9.0", "float16"),
        ("bfloat16", "fp16", "9.0", "float16"),
        ("float16", "bf16", "8.6", "bfloat16"),
        ("bfloat16", "float", "9.0", "float32"),
        ("bfloat16", "float32", "9.0", "float32"),
    ],
)
def test_resolve_dtype(checkpoint: str, requested: str, cc: str, expected: str) -> None:
    m = _facts("meta-llama/Llama-3.1-8B-Instruct").model_copy(update={"dtype": checkpoint})
    assert resolve_dtype(m, requested, cc) == expected


def test_resolve_dtype_errors() -> None:
    m = _facts("meta-llama/Llama-3.1-8B-Instruct")
    with pytest.raises(WeightsError, match="compute capability"):
        resolve_dtype(m, "bfloat16", "7.5")
    with pytest.raises(WeightsError, match="unknown dtype"):
        resolve_dtype(m, "int3", "9.0")
