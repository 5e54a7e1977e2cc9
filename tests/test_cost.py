"""Cost: the price table, overrides, $/hour and $ per million output tokens, the `cost` objective."""

from __future__ import annotations

import re

import pytest

from vllm_compile.api import load_profile_dict, plan_profile
from vllm_compile.facts.gpus import gpu_catalog, resolve_gpu
from vllm_compile.facts.prices import gpu_price, price_table
from vllm_compile.passes.cost import fleet_cost, usd_per_million_tokens
from vllm_compile.profile.v1 import CostSpec


def test_usd_per_million_tokens_is_the_hourly_bill_over_the_tokens_of_an_hour() -> None:
    # $3.60/hour serving 1000 tok/s: 3.6M tokens an hour -> $1 per million.
    assert usd_per_million_tokens(3.6, 1000.0) == pytest.approx(1.0)
    assert usd_per_million_tokens(10.0, 0.0) is None


def test_every_price_row_names_a_catalog_gpu_a_date_and_a_source() -> None:
    keys = {g.key for g in gpu_catalog()}
    rows = price_table()
    assert len({r.gpu for r in rows}) == len(rows)  # one row per GPU
    for row in rows:
        assert row.gpu in keys
        assert row.usd_per_gpu_hour > 0
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row.date)
        assert row.source.startswith("https://")
    must = ["H100", "H200", "A100 80GB", "L40S", "MI300X", "L4"]
    assert all(gpu_price(resolve_gpu(n)) is not None for n in must)


def test_profile_overrides_win_over_the_table() -> None:
    h100 = resolve_gpu("H100")
    table = gpu_price(h100)
    assert table is not None and not table.override
    one = gpu_price(h100, CostSpec(usd_per_gpu_hour=1.25, source="our contract"))
    assert one is not None and one.usd_per_gpu_hour == 1.25 and one.override and one.source == "our contract"
    by_name = gpu_price(h100, CostSpec(prices={"h100-sxm": 2.0, "L40S": 0.5}))
    assert by_name is not None and by_name.usd_per_gpu_hour == 2.0
    # A price for another GPU leaves this one on the table.
    other = gpu_price(h100, CostSpec(prices={"L40S": 0.5}))
    assert other == table


def test_fleet_cost_multiplies_gpus_and_replicas() -> None:
    price = gpu_price(resolve_gpu("H100"), CostSpec(usd_per_gpu_hour=2.0))
    assert price is not None
    c = fleet_cost(price, gpus_per_replica=4, replicas=3, fleet_tok_s=2000.0, operating_point="x")
    assert c.replica_usd_per_hour == 8.0 and c.fleet_usd_per_hour == 24.0 and c.total_gpus == 12
    assert c.usd_per_million_output_tokens == pytest.approx(24.0 / (2000 * 3600) * 1e6, rel=1e-4)


def _profile(**workload) -> dict:
    return {
        "profile_version": 1,
        "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 8192},
        "hardware": {"gpu_name": "L4"},
        "workload": {"preset": "chatbot", **workload},
    }


def test_plan_carries_the_cost_at_its_operating_point() -> None:
    plan = plan_profile(load_profile_dict(_profile(concurrency=8)))
    assert plan.cost is not None and plan.performance is not None
    c = plan.cost
    row = gpu_price(plan.resolved.gpu)
    assert row is not None and c["usd_per_gpu_hour"] == pytest.approx(row.usd_per_gpu_hour)
    assert c["fleet_output_tok_s"] == pytest.approx(plan.performance.output_tok_s.value, rel=1e-5)
    expected = row.usd_per_gpu_hour / (plan.performance.output_tok_s.value * 3600) * 1e6
    assert c["usd_per_million_output_tokens"] == pytest.approx(expected, rel=1e-4)


def test_request_rate_cost_uses_the_cluster_plan() -> None:
    data = _profile(request_rate=3.0)
    data["deploy"] = {"replicas": "auto"}
    data["cost"] = {"usd_per_gpu_hour": 1.0}
    plan = plan_profile(load_profile_dict(data))
    assert plan.cluster is not None and plan.cost is not None
    assert plan.cost["replicas"] == plan.cluster["replicas"]
    assert plan.cost["fleet_usd_per_hour"] == pytest.approx(plan.cluster["total_gpus"] * 1.0)
    assert plan.cost["fleet_output_tok_s"] == pytest.approx(plan.cluster["cluster_output_tok_s"], rel=1e-5)


def test_cost_objective_picks_the_cheapest_tokens_among_candidates_that_meet_the_slo() -> None:
    from vllm_compile.passes.recommend import cost_per_mtok, search
    from vllm_compile.passes.settings import decide_engine
    from vllm_compile.passes.workload import resolve_workload
    from vllm_compile.resolve import resolve

    data = {
        "profile_version": 1,
        "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 8192},
        "hardware": {"gpu_name": "H100", "gpus": 4},
        "workload": {"preset": "chatbot", "concurrency": 64, "objective": "cost"},
    }
    resolved = resolve(load_profile_dict(data), "t")
    engine, decisions = decide_engine(resolved)
    workload = resolve_workload(resolved.profile.workload)
    best, evaluated = search(resolved, engine, decisions, workload)
    assert best.state is not None
    ok = [
        c
        for c in evaluated
        if c.verdict.starts and not c.misses and c.state and c.state.running >= c.state.concurrency
    ]
    best_cost = cost_per_mtok(resolved, best.engine, best.state.output_tok_s)
    assert all(best_cost <= cost_per_mtok(resolved, c.engine, c.state.output_tok_s) + 1e-9 for c in ok)


def test_a_saturated_fleet_is_said_so() -> None:
    data = {
        "profile_version": 1,
        "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 8192},
        "hardware": {"gpu_name": "L4"},
        "workload": {"prompt_tokens": 2000, "gen_tokens": 300, "request_rate": 50},
    }
    plan = plan_profile(load_profile_dict(data))
    assert plan.cost is not None
    assert any("saturated fleet" in n for n in plan.cost["notes"])
    data["deploy"] = {"replicas": "auto"}
    sized = plan_profile(load_profile_dict(data))
    assert sized.cost is not None and not any("saturated" in n for n in sized.cost["notes"])
