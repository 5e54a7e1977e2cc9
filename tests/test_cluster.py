"""Cluster planning: replicas for load and SLOs, multi-node layouts."""

from __future__ import annotations

import math

import pytest

from vllm_compile.api import load_profile_dict
from vllm_compile.passes.cluster import layout_for, max_concurrency_for_slo, plan_cluster
from vllm_compile.passes.memory import plan_memory
from vllm_compile.passes.perf import step_model
from vllm_compile.passes.recommend import recommend
from vllm_compile.passes.settings import decide_engine
from vllm_compile.passes.workload import resolve_workload
from vllm_compile.resolve import resolve


def inputs(d: dict):
    r = resolve(load_profile_dict({"profile_version": 1, **d}), "t")
    e, dec = decide_engine(r)
    e, _ = recommend(r, e, dec)
    return r, e, plan_memory(r, e)


def test_layout_tp_within_node_pp_across() -> None:
    assert layout_for(16, 8) == (8, 2)
    assert layout_for(4, 8) == (4, 1)
    assert layout_for(32, 8) == (8, 4)


def test_405b_multi_node_plan() -> None:
    r, e, m = inputs(
        {
            "model": {"id": "meta-llama/Llama-3.1-405B-Instruct"},
            "hardware": {"gpu_name": "H100", "gpus": 16, "gpus_per_node": 8},
        }
    )
    c = plan_cluster(r, e, m)
    assert (c.tensor_parallel_size, c.pipeline_parallel_size) == (8, 2)
    assert c.multi_node and c.nodes_per_replica == 2 and c.gpus_per_replica == 16
    assert any("across 2 nodes" in s for s in c.reasons)


def test_request_rate_sizes_replicas() -> None:
    base = {"model": {"id": "meta-llama/Llama-3.1-8B-Instruct"}, "hardware": {"gpu_name": "H100"}}
    r, e, m = inputs(
        {**base, "workload": {"preset": "chatbot", "request_rate": 40}, "deploy": {"replicas": "auto"}}
    )
    c = plan_cluster(r, e, m)
    assert c.replicas == math.ceil(40 / c.max_per_replica)
    assert c.total_gpus == c.replicas * c.gpus_per_replica
    assert c.cluster_rps == pytest.approx(c.per_replica_rps * c.replicas, rel=1e-3)
    assert c.cluster_rps == pytest.approx(40, rel=1e-3) and c.slo_met is True
    assert c.cluster_output_tok_s == pytest.approx(40 * 198, rel=1e-3)
    # Twice the load never needs fewer replicas.
    r2, e2, m2 = inputs(
        {**base, "workload": {"preset": "chatbot", "request_rate": 80}, "deploy": {"replicas": "auto"}}
    )
    assert plan_cluster(r2, e2, m2).replicas >= c.replicas


def test_latency_slo_raises_replicas() -> None:
    base = {"model": {"id": "meta-llama/Llama-3.1-8B-Instruct"}, "hardware": {"gpu_name": "H100"}}
    wl = {"preset": "chatbot", "concurrency": 512, "slo": {"itl_ms": 15}}
    r, e, m = inputs({**base, "workload": wl, "deploy": {"replicas": "auto"}})
    per = max_concurrency_for_slo(step_model(r, e), e, m, resolve_workload(r.profile.workload))
    assert 1 <= per < 512
    c = plan_cluster(r, e, m)
    assert c.replicas == math.ceil(512 / per) and c.replicas >= 2
    assert c.slo_met is True


def test_unreachable_slo_is_reported() -> None:
    base = {"model": {"id": "meta-llama/Llama-3.1-8B-Instruct"}, "hardware": {"gpu_name": "H100"}}
    r, e, m = inputs(
        {**base, "workload": {"preset": "chatbot", "slo": {"itl_ms": 1}}, "deploy": {"replicas": "auto"}}
    )
    c = plan_cluster(r, e, m)
    assert c.slo_met is False
    assert any("no replica count meets the SLOs" in s for s in c.reasons)
