"""`vllm-compile recommend`: GPU types x layouts ranked by $ per million output tokens."""

from __future__ import annotations

import json

import pytest

from vllm_compile.api import compile_paths, recommend_gpus
from vllm_compile.cli import main
from vllm_compile.facts.gpus import resolve_gpu
from vllm_compile.facts.prices import gpu_price
from vllm_compile.passes.gpu_recommend import layouts_for

PROFILE = {
    "profile_version": 1,
    "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 8192},
    "workload": {"prompt_tokens": 1000, "gen_tokens": 200, "request_rate": 4, "slo": {"itl_ms": 40}},
}


@pytest.fixture(scope="module")
def rows():
    return recommend_gpus(PROFILE, gpus_available=["L4", "H100"], counts=[1, 2])


def test_layouts_follow_what_vllm_runs_on_each_gpu() -> None:
    always = lambda tp: True  # noqa: E731
    a100 = layouts_for(resolve_gpu("A100 80GB"), always, counts=(1, 2))
    assert {(x.quantization, x.kv_cache_dtype) for x in a100} == {
        (None, "auto"),
        ("fp8", "auto"),
    }  # no fp8 KV on SM 8.0
    l40s = layouts_for(resolve_gpu("L40S"), always, counts=(2,))
    assert {(x.tensor_parallel_size, x.pipeline_parallel_size) for x in l40s} == {
        (2, 1),
        (1, 2),
    }  # PCIe: PP offered
    h100 = layouts_for(resolve_gpu("H100"), always, counts=(2,))
    assert {(x.tensor_parallel_size, x.pipeline_parallel_size) for x in h100} == {(2, 1)}  # NVLink: TP only


def test_rows_are_ranked_by_cost_per_token_among_layouts_that_meet_the_slo(rows) -> None:
    met = [r for r in rows if r.starts and r.slo_met is not False]
    assert len(met) >= 3
    costs = [r.usd_per_million_output_tokens for r in met]
    assert costs == sorted(costs)
    assert [r.rank for r in rows] == list(range(1, len(rows) + 1))
    # Everything that meets the SLO ranks above everything that does not, which ranks above what does not start.
    kinds = [0 if (r.starts and r.slo_met is not False) else 1 if r.starts else 2 for r in rows]
    assert kinds == sorted(kinds)
    assert met[0].why.startswith("cheapest tokens")
    assert all(r.why.startswith("+") for r in met[1:])


def test_each_row_prices_its_operating_point(rows) -> None:
    for r in rows:
        if not r.starts:
            continue
        price = gpu_price(resolve_gpu(r.layout.gpu))
        assert price is not None
        assert r.total_gpus == r.replicas * r.layout.gpus_per_replica
        assert r.fleet_usd_per_hour == pytest.approx(price.usd_per_gpu_hour * r.total_gpus, rel=1e-3)
        if r.slo_met:
            # A request-rate workload served in full: rate x generated tokens.
            assert r.fleet_output_tok_s == pytest.approx(4 * 200, rel=1e-3)
            expected = r.fleet_usd_per_hour / (r.fleet_output_tok_s * 3600) * 1e6
            assert r.usd_per_million_output_tokens == pytest.approx(expected, rel=1e-3)
            assert r.itl_ms is not None and r.itl_ms <= 40


def test_cli_json_lists_starting_rows_and_the_written_profile_compiles(tmp_path, capsys) -> None:
    out_profile = tmp_path / "profiles" / "winner.yaml"
    out_profile.parent.mkdir()
    code = main(
        ["recommend", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192",
         "--gpus-available", "L4,H100", "--gpu-counts", "1", "--request-rate", "4", "--prompt-tokens", "1000",
         "--gen-tokens", "200", "--slo-itl-ms", "40", "--quantization", "none", "--kv-cache-dtype", "auto", "--json", "--write-profile", str(out_profile)]
    )  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ranked"] and all(r["starts"] for r in data["ranked"])
    best = data["ranked"][0]
    result = compile_paths([out_profile], out_dir=tmp_path / "out")
    assert result.exit_code == 0
    plan = result.results[0].plan
    assert plan is not None and plan.cost is not None
    assert plan.cost["replicas"] == best["replicas"]
    assert plan.cost["usd_per_million_output_tokens"] == pytest.approx(
        best["usd_per_million_output_tokens"], rel=0.02
    )


def test_cli_rejects_an_unknown_gpu_with_exit_2(capsys) -> None:
    code = main(["recommend", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpus-available", "H1000"])
    assert code == 2
    assert "unknown GPU" in capsys.readouterr().err


def test_workload_shape_flags_reach_the_profile() -> None:
    import argparse

    from vllm_compile.cli.recommend import profile_data, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["recommend", "--model", "m/x", "--trace", "t.csv", "--burstiness", "0.5", "--slo-itl-p99-ms", "30",
         "--slo-ttft-p90-ms", "800", "--objective", "cost"]
    )  # fmt: skip
    w = profile_data(args)["workload"]
    assert w["trace"] == "t.csv" and w["burstiness"] == 0.5 and w["objective"] == "cost"
    assert w["slo"] == {"itl_ms_p99": 30.0, "ttft_ms_p90": 800.0}


def test_an_unwritable_profile_path_is_exit_2(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(
        ["recommend", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192",
         "--gpus-available", "H100", "--gpu-counts", "1", "--quantization", "none", "--kv-cache-dtype", "auto",
         "--write-profile", str(blocker / "w.yaml")]
    )  # fmt: skip
    assert code == 2 and "cannot write" in capsys.readouterr().err
