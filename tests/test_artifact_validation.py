"""Every artifact is accepted by the program that reads it, for a matrix of plans and every supported vLLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures import artifact_checks as checks
from tests.fixtures.artifact_plans import make_plan, matrix_cases
from vllm_compile.facts import vllm_flags
from vllm_compile.render import TARGETS, render_artifacts

SHARED = Path(__file__).resolve().parents[2] / "shared"
CASES = matrix_cases()
IDS = [name for name, _ in CASES]


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[Any, dict[str, str]]]:
    out = {}
    for name, kw in CASES:
        plan = make_plan(**kw)
        # `lws` is what `k8s` emits for a multi-node plan; on one node it is asked for on its own below.
        out[name] = (plan, render_artifacts(plan, [t for t in TARGETS if t != "lws"]))
    return out


@pytest.mark.parametrize("case", IDS)
def test_compose_validates_against_compose_spec(rendered: dict, case: str) -> None:
    plan, files = rendered[case]
    if "docker-compose.yaml" not in files:
        assert plan.engine.gpus_per_replica > 8  # only a multi-node replica has no compose file
        return
    assert checks.compose_errors(files["docker-compose.yaml"]) == []


@pytest.mark.parametrize("case", IDS)
def test_kubernetes_objects_validate_strictly(rendered: dict, case: str) -> None:
    _, files = rendered[case]
    kinds = []
    for path, text in files.items():
        if not path.startswith("k8s/"):
            continue
        for obj in checks.load_docs(text):
            kinds.append(obj["kind"])
            if obj["kind"] in ("LeaderWorkerSet", "InferenceService"):
                assert checks.crd_errors(obj) == [], path
            else:
                assert checks.k8s_errors(obj) == [], path
    assert "Service" in kinds and "InferenceService" in kinds
    assert ("Deployment" in kinds) != ("LeaderWorkerSet" in kinds)


@pytest.mark.parametrize("case", ["1gpu", "tp4", "gated"])
def test_one_node_leaderworkerset_validates(case: str) -> None:
    plan = make_plan(**dict(CASES)[case])
    for targets in (["lws"], ["k8s", "lws"]):
        files = render_artifacts(plan, targets)
        objs = [o for p, t in files.items() if p.startswith("k8s/") for o in checks.load_docs(t)]
        services = [o for o in objs if o["kind"] == "Service"]
        lws = next(o for o in objs if o["kind"] == "LeaderWorkerSet")
        assert checks.crd_errors(lws) == []
        assert all(checks.k8s_errors(o) == [] for o in objs if o["kind"] != "LeaderWorkerSet")
        assert lws["spec"]["leaderWorkerTemplate"]["size"] == 1
        leader_labels = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["metadata"]["labels"]
        # Exactly one Service selects the LWS leader, and it selects nothing else.
        selecting = [s for s in services if s["spec"]["selector"].items() <= leader_labels.items()]
        assert len(selecting) == 1
        assert len({s["metadata"]["name"] for s in services}) == len(services)


@pytest.mark.parametrize("case", IDS)
def test_helm_values_validate_against_chart(rendered: dict, case: str) -> None:
    _, files = rendered[case]
    assert checks.helm_errors(files["helm-values.yaml"]) == []


@pytest.mark.parametrize("case", IDS)
def test_serve_sh_passes_shellcheck(rendered: dict, case: str, tmp_path: Path) -> None:
    _, files = rendered[case]
    path = tmp_path / "serve.sh"
    path.write_text(files["serve.sh"])
    assert checks.shellcheck_errors(path) == []


@pytest.mark.parametrize("case", IDS)
def test_every_flag_and_config_key_exists_in_the_version(rendered: dict, case: str) -> None:
    plan, files = rendered[case]
    version = plan.resolved.vllm.version
    argv = checks.serve_argv(files["serve.sh"])
    assert argv[:3] == ["vllm", "serve", plan.resolved.profile.model.id]
    assert vllm_flags.check_args(version, argv[3:]) == []
    fs = vllm_flags.flag_set(version)
    config = yaml.safe_load(files["vllm-config.yaml"])
    for key in config:
        assert f"--{key}" in fs.strings, key
    # The same argv in the Kubernetes manifest (flag and value are separate arguments).
    if "k8s/deployment.yaml" in files:
        (dep,) = checks.load_docs(files["k8s/deployment.yaml"])
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args == argv[2:]


@pytest.mark.parametrize(
    "case", [c for c in IDS if "@" in c and c.split("@")[1] in ("0.8.5", "0.10.2", "0.33.0")]
)
def test_flags_exist_in_the_released_wheels_reference(rendered: dict, case: str) -> None:
    """Reads ../shared (the flags extracted from the vLLM wheels) directly; skips without it."""
    plan, files = rendered[case]
    version = plan.resolved.vllm.version
    ref = checks.reference_flag_strings(SHARED, version)
    if ref is None:
        pytest.skip(f"{SHARED}/reference/vllm-flags/{version}.json is absent")
    argv = checks.serve_argv(files["serve.sh"])[3:]
    assert {w for w in argv if w.startswith("--")} <= ref
    assert {f"--{k}" for k in yaml.safe_load(files["vllm-config.yaml"])} <= ref


def test_matrix_covers_the_brief() -> None:
    names = dict(CASES)
    assert {"1gpu", "tp4", "tp8-pp2-2nodes", "awq", "fp8-kv", "gated"} <= set(names)
    from vllm_compile.facts.vllm_versions import SUPPORTED_VERSIONS

    assert {f"1gpu@{v}" for v in SUPPORTED_VERSIONS} <= set(names)


def test_the_validators_refuse_what_consumers_refuse(rendered: dict, tmp_path: Path) -> None:
    """Each check bites: a typo'd key, a wrong type, an unquoted expansion are caught."""
    _, files = rendered["1gpu"]
    (dep,) = checks.load_docs(files["k8s/deployment.yaml"])
    dep["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    assert checks.k8s_errors(dep)
    (dep,) = checks.load_docs(files["k8s/deployment.yaml"])
    dep["spec"]["replicas"] = "one"
    assert checks.k8s_errors(dep)

    compose = yaml.safe_load(files["docker-compose.yaml"])
    compose["services"]["vllm"]["healthcheck"]["start_periode"] = "10s"
    assert checks.compose_errors(yaml.safe_dump(compose))

    helm = yaml.safe_load(files["helm-values.yaml"])
    helm["servingEngineSpec"]["modelSpec"][0]["vllmConfig"]["maxModelLength"] = 4096
    assert checks.helm_errors(yaml.safe_dump(helm)) == [
        "servingEngineSpec.modelSpec[].vllmConfig.maxModelLength: not a key the production-stack 0.1.12 chart documents"
    ]
    helm["servingEngineSpec"]["modelSpec"] = "x"
    assert checks.helm_errors(yaml.safe_dump(helm))

    _, multi = rendered["tp8-pp2-2nodes"]
    (lws,) = checks.load_docs(multi["k8s/leaderworkerset.yaml"])
    lws["spec"]["leaderWorkerTemplate"]["sise"] = 2
    assert checks.crd_errors(lws)
    (isvc,) = checks.load_docs(multi["k8s/inferenceservice.yaml"])
    isvc["spec"]["predictor"]["model"]["arg"] = []
    assert checks.crd_errors(isvc)

    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nexec vllm serve $MODEL\n")
    assert checks.shellcheck_errors(bad)


REPO = Path(__file__).resolve().parents[1]
BUNDLED = sorted(p for p in (REPO / "profiles").rglob("*.y*ml") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", BUNDLED, ids=[p.relative_to(REPO / "profiles").as_posix() for p in BUNDLED])
def test_bundled_profiles_render_valid_artifacts(path: Path, tmp_path: Path) -> None:
    """Every bundled profile through the real pipeline (offline catalogs), every target, every validator."""
    from vllm_compile import api
    from vllm_compile.profile.loader import load_profile

    loaded = load_profile(path)
    plan = api.plan_profile(loaded.profile, name=loaded.name, base_dir=path.parent)
    files = render_artifacts(plan, [t for t in TARGETS if t != "lws" or plan.engine.gpus_per_replica > 8])
    version = plan.resolved.vllm.version
    fs = vllm_flags.flag_set(version)
    # One engine: serve.sh; a `roles:` profile: prefill/serve.sh and decode/serve.sh.
    scripts = [rel for rel in files if rel.endswith("serve.sh")]
    assert scripts
    for rel in scripts:
        argv = checks.serve_argv(files[rel])
        assert vllm_flags.check_args(version, argv[3:]) == []
        config = yaml.safe_load(files[rel.replace("serve.sh", "vllm-config.yaml")])
        assert all(f"--{k}" in fs.strings for k in config)
        (tmp_path / "serve.sh").write_text(files[rel])
        assert checks.shellcheck_errors(tmp_path / "serve.sh") == []
    if "docker-compose.yaml" in files:
        assert checks.compose_errors(files["docker-compose.yaml"]) == []
    if "helm-values.yaml" in files:  # not written for Ray-less multi-node DP (artifacts/dp_launch.py)
        assert checks.helm_errors(files["helm-values.yaml"]) == []
    elif plan.roles:  # a `roles:` profile writes its router's chart values (llm-d by default)
        assert plan.disaggregation["router"] != "production-stack" and "k8s/proxy-deployment.yaml" in files
    else:
        assert plan.engine.data_parallel_size > 1 and "k8s/leaderworkerset.yaml" in files
    for rel, text in files.items():
        if rel.startswith("k8s/"):
            for obj in checks.load_docs(text):
                is_crd = obj["kind"] in ("LeaderWorkerSet", "InferenceService")
                assert (checks.crd_errors(obj) if is_crd else checks.k8s_errors(obj)) == [], rel
