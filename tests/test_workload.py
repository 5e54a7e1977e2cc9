"""Workload presets, the wizard's fields and custom distributions."""

from __future__ import annotations

import pytest

from vllm_compile.passes.workload import PRESETS, WorkloadError, resolve_workload
from vllm_compile.profile.v1 import Distribution, SloSpec, WorkloadSpec


def test_default_is_the_chatbot_preset() -> None:
    w = resolve_workload(None)
    assert w.name == "chatbot"
    assert (w.prompt.mean, w.gen.mean, w.concurrency) == (215, 198, 32)
    assert (w.slo.ttft_ms_p99, w.slo.itl_ms) == (2000, 200)  # MLPerf v4.1 Llama-2-70B server


def test_presets() -> None:
    assert PRESETS == ("batch_inference", "chatbot", "interactive", "long_context")
    inter = resolve_workload(WorkloadSpec(preset="interactive"))
    assert (inter.slo.ttft_ms_p99, inter.slo.itl_ms, inter.objective) == (450, 40, "latency")
    batch = resolve_workload(WorkloadSpec(preset="batch_inference"))
    assert (batch.prompt.mean, batch.gen.mean, batch.objective, batch.slo.any) == (
        1024,
        128,
        "throughput",
        False,
    )
    long = resolve_workload(WorkloadSpec(preset="long_context"))
    assert long.prompt.mean == 32768 and long.slo.ttft_ms_p99 == 6000


def test_wizard_fields_override_the_preset() -> None:
    w = resolve_workload(WorkloadSpec(prompt_tokens=1000, gen_tokens=300, concurrency=8, mode="throughput"))
    assert (w.prompt.mean, w.prompt.p99, w.gen.max) == (1000, 1000, 300)
    assert (w.concurrency, w.objective, w.name) == (8, "throughput", "custom")
    assert not w.slo.any  # a custom workload states its own SLOs


def test_custom_distribution_and_slo() -> None:
    spec = WorkloadSpec(
        preset="custom",
        prompt_tokens=Distribution(mean=500, p50=400, p99=3000),
        gen_tokens=Distribution(mean=200),
        request_rate=5.0,
        objective="cost",
        slo=SloSpec(itl_ms=30),
    )
    w = resolve_workload(spec)
    assert (w.prompt.p50, w.prompt.p99, w.prompt.max) == (400, 3000, 3000)
    assert (w.gen.p50, w.gen.max) == (200, 200)
    assert w.concurrency is None and w.request_rate == 5.0
    assert w.slo.itl_ms == 30 and w.slo.ttft_ms_p99 is None and w.objective == "cost"


def test_preset_keeps_unstated_slo_fields() -> None:
    w = resolve_workload(WorkloadSpec(preset="chatbot", slo=SloSpec(itl_ms=50)))
    assert (w.slo.itl_ms, w.slo.ttft_ms_p99) == (50, 2000)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(WorkloadError, match="custom needs"):
        resolve_workload(WorkloadSpec(preset="custom", prompt_tokens=10))
    with pytest.raises(WorkloadError, match="p50 <= p99"):
        resolve_workload(WorkloadSpec(prompt_tokens=Distribution(mean=100, p50=500, p99=200)))
    assert issubclass(WorkloadError, ValueError)
