"""KV cache formulas against hand-computed vLLM cases (figures from vLLM 0.19.0 start-up logs)."""

from __future__ import annotations

import pytest

from tests.fixtures.memory_models import (
    DEEPSEEK_V2_LITE,
    GEMMA2_9B,
    GEMMA3_4B,
    GEMMA3_12B,
    GIB,
    GPT_OSS_20B,
    GPT_OSS_120B,
    LLAMA4_SCOUT,
    LLAMA_31_8B,
    LLAMA_31_70B,
    engine,
)
from vllm_compile.passes import kv_cache as kv


def _plan(model, eng, avail_gib: float, **kw):
    stage = kv.stage_kv(model, eng)
    plan, _ = kv.plan_kv_cache(model, eng, [stage], [int(avail_gib * GIB)], **kw)
    return plan


def test_llama31_8b_h100_tokens_and_concurrency() -> None:
    # 32 layers x 2 (K,V) x 8 heads x 128 x 2 bytes = 128 KiB per token; 16-token blocks of 2 MiB.
    plan = _plan(LLAMA_31_8B, engine(), 58.11)
    assert plan.bytes_per_token == 131072
    assert plan.bytes_per_block == 2 * 1024 * 1024
    assert plan.num_groups == 1
    assert plan.blocks_per_request == 512
    # vLLM 0.19.0 printed 476,016 tokens and 58.11x for "58.11 GiB" (rounded): within one block.
    assert abs(plan.tokens - 476_016) <= 32
    assert plan.max_concurrency == pytest.approx(58.11, abs=0.01)


def test_fp8_kv_doubles_tokens() -> None:
    bf16 = _plan(LLAMA_31_8B, engine(), 58.11)
    fp8 = _plan(LLAMA_31_8B, engine(kv_cache_dtype="fp8"), 58.11)
    assert fp8.bytes_per_token == bf16.bytes_per_token // 2 == 65536
    assert fp8.tokens == 2 * bf16.tokens  # vLLM: 952,032 vs 476,016 at the same 58.11 GiB


def test_float32_kv_elements() -> None:
    plan = _plan(LLAMA_31_8B, engine(dtype="float32"), 42.8)
    assert plan.bytes_per_token == 262144
    assert abs(plan.tokens - 175_296) <= 16  # vLLM 0.19.0, --dtype float32


def test_gqa_heads_split_then_replicated() -> None:
    # Llama-3.1-70B: 8 KV heads. TP8 -> one head per rank; TP16 -> still one (replicated), not half.
    tp8 = kv.layer_bytes_per_token(LLAMA_31_70B, engine(tensor_parallel_size=8), "full")
    tp16 = kv.layer_bytes_per_token(LLAMA_31_70B, engine(tensor_parallel_size=16), "full")
    tp4 = kv.layer_bytes_per_token(LLAMA_31_70B, engine(tensor_parallel_size=4), "full")
    assert tp4 == 2 * 2 * 128 * 2
    assert tp8 == tp16 == 1 * 2 * 128 * 2
    assert kv.stage_kv(LLAMA_31_70B, engine(tensor_parallel_size=16)).bytes_per_token == 80 * 512


def test_kv_heads_that_do_not_split_are_an_error() -> None:
    with pytest.raises(kv.KvCacheError, match="cannot be split"):
        kv.kv_heads_per_rank(12, 8)
    with pytest.raises(kv.KvCacheError, match="multiple"):
        kv.kv_heads_per_rank(8, 12)
    with pytest.raises(kv.KvCacheError, match="kv_cache_dtype"):
        kv.kv_dtype_bytes("int3", "bfloat16")


def test_mla_latent_replicated_on_every_tp_rank() -> None:
    # DeepSeek-V2-Lite: kv_lora_rank 512 + qk_rope_head_dim 64 = 576 elements per token per layer.
    for tp in (1, 2, 4):
        stage = kv.stage_kv(DEEPSEEK_V2_LITE, engine(tensor_parallel_size=tp))
        assert stage.bytes_per_token == 27 * 576 * 2
        assert [g.kind for g in stage.groups] == ["mla"]
    assert kv.stage_kv(DEEPSEEK_V2_LITE, engine(kv_cache_dtype="fp8")).bytes_per_token == 27 * 576
    assert kv.layer_bytes_per_token(DEEPSEEK_V2_LITE, engine(kv_cache_dtype="fp8_ds_mla"), "mla") == 656


def test_gpt_oss_two_groups() -> None:
    stage = kv.stage_kv(GPT_OSS_20B, engine())
    assert sorted((g.kind, g.num_layers) for g in stage.groups) == [("full", 12), ("sliding", 12)]
    assert stage.block_bytes == 12 * 2048 * 16
    plan = _plan(GPT_OSS_20B, engine(), 58.47)
    # full 512 + sliding ceil(min(127 + 8192, 8192) / 16) + 1 = 513 blocks per 8,192-token request.
    assert plan.blocks_per_request == 1025
    assert plan.tokens == pytest.approx(1_277_184, rel=1e-4)  # vLLM 0.19.0 (from a GiB rounded to 0.01)
    assert plan.max_concurrency == pytest.approx(155.75, rel=1e-4 * 2)


def test_gpt_oss_120b_worked_example_with_two_steps_in_flight() -> None:
    # reference/vllm_memory_model.md 2.4: L=131072, mnbt=8192, pp+1 = 2 steps: 8192 + 1033 = 9225 blocks.
    eng = engine(max_model_len=131072)
    groups = kv.stage_kv(GPT_OSS_120B, eng).groups
    per_req = sum(kv.blocks_per_request(g, 131072, 16, kv.in_flight_tokens(eng, 2)) for g in groups)
    assert per_req == 9225
    assert kv.stage_kv(GPT_OSS_120B, eng).block_bytes == 18 * 32 * 1024


def test_gemma3_layer_groups_and_padding() -> None:
    # Gemma-3-12B: 40 sliding + 8 full -> group size 8 -> 5 sliding groups + 1 full group.
    g12 = kv.stage_kv(GEMMA3_12B, engine()).groups
    assert len(g12) == 6 and all(g.num_layers == 8 for g in g12)
    plan = _plan(GEMMA3_12B, engine(), 47.72)
    assert plan.bytes_per_block == 8 * 8192 * 16
    assert plan.tokens == 130_304  # vLLM 0.19.0 log
    assert plan.max_concurrency == pytest.approx(15.88, abs=0.01)
    # Gemma-3-4B: 29 sliding + 5 full -> 6 sliding groups (one padded) + 1 full group.
    g4 = kv.stage_kv(GEMMA3_4B, engine()).groups
    assert len(g4) == 7
    assert abs(_plan(GEMMA3_4B, engine(), 62.51).tokens - 468_144) <= 48


def test_gemma2_one_to_one_groups() -> None:
    groups = kv.stage_kv(GEMMA2_9B, engine()).groups
    assert len(groups) == 2 and {g.num_layers for g in groups} == {21}
    plan = _plan(GEMMA2_9B, engine(), 54.12)
    assert abs(plan.tokens - 168_880) <= 32
    assert plan.max_concurrency == pytest.approx(20.60, abs=0.01)


def test_llama4_chunked_layers_promoted_to_full() -> None:
    stage = kv.stage_kv(LLAMA4_SCOUT, engine(tensor_parallel_size=4))
    assert len(stage.groups) == 1 and stage.groups[0].num_layers == 48
    assert stage.bytes_per_token == 48 * 2 * 2 * 128 * 2
    plan = _plan(LLAMA4_SCOUT, engine(tensor_parallel_size=4), 16.75)
    assert abs(plan.tokens - 365_968) <= 80  # vLLM 0.19.0 TP4
    hybrid = kv.layer_specs(LLAMA4_SCOUT, engine(), promote_chunked=False)
    assert len(kv.kv_groups(hybrid)) == 4  # 36 chunked in 3 groups of 12 + 12 full


def test_tokens_formula_by_concurrency() -> None:
    eng = engine()
    stage = kv.stage_kv(GEMMA3_12B, eng)
    by_blocks, _ = kv.plan_kv_cache(GEMMA3_12B, eng, [stage], [int(47.72 * GIB)])
    by_conc, _ = kv.plan_kv_cache(GEMMA3_12B, eng, [stage], [int(47.72 * GIB)], tokens_formula="concurrency")
    assert by_blocks.tokens == 130_304
    assert by_conc.tokens == int(48865 / 3077 * 8192)  # sliding groups cap at the window: more tokens


def test_pp_stage_minimum_binds() -> None:
    eng = engine(pipeline_parallel_size=2)
    s0 = kv.stage_kv(LLAMA_31_8B, eng, (0, 16))
    s1 = kv.stage_kv(LLAMA_31_8B, eng, (16, 32))
    plan, binding = kv.plan_kv_cache(LLAMA_31_8B, eng, [s0, s1], [int(66.54 * GIB), int(65.63 * GIB)])
    assert binding == 1
    assert plan.bytes_per_token == 16 * 4096
    assert plan.tokens == pytest.approx(1_075_312, rel=1e-4)  # vLLM 0.19.0 PP2: the last stage's blocks
    assert plan.num_blocks == int(65.63 * GIB) // (16 * 4096 * 16)


def test_overrides_honoured() -> None:
    plan = _plan(LLAMA_31_8B, engine(num_gpu_blocks_override=1000), 58.11)
    assert plan.num_blocks == 1000 and plan.tokens == 16000
    plan = _plan(LLAMA_31_8B, engine(kv_cache_memory_bytes=10 * GIB), 58.11)
    assert plan.num_blocks == 10 * GIB // (2 * 1024 * 1024) == 5120


def test_largest_fitting_len() -> None:
    stage = kv.stage_kv(LLAMA_31_8B, engine())
    # 1000 blocks of 16 tokens: the largest request is 16,000 tokens.
    fit = kv.largest_fitting_len(1000 * 2 * 1024 * 1024, stage.groups, stage.specs, 16, 8192, 131072)
    assert fit == 16000
    assert kv.largest_fitting_len(0, stage.groups, stage.specs, 16, 8192, 131072) is None
    gstage = kv.stage_kv(GPT_OSS_20B, engine())
    # gpt-oss: the sliding layers cap at 127 + 8192 tokens; the full layers take the rest of 2 GiB.
    fit = kv.largest_fitting_len(2 * GIB, gstage.groups, gstage.specs, 16, 8192, 131072)
    full_bytes_per_token = 12 * 2048
    sliding = 12 * 2048 * 16 * (-(-(127 + 8192) // 16) + 1)
    assert fit == (2 * GIB - sliding) // (full_bytes_per_token * 16) * 16
