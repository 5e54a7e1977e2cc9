"""`vllm-compile plan`: flags -> profile, JSON shape, exit codes (offline: catalog models only)."""

from __future__ import annotations

import argparse
import json

import pytest

from vllm_compile.cli import main
from vllm_compile.cli.flags import ProfileFlagError, add_profile_flags, profile_from_args


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_profile_flags(parser)
    return parser.parse_args(argv)


def test_flags_make_a_profile_and_override_a_base() -> None:
    args = _args(["-m", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100", "--tp", "2", "--max-model-len", "32k",
                  "-c", "64", "--kv-cache-dtype", "fp8", "--vllm-version", "0.19.0", "--enforce-eager"])  # fmt: skip
    base = {
        "profile_version": 1,
        "model": {"id": "other"},
        "hardware": {"gpu_name": "A100", "gpus": 2},
        "vllm": {"max_num_seqs": 64},
    }
    data = profile_from_args(args, base)
    assert data["model"] == {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 32768}
    assert data["hardware"] == {"gpu_name": "H100", "gpus": 2}
    assert data["parallelism"] == {"tensor_parallel_size": 2}
    assert data["vllm"] == {
        "max_num_seqs": 64,
        "kv_cache_dtype": "fp8",
        "version": "0.19.0",
        "enforce_eager": True,
    }
    assert data["workload"] == {"concurrency": 64}
    assert base["model"] == {"id": "other"}  # the base is not modified


def test_missing_model_is_a_clear_error() -> None:
    with pytest.raises(ProfileFlagError, match="--model"):
        profile_from_args(_args(["--gpu", "H100"]))
    with pytest.raises(SystemExit):
        _args(["-m", "x", "--gpu-memory-utilization", "1.5"])


def test_plan_json_llama_h100(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", "-m", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100", "--max-model-len", "8192",
               "--gpu-memory-utilization", "0.95", "--vllm-version", "0.19.0", "--json"])  # fmt: skip
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    mem, kv = out["memory"], out["kv_cache"]
    assert mem["gpu_total_gib"] == 79.19 and mem["requested_gib"] == 75.23
    assert mem["kv_cache_gib"] == pytest.approx(58.11, abs=0.15)  # vLLM 0.19.0 log: 58.11 GiB
    assert kv["bytes_per_token"] == 131072 and kv["block_size"] == 16
    assert kv["tokens"] == pytest.approx(476_016, rel=0.003)  # vLLM 0.19.0 log: 476,016 tokens
    assert out["verdict"]["starts"] is True and out["verdict"]["oom_risk"] in ("LOW", "MEDIUM")
    assert out["model"]["architecture"] == "LlamaForCausalLM"
    assert set(mem) >= {"weights_gib", "activation_peak_gib", "non_torch_gib", "cuda_graph_gib"}


def test_plan_exit_1_when_it_would_not_start(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", "-m", "Qwen/Qwen2.5-72B-Instruct", "--gpu", "H100", "--tp", "1", "--gpus", "1",
               "--max-model-len", "8192", "--vllm-version", "0.19.0", "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["verdict"]["starts"] is False and out["verdict"]["oom_risk"] == "HIGH"


def test_plan_human_and_invalid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-m", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100", "--explain"]) == 0
    text = capsys.readouterr().out
    assert "KV cache" in text and "Decisions" in text
    assert main(["plan", "--gpu", "H100"]) == 2
