"""`verify` with `vllm bench serve` results (the printed summary or the --save-result JSON): the lock's
estimate re-planned at the benchmark's concurrency and lengths, each figure against its range."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vllm_compile import api
from vllm_compile.cli import main
from vllm_compile.observe.bench_result import BenchError, parse_bench

FIXTURES = Path(__file__).parent / "fixtures"
BENCH = FIXTURES / "bench"
PROFILE = FIXTURES / "logs" / "profiles" / "qwen2-7b-a100-v01011-tp1.yaml"


def test_printed_summary_is_read() -> None:
    b = parse_bench((BENCH / "v01011-qwen2-7b-a100-random-1k1k-n10.txt").read_text(encoding="utf-8"))
    assert (b.completed, b.total_input_tokens, b.total_output_tokens, b.num_prompts) == (10, 10239, 10240, 10)
    assert (b.median_ttft_ms, b.median_tpot_ms, b.output_throughput, b.request_throughput) == (
        511.95,
        13.45,
        715.92,
        0.70,
    )
    assert (b.prompt_tokens, b.gen_tokens) == (1024, 1024)
    assert b.concurrency() == (10, "all requests sent at once (request rate inf)")


def test_save_result_json_is_read(tmp_path: Path) -> None:
    # vLLM benchmarks/serve.py result_json keys (values of the printed summary above)
    result = {
        "completed": 10, "duration": 14.30, "total_input_tokens": 10239, "total_output_tokens": 10240,
        "request_throughput": 0.70, "output_throughput": 715.92, "total_token_throughput": 1431.76,
        "mean_ttft_ms": 488.52, "median_ttft_ms": 511.95, "mean_tpot_ms": 13.47, "median_tpot_ms": 13.45,
        "mean_e2el_ms": 14280.0, "max_concurrency": 4, "request_rate": "inf", "num_prompts": 10,
        "ttfts": [0.5] * 10, "generated_texts": ["..."] * 10,
    }  # fmt: skip
    b = parse_bench(json.dumps(result))
    assert b.concurrency() == (4, "the benchmark's --max-concurrency")
    del result["max_concurrency"]
    result["request_rate"] = 1.0
    assert parse_bench(json.dumps(result)).concurrency() == (10, "Little's law")  # 0.70 req/s x 14.28 s
    assert parse_bench("just a log line\n") is None
    with pytest.raises(BenchError):
        parse_bench('{"completed": 3}')


@pytest.mark.parametrize(
    "name", ["v01011-qwen2-7b-a100-random-1k1k-n1.txt", "v01011-qwen2-7b-a100-random-1k1k-n10.txt"]
)
def test_each_figure_against_the_estimate_at_the_benchmarks_concurrency(name: str) -> None:
    (report,) = api.verify(PROFILE, [BENCH / name])
    bench = parse_bench((BENCH / name).read_text(encoding="utf-8"))
    assert report.concurrency == bench.num_prompts and (report.prompt_tokens, report.gen_tokens) == (
        1024,
        1024,
    )
    terms = {t.term: t for t in report.terms}
    assert (
        terms["itl_ms"].observed == bench.median_tpot_ms and terms["ttft_ms"].observed == bench.median_ttft_ms
    )
    assert terms["output_tok_s"].observed == bench.output_throughput
    for t in report.terms:
        low, high = (float(x) for x in t.label.split("estimate ")[1].rstrip(")").split(".."))
        assert t.beyond == (not low * 0.9995 <= t.observed <= high * 1.0005)
        assert t.delta == pytest.approx(t.observed - t.predicted, abs=1e-3)


def test_cli_with_a_benchmark(capsys) -> None:
    code = main(
        ["verify", str(PROFILE), str(BENCH / "v01011-qwen2-7b-a100-random-1k1k-n10.txt"), "--format", "json"]
    )
    payload = json.loads(capsys.readouterr().out)
    (report,) = payload["reports"]
    assert code == (1 if report["drift"] else 0)
    assert any("arrived at once" in n for n in report["notes"])
