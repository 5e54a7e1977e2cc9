"""KV connectors and CPU KV offload: the release's flags, the memory each connector's code allocates,
the host memory the artifacts request, and the loud not-modelled warnings."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.fixtures import artifact_checks as checks
from vllm_compile import api
from vllm_compile.diagnostics import DiagnosticError
from vllm_compile.facts import vllm_flags
from vllm_compile.passes.kv_transfer import connectors_of, has_offloading_flags
from vllm_compile.render import render_artifacts
from vllm_compile.resolve import ResolveError
from vllm_compile.units import GIB

BYTES_PER_TOKEN = 131072  # Llama 3.1 8B, bf16, one GPU: 32 layers x 8 KV heads x 128 x 2 x 2 B


def _plan(version: str = "0.12.0", tp: int = 1, deploy: dict[str, Any] | None = None, **vllm: Any):
    data: dict[str, Any] = {
        "profile_version": 1,
        "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 8192},
        "hardware": {"gpu_name": "H100", "gpus": tp},
        "parallelism": {"tensor_parallel_size": tp},
        "workload": {"prompt_tokens": 1024, "gen_tokens": 128, "concurrency": 8},
        "vllm": {"version": version, **vllm},
    }
    if deploy:
        data["deploy"] = deploy
    return api.plan_profile(api.load_profile_dict(data), name="kv")


def _argv(plan) -> list[str]:
    files = render_artifacts(plan, ["command"])
    return checks.serve_argv(files["serve.sh"])[3:]


def test_offloading_flags_exist_from_0_11_1_in_the_flag_data() -> None:
    assert (
        not has_offloading_flags("0.11.0")
        and has_offloading_flags("0.11.1")
        and has_offloading_flags("0.33.0")
    )
    assert "OffloadingConnector" in connectors_of("0.11.0") and "OffloadingConnector" not in connectors_of(
        "0.10.2"
    )
    assert "NixlConnector" not in connectors_of("0.8.5") and "NixlConnector" in connectors_of("0.9.0")


@pytest.mark.parametrize("version", ["0.11.1", "0.12.0", "0.20.0", "0.33.0"])
def test_native_offload_is_the_releases_offloading_flags(version: str) -> None:
    plan = _plan(version, kv_offload={"size_gib": 16})
    argv = _argv(plan)
    i = argv.index("--kv-offloading-size")
    assert argv[i : i + 4] == ["--kv-offloading-size", "16", "--kv-offloading-backend", "native"]
    assert vllm_flags.check_args(version, argv) == []
    kv = plan.kv_connector
    assert kv["kv_transfer_config"]["kv_connector"] == "OffloadingConnector"
    assert kv["host_pinned_bytes_per_gpu"] == 16 * GIB and kv["host_pinned_gib_per_pod"] == 16.0


def test_offload_size_is_divided_over_the_tp_ranks_as_vllm_does() -> None:
    kv = _plan(tp=2, kv_offload={"size_gib": 16}).kv_connector
    # config/vllm.py: kv_bytes_per_rank = kv_offloading_size * 2**30 / (TP x PP); a pod holds both ranks.
    assert kv["host_pinned_bytes_per_gpu"] == 8 * GIB
    assert kv["gpus_per_pod"] == 2 and kv["host_pinned_bytes_per_pod"] == 16 * GIB


def test_artifacts_request_the_pinned_host_memory() -> None:
    plan = _plan(kv_offload={"size_gib": 24})
    files = render_artifacts(plan, ["compose", "k8s", "helm"])
    (dep,) = checks.load_docs(files["k8s/deployment.yaml"])
    assert checks.k8s_errors(dep) == []
    resources = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["memory"] == "24Gi" and "memory" not in resources["limits"]
    assert checks.compose_errors(files["docker-compose.yaml"]) == []
    service = yaml.safe_load(files["docker-compose.yaml"])["services"]["vllm"]
    assert service["deploy"]["resources"]["reservations"]["memory"] == "24g"
    assert checks.helm_errors(files["helm-values.yaml"]) == []
    spec = yaml.safe_load(files["helm-values.yaml"])["servingEngineSpec"]["modelSpec"][0]
    assert spec["requestMemory"] == "40Gi"  # the chart's 16Gi example figure plus the 24 GiB pinned
    assert any("pins 24.00 GiB per pod" in w for w in plan.verdict.warnings)


def test_a_memory_limit_below_the_pinned_memory_does_not_start() -> None:
    plan = _plan(kv_offload={"size_gib": 64}, deploy={"resources": {"memory": "32Gi"}})
    assert not plan.verdict.starts and plan.verdict.oom_risk == "HIGH"
    assert any("pins 64.00 GiB per pod" in r and "32Gi" in r for r in plan.verdict.reasons)
    assert _plan(kv_offload={"size_gib": 16}, deploy={"resources": {"memory": "32Gi"}}).verdict.starts


def test_native_offload_before_its_flags_points_at_the_connector() -> None:
    with pytest.raises((ResolveError, DiagnosticError), match="num_cpu_blocks"):
        _plan("0.11.0", kv_offload={"size_gib": 16})
    with pytest.raises((ResolveError, DiagnosticError), match="no native CPU KV offload"):
        _plan("0.10.2", kv_offload={"size_gib": 16})


def test_lmcache_offload_before_0_11_1_is_the_connector_vllm_would_configure() -> None:
    plan = _plan("0.11.0", tp=2, kv_offload={"size_gib": 20, "backend": "lmcache"})
    argv = _argv(plan)
    config = json.loads(argv[argv.index("--kv-transfer-config") + 1])
    assert config["kv_connector"] == "LMCacheConnectorV1" and config["kv_role"] == "kv_both"
    assert config["kv_connector_extra_config"]["lmcache.max_local_cpu_size"] == 10.0  # per TP rank
    assert plan.kv_connector["host_pinned_bytes_per_gpu"] == 10 * GIB


def test_offloading_connector_blocks_are_sized_from_the_kv_cache() -> None:
    extra = {"num_cpu_blocks": 1000, "block_size": 64}
    plan = _plan(
        "0.11.0", kv_transfer={"connector": "OffloadingConnector", "kv_connector_extra_config": extra}
    )
    (part,) = plan.kv_connector["connectors"]
    assert part["host_pinned_bytes_per_gpu"] == 1000 * 64 * BYTES_PER_TOKEN
    # Its memory is modelled; what it does to the step times is said, not silently left out.
    assert [x.split(" (")[0] for x in plan.kv_connector["not_modelled"]] == [
        "CPU-tier hits in the performance estimate"
    ]


def test_nixl_uses_the_kv_cache_itself_unless_it_stages_on_the_host() -> None:
    gpu = _plan(kv_transfer={"connector": "NixlConnector"})
    assert gpu.kv_connector["host_pinned_bytes_per_pod"] == 0
    host = _plan(kv_transfer={"connector": "NixlConnector", "kv_buffer_device": "cpu"})
    # A host copy of the KV cache (nixl_connector.py initialize_host_xfer_buffer).
    assert host.kv_connector["host_pinned_bytes_per_gpu"] == host.memory.binding.kv_cache_bytes > 40 * GIB
    assert host.memory.kv.tokens == gpu.memory.kv.tokens  # the GPU budget is the same


def test_multiconnector_adds_its_connectors() -> None:
    extra = {
        "connectors": [
            {"kv_connector": "NixlConnector", "kv_role": "kv_both"},
            {
                "kv_connector": "LMCacheConnectorV1",
                "kv_connector_extra_config": {"lmcache.max_local_cpu_size": 12},
            },
        ]
    }
    plan = _plan(kv_transfer={"connector": "MultiConnector", "kv_connector_extra_config": extra})
    names = [c["connector"] for c in plan.kv_connector["connectors"]]
    assert names == ["NixlConnector", "LMCacheConnectorV1"]
    assert plan.kv_connector["host_pinned_bytes_per_gpu"] == 12 * GIB
    argv = _argv(plan)
    assert json.loads(argv[argv.index("--kv-transfer-config") + 1])["kv_connector_extra_config"] == extra


def test_what_cannot_be_modelled_is_a_warning_never_silent() -> None:
    p2p = _plan(kv_transfer={"connector": "P2pNcclConnector", "kv_buffer_size": 5e9})
    assert any(
        w.startswith("not-modelled: KV connector: P2pNcclConnector buffers") and "5e+09" in w
        for w in p2p.verdict.warnings
    )
    lmcache = _plan(
        kv_transfer={
            "connector": "LMCacheConnectorV1",
            "kv_connector_extra_config": {"lmcache.remote_url": "lm://x:1"},
        }
    )
    warnings = [w for w in lmcache.verdict.warnings if w.startswith("not-modelled")]
    assert any("lmcache.remote_url" in w for w in warnings)
    assert any("its default 5 GiB" in w for w in warnings)  # pool size from LMCache's own config
    assert lmcache.kv_connector["host_pinned_bytes_per_gpu"] == 5 * GIB
    custom = _plan(kv_transfer={"connector": "NixlConnector", "kv_connector_module_path": "my.connector"})
    assert any("out of tree" in w for w in custom.verdict.warnings)


def test_offload_and_transfer_together_are_refused() -> None:
    with pytest.raises((ResolveError, DiagnosticError), match="MultiConnector"):
        _plan(kv_transfer={"connector": "NixlConnector"}, kv_offload={"size_gib": 8})


def test_bounds_refuse_absurd_sizes() -> None:
    with pytest.raises(DiagnosticError):
        _plan(kv_offload={"size_gib": 100000})
    with pytest.raises(DiagnosticError):
        _plan(kv_transfer={"connector": "NixlConnector", "kv_role": "sender"})


def test_kv_transfer_config_in_extra_args_is_read_into_the_field() -> None:
    config = {
        "kv_connector": "LMCacheConnectorV1",
        "kv_role": "kv_both",
        "kv_load_failure_policy": "recompute",
    }
    plan = _plan(extra_args=["--kv-transfer-config", json.dumps(config)])
    assert plan.resolved.extra_args.modelled == {"--kv-transfer-config": "vllm.kv_transfer"}
    assert plan.resolved.profile.vllm.kv_transfer.connector == "LMCacheConnectorV1"
    # The key no pass reads is named; the connector's memory is planned.
    assert any("--kv-transfer-config kv_load_failure_policy" in w for w in plan.verdict.warnings)
    assert plan.kv_connector["host_pinned_bytes_per_gpu"] == 5 * GIB
    argv = _argv(plan)
    assert argv.count("--kv-transfer-config") == 1  # written once, from the field


def test_an_unknown_connector_in_extra_args_is_passed_through_and_not_modelled() -> None:
    config = {"kv_connector": "MyConnector", "kv_role": "kv_both", "kv_connector_module_path": "my.mod"}
    plan = _plan(extra_args=["--kv-transfer-config", json.dumps(config)])
    assert plan.kv_connector is None and plan.resolved.profile.vllm.kv_transfer is None
    assert any(
        w.startswith("not-modelled: vllm.extra_args --kv-transfer-config") for w in plan.verdict.warnings
    )
    assert "--kv-transfer-config" in _argv(plan)


def test_offloading_flags_in_extra_args_are_read_into_kv_offload() -> None:
    plan = _plan(extra_args=["--kv-offloading-size", "32", "--kv-offloading-backend", "native"])
    assert plan.resolved.profile.vllm.kv_offload.size_gib == 32
    assert plan.kv_connector["host_pinned_gib_per_pod"] == 32.0
    argv = _argv(plan)
    assert argv.count("--kv-offloading-size") == 1 and vllm_flags.check_args("0.12.0", argv) == []
    alone = _plan(extra_args=["--kv-offloading-backend", "native"])
    assert alone.kv_connector is None
    assert any("not-modelled: vllm.extra_args --kv-offloading-backend" in w for w in alone.verdict.warnings)


def test_report_shows_the_connector_and_its_host_memory() -> None:
    text = render_artifacts(_plan(kv_offload={"size_gib": 16}), ["report"])["REPORT.md"]
    assert "## KV connector" in text and "pinned host memory 16.00 GiB per pod" in text
    plain = render_artifacts(_plan(), ["report"])["REPORT.md"]
    assert "## KV connector" not in plain
