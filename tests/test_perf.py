"""Performance model: physics pinned on hand-computed cases, monotonicity properties, the estimate."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_compile.api import load_profile_dict
from vllm_compile.facts.gpu_spec import GpuSpec
from vllm_compile.facts.model_facts import ModelFacts
from vllm_compile.passes import perf_model as pm
from vllm_compile.passes.batching_sim import simulate, steady_state
from vllm_compile.passes.memory import plan_memory
from vllm_compile.passes.perf import estimate
from vllm_compile.passes.settings import decide_engine
from vllm_compile.passes.workload import resolve_workload
from vllm_compile.resolve import resolve

GPU = GpuSpec(
    key="test-gpu", name="Test GPU", memory_bytes=80 << 30, memory_bandwidth_gbps=2000.0,
    bf16_tflops=1000.0, fp16_tflops=1000.0, fp8_tflops=2000.0, compute_capability="9.0", nvlink_gbps=900.0,
)  # fmt: skip


def dense(
    layers: int = 32, hidden: int = 4096, vocab: int = 32000, params: int = 7_000_000_000
) -> ModelFacts:
    return ModelFacts(
        id="test/dense", source="catalog", architecture="LlamaForCausalLM", model_type="llama", dtype="bfloat16",
        num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
        intermediate_size=14336, vocab_size=vocab, tie_word_embeddings=False, max_model_len=8192,
        layer_kinds=["full"] * layers, params_total=params, params_active=params,
    )  # fmt: skip


def moe() -> ModelFacts:
    return dense().model_copy(
        update={
            "num_experts": 8,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 1024,
            "moe_layers": list(range(32)),
        }
    )


def sm_for(model: ModelFacts, tp: int = 1, pp: int = 1, eager: bool = False) -> pm.StepModel:
    shape = pm.model_shape(model, dtype="bfloat16", quantization=None, kv_cache_dtype="auto", tp=tp)
    hw = pm.hardware(GPU, dtype="bfloat16", fp8_compute=False, tp=tp, multi_node_pp=False)
    return pm.StepModel(shape=shape, hw=hw, tp=tp, pp=pp, eager=eager, graph_max_batch=512)


def fixed_costs(sm: pm.StepModel, decode: int) -> float:
    s = sm.shape
    return (
        pm.STEP_OVERHEAD_S + pm.HOST_PER_SEQ_S["V1"] * decode
        + s.num_layers * pm.LAYER_FLOOR_S + s.num_moe_layers * pm.MOE_LAYER_FLOOR_S
    )  # fmt: skip


def test_decode_floor_is_weight_bytes_over_bandwidth() -> None:
    m = dense()
    sm = sm_for(m)
    # Hand count: every weight but the input embedding is read once per step, 2 bytes each (bf16).
    read = (7_000_000_000 - 32000 * 4096) * 2
    assert sm.shape.body_bytes + sm.shape.lm_head_bytes == pytest.approx(read)
    t = sm.step_time(1, 0.0)
    assert t - fixed_costs(sm, 1) == pytest.approx(read / (pm.BW_EFF * 2000e9), rel=1e-9)
    assert t >= read / 2000e9  # never faster than the datasheet bandwidth


def test_decode_reads_the_batch_kv_cache() -> None:
    sm = sm_for(dense())
    # 32 layers x 2 (K,V) x 8 heads x 128 x 2 bytes = 128 KiB per token.
    assert sm.shape.kv_bytes_full == 32 * 2 * 8 * 128 * 2
    extra = sm.step_time(1, 100_000) - sm.step_time(1, 0)
    assert extra == pytest.approx(100_000 * 131072 / (pm.BW_EFF * 2000e9), rel=0.01)


def test_prefill_floor_is_flops_over_peak() -> None:
    m = dense()
    sm = sm_for(m)
    tokens = 8192
    head = 32000 * 4096
    active = 7_000_000_000 - head  # the embedding lookup is no GEMM
    # The lm_head runs only for the one row the sampler reads (gpu_model_runner's logits_indices),
    # every other linear layer for every prompt token.
    flops = 2 * (active - head) * tokens + 2 * head
    t = sm.prefill_time(tokens, budget=tokens)
    assert t >= flops / 1000e12  # the datasheet peak bounds it
    # Attention at the prefill kernel's rate for the chunk's mean context (FA3 class on sm90).
    ctx = tokens / 2
    attn = 4 * 32 * 128 * 32 * tokens * ctx
    attn_eff = pm.ATTN_EFF_MAX[9] * ctx / (ctx + pm.ATTN_CTX_HALF)
    expected = flops / (pm.COMPUTE_EFF * 1000e12) + attn / (attn_eff * 1000e12)
    assert t - fixed_costs(sm, 0) == pytest.approx(expected, rel=0.01)


def test_lm_head_is_computed_for_sampled_rows_only() -> None:
    # A 4x larger (untied) vocabulary adds lm_head FLOPs for one row per request, not per prompt token:
    # a long prefill barely notices it, a decode step reads the larger head every step.
    small, big = (
        sm_for(dense(vocab=32000)),
        sm_for(dense(vocab=128000, params=7_000_000_000 + 2 * 96000 * 4096)),
    )
    pf_gap = big.prefill_time(8192, 8192) - small.prefill_time(8192, 8192)
    assert pf_gap < 0.01 * small.prefill_time(8192, 8192)
    dec_gap = big.step_time(1, 1000) - small.step_time(1, 1000)
    assert dec_gap == pytest.approx(96000 * 4096 * 2 / (pm.BW_EFF * 2000e9), rel=0.01)


def test_operators_are_separate_rooflines() -> None:
    # A prefill chunk through an MoE model: the dense GEMMs are compute-bound while the routed experts
    # are read from HBM; the step pays both, not the larger of the two totals.
    sm = sm_for(moe())
    s = sm.shape
    tokens = 512
    t = sm.step_time(0, 0, tokens, tokens / 2) - fixed_costs(sm, 1)
    dense_flops = (
        2 * (s.active_params - s.active_expert_params - s.lm_head_params) * tokens + 2 * s.lm_head_params
    )
    expert_read = (
        s.expert_bytes * pm.touched_expert_fraction(8, 2, tokens) / (pm.MOE_EFF * pm.BW_EFF * 2000e9)
    )
    assert t >= dense_flops / (pm.COMPUTE_EFF * 1000e12) + expert_read


def test_prefill_attention_is_faster_per_key_at_long_context() -> None:
    sm = sm_for(dense())
    base = sm.step_time(0, 0, 512, 0.0)  # the chunk's own (near-zero-context) attention
    short = sm.step_time(0, 0, 512, 256.0) - base
    long = sm.step_time(0, 0, 512, 16384.0) - base
    assert long / 16384.0 < short / 256.0


def test_async_scheduling_hides_host_time() -> None:
    m = dense(layers=2, params=300_000_000)  # a tiny model: host time is most of a step
    sync, asyn = sm_for(m), dataclasses.replace(sm_for(m), async_scheduling=True)
    t_sync, t_async = sync.step_time(64, 64_000), asyn.step_time(64, 64_000)
    host = pm.STEP_OVERHEAD_S + 64 * pm.HOST_PER_SEQ_S["V1"]
    assert t_async < t_sync
    assert t_async >= host  # never faster than the host side of the step
    assert t_sync - t_async <= host


@settings(max_examples=40, deadline=None)
@given(tp=st.sampled_from([2, 4, 8]), batch=st.integers(1, 512), ctx=st.integers(0, 4096))
def test_tp_never_scales_better_than_linear(tp: int, batch: int, ctx: int) -> None:
    m = dense()
    t1 = sm_for(m, tp=1).step_time(batch, batch * ctx)
    tn = sm_for(m, tp=tp).step_time(batch, batch * ctx)
    assert tn >= t1 / tp
    assert tn < t1  # and it does help


@settings(max_examples=40, deadline=None)
@given(c1=st.integers(1, 300), dc=st.integers(0, 300), prompt=st.integers(16, 4096), gen=st.integers(2, 1024))
def test_more_concurrency_never_lowers_itl(c1: int, dc: int, prompt: int, gen: int) -> None:
    sm = sm_for(dense())

    def itl(c: int) -> float:
        return steady_state(
            sm, prompt=prompt, gen=gen, concurrency=c, max_num_seqs=256, max_num_batched_tokens=2048,
            kv_tokens=2_000_000,
        ).tpot_s  # fmt: skip

    assert itl(c1 + dc) >= itl(c1) * (1 - 1e-9)


def test_moe_reads_only_touched_experts() -> None:
    # E(1-(1-k/E)^b) distinct experts of E: one token touches k/E of them, many touch all.
    assert pm.touched_expert_fraction(8, 2, 1) == pytest.approx(2 / 8)
    assert pm.touched_expert_fraction(8, 2, 2) == pytest.approx(1 - 0.75**2)
    assert pm.touched_expert_fraction(256, 8, 10_000) == pytest.approx(1.0)
    sm = sm_for(moe())
    assert sm.step_time(64, 0) > sm.step_time(1, 0)  # a bigger batch reads more experts


def test_pipeline_parallel_does_not_lower_single_request_latency() -> None:
    m = dense()
    assert sm_for(m, pp=2).step_time(1, 0) >= sm_for(m).step_time(1, 0)  # the bubble
    assert sm_for(m, pp=2).step_time(64, 0) < sm_for(m).step_time(64, 0) * 1.01  # micro-batches overlap


def test_eager_costs_launches_per_layer() -> None:
    m = dense()
    gap = sm_for(m, eager=True).step_time(1, 0) - sm_for(m).step_time(1, 0)
    assert gap == pytest.approx(32 * pm.EAGER_PER_LAYER_S)


def test_closed_form_agrees_with_the_simulation() -> None:
    sm = sm_for(dense())
    c, prompt, gen = 16, 512, 256
    sim = simulate(
        sm, prompts=[prompt] * 160, gens=[gen] * 160, max_concurrency=c, max_num_seqs=256,
        max_num_batched_tokens=2048, kv_tokens=1_000_000, warmup=32,
    )  # fmt: skip
    ss = steady_state(
        sm,
        prompt=prompt,
        gen=gen,
        concurrency=c,
        max_num_seqs=256,
        max_num_batched_tokens=2048,
        kv_tokens=1_000_000,
    )
    assert ss.output_tok_s == pytest.approx(sim.output_tok_s, rel=0.15)
    assert ss.tpot_s == pytest.approx(sum(sim.tpot_s) / len(sim.tpot_s), rel=0.15)


def _plan_inputs(extra: dict | None = None):
    d = {
        "profile_version": 1,
        "model": {"id": "meta-llama/Llama-3.1-8B-Instruct"},
        "hardware": {"gpu_name": "H100"},
    }
    d.update(extra or {})
    r = resolve(load_profile_dict(d), "t")
    e, _ = decide_engine(r)
    return r, e, plan_memory(r, e)


def test_estimate_has_ranges_assumptions_and_a_curve() -> None:
    r, e, m = _plan_inputs({"workload": {"preset": "chatbot"}})
    p = estimate(r, e, m, resolve_workload(r.profile.workload))
    assert p.concurrency == 32
    for rng in (p.ttft_ms, p.itl_ms, p.output_tok_s, p.total_tok_s, p.request_rps, p.e2e_latency_s):
        assert rng.low < rng.value < rng.high
    assert p.output_tok_s.value == pytest.approx(p.request_rps.value * 198, rel=1e-3)
    assert any("estimates" in a for a in p.assumptions)
    itls = [row["itl_ms"] for row in p.curve]
    assert [row["concurrency"] for row in p.curve] == sorted(row["concurrency"] for row in p.curve)
    assert itls == sorted(itls)
    # 8B bf16 on H100: ~16 GB over 3.35 TB/s at 0.7 plus overhead: ITL in the 7-15 ms band.
    assert 7 < p.itl_ms.value < 15
    assert p.slo_met is True


def test_request_rate_workload_is_simulated_and_sized() -> None:
    r, e, m = _plan_inputs(
        {"workload": {"preset": "chatbot", "request_rate": 60}, "deploy": {"replicas": "auto"}}
    )
    p = estimate(r, e, m)
    assert p.replicas is not None and p.replicas >= 2
    assert any("discrete-event simulation" in a for a in p.assumptions)
    assert p.request_rps.value == pytest.approx(60 / p.replicas, rel=0.15)


def test_fp4_gemms_run_at_twice_fp8_on_blackwell_only() -> None:
    blackwell = GPU.model_copy(update={"compute_capability": "10.0"})
    args = {"dtype": "bfloat16", "fp8_compute": False, "tp": 1, "multi_node_pp": False, "fp4_compute": True}
    assert pm.hardware(blackwell, **args).peak == pytest.approx(2 * 2000e12)  # NVFP4 W4A4 tensor cores
    assert pm.hardware(GPU, **args).peak == pytest.approx(1000e12)  # Hopper: W4A16, the 16-bit rate


def test_rocm_without_aiter_uses_its_fitted_kernel_shares() -> None:
    amd = GPU.model_copy(update={"vendor": "amd", "compute_capability": "9.4"})
    args = {"dtype": "bfloat16", "fp8_compute": False, "tp": 1, "multi_node_pp": False}
    default, aiter = pm.hardware(amd, **args), pm.hardware(amd, **args, rocm_aiter=True)
    assert default.bw_eff == aiter.bw_eff == pm.BW_EFF_AMD
    assert default.compute_eff == pytest.approx(pm.COMPUTE_EFF * pm.ROCM_GEMM_RATIO)
    assert default.attn_eff == pm.ROCM_ATTN_EFF
    assert default.moe_eff == pytest.approx(pm.MOE_EFF * pm.ROCM_GEMM_RATIO)
    assert aiter.compute_eff == pm.COMPUTE_EFF and aiter.moe_eff == pm.MOE_EFF


def test_rocm_gemms_past_the_skinny_kernels_read_weights_at_hipblaslt_share() -> None:
    """vLLM's ROCm skinny GEMMs serve 1-4 rows of bf16 and 1 row of per-tensor FP8; more rows go to
    hipBLASLt, which streams the weights at ROCM_BLAS_BW_RATIO of the skinny kernels' bandwidth."""
    from vllm_compile.facts.model_facts import QuantizationFacts

    amd = GPU.model_copy(update={"vendor": "amd", "compute_capability": "9.4"})

    def weight_read(model: ModelFacts, gpu: GpuSpec, quant: str | None, rows: int) -> float:
        shape = pm.model_shape(model, dtype="bfloat16", quantization=quant, kv_cache_dtype="auto", tp=1)
        hw = pm.hardware(gpu, dtype="bfloat16", fp8_compute=shape.fp8_compute, tp=1, multi_node_pp=False)
        sm = pm.StepModel(shape=shape, hw=hw, tp=1, pp=1, eager=False, graph_max_batch=512)
        return sm.step_time(rows, 0.0) - fixed_costs(sm, rows)

    m = dense()
    body, head = (
        pm.model_shape(m, dtype="bfloat16", quantization=None, kv_cache_dtype="auto", tp=1).body_bytes,
        (32000 * 4096 * 2),
    )
    bw = pm.BW_EFF_AMD * 2000e9
    assert weight_read(m, amd, None, 4) == pytest.approx((body + head) / bw)  # wvSplitK up to 4 rows
    assert weight_read(m, amd, None, 5) == pytest.approx((body + head) / (bw * pm.ROCM_BLAS_BW_RATIO))
    fp8 = m.model_copy(update={"quantization": QuantizationFacts(method="fp8", bits=8)})
    fp8_body = body / 2
    assert weight_read(fp8, amd, "fp8", 1) == pytest.approx((fp8_body + head) / bw)  # wvSplitKQ: one row
    assert weight_read(fp8, amd, "fp8", 2) == pytest.approx(
        fp8_body / (bw * pm.ROCM_BLAS_BW_RATIO) + head / bw
    )
    block = fp8.model_copy(
        update={"quantization": QuantizationFacts(method="fp8", bits=8, weight_block_size=[128, 128])}
    )
    assert weight_read(block, amd, "fp8", 1) == pytest.approx(
        fp8_body / (bw * pm.ROCM_BLAS_BW_RATIO) + head / bw
    )
    # One kernel family on CUDA: no step in cost from 1 to 2 rows beyond the host's per-sequence time.
    assert weight_read(fp8, GPU, "fp8", 2) == pytest.approx(weight_read(fp8, GPU, "fp8", 1), rel=1e-6)


def test_a_prompt_of_many_chunks_is_summed_in_bounded_work_within_half_a_percent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 1,000,000 prompt tokens at a 2,048-token budget: 489 chunks, past SUMMED_CHUNKS (midpoint rule).
    from vllm_compile.passes import batching_sim

    sm = sm_for(dense())
    args = dict(prompt=1_000_000, gen=64, concurrency=1, max_num_seqs=256, max_num_batched_tokens=2048)
    grouped = steady_state(sm, **args, kv_tokens=2_000_000)
    monkeypatch.setattr(batching_sim, "SUMMED_CHUNKS", 10**9)  # every chunk summed one by one
    exact = steady_state(sm, **args, kv_tokens=2_000_000)
    assert grouped.ttft_s == pytest.approx(exact.ttft_s, rel=0.005)
    assert grouped.ttft_s != exact.ttft_s  # the grouped sum did run
