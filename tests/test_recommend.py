"""Recommend pass: searched settings, their reasons and runner-ups, and the validation warnings."""

from __future__ import annotations

import time

from vllm_compile.api import load_profile_dict
from vllm_compile.passes.memory import plan_memory
from vllm_compile.passes.perf import estimate
from vllm_compile.passes.recommend import recommend, validate
from vllm_compile.passes.settings import decide_engine
from vllm_compile.resolve import resolve


def run(model: str, gpu: str, gpus: int = 1, **extra):
    d = {"profile_version": 1, "model": {"id": model}, "hardware": {"gpu_name": gpu, "gpus": gpus}}
    for k, v in extra.items():
        d.setdefault(k, {}).update(v) if isinstance(v, dict) and k in d else d.__setitem__(k, v)
    r = resolve(load_profile_dict(d), "t")
    e, dec = decide_engine(r)
    e2, dec2 = recommend(r, e, dec)
    return r, e2, dec2


def test_8b_chatbot_on_one_h100_keeps_bf16_and_tp1() -> None:
    r, e, dec = run("meta-llama/Llama-3.1-8B-Instruct", "H100", workload={"preset": "chatbot"})
    t = time.perf_counter()
    recommend(r, *decide_engine(r))  # the search itself: a few dozen closed-form candidates
    assert time.perf_counter() - t < 0.1
    assert (e.tensor_parallel_size, e.quantization, e.dtype, e.kv_cache_dtype) == (
        1,
        None,
        "bfloat16",
        "auto",
    )
    assert dec["max_num_batched_tokens"].by == "recommended"
    assert (
        "ITL" in dec["max_num_batched_tokens"].reason and "runner-up" in dec["max_num_batched_tokens"].reason
    )


def test_70b_on_4_a100_40gb_picks_tp4_and_fp8_when_allowed() -> None:
    r, e, dec = run("meta-llama/Llama-3.1-70B-Instruct", "A100 40GB", 4, workload={"preset": "chatbot"})
    # Unquantized, TP4 leaves room for a 4,960-token context only (NCCL and all-reduce buffers, larger
    # CUDA graphs), too short for the chatbot's 32 requests; four pipeline stages in the node hold them.
    assert e.tensor_parallel_size * e.pipeline_parallel_size == 4 and e.data_parallel_size == 1
    assert e.quantization is None  # not allowed
    assert dec["tensor_parallel_size"].by == "recommended"
    assert plan_memory(r, e).kv.tokens >= 32 * 413
    r, e, dec = run(
        "meta-llama/Llama-3.1-70B-Instruct", "A100 40GB", 4, workload={"preset": "chatbot"},
        policy={"allow_quantization": True},
    )  # fmt: skip
    assert (e.tensor_parallel_size, e.quantization) == (4, "fp8")
    assert dec["quantization"].by == "recommended"
    assert "runner-up quantization=none" in dec["quantization"].reason  # unquantized: KV short
    mem = plan_memory(r, e)
    assert mem.kv.tokens >= 32 * 413  # fp8 weights leave room for the chatbot's 32 requests


def test_405b_on_two_nodes_of_8_h100_is_tp8_pp2() -> None:
    r, e, dec = run(
        "meta-llama/Llama-3.1-405B-Instruct",
        "H100",
        16,
        workload={"preset": "chatbot"},
        hardware={"gpus_per_node": 8},
    )
    assert (e.tensor_parallel_size, e.pipeline_parallel_size, e.data_parallel_size) == (8, 2, 1)
    assert dec["pipeline_parallel_size"].by == "recommended"


def test_user_settings_are_never_overridden() -> None:
    r, e, dec = run(
        "meta-llama/Llama-3.1-8B-Instruct", "H100", 2,
        parallelism={"tensor_parallel_size": 2}, vllm={"max_num_batched_tokens": 4096},
    )  # fmt: skip
    assert e.tensor_parallel_size == 2 and dec["tensor_parallel_size"].by == "user"
    assert e.max_num_batched_tokens == 4096 and dec["max_num_batched_tokens"].by == "user"


def test_small_model_on_many_gpus_prefers_replicas_for_throughput() -> None:
    r, e, dec = run("meta-llama/Llama-3.1-8B-Instruct", "H100", 4, workload={"preset": "batch_inference"})
    assert e.data_parallel_size * e.tensor_parallel_size == 4
    assert e.data_parallel_size > 1  # four engines beat one TP 4 engine on throughput


def test_validate_warns_on_risky_user_choices() -> None:
    r, e, dec = run(
        "meta-llama/Llama-3.1-8B-Instruct", "RTX 4090", 2,
        vllm={"gpu_memory_utilization": 0.98}, parallelism={"tensor_parallel_size": 2},
        workload={"preset": "chatbot", "concurrency": 2000},
    )  # fmt: skip
    mem = plan_memory(r, e)
    warnings = validate(r, e, dec, mem, None)
    text = "\n".join(warnings)
    assert "desktop GPU" in text and "0.98" in text
    assert "over PCIe" in text
    assert "capacity" in text and "2000 in flight" in text


def test_unmeetable_latency_slo_says_what_would_meet_it() -> None:
    r, e, dec = run(
        "meta-llama/Llama-3.1-8B-Instruct", "H100",
        workload={"preset": "chatbot", "concurrency": 512, "slo": {"itl_ms": 15}},
    )  # fmt: skip
    mem = plan_memory(r, e)
    perf = estimate(r, e, mem)
    assert perf.slo_met is False
    advice = [w for w in validate(r, e, dec, mem, perf) if "SLO not met" in w]
    assert advice and "replicas" in advice[0]
    n = int(advice[0].split("so ")[1].split(" replicas")[0])
    assert n >= 2
