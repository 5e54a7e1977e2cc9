"""The memory pass against vLLM 0.19.0 / 0.11.0 start-up logs (figures copied from the logs).

Weights come from the model-facts pass; here they are pinned to the logged "Model loading took X GiB"
so these tests check the accounting (activation, non-torch, graphs, KV) alone.
"""

from __future__ import annotations

import pytest

from tests.fixtures.memory_models import (
    GIB,
    GPT_OSS_20B,
    H100,
    LLAMA_31_8B,
    MIXTRAL_8X7B,
    QWEN25_7B,
    engine,
    version,
)
from vllm_compile.passes import memory
from vllm_compile.passes.memory_terms import terms_for
from vllm_compile.plan import Resolved
from vllm_compile.profile.v1 import Profile

PROFILE = Profile(profile_version=1, model={"id": "test/model"}, hardware={"gpu_name": "H100"})


def _plan(monkeypatch: pytest.MonkeyPatch, model, eng, weights_gib: list[float], v: str = "0.19.0", **kw):
    monkeypatch.setattr(
        memory, "weight_bytes_per_gpu", lambda m, *, pp_rank=0, **_: int(weights_gib[pp_rank] * GIB)
    )
    resolved = Resolved(name="t", profile=PROFILE, model=model, gpu=H100, vllm=version(v, **kw))
    return memory.plan_memory(resolved, eng)


def test_llama31_8b_h100_095_v019(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(monkeypatch, LLAMA_31_8B, engine(), [14.99])
    r = plan.binding
    assert r.requested_bytes == -(-H100.memory_bytes * 95 // 100)  # ceil(total x 0.95) = 75.23 GiB
    assert r.requested_bytes / GIB == pytest.approx(75.23, abs=0.005)
    assert r.activation_peak_bytes / GIB == pytest.approx(1.89, abs=0.05)  # "torch peak memory increase"
    assert r.non_torch_bytes / GIB == pytest.approx(0.25, abs=0.01)
    assert r.cuda_graph_bytes == 0  # printed but not deducted in 0.19.0: 75.23 - 17.12 = 58.11
    assert r.kv_cache_bytes / GIB == pytest.approx(58.11, abs=0.05)
    assert plan.kv.tokens == pytest.approx(476_016, rel=0.001)
    assert plan.kv.max_concurrency == pytest.approx(58.11, abs=0.06)


def test_tp2_adds_nccl_non_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(monkeypatch, LLAMA_31_8B, engine(tensor_parallel_size=2), [7.51])
    assert plan.binding.non_torch_bytes / GIB == pytest.approx(2.07, abs=0.02)
    assert plan.binding.kv_cache_bytes / GIB == pytest.approx(63.76, abs=0.05)
    assert plan.kv.tokens == pytest.approx(1_044_688, rel=0.001)


@pytest.mark.parametrize(
    ("model", "tp", "pp", "free_gib"),
    [
        (LLAMA_31_8B, 1, 1, 78.68),  # every TP1 0.19.0 log: "free_memory=78.68GiB, total_memory=79.19GiB"
        (LLAMA_31_8B, 2, 1, 77.66),  # llama31-8b-h100-tp2-v019
        (LLAMA_31_8B, 4, 1, 77.64),  # Llama-3.3-70B fp8-dynamic TP4 (same shape of model)
        (MIXTRAL_8X7B, 2, 1, 77.18),  # mixtral-8x7b-h100-tp2-v019: MoE holds more before the snapshot
        (LLAMA_31_8B, 1, 2, 77.76),  # llama31-8b-h100-pp2-v019
        (LLAMA_31_8B, 1, 4, 77.71),  # llama31-8b-h100-pp4-v019
    ],
)
def test_memory_before_the_snapshot(model, tp: int, pp: int, free_gib: float) -> None:
    base = memory.baseline(model, engine(tensor_parallel_size=tp, pipeline_parallel_size=pp))
    assert (H100.memory_bytes - base) / GIB == pytest.approx(free_gib, abs=0.02)


def test_pp_stage_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(monkeypatch, LLAMA_31_8B, engine(pipeline_parallel_size=2), [7.51, 7.51])
    first, last = plan.ranks
    assert first.activation_peak_bytes / GIB == pytest.approx(1.1, abs=0.1)  # no sampler on PP0
    assert last.activation_peak_bytes / GIB == pytest.approx(2.01, abs=0.05)  # sampler + received tensors
    assert first.kv_cache_bytes / GIB == pytest.approx(66.54, abs=0.1)  # the figure PP0 logs
    assert plan.binding_pp_rank == 1
    assert plan.kv.tokens == pytest.approx(1_075_312, rel=0.002)  # the engine's min over stages


def test_sampler_term_by_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0.11.0 (llm-d planner, L=16000): 4.76 GiB activation for Llama-3.1-8B; 0.19.0: 1.89 GiB.
    old = memory.activation_peak(LLAMA_31_8B, engine(max_model_len=16000), terms_for("0.11.0"), 0)
    new = memory.activation_peak(LLAMA_31_8B, engine(), terms_for("0.19.0"), 0)
    assert old / GIB == pytest.approx(4.76, abs=0.05)
    assert new / GIB == pytest.approx(1.89, abs=0.05)
    # Vocabulary drives it: Qwen2.5-7B (152k vocab) 2.21 GiB in 0.19.0.
    assert memory.activation_peak(QWEN25_7B, engine(), terms_for("0.19.0"), 0) / GIB == pytest.approx(
        2.21, abs=0.05
    )


def test_moe_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mixtral TP2 in 0.19.0: 1.21 GiB, forward-bound by fused_moe's cache13/cache2 workspaces.
    act = memory.activation_peak(MIXTRAL_8X7B, engine(tensor_parallel_size=2), terms_for("0.19.0"), 0)
    assert act / GIB == pytest.approx(1.21, abs=0.1)
    # gpt-oss MXFP4 kernels keep no such workspace: 2.87 GiB, the sampler alone.
    act = memory.activation_peak(GPT_OSS_20B, engine(quantization="mxfp4"), terms_for("0.19.0"), 0)
    assert act / GIB == pytest.approx(2.87, abs=0.05)


def test_cuda_graphs_deducted_where_the_version_does(monkeypatch: pytest.MonkeyPatch) -> None:
    without = _plan(monkeypatch, LLAMA_31_8B, engine(), [14.99], "0.19.0")
    with_cg = _plan(monkeypatch, LLAMA_31_8B, engine(), [14.99], "0.33.0", deducted=True)
    cg = with_cg.binding.cuda_graph_bytes
    assert 0.6 * GIB < cg < 1.2 * GIB  # vLLM 0.19.0 estimated 0.84 GiB for this model
    assert without.binding.kv_cache_bytes - with_cg.binding.kv_cache_bytes == cg
    eager = _plan(monkeypatch, LLAMA_31_8B, engine(enforce_eager=True), [14.99], "0.33.0", deducted=True)
    assert eager.binding.cuda_graph_bytes == 0


def test_weights_beyond_budget_leave_negative_kv(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(monkeypatch, LLAMA_31_8B, engine(gpu_memory_utilization=0.9), [74.0])
    assert plan.binding.kv_cache_bytes < 0
    assert plan.kv.num_blocks == 0 and plan.kv.tokens == 0
    assert plan.largest_max_model_len is None


def test_largest_max_model_len(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1.5 GiB of KV for Llama-3.1-8B (128 KiB/token) holds 12,288 tokens: that is what `auto` picks.
    eng = engine(max_model_len=131072)
    budget = 75.23 - 0.25 - memory.activation_peak(LLAMA_31_8B, eng, terms_for("0.19.0"), 0) / GIB
    plan = _plan(monkeypatch, LLAMA_31_8B, eng, [budget - 1.5])
    assert plan.largest_max_model_len == pytest.approx(12_288, abs=32)
    assert plan.kv.max_concurrency < 1.0


def test_kv_cache_memory_bytes_replaces_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(monkeypatch, LLAMA_31_8B, engine(kv_cache_memory_bytes=8 * GIB), [14.99])
    assert plan.binding.kv_cache_bytes == 8 * GIB
    assert plan.kv.num_blocks == 4096
