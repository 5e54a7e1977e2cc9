"""render_artifacts: golden files per artifact kind, safety of odd names, errors a user can act on.

Regenerate the goldens with `UPDATE_GOLDEN=1 pytest tests/test_render.py`, then review the diff.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures import artifact_checks as checks
from tests.fixtures.artifact_plans import AWQ_7B, LLAMA_8B, LLAMA_70B, MATRIX, make_plan
from vllm_compile.artifacts import context
from vllm_compile.render import TARGETS, RenderError, render_artifacts

GOLDEN = Path(__file__).resolve().parent / "golden" / "artifacts"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

GOLDEN_CASES = {
    "1gpu": (MATRIX["1gpu"], list(TARGETS)),
    "gated": (MATRIX["gated"], [t for t in TARGETS if t != "lws"]),
    "tp8-pp2-2nodes": (MATRIX["tp8-pp2-2nodes"], list(TARGETS)),
    "awq-0.8.5": ({**MATRIX["awq"], "version": "0.8.5"}, ["command", "vllm-config", "report"]),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_artifacts(case: str) -> None:
    kw, targets = GOLDEN_CASES[case]
    files = render_artifacts(make_plan(**kw), targets)
    folder = GOLDEN / case
    if UPDATE:
        for path, text in files.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text, encoding="utf-8", newline="\n")
    expected = {
        str(p.relative_to(folder)): p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.is_file()
    }
    assert sorted(files) == sorted(expected)
    for path, text in files.items():
        assert text == expected[path], f"{case}/{path} differs from its golden (UPDATE_GOLDEN=1 to refresh)"


def test_every_artifact_kind_has_a_golden() -> None:
    names = {p.name for p in GOLDEN.rglob("*") if p.is_file()}
    assert {
        "serve.sh",
        "vllm-config.yaml",
        "profile.yaml",
        "docker-compose.yaml",
        "helm-values.yaml",
        "deployment.yaml",
        "service.yaml",
        "pvc.yaml",
        "leaderworkerset.yaml",
        "inferenceservice.yaml",
        "REPORT.md",
    } <= names


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_output_is_deterministic_lf_and_ends_with_one_newline(case: str) -> None:
    plan = make_plan(**MATRIX[case])
    first = render_artifacts(plan, list(TARGETS))
    assert first == render_artifacts(make_plan(**MATRIX[case]), list(TARGETS))
    for path, text in first.items():
        assert "\r" not in text, path
        assert text.endswith("\n") and not text.endswith("\n\n"), path
        assert all(line == line.rstrip() for line in text.splitlines()), path


def test_targets_pick_the_files() -> None:
    plan = make_plan()
    assert sorted(render_artifacts(plan, ["command"])) == ["serve.sh"]
    assert sorted(render_artifacts(plan, ["k8s"])) == [
        "k8s/deployment.yaml",
        "k8s/pvc.yaml",
        "k8s/service.yaml",
    ]
    multi = make_plan(**MATRIX["tp8-pp2-2nodes"])
    assert sorted(render_artifacts(multi, ["k8s", "compose", "report"])) == [
        "REPORT.md",
        "k8s/leaderworkerset.yaml",
        "k8s/service.yaml",
    ]
    with pytest.raises(RenderError, match="unknown artifact target.*helmchart"):
        render_artifacts(plan, ["helmchart"])


def test_multi_node_report_says_why_no_compose() -> None:
    files = render_artifacts(make_plan(**MATRIX["tp8-pp2-2nodes"]), ["compose", "report"])
    assert "docker-compose.yaml" not in files
    assert "docker-compose.yaml not written: one replica spans 2 nodes" in files["REPORT.md"]


def _run_serve(text: str, tmp_path: Path) -> list[str]:
    """Run serve.sh with a stub `vllm` that records its argv (NUL-separated)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "argv"
    stub = bin_dir / "vllm"
    stub.write_text(f'#!/usr/bin/env bash\nprintf "%s\\0" "$@" > {record}\n')
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    script = tmp_path / "serve.sh"
    script.write_text(text)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "HF_TOKEN": "hf_test"}
    subprocess.run(["bash", str(script)], check=True, env=env, cwd=tmp_path, timeout=30)
    return record.read_bytes().decode().split("\0")[:-1]


@pytest.mark.parametrize(
    "model_id",
    [
        "org/$(touch {pwned})",
        "org/`touch {pwned}`",
        'org/it\'s "quoted"; touch {pwned}',
        "org/${{IFS}}x$HOME*",
    ],
)
def test_hostile_model_id_runs_nothing(model_id: str, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    model_id = model_id.format(pwned=pwned)
    served = f"name $(touch {pwned}) 'x'"
    plan = make_plan(profile_extra={"model": {"id": model_id, "served_model_name": served}})
    files = render_artifacts(plan, ["command", "compose", "k8s", "lws", "kserve", "helm", "report"])
    argv = _run_serve(files["serve.sh"], tmp_path)
    assert argv[:2] == ["serve", model_id]
    assert argv[argv.index("--served-model-name") + 1] == served
    assert not pwned.exists()
    # The manifests carry the same words, escaped for their own expansion rules ($ -> $$).
    compose = yaml.safe_load(files["docker-compose.yaml"])
    assert [w.replace("$$", "$") for w in compose["services"]["vllm"]["command"]][0] == model_id
    (dep,) = checks.load_docs(files["k8s/deployment.yaml"])
    assert dep["spec"]["template"]["spec"]["containers"][0]["args"][0].replace("$$", "$") == model_id
    assert checks.compose_errors(files["docker-compose.yaml"]) == []
    assert checks.k8s_errors(dep) == []
    assert checks.helm_errors(files["helm-values.yaml"]) == []
    script = tmp_path / "s.sh"
    script.write_text(files["serve.sh"])
    assert checks.shellcheck_errors(script) == []


def test_hostile_names_in_the_multi_node_leader_script(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    model_id = f"org/$(touch {pwned})'x"
    plan = make_plan(**{**MATRIX["tp8-pp2-2nodes"], "profile_extra": {"model": {"id": model_id}}})
    (lws,) = checks.load_docs(render_artifacts(plan, ["lws"])["k8s/leaderworkerset.yaml"])
    leader = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    script = leader["args"][0].replace("$$", "$")  # what kubelet hands to bash
    exec_line = next(ln for ln in script.splitlines() if ln.startswith("exec "))
    stub_text = "#!/usr/bin/env bash\nset -euo pipefail\n" + exec_line + "\n"
    argv = _run_serve(stub_text, tmp_path)
    assert argv[:2] == ["serve", model_id]
    assert not pwned.exists()


@pytest.mark.parametrize("bad", ["org/model\nrm -rf /", "org/model\r", "org/\x00model", "   ", "-rf"])
def test_control_characters_are_refused(bad: str) -> None:
    """Refused by the front end (the schema), with the field and a reason, before any plan or artifact."""
    from vllm_compile.api import load_profile_dict
    from vllm_compile.diagnostics import DiagnosticError

    data = {"profile_version": 1, "model": {"id": bad}, "hardware": {"gpu_name": "H100"}}
    with pytest.raises(DiagnosticError) as caught:
        load_profile_dict(data)
    (diag,) = caught.value.diagnostics
    assert diag.code == "value" and diag.message.startswith("model.id: ")
    assert "control characters" in diag.message and "\n" not in diag.format()


def test_token_never_written_anywhere() -> None:
    plan = make_plan(**MATRIX["gated"])
    files = render_artifacts(plan, list(TARGETS))
    assert "hf_" not in "".join(files.values()).replace("hf_token", "").replace("hf-token", "")
    serve = files["serve.sh"]
    assert ': "${HF_TOKEN:?' in serve
    compose = yaml.safe_load(files["docker-compose.yaml"])
    assert compose["services"]["vllm"]["environment"]["HF_TOKEN"].startswith("${HF_TOKEN:?")
    (dep,) = checks.load_docs(files["k8s/deployment.yaml"])
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token", "optional": False}},
    }
    helm = yaml.safe_load(files["helm-values.yaml"])
    assert helm["servingEngineSpec"]["modelSpec"][0]["hf_token"] == {
        "secretName": "hf-token",
        "secretKey": "token",
    }


def test_ungated_model_token_is_optional() -> None:
    files = render_artifacts(make_plan(), ["command", "k8s", "helm"])
    assert "HF_TOKEN" not in files["serve.sh"]
    (dep,) = checks.load_docs(files["k8s/deployment.yaml"])
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["optional"]
    assert "hf_token" not in yaml.safe_load(files["helm-values.yaml"])["servingEngineSpec"]["modelSpec"][0]


def test_hf_token_in_deploy_env_is_refused() -> None:
    plan = make_plan(profile_extra={"deploy": {"env": {"HF_TOKEN": "hf_abc"}}})
    with pytest.raises(RenderError, match="must not hold HF_TOKEN"):
        render_artifacts(plan, ["command"])


def test_extra_args_are_checked_against_the_version() -> None:
    plan = make_plan(version="0.10.2", profile_extra={"vllm": {"extra_args": ["--max-num-seq", "64"]}})
    with pytest.raises(RenderError, match="did you mean --max-num-seqs"):
        render_artifacts(plan, ["command"])
    plan = make_plan(profile_extra={"vllm": {"extra_args": ["--max-model-len", "4096"]}})
    with pytest.raises(RenderError, match="--max-model-len, which the profile already decides"):
        render_artifacts(plan, ["command"])


def test_extra_args_reach_every_artifact() -> None:
    files = render_artifacts(make_plan(**MATRIX["gated"]), ["command", "vllm-config", "helm", "k8s"])
    assert "--tool-call-parser llama3_json" in files["serve.sh"]
    config = yaml.safe_load(files["vllm-config.yaml"])
    assert config["tool-call-parser"] == "llama3_json" and config["enable-auto-tool-choice"] is True
    helm = yaml.safe_load(files["helm-values.yaml"])["servingEngineSpec"]["modelSpec"][0]["vllmConfig"]
    assert helm["extraArgs"][-3:] == ["--enable-auto-tool-choice", "--tool-call-parser", "llama3_json"]


def test_helm_first_class_keys_carry_the_decided_settings() -> None:
    helm = yaml.safe_load(render_artifacts(make_plan(**MATRIX["gated"]), ["helm"])["helm-values.yaml"])
    spec = helm["servingEngineSpec"]["modelSpec"][0]
    assert spec["vllmConfig"] | {"extraArgs": None} == {
        "dtype": "bfloat16",
        "enableChunkedPrefill": False,
        "enablePrefixCaching": False,
        "maxModelLen": 8192,
        "maxNumSeqs": 256,
        "tensorParallelSize": 1,
        "extraArgs": None,
    }
    assert "--port" not in spec["vllmConfig"]["extraArgs"]  # the chart passes --port itself
    assert (spec["requestGPU"], spec["requestGPUType"], spec["replicaCount"]) == (1, "nvidia.com/gpu", 2)
    assert spec["pvcAccessMode"] == ["ReadWriteMany"]  # two replicas share the cache
    assert helm["servingEngineSpec"]["containerPort"] == 8000


def test_startup_budget_covers_model_load() -> None:
    # 70B bf16 over TP 4: 141.1 GB of weights; 1411 s download + 564 s read + 300 s set-up -> 2280 s.
    plan = make_plan(model=LLAMA_70B, tp=4)
    budget = context.startup_budget(plan)
    assert budget.weights_bytes == 4 * (70_553_706_496 * 2 // 4)
    assert budget.seconds == 2280
    files = render_artifacts(plan, ["compose", "k8s"])
    compose = yaml.safe_load(files["docker-compose.yaml"])
    assert compose["services"]["vllm"]["healthcheck"]["start_period"] == "2280s"
    (dep,) = checks.load_docs(files["k8s/deployment.yaml"])
    probe = dep["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == 2280
    # A small model still gets the floor: engine set-up alone can take minutes.
    assert context.startup_budget(make_plan(model=AWQ_7B)).seconds == context.MIN_STARTUP_S


def test_k8s_deployment_shape() -> None:
    (dep,) = checks.load_docs(render_artifacts(make_plan(**MATRIX["gated"]), ["k8s"])["k8s/deployment.yaml"])
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["volumes"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert dep["metadata"]["namespace"] == "llm" and dep["spec"]["replicas"] == 2
    assert c["args"][0] == LLAMA_8B.id and c["command"] == ["vllm", "serve"]
    assert c["args"][c["args"].index("--max-model-len") + 1] == "8192"  # flag and value: two arguments


def test_report_lists_memory_kv_verdict_perf_and_every_decision() -> None:
    plan = make_plan(**MATRIX["tp8-pp2-2nodes"])
    report = render_artifacts(plan, ["report"])["REPORT.md"]
    assert "| 0 (binding) | 79.19 | 71.27 | 47.25 | 2.00 | 0.50 | 0.25 | 21.28 | 88526 |" in report
    assert f"| GPU KV cache size (tokens) | {plan.memory.kv.tokens} |" in report
    assert "| Maximum concurrency at 8192 tokens per request | 172.90x |" in report
    assert "| Will vLLM start? | yes (OOM risk LOW) |" in report
    assert "| Inter-token latency (ms) | 12.50 (10.00 to 16.00) |" in report
    for name, d in plan.decisions.items():
        assert f"| {name} | " in report and d.by in report
    no_perf = render_artifacts(make_plan(performance=False), ["report"])["REPORT.md"]
    assert "Performance estimate" not in no_perf


def test_data_parallel_inside_the_server_gets_its_gpus() -> None:
    plan = make_plan(model=LLAMA_8B, tp=2, decided={"data_parallel_size": (2, "user")})
    files = render_artifacts(plan, ["command", "k8s", "compose"])
    assert "--data-parallel-size 2" in files["serve.sh"]
    (dep,) = checks.load_docs(files["k8s/deployment.yaml"])
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    compose = yaml.safe_load(files["docker-compose.yaml"])
    assert compose["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 4
    # DP ranks that fill nodes run Ray-less, one pod per node (artifacts/dp_launch.py)...
    two_nodes = make_plan(model=LLAMA_70B, tp=8, decided={"data_parallel_size": (2, "user")})
    (lws,) = checks.load_docs(render_artifacts(two_nodes, ["k8s"])["k8s/leaderworkerset.yaml"])
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    assert (
        "--data-parallel-size-local 1"
        in lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["args"][0]
    )
    # ...but a DP rank wider than a node is not generated.
    too_big = make_plan(model=LLAMA_70B, tp=16, decided={"data_parallel_size": (2, "user")})
    with pytest.raises(RenderError, match="scale out with deploy.replicas"):
        render_artifacts(too_big, ["k8s"])


def test_a_value_the_version_refuses_is_a_render_error() -> None:
    plan = make_plan(version="0.8.5", kv_cache_dtype="fp8_inc")
    with pytest.raises(
        RenderError, match=r"vLLM 0.8.5 --kv-cache-dtype accepts auto, fp8, fp8_e4m3, fp8_e5m2"
    ):
        render_artifacts(plan, ["command"])


def test_render_errors_name_the_profile_field() -> None:
    plan = make_plan(profile_extra={"vllm": {"extra_args": ["--bogus"]}})
    with pytest.raises(RenderError) as info:
        render_artifacts(plan, ["command"])
    assert info.value.path == ("vllm", "extra_args")


def test_compiled_templates_are_cached_where_writable_and_skipped_where_not(tmp_path, monkeypatch) -> None:
    """The Jinja2 bytecode cache lives in $XDG_CACHE_HOME/vllm-compile; a folder that cannot be written
    means no cache, never an error."""
    import jinja2

    from vllm_compile import render

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = render._bytecode_cache()
    assert isinstance(cache, jinja2.FileSystemBytecodeCache)
    assert (tmp_path / "cache" / "vllm-compile" / f"jinja2-{jinja2.__version__}").is_dir()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert render._bytecode_cache() is None
