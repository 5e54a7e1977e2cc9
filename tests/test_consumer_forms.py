"""Settings reach vLLM as each release reads them: start-up overrides planned, `false` said the way the
release's parser and `--config` loader honour it (checked against facts/data/vllm_flags, read from each
release's real parser by tools/extract_vllm_flags.py)."""

from __future__ import annotations

import pytest
import yaml

from tests.fixtures import artifact_checks as checks
from tests.fixtures.artifact_plans import make_plan
from vllm_compile import api
from vllm_compile.facts import vllm_flags
from vllm_compile.facts.vllm_versions import SUPPORTED_VERSIONS
from vllm_compile.render import render_artifacts


def _prefix_caching_as_parsed(fs: vllm_flags.FlagSet, argv: list[str]) -> bool | None:
    """enable_prefix_caching as the release's argparse leaves it: the last of its switches wins."""
    value = None
    for word in argv:
        option = word.split("=", 1)[0]
        flag = fs.lookup(option)
        if flag is not None and flag.dest == "enable_prefix_caching":
            value = not flag.turns_off(option)
    return value


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_prefix_caching_off_is_off_in_every_artifact_as_vllm_parses_it(version: str) -> None:
    """`enable_prefix_caching: false` reaches vLLM from every artifact, with each release's own option
    strings and the `--config` forms its loader was observed to honour (facts/data/vllm_flags)."""
    plan = make_plan(version=version, decided={"enable_prefix_caching": (False, "user")})
    files = render_artifacts(plan, ["command", "vllm-config", "compose", "helm", "k8s", "kserve"])
    fs = vllm_flags.flag_set(version)
    argvs = {"serve.sh": checks.serve_argv(files["serve.sh"])[3:]}
    (dep,) = checks.load_docs(files["k8s/deployment.yaml"])
    argvs["deployment"] = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    argvs["compose"] = yaml.safe_load(files["docker-compose.yaml"])["services"]["vllm"]["command"]
    (isvc,) = checks.load_docs(files["k8s/inferenceservice.yaml"])
    argvs["kserve"] = isvc["spec"]["predictor"]["model"]["args"]
    argvs["helm"] = checks.chart_argv(yaml.safe_load(files["helm-values.yaml"]))
    for name, argv in argvs.items():
        flags = argv[1:] if argv[:1] == [plan.resolved.profile.model.id] else argv  # the model positional
        assert vllm_flags.check_args(version, flags) == [], name
        assert _prefix_caching_as_parsed(fs, argv) is False, name
    config = yaml.safe_load(files["vllm-config.yaml"])
    (key,) = [k for k in config if "prefix-caching" in k]
    text = f"{key}: {'true' if config[key] else 'false'}\n"
    probes = vllm_flags._release(version)["config_probes"]
    (observed,) = [p for p in probes.values() if isinstance(p, dict) and p.get("yaml") == text]
    assert observed["ok"] and observed["changed"]["enable_prefix_caching"] is False


def _plan(version: str, **vllm: object):
    profile = api.load_profile_dict(
        {
            "profile_version": 1,
            "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 8192},
            "hardware": {"gpu_name": "H100", "gpus": 1},
            "vllm": {"version": version, **vllm},
        }
    )
    return api.plan_profile(profile, name="t")


@pytest.mark.parametrize(
    ("version", "runs"), [("0.8.5", True), ("0.11.0", True), ("0.11.1", False), ("0.33.0", False)]
)
def test_chunked_prefill_off_is_planned_as_vllm_runs_it(version: str, runs: bool) -> None:
    """0.8.5-0.11.0 turn chunked prefill back on at start-up (engine/arg_utils.py): the lock says what
    runs, and warns that the profile's `false` is not it."""
    plan = _plan(version, enable_chunked_prefill=False)
    assert plan.engine.enable_chunked_prefill is runs
    warned = [w for w in plan.verdict.warnings if "enable_chunked_prefill: false is not what runs" in w]
    assert bool(warned) is runs
    if runs:
        assert plan.decisions["enable_chunked_prefill"].by == "vllm-default"
    else:
        assert "--no-enable-chunked-prefill" in vllm_flags.plan_argv(
            plan
        ) or "--disable-chunked-prefill" in vllm_flags.plan_argv(plan)


def test_multi_node_chart_values_select_the_v1_engine() -> None:
    """production-stack ray-cluster.yaml sets VLLM_USE_V1=0 unless vllmConfig.v1 is set."""
    plan = make_plan(version="0.10.2", tp=8, pp=2)
    values = yaml.safe_load(render_artifacts(plan, ["helm"])["helm-values.yaml"])
    spec = values["servingEngineSpec"]["modelSpec"][0]
    assert spec["raySpec"]["enabled"] and spec["vllmConfig"]["v1"] == "1"
    assert checks.helm_errors(yaml.safe_dump(values)) == []
