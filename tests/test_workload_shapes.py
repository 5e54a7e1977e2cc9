"""Workloads as people describe them: percentiles, histograms, burstiness, a gateway trace; SLOs on tails."""

from __future__ import annotations

import statistics

import pytest

from vllm_compile.api import compile_paths, load_profile_dict, plan_profile
from vllm_compile.facts.trace import TraceError, parse_trace
from vllm_compile.passes.workload import resolve_workload
from vllm_compile.passes.workload_sample import arrivals, draw_lengths, quantile
from vllm_compile.profile.v1 import WorkloadSpec

from .conftest import REPO, write


def test_a_histogram_gives_the_mean_and_percentiles() -> None:
    w = resolve_workload(
        WorkloadSpec(
            prompt_tokens={"histogram": [[100, 50], [1000, 40], [4000, 10]]},
            gen_tokens=200,
        )
    )
    assert w.prompt.mean == pytest.approx(0.5 * 100 + 0.4 * 1000 + 0.1 * 4000)
    assert (w.prompt.p50, w.prompt.p90, w.prompt.p99, w.prompt.max) == (100, 1000, 4000, 4000)
    drawn = draw_lengths(w.prompt, 100, seed=1)
    assert sorted(drawn).count(100) == 50 and sorted(drawn).count(4000) == 10


def test_percentiles_are_interpolated_and_a_fixed_length_stays_fixed() -> None:
    w = resolve_workload(
        WorkloadSpec(prompt_tokens={"mean": 300, "p50": 200, "p90": 600, "p99": 1500}, gen_tokens=64)
    )
    assert quantile(w.prompt, 0.5) == pytest.approx(200)
    assert quantile(w.prompt, 0.9) == pytest.approx(600)
    assert quantile(w.prompt, 0.99) == pytest.approx(1500)
    assert set(draw_lengths(w.gen, 50, seed=2)) == {64}


def test_burstiness_keeps_the_rate_and_clusters_the_arrivals() -> None:
    poisson = arrivals(4000, 5.0, 1.0, seed=0)
    bursty = arrivals(4000, 5.0, 0.25, seed=0)

    def gaps(xs: list[float]) -> list[float]:
        return [b - a for a, b in zip(xs, xs[1:], strict=False)]

    for xs in (poisson, bursty):
        assert statistics.fmean(gaps(xs)) == pytest.approx(0.2, rel=0.08)
    cv = lambda g: statistics.pstdev(g) / statistics.fmean(g)  # noqa: E731
    assert cv(gaps(poisson)) == pytest.approx(1.0, rel=0.1)  # exponential gaps
    assert cv(gaps(bursty)) == pytest.approx(2.0, rel=0.15)  # gamma shape k: CV = 1/sqrt(k)


def _rate_plan(**workload):
    return plan_profile(
        load_profile_dict(
            {
                "profile_version": 1,
                "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 8192},
                "hardware": {"gpu_name": "L4"},
                "workload": {"prompt_tokens": 500, "gen_tokens": 150, "request_rate": 1.0, **workload},
            }
        )
    )


def test_bursty_arrivals_raise_the_tail_not_the_rate() -> None:
    calm, bursty = _rate_plan(), _rate_plan(burstiness=0.2)
    assert bursty.performance.percentiles["ttft_ms_p99"] > calm.performance.percentiles["ttft_ms_p99"]
    assert any("burstiness 0.2" in a for a in bursty.performance.assumptions)


def test_slos_on_percentiles_are_checked() -> None:
    plan = _rate_plan(slo={"itl_ms_p99": 1.0, "ttft_ms_p90": 100000})
    p = plan.performance
    assert p.slo_met is False
    misses = [n for n in p.notes if n.startswith("SLO missed")]
    assert any("ITL p99" in n for n in misses) and not any("TTFT p90" in n for n in misses)


def test_the_bundled_trace_profile_compiles_with_its_tail_above_its_median(tmp_path) -> None:
    result = compile_paths([REPO / "profiles" / "llama31-8b-h100-trace.yaml"], out_dir=tmp_path)
    assert result.exit_code == 0
    plan = result.results[0].plan
    assert plan is not None and plan.performance is not None
    pct = plan.performance.percentiles
    assert pct["ttft_ms_p99"] > pct["ttft_ms_p50"]
    assert pct["itl_ms_p50"] <= pct["itl_ms_p90"] <= pct["itl_ms_p99"]
    trace = plan.resolved.trace
    assert trace is not None and len(trace.arrivals) == 120
    # The trace sets the rate: requests over the span between the first and last arrival.
    assert plan.cluster is not None
    assert plan.cluster["cluster_rps"] == pytest.approx(trace.request_rate, rel=1e-3)
    text = (tmp_path / "llama31-8b-h100-trace" / "REPORT.md").read_text()
    assert "TTFT p50 / p90 / p99 (ms, simulated)" in text


def test_a_changed_trace_replans(tmp_path) -> None:
    csv = write(tmp_path / "t.csv", "timestamp,prompt_tokens,output_tokens\n0,100,50\n1,200,60\n2,300,70\n")
    profile = write(
        tmp_path / "p.yaml",
        "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-8B-Instruct, max_model_len: 4096}\n"
        "hardware: {gpu_name: H100}\nworkload: {trace: t.csv}\n",
    )
    out = tmp_path / "out"
    assert compile_paths([profile], out_dir=out).exit_code == 0
    again = compile_paths([profile], out_dir=out)
    assert again.results[0].reused
    csv.write_text(csv.read_text() + "3,400,80\n")
    third = compile_paths([profile], out_dir=out)
    assert not third.results[0].reused


def test_a_bad_trace_is_a_diagnostic_at_its_line(tmp_path) -> None:
    write(tmp_path / "bad.csv", "when,prompt_tokens,output_tokens\n0,1,1\n1,1,1\n")
    profile = write(
        tmp_path / "p.yaml",
        "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-8B-Instruct}\nhardware: {gpu_name: H100}\n"
        "workload:\n  trace: bad.csv\n",
    )
    result = compile_paths([profile], out_dir=tmp_path / "out")
    assert result.exit_code == 2
    d = result.results[0].diagnostics[0]
    assert d.line == 5 and "no arrival time column" in d.message
    assert not (tmp_path / "out").exists()
    with pytest.raises(TraceError, match=":3: expected numbers"):
        parse_trace("timestamp,prompt_tokens,output_tokens\n0,1,1\nx,1,1\n", "t.csv")
