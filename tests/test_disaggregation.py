"""Disaggregated prefill/decode: a `roles:` profile planned as two engines, its lock, report and artifacts
checked by their consumers' own schemas (llm-d modelservice, production-stack, compose-spec, Kubernetes
1.33 strict, each release's flag set)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.fixtures import artifact_checks as checks
from vllm_compile import api
from vllm_compile.facts import vllm_flags
from vllm_compile.lock import build_lock
from vllm_compile.passes.disaggregation import role_profile
from vllm_compile.profile.loader import load_profile
from vllm_compile.render import render_artifacts

ROOT = Path(__file__).resolve().parents[1]
PD_PROFILE = ROOT / "profiles" / "llama31-8b-h100-pd.yaml"
LLMD_SCHEMA = Path(__file__).resolve().parent / "fixtures" / "llm-d-modelservice" / "values.schema.json"
TARGETS = ["command", "vllm-config", "compose", "helm", "k8s", "report"]


def _profile(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "profile_version": 1,
        "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 8192},
        "hardware": {"gpu_name": "H100", "gpus": 1, "interconnect": "nvlink"},
        "workload": {"prompt_tokens": 2048, "gen_tokens": 256, "concurrency": 32},
        "vllm": {"version": "0.11.0"},
        "roles": {
            "prefill": {"parallelism": {"tensor_parallel_size": 1}, "replicas": 1},
            "decode": {"parallelism": {"tensor_parallel_size": 1}, "replicas": 1},
        },
    }
    for key, value in over.items():
        data[key] = value
    return data


@cache
def _pd_plan(version: str = "0.11.0"):
    data = _profile(vllm={"version": version})
    return api.plan_profile(api.load_profile_dict(data), name="pd")


@cache
def _pd_files(version: str = "0.11.0", router: str = "llm-d") -> dict[str, str]:
    if router == "llm-d":
        return render_artifacts(_pd_plan(version), TARGETS)
    data = _profile(vllm={"version": version})
    data["roles"] = {**data["roles"], "router": router}
    return render_artifacts(api.plan_profile(api.load_profile_dict(data), name="pd"), TARGETS)


def test_the_router_picks_the_chart_values_written() -> None:
    written = {r: set(_pd_files(router=r)) for r in ("llm-d", "production-stack", "toy-proxy")}
    assert "llm-d-values.yaml" in written["llm-d"] and "helm-values.yaml" not in written["llm-d"]
    assert (
        "helm-values.yaml" in written["production-stack"]
        and "llm-d-values.yaml" not in written["production-stack"]
    )
    assert not {"llm-d-values.yaml", "helm-values.yaml"} & written["toy-proxy"]
    assert {"docker-compose.yaml", "pd-proxy.py"} <= written["toy-proxy"]
    assert "router toy-proxy: no chart values" in _pd_files(router="toy-proxy")["REPORT.md"]


def test_roles_profile_in_profiles_plans_two_engines() -> None:
    loaded = load_profile(PD_PROFILE, "pd.yaml")
    plan = api.plan_profile(loaded.profile, name="llama31-8b-h100-pd")
    assert set(plan.roles) == {"prefill", "decode"}
    pre, dec = plan.roles["prefill"], plan.roles["decode"]
    # Each role is an ordinary engine plan with its own settings: the prefill role's override lands.
    assert pre.engine.max_num_batched_tokens == 8192 and pre.decisions["max_num_batched_tokens"].by == "user"
    assert pre.engine.tensor_parallel_size == dec.engine.tensor_parallel_size == 1
    # Llama 3.1 8B: 32 layers x 8 KV heads x 128 x (K, V) x 2 bytes = 131072 B per token on one GPU.
    assert pre.memory.kv.bytes_per_token == 131072
    assert plan.verdict.starts and all(r.startswith(("prefill: ", "decode: ")) for r in plan.verdict.reasons)
    for role in (pre, dec):
        assert role.kv_connector["kv_transfer_config"] == {
            "kv_connector": "NixlConnector",
            "kv_role": "kv_both",
        }


def test_role_profile_merges_over_the_profile() -> None:
    data = _profile()
    data["roles"]["prefill"]["vllm"] = {"max_num_batched_tokens": 16384}
    data["roles"]["decode"]["hardware"] = {"gpu_name": "H200"}
    data["vllm"]["kv_transfer"] = {"connector": "P2pNcclConnector"}
    profile = api.load_profile_dict(data)
    pre, dec = role_profile(profile, "prefill"), role_profile(profile, "decode")
    assert pre.vllm.max_num_batched_tokens == 16384 and dec.vllm.max_num_batched_tokens == "auto"
    assert pre.hardware.gpu_name == "H100" and dec.hardware.gpu_name == "H200"
    assert pre.hardware.interconnect == dec.hardware.interconnect == "nvlink"
    # A directed connector gets the producer/consumer roles; the version and model are shared.
    assert (pre.vllm.kv_transfer.kv_role, dec.vllm.kv_transfer.kv_role) == ("kv_producer", "kv_consumer")
    assert pre.vllm.version == dec.vllm.version == "0.11.0" and pre.roles is None


def test_combined_verdict_fails_when_one_pool_does_not_start() -> None:
    data = _profile()
    # 8B bf16 weights (~15 GiB) do not fit a 24 GiB L4 at utilization 0.5 with an 8k context.
    data["roles"]["decode"]["hardware"] = {"gpu_name": "L4"}
    data["roles"]["decode"]["vllm"] = {"gpu_memory_utilization": 0.5}
    plan = api.plan_profile(api.load_profile_dict(data), name="pd")
    assert plan.roles["prefill"].verdict.starts and not plan.roles["decode"].verdict.starts
    assert not plan.verdict.starts and plan.verdict.oom_risk == "HIGH"
    assert any(r.startswith("decode: ") for r in plan.verdict.reasons)
    assert "comparison" not in plan.disaggregation  # no performance for a deployment that does not start


def test_disaggregated_estimate_is_physics_of_both_pools() -> None:
    d = _pd_plan().disaggregation
    # KV per request: 2048 prompt tokens x 131072 B x 1 rank.
    assert d["kv_transfer"]["bytes_per_request"] == 2048 * 131072
    # NVLink on H100: 900 GB/s bidirectional, 450 one way, 0.8 of it; plus 0.5 ms per request.
    assert d["kv_transfer"]["ms"] == pytest.approx(0.5 + 2048 * 131072 / (450e9 * 0.8) * 1e3, rel=1e-3)
    dis, agg = d["disaggregated"], d["aggregated"]
    assert dis["gpus"] == agg["gpus"] == 2 and agg["replicas"] == 2
    # TTFT carries prefill + transfer; the decode pool's ITL has no prefill chunks in its steps.
    assert dis["ttft_ms"] > d["prefill"]["ms_per_prompt"] + d["kv_transfer"]["ms"]
    assert dis["itl_ms"] < agg["itl_ms"]
    # Little's law over the split layout: 32 requests in flight = throughput x mean latency.
    assert dis["request_rps"] * dis["e2e_s"] == pytest.approx(32, rel=0.02)
    ratio = d["ratio"]["prefill_per_decode"]
    assert ratio == pytest.approx(
        d["decode"]["requests_per_s_per_replica"] / d["prefill"]["requests_per_s_per_replica"], rel=1e-2
    )
    c = d["comparison"]
    winner, loser = (dis, agg) if c["winner"] == "disaggregated" else (agg, dis)
    assert winner["output_tok_s_per_gpu"] >= loser["output_tok_s_per_gpu"]
    assert c["by_pct"] == pytest.approx(
        100 * (winner["output_tok_s_per_gpu"] / loser["output_tok_s_per_gpu"] - 1), rel=1e-2
    )


def test_slo_decides_the_comparison_when_one_layout_misses_it() -> None:
    data = _profile(
        workload={"prompt_tokens": 2048, "gen_tokens": 256, "concurrency": 32, "slo": {"itl_ms": 14}}
    )
    d = api.plan_profile(api.load_profile_dict(data), name="pd").disaggregation
    assert d["aggregated"]["itl_ms"] > 14 >= d["disaggregated"]["itl_ms"]
    assert d["comparison"]["winner"] == "disaggregated" and d["comparison"]["basis"] == "SLO"


def test_replicas_auto_follow_the_ratio_for_a_request_rate() -> None:
    data = _profile(workload={"prompt_tokens": 2048, "gen_tokens": 256, "request_rate": 30})
    data["roles"]["prefill"]["replicas"] = "auto"
    data["roles"]["decode"]["replicas"] = "auto"
    d = api.plan_profile(api.load_profile_dict(data), name="pd").disaggregation
    rp, rd = d["replicas"]["prefill"], d["replicas"]["decode"]
    assert (
        rp * d["prefill"]["requests_per_s_per_replica"]
        >= 30
        > (rp - 1) * d["prefill"]["requests_per_s_per_replica"]
    )
    assert (
        rd * d["decode"]["requests_per_s_per_replica"]
        >= 30
        > (rd - 1) * d["decode"]["requests_per_s_per_replica"]
    )


def test_lock_has_both_engines_and_single_engine_locks_are_unchanged() -> None:
    plan = _pd_plan()
    lock = build_lock(plan, profile_path="p.yaml", profile_data={}, inputs_hash="0" * 64, artifacts={})
    assert set(lock["roles"]) == {"prefill", "decode"}
    for role in lock["roles"].values():
        assert role["engine"]["tensor_parallel_size"] == 1
        assert role["memory"]["kv_cache"]["tokens"] > 0 and role["verdict"]["starts"]
    assert lock["disaggregation"]["estimate"] is True and "comparison" in lock["disaggregation"]
    single = api.plan_profile(
        api.load_profile_dict({k: v for k, v in _profile().items() if k != "roles"}), name="one"
    )
    plain = build_lock(single, profile_path="p.yaml", profile_data={}, inputs_hash="0" * 64, artifacts={})
    assert not {"roles", "disaggregation", "kv_connector"} & set(plain)


def test_report_has_both_memory_tables_and_the_comparison() -> None:
    text = _pd_files()["REPORT.md"]
    assert "## Memory per GPU (GiB): prefill pool" in text and "## Memory per GPU (GiB): decode pool" in text
    assert "## Disaggregated vs aggregated (estimate)" in text
    winner = _pd_plan().disaggregation["comparison"]["winner"]
    assert f"**{winner} wins" in text or f"**{winner} meets" in text


@cache
def _llmd_validator() -> jsonschema.Validator:
    return jsonschema.Draft7Validator(json.loads(LLMD_SCHEMA.read_text()))


def test_llmd_values_pass_the_chart_schema_and_follow_its_templates() -> None:
    values = yaml.safe_load(_pd_files()["llm-d-values.yaml"])
    assert [e.message for e in _llmd_validator().iter_errors(values)] == []
    for role in ("prefill", "decode"):
        (container,) = values[role]["containers"]
        assert container["modelCommand"] == "vllmServe"
        # The chart writes --port, --tensor-parallel-size and --served-model-name itself (_helpers.tpl).
        assert not {"--port", "--served-model-name", "--tensor-parallel-size"} & set(container["args"])
        assert vllm_flags.check_args("0.11.0", container["args"]) == []
        assert {"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": "5600"} in container["env"]
    # vLLM listens behind the routing sidecar on the decode pods (routing.proxy.targetPort).
    assert (
        values["decode"]["containers"][0]["ports"][0]["containerPort"]
        == values["routing"]["proxy"]["targetPort"]
    )


def test_llmd_schema_refuses_what_the_chart_refuses() -> None:
    values = yaml.safe_load(_pd_files()["llm-d-values.yaml"])
    values["decode"]["replicas"] = "two"
    assert list(_llmd_validator().iter_errors(values))  # the fixture is a real schema, not a rubber stamp


def test_production_stack_pd_values_pass_the_chart_schema() -> None:
    text = _pd_files(router="production-stack")["helm-values.yaml"]
    assert checks.helm_errors(text) == []
    values = yaml.safe_load(text)
    assert values["routerSpec"]["routingLogic"] == "disaggregated_prefill"
    labels = [s["labels"]["model"] for s in values["servingEngineSpec"]["modelSpec"]]
    assert values["routerSpec"]["extraArgs"] == [
        "--prefill-model-labels",
        labels[0],
        "--decode-model-labels",
        labels[1],
    ]
    for spec in values["servingEngineSpec"]["modelSpec"]:
        assert vllm_flags.check_args("0.11.0", spec["vllmConfig"]["extraArgs"]) == []


def test_k8s_manifests_pass_kubernetes_validate_strict() -> None:
    files = _pd_files()
    paths = sorted(p for p in files if p.startswith("k8s/"))
    assert {"k8s/prefill-deployment.yaml", "k8s/decode-deployment.yaml", "k8s/proxy-deployment.yaml"} <= set(
        paths
    )
    for path in paths:
        for doc in checks.load_docs(files[path]):
            assert checks.k8s_errors(doc) == [], path
    (proxy_cm,) = checks.load_docs(files["k8s/proxy-configmap.yaml"])
    assert proxy_cm["data"]["pd-proxy.py"] == files["pd-proxy.py"]


def test_compose_pair_passes_compose_spec_and_splits_the_gpus() -> None:
    text = _pd_files()["docker-compose.yaml"]
    assert checks.compose_errors(text) == []
    services = yaml.safe_load(text)["services"]
    assert set(services) == {"prefill", "decode", "proxy"}
    devices = [
        services[r]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
        for r in ("prefill", "decode")
    ]
    assert devices == [["0"], ["1"]]
    proxy = services["proxy"]["command"]
    assert proxy[proxy.index("--prefill") + 1] == "http://prefill:8000"
    assert proxy[proxy.index("--decode") + 1] == "http://decode:8100"
    for role in ("prefill", "decode"):
        command = services[role]["command"]
        assert vllm_flags.check_args("0.11.0", command[1:]) == []


def test_compose_is_skipped_for_pools_larger_than_one_node() -> None:
    # As for an engine that spans nodes (render.py _compose): the target is skipped and REPORT.md says so.
    data = _profile()
    data["roles"]["decode"]["replicas"] = 8
    plan = api.plan_profile(api.load_profile_dict(data), name="pd")
    files = render_artifacts(plan, ["compose", "report"])
    assert "docker-compose.yaml" not in files
    assert "the pools need 9 GPUs and one compose host has 8" in files["REPORT.md"]


def test_pd_proxy_is_valid_python_speaking_vllms_protocol() -> None:
    source = _pd_files()["pd-proxy.py"]
    compile(source, "pd-proxy.py", "exec")
    assert '"do_remote_decode": True' in source and "kv_transfer_params" in source


@pytest.mark.parametrize("version", ["0.9.0", "0.10.2", "0.11.0", "0.12.0", "0.33.0"])
def test_every_release_with_nixl_accepts_the_pd_flags(version: str) -> None:
    files = _pd_files(version)
    for role in ("prefill", "decode"):
        argv = checks.serve_argv(files[f"{role}/serve.sh"])[3:]
        assert vllm_flags.check_args(version, argv) == [], (version, role)
        config = yaml.safe_load(files[f"{role}/vllm-config.yaml"])
        assert (
            json.loads(config["kv-transfer-config"])
            if isinstance(config["kv-transfer-config"], str)
            else config["kv-transfer-config"]
        )


def test_nixl_before_its_release_is_refused_at_the_field() -> None:
    data = _profile(vllm={"version": "0.8.5"})
    with pytest.raises(Exception, match="no NixlConnector"):
        api.plan_profile(api.load_profile_dict(data), name="pd")


def test_pools_are_not_judged_on_the_slo_as_if_each_served_whole_requests() -> None:
    data = _profile(
        workload={"prompt_tokens": 2048, "gen_tokens": 256, "concurrency": 32, "slo": {"itl_ms": 14}}
    )
    plan = api.plan_profile(api.load_profile_dict(data), name="pd")
    # The SLO is the split layout's (disaggregation.comparison), not advice inside each pool's verdict.
    assert not any("SLO" in w for w in plan.verdict.warnings)
    assert plan.disaggregation["disaggregated"]["slo_met"] is True


def _heterogeneous(ttft_ms: float) -> dict[str, Any]:
    """Llama 3.3 70B FP8: TP1 prefill engines on H200, one TP4 decode engine, over InfiniBand."""
    return {
        "profile_version": 1,
        "model": {"id": "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", "max_model_len": 16384},
        "hardware": {"gpu_name": "H200", "gpus": 1, "interconnect": "infiniband"},
        "workload": {
            "prompt_tokens": 8192,
            "gen_tokens": 1024,
            "request_rate": 2,
            "slo": {"ttft_ms_p99": ttft_ms, "itl_ms": 40},
        },
        "vllm": {"version": "0.12.0"},
        "roles": {
            "prefill": {"parallelism": {"tensor_parallel_size": 1}, "replicas": "auto"},
            "decode": {
                "hardware": {"gpus": 4},
                "parallelism": {"tensor_parallel_size": 4},
                "replicas": "auto",
            },
        },
    }


def test_auto_prefill_replicas_meet_the_ttft_slo_when_it_can_be_met() -> None:
    d = api.plan_profile(api.load_profile_dict(_heterogeneous(6000)), name="het").disaggregation
    assert d["disaggregated"]["ttft_ms"] <= 6000 and d["disaggregated"]["slo_met"]
    # InfiniBand NDR: 50 GB/s per GPU x 0.8; 8192 tokens x 327680 B (80 layers x 8 KV heads x 128 x 2 x 2 B).
    assert d["kv_transfer"]["bytes_per_request"] == 8192 * 327680
    assert d["kv_transfer"]["ms"] == pytest.approx(0.5 + 8192 * 327680 / 40e9 * 1e3, rel=1e-3)
    fewer = api.plan_profile(api.load_profile_dict(_heterogeneous(12000)), name="het").disaggregation
    assert fewer["replicas"]["prefill"] < d["replicas"]["prefill"]


def test_a_ttft_slo_below_one_prefill_does_not_buy_engines_in_vain() -> None:
    # An SLO below what one prefill of the prompt takes (read from the plan, not assumed).
    one = api.plan_profile(api.load_profile_dict(_heterogeneous(6000)), name="het").disaggregation
    slo = 0.9 * one["prefill"]["ms_per_prompt"]
    d = api.plan_profile(api.load_profile_dict(_heterogeneous(slo)), name="het").disaggregation
    assert d["prefill"]["ms_per_prompt"] > slo
    rate, cap = 2, d["prefill"]["requests_per_s_per_replica"]
    assert d["replicas"]["prefill"] == int(rate // cap) + 1  # just a stable queue
    # The aggregated layout on the same GPUs cannot keep up with the rate: sustaining it decides.
    assert d["aggregated"]["saturated"] and not d["disaggregated"]["saturated"]
    assert (
        d["comparison"]["basis"] == "sustains the request rate"
        and d["comparison"]["winner"] == "disaggregated"
    )


def test_auto_replicas_reach_the_artifacts() -> None:
    plan = api.plan_profile(api.load_profile_dict(_heterogeneous(6000)), name="het")
    wanted = plan.disaggregation["replicas"]
    files = render_artifacts(plan, ["k8s", "helm"])
    for role in ("prefill", "decode"):
        (dep,) = checks.load_docs(files[f"k8s/{role}-deployment.yaml"])
        assert dep["spec"]["replicas"] == wanted[role]
        assert yaml.safe_load(files["llm-d-values.yaml"])[role]["replicas"] == wanted[role]
    assert "docker-compose.yaml" not in render_artifacts(plan, ["compose"])  # 10 x 1 + 1 x 4 GPUs > 8


def test_a_roles_error_points_at_the_roles_field(tmp_path: Path) -> None:
    data = _profile()
    data["roles"]["prefill"]["parallelism"]["tensor_parallel_size"] = 3  # 8 KV heads: TP 3 cannot shard
    path = tmp_path / "pd.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = api.compile_paths([path], out_dir=tmp_path / "out")
    (diag,) = [d for item in result.results for d in item.diagnostics if d.severity == "error"]
    line = path.read_text().splitlines()[diag.line - 1]
    assert "tensor_parallel_size: 3" in line and "tensor_parallel_size=3" in diag.message
    assert result.exit_code == 2


def test_plan_command_says_both_pools_and_the_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    from vllm_compile.cli import main

    assert main(["plan", "--profile", str(PD_PROFILE), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["disaggregation"]["pools"]) == {"prefill", "decode"}
    assert out["disaggregation"]["comparison"]["winner"] in ("aggregated", "disaggregated")


def test_a_role_field_given_as_null_is_the_profiles() -> None:
    # Found by the schema-wide fuzz: `roles.prefill.hardware.gpu_name: null` made an invalid pool (exit 3).
    data = _profile()
    data["roles"] = {**data["roles"], "prefill": {**data["roles"]["prefill"], "hardware": {"gpu_name": None}}}
    plan = api.plan_profile(api.load_profile_dict(data), name="pd")
    assert plan.roles["prefill"].resolved.gpu.name == plan.roles["decode"].resolved.gpu.name


def test_pools_wider_than_one_host_skip_compose_and_say_so() -> None:
    # Two TP8 pools on 8-GPU nodes: the commonest production P/D layout failed with the default targets.
    data = _profile(
        model={"id": "meta-llama/Llama-3.1-70B-Instruct", "max_model_len": 8192},
        hardware={"gpu_name": "H100", "gpus": 8, "gpus_per_node": 8},
    )
    data["roles"] = {role: {"parallelism": {"tensor_parallel_size": 8}} for role in ("prefill", "decode")}
    files = render_artifacts(api.plan_profile(api.load_profile_dict(data), name="pd"), TARGETS)
    assert "docker-compose.yaml" not in files and "k8s/proxy-deployment.yaml" in files
    assert (
        "docker-compose.yaml not written: the pools need 16 GPUs and one compose host has 8"
        in files["REPORT.md"]
    )
