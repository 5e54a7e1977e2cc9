"""vLLM start-up logs of many releases (real, public: the source is named at the top of each fixture):
the parser extracts every figure they print, per rank, and classifies every failure kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllm_compile.observe.vllm_log import parse_log

LOGS = Path(__file__).parent / "fixtures" / "logs"


def log(name: str):
    return parse_log((LOGS / name).read_text(encoding="utf-8"))


def test_every_fixture_names_its_public_source() -> None:
    files = sorted(LOGS.glob("*.log"))
    assert len(files) >= 12
    for path in files:
        assert path.read_text(encoding="utf-8").startswith("# Source: https://github.com/"), path


def test_v0190_one_gpu_every_figure() -> None:
    r = log("v0190-llama31-8b-h100-tp1.log")
    assert (r.vllm_version, r.engine, r.started) == ("0.19.0", "V1", True)
    f = r.figures
    assert (f.gpu_total_gib, f.requested_gib, f.free_at_start_gib, f.baseline_gib) == (
        79.19,
        75.23,
        78.68,
        0.51,
    )
    assert (f.weights_gib, f.activation_peak_gib, f.non_torch_gib, f.non_kv_total_gib) == (
        14.99,
        1.89,
        0.25,
        17.12,
    )
    assert (f.cuda_graph_estimated_gib, f.cuda_graph_gib, f.kv_cache_gib) == (0.84, 0.91, 58.11)
    assert (f.kv_cache_tokens, f.max_concurrency, f.max_concurrency_tokens) == (476016, 58.11, 8192)
    assert r.settings["gpu_memory_utilization"] == 0.95
    assert r.settings["enable_prefix_caching"] is False
    assert r.settings["max_model_len"] == 8192
    assert r.settings["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert r.settings["dtype"] == "bfloat16"
    assert r.settings["max_num_batched_tokens"] == 8192 and r.settings["max_num_seqs"] == 1024
    assert r.failure is None


def test_v0190_tensor_parallel_ranks() -> None:
    r = log("v0190-llama31-8b-h100-tp2.log")
    assert {"TP0", "TP1"} <= set(r.ranks)
    assert r.settings["tensor_parallel_size"] == 2 and r.layout["world_size"] == 2
    assert r.layout["tensor_parallel_size"] == 2
    assert r.ranks["TP1"].non_torch_gib == 2.07 and r.ranks["TP0"].kv_cache_gib == 63.76
    assert (r.figures.weights_gib, r.figures.kv_cache_tokens, r.figures.max_concurrency) == (
        7.51,
        1044688,
        127.53,
    )
    assert (r.figures.cuda_graph_gib, r.figures.cuda_graph_estimated_gib) == (0.76, 1.69)


def test_v0190_pipeline_parallel_stages() -> None:
    r = log("v0190-llama31-8b-h100-pp2.log")
    assert r.settings["pipeline_parallel_size"] == 2 and r.layout["pipeline_parallel_size"] == 2
    assert r.binding_rank == "PP0"
    assert r.ranks["PP0"].weights_gib == 7.51 and r.ranks["PP0"].kv_cache_gib == 66.54
    assert r.ranks["PP1"].cuda_graph_gib == 0.65
    assert (r.figures.kv_cache_tokens, r.figures.max_concurrency) == (1075312, 131.26)


def test_v01011_worker_prefixes_ray_colour_codes_and_cut_lines() -> None:
    r = log("v01011-qwen2-7b-2xa100-tp2.log")  # "(VllmWorker TP0 pid=..)"
    assert r.vllm_version == "0.10.1.1" and {"TP0", "TP1"} <= set(r.ranks)
    assert (r.ranks["TP1"].weights_gib, r.ranks["TP0"].kv_cache_gib) == (7.1217, 31.83)
    assert (r.figures.kv_cache_tokens, r.figures.max_concurrency, r.figures.cuda_graph_gib) == (
        1192160,
        72.76,
        0.65,
    )
    # the source's lines are cut at a terminal width: only complete values are read
    assert r.settings["model"] == "Qwen2-7B-Instruct" and "gpu_memory_utilization" not in r.settings
    r = log("v01011-gpt-oss-120b-4xa100-ray-tp4.log")  # Ray workers on several nodes, ANSI colours
    assert r.settings["tensor_parallel_size"] == 4 and r.settings["gpu_memory_utilization"] == 0.8
    assert r.layout["world_size"] == 4 and r.settings["quantization"] == "mxfp4"
    f = r.figures
    assert (f.weights_gib, f.kv_cache_gib, f.kv_cache_tokens, f.max_concurrency) == (
        17.2217,
        45.32,
        2640144,
        284.25,
    )
    f = log("v01011-qwen2-7b-a100-util05.log").figures
    assert (f.weights_gib, f.kv_cache_gib, f.kv_cache_tokens, f.max_concurrency) == (
        14.2488,
        24.83,
        464848,
        28.37,
    )


def test_data_parallel_ranks_and_settings() -> None:
    r = log("v011x-qwen25-3b-dp4-rank-prefixes.log")
    assert r.layout["data_parallel_size"] == 4 and r.layout["world_size"] == 4
    r = log("v0091-qwen25-7b-tp2-dp2.log")
    assert r.vllm_version == "0.9.1.dev21+gd0bc2f810"
    assert (r.settings["tensor_parallel_size"], r.settings["data_parallel_size"]) == (2, 2)
    assert r.settings["max_num_batched_tokens"] == 8192


@pytest.mark.parametrize(
    ("name", "version", "engine", "settings"),
    [
        (
            "v0085-qwq-32b-bnb-v0-pp2-config.log",
            "0.8.5.dev169+gce17db808.d20250423",
            "V0",
            {"pipeline_parallel_size": 2, "max_model_len": 60000, "quantization": "bitsandbytes"},
        ),
        (
            "v0102-qwen25-05b-tp2-per-rank.log",
            "0.10.2.dev378+g4d7fe40fc.d20250829",
            "V1",
            {"tensor_parallel_size": 2, "max_model_len": 32768, "max_num_batched_tokens": 2048},
        ),
        (
            "v0141-llama31-8b-engine-config.log",
            "0.14.1",
            "V1",
            {"max_model_len": 131072, "data_parallel_size": 1, "quantization": None, "enforce_eager": False},
        ),
        (
            "v0240-qwen36-35b-a3b-nvfp4-rtx5090.log",
            "0.24.0",
            "V1",
            {"max_model_len": 131072, "quantization": "modelopt", "kv_cache_dtype": "fp8", "max_num_seqs": 1},
        ),
    ],
)
def test_version_and_engine_configuration_of_each_release(name, version, engine, settings) -> None:
    r = log(name)
    assert (r.vllm_version, r.engine) == (version, engine)
    for key, value in settings.items():
        assert r.settings[key] == value, key


def test_v0240_and_0_2x_kv_figures() -> None:
    f = log("v0240-qwen36-35b-a3b-nvfp4-rtx5090.log").figures
    assert (f.kv_cache_gib, f.kv_cache_tokens, f.max_concurrency, f.max_concurrency_tokens) == (
        5.98,
        567978,
        4.33,
        131072,
    )
    f = log("v021plus-lmcache-3326-cudagraph-profiled.log").figures
    assert (f.cuda_graph_estimated_gib, f.kv_cache_gib, f.kv_cache_tokens, f.max_concurrency) == (
        0.26,
        111.99,
        229344,
        14.0,
    )


def test_v0_breakdown_lines() -> None:
    r = log("v0064-t4-v0-worker-breakdown.log")
    assert r.engine == "V0"
    f = r.figures
    assert (f.gpu_total_gib, f.requested_gib, f.weights_gib, f.non_torch_gib) == (15.77, 14.2, 7.51, 0.39)
    assert (f.activation_peak_gib, f.kv_cache_gib, f.gpu_blocks) == (2.53, 3.76, 3852)
    assert (f.max_concurrency, f.max_concurrency_tokens) == (1.54, 40000)


def test_v1_kv_fp8_run() -> None:
    r = log("v010x-kv-fp8-len100k.log")
    assert r.engine == "V1" and r.failure is None
    assert (r.figures.kv_cache_gib, r.figures.kv_cache_tokens, r.figures.max_concurrency) == (
        10.55,
        230528,
        2.31,
    )


def test_failure_max_seq_len_v1() -> None:
    r = log("v010x-kv-fp8-len221k-max-seq-len.log")
    assert r.started is False and r.failure.kind == "max-seq-len"
    assert (r.failure.needed_gib, r.failure.available_gib, r.failure.estimated_max_model_len) == (
        10.12,
        5.59,
        122080,
    )
    assert r.figures.kv_cache_gib == 5.59


def test_failure_max_seq_len_v0() -> None:
    r = log("v06x-llama31-8b-rtx3090-v0-max-seq-len.log")
    assert r.engine == "V0" and r.failure.kind == "max-seq-len"
    f = r.figures
    assert (f.gpu_total_gib, f.weights_gib, f.non_torch_gib, f.kv_cache_gib) == (23.58, 14.9888, 0.35, 2.89)
    assert (f.gpu_blocks, f.max_concurrency, f.max_concurrency_tokens) == (1478, 0.82, 29000)


def test_failure_no_available_memory() -> None:
    r = log("v0064-qwen25-05b-no-available-memory.log")
    assert r.started is False and r.failure.kind == "no-kv-memory"
    assert r.failure.message.endswith("when initializing the engine.")


def test_failure_oom_during_graph_capture() -> None:
    r = log("v08x-ray-l40s-graph-capture-oom.log")
    assert r.failure.kind == "oom-graph-capture"
    assert (r.figures.gpu_total_gib, r.figures.weights_gib, r.figures.kv_cache_gib) == (44.53, 20.64, 21.2)


def test_failure_oom_sampler_warmup_after_the_figures() -> None:
    r = log("v0190-gpt-oss-20b-h100-sampler-oom.log")
    assert r.failure.kind == "oom-sampler-warmup" and r.started is False
    assert (r.figures.weights_gib, r.figures.kv_cache_gib, r.figures.cuda_graph_gib) == (13.64, 58.47, 1.84)
    assert r.settings["quantization"] == "mxfp4"


def test_failure_free_memory_at_start() -> None:
    r = log("v0190-codellama-34b-h100-tp2-free-memory.log")
    assert r.failure.kind == "free-memory"
    assert (r.figures.free_at_start_gib, r.figures.gpu_total_gib) == (60.87, 79.19)


def test_oom_phase_from_the_log_before_it() -> None:
    text = (
        "(Worker_TP0 pid=1) INFO [gpu_worker.py] Memory profiling takes 3 s\n"
        '(Worker_TP0 pid=1) ERROR   File "x/gpu_model_runner.py", line 1, in profile_run\n'
        "(Worker_TP0 pid=1) ERROR torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.\n"
    )
    assert parse_log(text).failure.kind == "oom-profiling"
    assert parse_log("torch.OutOfMemoryError: CUDA out of memory.\n").failure.kind == "oom"


def test_garbage_never_crashes() -> None:
    r = parse_log(
        "\x00\x01 not a log\n((((\nnon-default args: {'max_model_len': \nGPU KV cache size: , tokens\n"
    )
    assert r.failure is None and r.figures.kv_cache_tokens is None


def test_failure_negative_kv_v1() -> None:
    r = log("v011x-qwen25-omni-3b-h100-negative-kv.log")
    assert r.engine == "V1" and r.binding_rank == "DP0"
    assert r.figures.kv_cache_gib == -2.77
    assert r.started is False and r.failure.kind == "no-kv-memory"


def test_v0150_pipeline_stage_prefixes_and_settings() -> None:
    r = log("v0150-glm47-fp8-pp8-settings.log")
    assert r.vllm_version == "0.15.0rc1" and r.layout["pipeline_parallel_size"] == 8
    assert (r.settings["pipeline_parallel_size"], r.settings["max_model_len"]) == (8, 202752)
    assert (r.settings["gpu_memory_utilization"], r.settings["max_num_seqs"]) == (0.925, 128)


def test_v0202_tensor_parallel_with_nested_args() -> None:
    r = log("v0202-qwen36-27b-2x3090-tp2.log")
    assert r.vllm_version == "0.20.2rc1.dev9+g01d4d1ad3" and r.engine == "V1"
    assert r.settings["tensor_parallel_size"] == 2 and r.settings["max_num_batched_tokens"] == 8192
    assert r.settings["quantization"] == "auto_round" and r.settings["gpu_memory_utilization"] == 0.95
    assert r.binding_rank == "TP0" and r.figures.kv_cache_gib == 10.16
    assert (r.figures.kv_cache_tokens, r.figures.max_concurrency, r.figures.max_concurrency_tokens) == (
        200769,
        1.0,
        200000,
    )


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FRAGMENTS = st.sampled_from(
    [
        "(Worker_TP1 pid=3) ", "(EngineCore_DP0 pid=1) ", "(VllmWorker TP0 pid=2) ", "\x1b[36m", "INFO ",
        "Available KV cache memory: ", "GPU KV cache size: ", "Maximum concurrency for ", " tokens per request: ",
        "Model loading took ", "non-default args: {'max_model_len': ", "CUDA out of memory", "-1.5", "12,345",
        " GiB", "x", "\n", "(", ")", "{", "'", "version 0.", "To serve at least one request with the models's",
    ]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=40).map("".join))
def test_any_text_parses_without_crashing(text: str) -> None:
    r = parse_log(text)
    assert r.sha256 and (r.failure is None or r.started is False)
