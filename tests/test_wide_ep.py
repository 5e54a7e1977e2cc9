"""Wide expert parallel: release facts, DeepEP buffer sizes against DeepEP's own formulas worked by hand,
where vLLM counts them, EPLB's redundant experts, the verdict and the flags/env of each release.

DeepSeek-R1 (config.json): hidden 7168, 256 routed experts, moe_intermediate 2048, 61 layers (58 MoE).
"""

from __future__ import annotations

import shlex

import pytest

from vllm_compile import api
from vllm_compile.facts import vllm_flags
from vllm_compile.facts.wide_ep import facts
from vllm_compile.passes import all2all, memory
from vllm_compile.passes.memory_terms import terms_for
from vllm_compile.passes.settings import SettingsError
from vllm_compile.units import GIB, MIB

R1 = "deepseek-ai/DeepSeek-R1"


def profile(version: str = "0.11.0", util: float = 0.9, **par) -> dict:
    return {
        "profile_version": 1,
        "model": {"id": R1, "max_model_len": 4096},
        "hardware": {"gpu_name": "H100", "gpus": 16, "gpus_per_node": 8},
        "parallelism": {
            "tensor_parallel_size": 1,
            "data_parallel_size": 16,
            "enable_expert_parallel": True,
            **par,
        },
        "vllm": {"version": version, "gpu_memory_utilization": util, "enforce_eager": True},
    }


def plan(data: dict):
    return api.plan_profile(api.load_profile_dict(data))


def feature(p, prefix: str) -> int:
    return next(f.bytes_per_gpu for f in p.memory.features if f.name.startswith(prefix))


@pytest.fixture(scope="module")
def ll011():
    return plan(profile(all2all_backend="deepep_low_latency"))


@pytest.fixture(scope="module")
def agrs011():
    return plan(profile())


def test_release_facts_follow_each_parser() -> None:
    old, v011, v0111, v014 = facts("0.10.2"), facts("0.11.0"), facts("0.11.1"), facts("0.14.0")
    assert (old.backend_form, old.default_backend) == ("env", "naive")
    assert (v011.backend_form, v011.default_backend) == ("env", "allgather_reducescatter")
    assert "deepep_low_latency" in v011.backends and "mori" not in v011.backends
    assert v0111.backend_form == "flag" and v0111.default_backend == "allgather_reducescatter"
    assert v014.default_backend == "allgather_reducescatter"
    assert "nixl_ep" in facts("0.18.0").backends and "nixl_ep" not in facts("0.17.0").backends
    assert (facts("0.11.0").redundant_experts_form, facts("0.12.0").redundant_experts_form) == (
        "flag",
        "config",
    )
    assert not facts("0.11.0").has_pcp and facts("0.12.0").has_pcp
    assert not facts("0.10.1").has_dcp and facts("0.10.2").has_dcp
    assert v011.nccl_dp_sync and facts("0.12.0").nccl_dp_sync and not v014.nccl_dp_sync


def test_low_latency_rdma_hint_is_deepeps_layout() -> None:
    # csrc/config.hpp LowLatencyLayout for 256 tokens, hidden 7168, 256 experts, by hand:
    dispatch_msg = 16 + max(7168 * 2, 7168 + 56 * 4)  # 14352
    combine_msg = 56 * 4 + 7168 * 2  # 14560
    send = recv = 256 * 256 * combine_msg
    total = 2 * send + 2 * recv + 2 * 1024
    assert dispatch_msg < combine_msg
    assert all2all.low_latency_rdma_hint(256, 7168, 256) == (total + 128) // 128 * 128
    assert all2all.low_latency_rdma_hint(256, 7168, 256) / GIB == pytest.approx(3.555, abs=0.001)
    # the receive buffers grow with the experts (redundant ones included), the send buffer with tokens
    assert all2all.low_latency_rdma_hint(256, 7168, 288) > all2all.low_latency_rdma_hint(256, 7168, 256)
    assert all2all.low_latency_rdma_hint(128, 7168, 256) < all2all.low_latency_rdma_hint(256, 7168, 256)


def test_deepep_low_latency_buffers_are_non_torch(ll011, agrs011) -> None:
    buf = feature(ll011, "all-to-all buffers")
    # NVSHMEM heap: the 3.555 GiB hint in 512 MiB granules = 4 GiB; NVLink buffer 1024 MiB + metadata;
    # 32 MiB workspace.
    assert buf == 4 * GIB + 1024 * MIB + 8 * 20 + 32 * MIB
    r, base = ll011.memory.ranks[0], agrs011.memory.ranks[0]
    assert r.non_torch_bytes - base.non_torch_bytes == buf
    # The only weights difference: 0.11.0 FusedMoE.__init__ allocates the DP-chunk staging tensors of
    # each of the 58 MoE layers with DeepEP LL (256 x 7168 hidden + 256 x 256 router logits, bf16).
    assert r.weights_bytes - base.weights_bytes == 58 * 256 * (7168 + 256) * 2
    assert r.baseline_bytes == base.baseline_bytes  # after the snapshot: inside the budget


def test_dp_sync_nccl_only_where_the_release_syncs_over_nccl() -> None:
    p011 = plan(profile())
    p014 = plan(profile("0.14.0"))
    assert feature(p011, "DP sync") == round((1.77 + 0.05 * 7) * GIB)
    assert not any(f.name.startswith("DP sync") for f in p014.memory.features)


def test_must_show_r1_non_torch_and_kv_against_the_public_run(ll011) -> None:
    """Issue #14: the public DeepEP low-latency run logged 6.32 GiB non-torch and 0.83 GiB KV per GPU in a
    71.27 GiB budget, so weights + activation were 71.27 - 6.32 - 0.83 = 64.12 GiB. With the MoE
    layers' persistent workspaces and staging tensors the plan's weights + activation is within 0.5% of
    that; non-torch is 15.2% over (7.28 GiB: DeepEP 5.03 + DP-sync NCCL communicator 2.12 + 0.13), so the
    KV cache is not within 15% (0.04 GiB) and the plan says it would not start (the public run started).
    This pins what the model gives today so a change to it shows."""
    r = ll011.memory.ranks[0]
    assert r.non_torch_bytes / GIB == pytest.approx(7.28, abs=0.01)
    assert abs(r.non_torch_bytes / GIB - 6.32) / 6.32 < 0.16
    implied = r.requested_bytes / GIB - 6.32 - 0.83
    assert abs((r.weights_bytes + r.activation_peak_bytes) / GIB - implied) / implied < 0.005
    assert r.kv_cache_bytes / GIB == pytest.approx(0.045, abs=0.01)
    assert not ll011.verdict.starts


def test_batched_experts_workspaces_outlive_the_moe_layer(ll011) -> None:
    """fused_moe/modular_kernel.py (0.11.0, 0.12.0): FusedMoEModularKernel.shared_buffers are class-level
    SharedResizableBuffers, kept after the forward, so they sit under the sampler's peak. DeepEP LL with
    BatchedTritonOrDeepGemmExperts: E_local = 256 / 16 = 16, M = 256 tokens x 16 dispatchers = 4096,
    K = 7168, N = 2 x 2048: workspace13 (16, 4096, 7168) + workspace2 (16, 4096, 2048) in bf16."""
    ws = 16 * 4096 * (7168 + 4096 // 2) * 2
    assert ws == 1_207_959_552  # 1.125 GiB
    assert feature(ll011, "MoE batched-experts workspaces") == ws
    r = ll011.memory.ranks[0]
    model, engine = ll011.resolved.model, ll011.engine
    transient = all2all.batched_moe_bytes(model, engine, "0.11.0")
    without = memory.activation_peak(model, engine, terms_for("0.11.0"), 0, batched_moe=transient)
    assert r.activation_peak_bytes - without == ws
    # The dispatch receive tensor is the only transient term left: fp8 (16, 4096, 7168) + fp32 scales.
    assert transient == 16 * 4096 * (7168 + 56 * 4)


def test_staging_tensors_are_weights_in_0110_and_activation_in_0120(ll011) -> None:
    """0.11.0 allocates FusedMoE.batched_hidden_states / batched_router_logits in __init__ (inside load_model:
    "Model loading took"), 0.12.0 in the first forward (ensure_dp_chunking_init: the profile run)."""
    staging = 58 * 256 * (7168 + 256) * 2  # 220,463,104 bytes
    ll012 = plan(profile("0.12.0", all2all_backend="deepep_low_latency"))
    assert feature(ll011, "MoE DP-chunk staging") == feature(ll012, "MoE DP-chunk staging") == staging
    r11, r12 = ll011.memory.ranks[0], ll012.memory.ranks[0]
    assert r11.weights_bytes - r12.weights_bytes == staging
    assert r12.activation_peak_bytes - r11.activation_peak_bytes == staging
    assert r11.kv_cache_bytes == r12.kv_cache_bytes
    # 0.12.0 at 0.9 (publicly: did not start): too little KV for one request, and the reason names the
    # all-to-all buffers and the utilizations that start (non-KV 71.23 GiB + one 4096-token request
    # 0.27 GiB over 79.19 GiB: 0.91).
    assert not ll012.verdict.starts
    text = " ".join(ll012.verdict.reasons)
    assert "one 4,096-token request needs more KV cache" in text
    assert "all-to-all buffers (deepep_low_latency) 5.03 GiB" in text
    assert "largest gpu_memory_utilization that starts is 0.99 (from 0.91 up)" in text


def test_failure_names_the_buffers_and_the_utilizations_that_start() -> None:
    p = plan(profile("0.12.0", util=0.82, all2all_backend="deepep_low_latency"))
    assert not p.verdict.starts
    text = " ".join(p.verdict.reasons)
    assert "all-to-all buffers (deepep_low_latency) 5.03 GiB" in text
    assert "largest gpu_memory_utilization that starts is 0.99 (from 0.91 up)" in text
    assert "need at least" not in text  # the experts shard over DP: TP x PP GPUs is the wrong count


def test_eplb_redundant_experts_add_whole_experts_per_rank() -> None:
    p = plan(profile(all2all_backend="deepep_low_latency", enable_eplb=True, num_redundant_experts=32))
    extra = feature(p, "EPLB redundant")
    # 288 physical experts over 16 ranks: 18 per rank instead of 16 -> 2 more per MoE layer; one fp8
    # expert is 3 x 7168 x 2048 bytes plus its 128x128-block fp32 scales.
    per_expert = 3 * 7168 * 2048 * (1 + 4 / (128 * 128))
    assert extra == pytest.approx(2 * 58 * per_expert, rel=0.01)
    # the RDMA buffers grow with the physical experts too
    assert all2all.low_latency_rdma_hint(256, 7168, 288) > all2all.low_latency_rdma_hint(256, 7168, 256)


@pytest.mark.parametrize(
    ("par", "path", "words"),
    [
        ({"all2all_backend": "nixl_ep"}, "all2all_backend", "accepts"),
        ({"enable_eplb": False, "num_redundant_experts": 8}, "num_redundant_experts", "enable_eplb"),
        ({"prefill_context_parallel_size": 2}, "prefill_context_parallel_size", "0.12.0"),
        ({"data_parallel_size_local": 3}, "data_parallel_size_local", "divide"),
    ],
)
def test_settings_a_release_lacks_are_diagnosed(par: dict, path: str, words: str) -> None:
    with pytest.raises(SettingsError) as exc:
        plan(profile(**par))
    assert exc.value.path[-1] == path and words in str(exc.value)


def test_backend_needs_expert_parallel() -> None:
    data = profile(all2all_backend="pplx")
    data["parallelism"]["enable_expert_parallel"] = False
    with pytest.raises(SettingsError, match="enable_expert_parallel"):
        plan(data)


def test_unmodelled_backend_says_so() -> None:
    p = plan(profile("0.12.0", all2all_backend="flashinfer_all2allv"))
    assert any("not modelled: the flashinfer_all2allv" in a for a in p.memory.assumptions)


def test_pplx_buffers_as_pplx_kernels_allocates_them() -> None:
    # Internode (16 ranks over 2 nodes), fp8 block dispatch: perToken = round16(7168 + 224 + 4) = 7408;
    # maxBatchTokens = 16 local experts x 16 DP groups (TP1) x 256 tokens = 65536.
    p = plan(profile("0.12.0", all2all_backend="pplx"))
    batch, per_token = 16 * 16 * 256, 7408
    nvshmem = (
        256 * per_token
        + batch * per_token
        + batch * 7168 * 4
        + 256 * 256 * 7168 * 4
        + 8 * (2 * 256 + 256 + 16)
    )
    assert nvshmem / GIB == pytest.approx(3.96, abs=0.01)
    feat = next(f for f in p.memory.features if f.name == "all-to-all buffers (pplx)")
    granule = 1 << 29
    assert feat.bytes_per_gpu == -(-nvshmem // granule) * granule + 5 * batch * 4 + 256 * 4
    # Intranode (8 ranks, one node): one IPC buffer per peer, the combine side (hidden x fp32) is larger.
    one = plan(
        {
            **profile("0.12.0"),
            "hardware": {"gpu_name": "H100", "gpus": 8, "gpus_per_node": 8},
            "parallelism": {
                "tensor_parallel_size": 1,
                "data_parallel_size": 8,
                "enable_expert_parallel": True,
                "all2all_backend": "pplx",
            },
        }
    )
    local = 32
    buffer = 16 + 128 + 256 * local * 7168 * 4
    expected = 8 * buffer + 6 * local * 256 * 8 * 4 + 4 * 256
    assert next(f.bytes_per_gpu for f in one.memory.features if f.name.startswith("all-to-all")) == expected


def _argv(p) -> list[str]:
    return vllm_flags.plan_argv(p)


def test_backend_is_an_env_var_before_the_flag_and_a_flag_after() -> None:
    from vllm_compile.facts.wide_ep import wide_ep_env

    p011 = plan(profile(all2all_backend="deepep_low_latency", enable_eplb=True, num_redundant_experts=32))
    assert wide_ep_env(p011) == {"VLLM_ALL2ALL_BACKEND": "deepep_low_latency"}
    argv = _argv(p011)
    assert "--all2all-backend" not in argv
    assert argv[argv.index("--num-redundant-experts") + 1] == "32" and "--enable-eplb" in argv
    assert vllm_flags.check_args("0.11.0", argv) == []

    p012 = plan(
        profile("0.12.0", all2all_backend="deepep_low_latency", enable_eplb=True, num_redundant_experts=32)
    )
    assert wide_ep_env(p012) == {}
    argv = _argv(p012)
    assert argv[argv.index("--all2all-backend") + 1] == "deepep_low_latency"
    assert argv[argv.index("--eplb-config") + 1] == '{"num_redundant_experts":32}'
    assert vllm_flags.check_args("0.12.0", argv) == []


def test_user_data_parallel_size_takes_its_gpus_before_pipeline_stages(agrs011) -> None:
    e = agrs011.engine
    assert (e.tensor_parallel_size, e.pipeline_parallel_size, e.data_parallel_size) == (1, 1, 16)


def test_multi_node_dp_is_a_rayless_leaderworkerset() -> None:
    import yaml

    from tests.fixtures import artifact_checks as checks
    from vllm_compile.render import render_artifacts

    p = plan(profile(all2all_backend="deepep_low_latency"))
    files = render_artifacts(p, ["command", "vllm-config", "compose", "helm", "k8s", "kserve", "report"])
    assert "docker-compose.yaml" not in files and "helm-values.yaml" not in files
    (lws,) = checks.load_docs(files["k8s/leaderworkerset.yaml"])
    assert checks.crd_errors(lws) == []
    for doc in checks.load_docs(files["k8s/service.yaml"]):
        assert checks.k8s_errors(doc) == []
    spec = lws["spec"]["leaderWorkerTemplate"]
    assert spec["size"] == 2
    leader = spec["leaderTemplate"]["spec"]["containers"][0]
    worker = spec["workerTemplate"]["spec"]["containers"][0]
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert {"name": "VLLM_ALL2ALL_BACKEND", "value": "deepep_low_latency"} in worker["env"]
    lead_script, work_script = leader["args"][0], worker["args"][0]
    assert '--data-parallel-address "$${LWS_LEADER_ADDRESS}"' in lead_script
    assert "--headless" not in lead_script and "--data-parallel-size-local 8" in lead_script
    assert '--data-parallel-start-rank "$$((LWS_WORKER_INDEX * 8))" --headless' in work_script
    assert "readinessProbe" not in worker and "ports" not in worker
    # every word of the worker's command is a flag of the release
    words = shlex.split(work_script.split("exec ", 1)[1])
    assert vllm_flags.check_args("0.11.0", words[3:]) == []
    serve = files["serve.sh"]
    assert '--data-parallel-address "${DP_LEADER_ADDRESS}"' in serve
    assert "export VLLM_ALL2ALL_BACKEND=deepep_low_latency" in serve
    assert yaml.safe_load(files["vllm-config.yaml"])["data-parallel-size"] == 16
    assert "RDMA" in files["REPORT.md"]


def test_all_to_all_time_per_moe_layer_over_nvlink_and_the_fabric() -> None:
    from vllm_compile.passes import all2all_perf

    intra = plan(
        {
            **profile(all2all_backend="deepep_low_latency"),
            "hardware": {"gpu_name": "H100", "gpus": 8, "gpus_per_node": 8},
            "parallelism": {
                "tensor_parallel_size": 1,
                "data_parallel_size": 8,
                "enable_expert_parallel": True,
                "all2all_backend": "deepep_low_latency",
            },
        }
    )
    # At 0.9 the 16xH100 R1 plan does not start (no performance section): 0.95 leaves it a KV cache.
    inter = plan(profile(util=0.95, all2all_backend="deepep_low_latency"))
    ci = all2all_perf.cost(intra.resolved.model, intra.engine, intra.resolved.gpu, 8, "unknown")
    cx = all2all_perf.cost(inter.resolved.model, inter.engine, inter.resolved.gpu, 8, "infiniband")
    assert ci.remote_share == 0 and cx.remote_share == 0.5
    # fp8 dispatch: 7168 bytes + 56 fp32 scales; bf16 combine: 14336 bytes; to each of the 8 experts
    assert (ci.dispatch_bytes, ci.combine_bytes, ci.topk) == (7168 + 224, 14336, 8)
    tokens = 128
    bytes_ = tokens * 8 * (7168 + 224 + 14336)
    assert ci.layer_time(tokens) == pytest.approx(all2all_perf.LAT_INTRA_S + bytes_ / (900e9 / 2))
    assert cx.layer_time(tokens) == pytest.approx(all2all_perf.LAT_INTER_S + bytes_ / 2 / 50e9)
    assert cx.layer_time(tokens) > ci.layer_time(tokens)
    assert any(
        "dispatch + combine per MoE layer over 16 EP ranks" in a for a in inter.performance.assumptions
    )
    # the step pays it on every MoE layer: without EP the same engine has no all-to-all term
    sm_ep = __import__("vllm_compile.passes.perf", fromlist=["step_model"]).step_model(
        inter.resolved, inter.engine
    )
    assert sm_ep.all2all is not None and sm_ep.ep_dp == 16


def test_releases_older_than_every_parser_dump_have_no_wide_ep_facts() -> None:
    f = facts("0.6.4")
    assert (f.backend_form, f.has_dp_launch, f.has_dcp, f.nccl_dp_sync) == ("none", False, False, False)


def test_memory_bench_prints_the_wide_ep_entries_apart(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench" / "memory_accuracy.py"
    spec = importlib.util.spec_from_file_location("memory_accuracy", bench)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    data = bench.parent / "data" / "wide_ep_observations.yaml"
    assert mod.main(["--file", str(data), "--wide-ep", str(data)]) == 0
    out = capsys.readouterr().out
    assert "7.28/6.32" in out and "0.05/0.83" in out
    assert "SUMMARY wide EP non_torch: MAE 15.2%" in out
    assert "SUMMARY wide EP start-up failures predicted as not starting: 1/1" in out
    assert "SKIPPED moonshotai/Kimi-K2.6 is not in the offline model catalog" in out


def test_data_parallel_size_local_sets_the_pods_per_node() -> None:
    from tests.fixtures import artifact_checks as checks
    from vllm_compile.render import render_artifacts

    p = plan(profile(all2all_backend="deepep_low_latency", data_parallel_size_local=4))
    files = render_artifacts(p, ["command", "k8s"])
    (lws,) = checks.load_docs(files["k8s/leaderworkerset.yaml"])
    spec = lws["spec"]["leaderWorkerTemplate"]
    assert spec["size"] == 4
    script = spec["workerTemplate"]["spec"]["containers"][0]["args"][0]
    assert script.count("--data-parallel-size-local") == 1 and "--data-parallel-size-local 4" in script
    assert '"$$((LWS_WORKER_INDEX * 4))"' in script
    assert spec["leaderTemplate"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert files["serve.sh"].count("--data-parallel-size-local") == 1


def test_wide_ep_flags_in_extra_args_become_the_profile_fields() -> None:
    data = profile("0.12.0")
    data["vllm"]["extra_args"] = ["--all2all-backend", "deepep_low_latency", "--enable-eplb"]
    p = plan(data)
    assert p.engine.all2all_backend == "deepep_low_latency" and p.engine.enable_eplb
    assert feature(p, "all-to-all buffers") > 4 * GIB
    argv = vllm_flags.plan_argv(p)
    assert argv.count("--all2all-backend") == 1 and argv.count("--enable-eplb") == 1


def test_low_latency_rdma_hint_matches_a_public_table() -> None:
    # vllm-project/vllm#57894: hidden 5120, 16 ranks, 448 experts (384 + 64 EPLB redundant)
    table = {2048: 35.55, 1856: 32.21, 1840: 31.94, 1536: 26.66}
    for tokens, gib in table.items():
        assert all2all.low_latency_rdma_hint(tokens, 5120, 448) / GIB == pytest.approx(gib, abs=0.005)


def test_batched_all_to_all_caps_the_step_where_the_release_has_no_dp_chunk() -> None:
    from vllm_compile.passes.settings import decide_engine
    from vllm_compile.resolve import resolve

    engine, decisions = decide_engine(
        resolve(api.load_profile_dict(profile("0.33.0", all2all_backend="deepep_low_latency")), "p")
    )
    assert (engine.max_num_batched_tokens, engine.max_num_seqs) == (256, 256)
    assert "one dispatch's tokens" in decisions["max_num_batched_tokens"].reason
    new = plan(profile("0.33.0", all2all_backend="deepep_low_latency"))
    # a user's step size is the dispatch size: the buffers grow with it (vllm#57894's 2048 rows)
    data = profile("0.33.0", all2all_backend="deepep_low_latency")
    data["vllm"]["max_num_batched_tokens"] = 2048
    big = plan(data)
    hint = all2all.low_latency_rdma_hint(2048, 7168, 256)
    assert feature(big, "all-to-all buffers") >= hint > feature(new, "all-to-all buffers")
    # 0.11.0 chunks the MoE layer by VLLM_MOE_DP_CHUNK_SIZE and keeps vLLM's step default
    old = plan(profile(all2all_backend="deepep_low_latency"))
    assert old.engine.max_num_batched_tokens == 8192
