"""CUDA-graph capture sizes chosen for the workload, their memory, coverage and padding."""

from __future__ import annotations

import pytest

from vllm_compile.api import load_profile_dict, plan_profile
from vllm_compile.facts.vllm_flags import plan_argv
from vllm_compile.facts.vllm_versions import cudagraph_capture_sizes
from vllm_compile.passes.batching_sim import simulate
from vllm_compile.passes.capture_sizes import CaptureError, validate_sizes
from vllm_compile.units import GIB


def _plan(workload: dict, **vllm):
    return plan_profile(
        load_profile_dict(
            {
                "profile_version": 1,
                "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 8192},
                "hardware": {"gpu_name": "L4"},
                "workload": workload,
                "vllm": vllm,
            }
        )
    )


@pytest.fixture(scope="module")
def chat():
    return _plan({"preset": "chatbot", "concurrency": 8}, max_cudagraph_capture_size="auto")


@pytest.fixture(scope="module")
def batch():
    return _plan({"preset": "batch_inference"}, max_cudagraph_capture_size="auto")


def test_auto_covers_the_decode_batches_of_the_workload(chat) -> None:
    g = chat.cuda_graphs
    assert g["mode"] == "decided"
    assert g["max_size"] >= 8  # eight requests in flight: every decode step has 8 tokens
    assert g["decode_coverage"] == 1.0
    default = cudagraph_capture_sizes(chat.resolved.vllm, chat.engine.max_num_seqs, 2048, chat.resolved.gpu)
    assert g["sizes"] == [s for s in default if s <= g["max_size"]]
    assert chat.engine.cudagraph_capture_sizes == g["sizes"]
    d = chat.decisions["max_cudagraph_capture_size"]
    assert d.by == "recommended" and d.runner_up is not None and "runner-up" in d.reason
    argv = plan_argv(chat)
    i = argv.index("--cudagraph-capture-sizes")
    assert argv[i + 1 : i + 1 + len(g["sizes"])] == [str(s) for s in g["sizes"]]


def test_graph_memory_grows_with_sizes_and_takes_kv_tokens(chat) -> None:
    cands = chat.cuda_graphs["candidates"]
    assert [c["max_size"] for c in cands] == sorted(c["max_size"] for c in cands)
    gib = [c["graph_gib"] for c in cands]
    kv = [c["kv_tokens"] for c in cands]
    assert gib == sorted(gib) and gib[0] < gib[-1]
    assert kv == sorted(kv, reverse=True) and kv[0] > kv[-1]
    # The KV tokens the graphs take are their bytes over the KV bytes per token (graphs deducted in 0.33).
    per_token = chat.memory.kv.bytes_per_token
    assert chat.cuda_graphs["kv_tokens_traded"] == chat.memory.binding.cuda_graph_bytes // per_token
    assert chat.memory.binding.cuda_graph_bytes == pytest.approx(
        chat.cuda_graphs["graph_gib"] * GIB, rel=1e-3
    )


def test_a_batch_workload_and_a_chat_workload_get_different_sizes(chat, batch) -> None:
    a, b = chat.cuda_graphs, batch.cuda_graphs
    assert a["max_size"] != b["max_size"]
    assert "balanced objective" in a["reason"] and "throughput objective" in b["reason"]
    # The batch workload runs as many requests as the KV cache holds: the cap covers that decode batch.
    running = min(batch.engine.max_num_seqs, batch.memory.kv.tokens // (1024 + 128))
    assert b["max_size"] >= running - 1
    assert b["decode_coverage"] == 1.0
    # Its chunked-prefill steps (2048 tokens) exceed every candidate: they run without graphs.
    assert b["coverage"] < 1.0 and b["step_tokens_p99"] == 2048


def test_default_sizes_are_described_not_changed() -> None:
    plan = _plan({"preset": "chatbot", "concurrency": 8})
    g = plan.cuda_graphs
    assert g["mode"] == "default" and g["candidates"] == []
    assert len(g["sizes"]) == 51 and g["max_size"] == 512
    assert "--cudagraph-capture-sizes" not in plan_argv(plan)


def test_explicit_sizes_are_validated_and_emitted() -> None:
    plan = _plan({"preset": "chatbot", "concurrency": 8}, cudagraph_capture_sizes=[16, 1, 8, 4096])
    assert plan.engine.cudagraph_capture_sizes == [1, 8, 16]
    assert plan.decisions["cudagraph_capture_sizes"].by == "user"
    warnings = " ".join(plan.verdict.warnings)
    assert "not sorted" in warnings and "exceed max_num_batched_tokens" in warnings
    argv = plan_argv(plan)
    i = argv.index("--cudagraph-capture-sizes")
    assert argv[i + 1 : i + 4] == ["1", "8", "16"]


@pytest.mark.parametrize("version", ["0.10.2", "0.11.0", "0.33.0"])
@pytest.mark.parametrize("given", ["field", "extra_args"])
def test_explicit_sizes_reach_every_artifact(version: str, given: str) -> None:
    # Both forms used to fail at render: the sizes went into extra_args as a feature flag, which then
    # collided with the setting the artifacts emit ("extra_args sets --cudagraph-capture-sizes").
    from tests.fixtures import artifact_checks as checks
    from vllm_compile.facts import vllm_flags
    from vllm_compile.render import render_artifacts

    flag = "--cudagraph-capture-sizes" if version == "0.33.0" else "--cuda-graph-sizes"  # renamed in 0.11.1
    vllm: dict = {"version": version}
    if given == "field":
        vllm["cudagraph_capture_sizes"] = [1, 2, 4, 8]
    else:
        vllm["extra_args"] = [flag, "1", "2", "4", "8"]
    plan = _plan({"preset": "chatbot", "concurrency": 8}, **vllm)
    files = render_artifacts(plan, ["command", "vllm-config"])
    argv = checks.serve_argv(files["serve.sh"])
    assert vllm_flags.check_args(version, argv[3:]) == []
    i = argv.index(flag)
    assert argv[i + 1 : i + 5] == ["1", "2", "4", "8"] and argv.count(flag) == 1


def test_validate_sizes_rejects_non_positive(chat) -> None:
    with pytest.raises(CaptureError):
        validate_sizes([0, 8], chat.engine, chat.resolved)
    sizes, warnings = validate_sizes([1, 2, 4, 512], chat.engine, chat.resolved)
    assert sizes == [1, 2, 4, 512] and any("max_num_seqs" in w for w in warnings)


def test_releases_that_do_not_deduct_graphs_trade_no_kv() -> None:
    plan = _plan({"preset": "chatbot", "concurrency": 8}, version="0.19.0", max_cudagraph_capture_size="auto")
    g = plan.cuda_graphs
    assert g["kv_tokens_traded"] == 0
    assert any("headroom" in w for w in plan.verdict.warnings)


def test_simulation_counts_engine_steps_by_tokens_scheduled(chat) -> None:
    from vllm_compile.passes.perf import step_model

    sm = step_model(chat.resolved, chat.engine)
    hist: dict = {}
    simulate(sm, prompts=[100] * 8, gens=[50] * 8, max_concurrency=4, max_num_seqs=256,
             max_num_batched_tokens=2048, kv_tokens=100_000, step_tokens=hist)  # fmt: skip
    decode = {t: n for (t, mixed), n in hist.items() if not mixed}
    mixed = {t: n for (t, mixed), n in hist.items() if mixed}
    # Two waves of four: the first prefill is one step of 400 tokens, then 49 decode steps of 4 each wave.
    assert mixed.get(400, 0) >= 1
    assert max(decode) == 4
    # Every token after the first comes from a decode step: 8 requests x 49 tokens.
    assert sum(n * t for t, n in decode.items()) == 8 * 49
