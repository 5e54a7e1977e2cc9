"""Decode context parallel: the KV tokens vLLM reports with -dcp N are N x those of the same KV bytes
(v1/core/kv_cache_utils.py: "Multiplying the GPU KV cache size by the dcp_world_size"), and a request
takes ceil(ceil(L / N) / block_size) blocks per rank."""

from __future__ import annotations

from math import ceil

import pytest

from vllm_compile import api
from vllm_compile.facts import vllm_flags
from vllm_compile.passes.settings import SettingsError


def profile(version: str = "0.11.0", **par) -> dict:
    return {
        "profile_version": 1,
        "model": {"id": "deepseek-ai/DeepSeek-V3", "max_model_len": 32768},
        "hardware": {"gpu_name": "H200", "gpus": 8},
        "parallelism": {"tensor_parallel_size": 8, **par},
        "vllm": {"version": version, "gpu_memory_utilization": 0.9},
    }


def plan(data: dict):
    return api.plan_profile(api.load_profile_dict(data))


@pytest.mark.parametrize("version", ["0.11.0", "0.33.0"])
def test_must_show_dcp8_reports_8x_tokens_at_the_same_kv_bytes(version: str) -> None:
    with_dcp = plan(profile(version, decode_context_parallel_size=8))
    without = plan(profile(version))
    assert with_dcp.memory.ranks[0].kv_cache_bytes == without.memory.ranks[0].kv_cache_bytes
    assert with_dcp.memory.kv.num_blocks == without.memory.kv.num_blocks
    # MLA: one 576-element latent per token per layer on every rank, not sharded by TP
    assert with_dcp.memory.kv.bytes_per_token == without.memory.kv.bytes_per_token == 61 * 576 * 2
    ratio = with_dcp.memory.kv.tokens / without.memory.kv.tokens
    assert ratio == pytest.approx(8, rel=1e-3)
    assert with_dcp.memory.kv.blocks_per_request == ceil(ceil(32768 / 8) / 16)
    assert with_dcp.memory.kv.max_concurrency == pytest.approx(
        8 * without.memory.kv.max_concurrency, rel=1e-3
    )


def test_dcp_is_a_flag_of_the_release() -> None:
    p = plan(profile(decode_context_parallel_size=8))
    argv = vllm_flags.plan_argv(p)
    assert argv[argv.index("--decode-context-parallel-size") + 1] == "8"
    assert vllm_flags.check_args("0.11.0", argv) == []
    assert any("decode context parallel 8" in a for a in p.memory.assumptions)


def test_dcp_must_divide_tp_and_exist_in_the_release() -> None:
    with pytest.raises(SettingsError, match="must divide tensor_parallel_size 8"):
        plan(profile(decode_context_parallel_size=3))
    with pytest.raises(SettingsError, match="0.10.2"):
        plan(profile("0.10.1", decode_context_parallel_size=2))


def test_dcp_largest_max_model_len_is_n_times_one_ranks_fit() -> None:
    small = {
        **profile(decode_context_parallel_size=8),
        "model": {"id": "deepseek-ai/DeepSeek-V3", "max_model_len": 4096},
    }
    small["vllm"]["gpu_memory_utilization"] = 0.64  # a KV cache of ~2 GiB: far less than the model's context
    with_dcp, without = plan(small), plan({**small, "parallelism": {"tensor_parallel_size": 8}})
    fit = without.memory.largest_max_model_len
    assert fit is not None and fit < 163840
    assert with_dcp.memory.largest_max_model_len == min(8 * fit, 163840)
