"""Verdicts: start-up and capacity, never mixed; risk thresholds from the profile's policy."""

from __future__ import annotations

from tests.fixtures.memory_models import GIB, H100, LLAMA_31_8B, engine, version
from vllm_compile.passes.policy import judge
from vllm_compile.plan import KvCachePlan, MemoryPlan, RankMemory, Resolved
from vllm_compile.profile.v1 import Profile


def _resolved(**sections: object) -> Resolved:
    data = {"profile_version": 1, "model": {"id": "m"}, "hardware": {"gpu_name": "H100"}, **sections}
    return Resolved(name="t", profile=Profile(**data), model=LLAMA_31_8B, gpu=H100, vllm=version())


def _memory(
    weights_gib: float,
    kv_gib: float,
    tokens: int,
    conc: float,
    largest: int | None = 131072,
    requested_gib: float = 75.23,
    baseline_gib: float = 0.51,
) -> MemoryPlan:
    rank = RankMemory(
        pp_rank=0, gpu_total_bytes=H100.memory_bytes, requested_bytes=int(requested_gib * GIB),
        baseline_bytes=int(baseline_gib * GIB),
        weights_bytes=int(weights_gib * GIB), activation_peak_bytes=int(1.89 * GIB),
        non_torch_bytes=int(0.25 * GIB), cuda_graph_bytes=0, kv_cache_bytes=int(kv_gib * GIB),
        num_blocks=max(0, int(kv_gib * 512)),
    )  # fmt: skip
    kv = KvCachePlan(
        bytes_per_token=131072, block_size=16, bytes_per_block=2 << 20, num_blocks=max(0, int(kv_gib * 512)),
        blocks_per_request=512, tokens=tokens, max_concurrency=conc,
    )  # fmt: skip
    return MemoryPlan(ranks=[rank], binding_pp_rank=0, kv=kv, largest_max_model_len=largest)


def test_starts_low_risk_with_numbers() -> None:
    v = judge(_resolved(), engine(), _memory(14.99, 58.11, 476_016, 58.11))
    assert v.starts and v.oom_risk == "LOW" and not v.fails_policy
    assert "58.11 GiB" in v.reasons[0] and "476,016 tokens" in v.reasons[0]


def test_weights_over_budget_does_not_start() -> None:
    v = judge(_resolved(), engine(), _memory(76.0, -2.91, 0, 0.0, None))
    assert not v.starts and v.oom_risk == "HIGH" and v.fails_policy
    assert "would not start" in v.reasons[0] and "76.00 GiB" in v.reasons[0]


def test_one_request_does_not_fit_reports_largest_len() -> None:
    v = judge(_resolved(), engine(max_model_len=131072), _memory(70.0, 1.5, 12_288, 0.09, 12_288))
    assert not v.starts and v.oom_risk == "HIGH"
    assert "12,288" in v.reasons[0] and "--max-model-len auto" in v.reasons[0]


def test_thin_kv_margin_is_medium_and_policy_decides_failure() -> None:
    thin = _memory(66.0, 6.5, 53_248, 6.5)
    v = judge(_resolved(policy={"medium_kv_margin": 0.10}), engine(), thin)
    assert v.starts and v.oom_risk == "MEDIUM" and not v.fails_policy
    assert judge(_resolved(policy={"fail_on": "medium"}), engine(), thin).fails_policy
    assert not judge(
        _resolved(policy={"fail_on": "never"}), engine(), _memory(76.0, -2.9, 0, 0.0)
    ).fails_policy


def test_fragmentation_factor_and_headroom() -> None:
    # 73 GiB outside the KV cache x 1.05 exceeds the 75.23 GiB budget: HIGH although vLLM would start.
    v = judge(_resolved(policy={"fragmentation_factor": 1.05}), engine(), _memory(70.8, 2.29, 18_000, 2.2))
    assert v.starts and v.oom_risk == "HIGH"
    # 0.95 of 79.19 GiB and the 0.51 GiB CUDA context leave 3.45 GiB (3.7 GB): below a 4 GB policy.
    v = judge(_resolved(policy={"headroom_gb": 4.0}), engine(), _memory(14.99, 58.11, 476_016, 58.11))
    assert v.oom_risk == "MEDIUM" and any("3.45 GiB" in r and "headroom" in r for r in v.reasons)
    assert (
        judge(
            _resolved(policy={"headroom_gb": 3.5}), engine(), _memory(14.99, 58.11, 476_016, 58.11)
        ).oom_risk
        == "LOW"
    )


def test_budget_beyond_free_memory_at_start_does_not_start() -> None:
    # TP2 on 0.19: 1.53 GiB in use before the snapshot, 77.66 GiB free; 0.99 asks for 78.40 GiB.
    memory = _memory(7.51, 66.9, 1_096_144, 133.8, requested_gib=78.40, baseline_gib=1.53)
    v = judge(_resolved(), engine(gpu_memory_utilization=0.99, tensor_parallel_size=2), memory)
    assert not v.starts and v.oom_risk == "HIGH" and v.fails_policy
    assert "77.66 GiB is free" in v.reasons[0] and "0.98 or lower starts" in v.reasons[0]
    # The same budget on one GPU (0.51 GiB before the snapshot) fits: 78.68 GiB free.
    one = _memory(14.99, 61.25, 501_712, 61.2, requested_gib=78.40, baseline_gib=0.51)
    assert judge(_resolved(), engine(gpu_memory_utilization=0.99), one).starts


def test_capacity_is_a_warning_not_oom() -> None:
    wl = {"workload": {"concurrency": 256, "prompt_tokens": 2000, "gen_tokens": 500}}
    v = judge(_resolved(**wl), engine(), _memory(14.99, 58.11, 476_016, 58.11))
    assert v.starts and v.oom_risk == "LOW" and not v.capacity_ok
    assert "640,000" in v.capacity_notes[0] and "queues" in v.capacity_notes[0]
