"""`vllm-compile generate`: flags in, a profile and its artifacts out (offline: built-in catalogs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from vllm_compile.cli import main

BASE = ["-m", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "H100", "--max-model-len", "8192"]


def test_generate_writes_profile_and_artifacts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "qwen-chat"
    rc = main(["generate", "-o", str(out), *BASE, "--emit", "command,compose,k8s", "--port", "9000",
               "--vllm-arg=--enable-auto-tool-choice", "--vllm-arg=--tool-call-parser", "--vllm-arg=hermes"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [
        "docker-compose.yaml",
        "k8s/deployment.yaml",
        "k8s/pvc.yaml",
        "k8s/service.yaml",
        "profile.yaml",
        "serve.sh",
        "vllm.lock.yaml",
    ]
    assert os.access(out / "serve.sh", os.X_OK)
    profile = yaml.safe_load((out / "profile.yaml").read_text())
    assert profile["name"] == "qwen-chat" and profile["deploy"]["port"] == 9000
    assert profile["vllm"]["extra_args"] == ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    serve = (out / "serve.sh").read_text()
    assert "--port 9000 \\\n" in serve and "--tool-call-parser hermes" in serve


def test_written_profile_compiles_back_to_the_same_artifacts(tmp_path: Path) -> None:
    from vllm_compile import api
    from vllm_compile.profile.loader import load_profile
    from vllm_compile.render import render_artifacts

    out = tmp_path / "again"
    assert main(["generate", "-o", str(out), *BASE, "--emit", "command,vllm-config,helm,report"]) == 0
    loaded = load_profile(out / "profile.yaml")
    plan = api.plan_profile(loaded.profile, name="again")
    again = render_artifacts(plan, ["command", "vllm-config", "helm", "report", "profile"])
    for rel, text in again.items():
        assert (out / rel).read_text() == text, rel


def test_generate_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "-o", str(tmp_path / "x"), *BASE, "--emit", "command,helmchart"]) == 2
    assert "unknown --emit target(s) helmchart" in capsys.readouterr().err
    assert (
        main(["generate", "-o", str(tmp_path / "x"), *BASE, "--vllm-arg=--max-num-seq", "--vllm-arg=8"]) == 2
    )
    assert "did you mean --max-num-seqs" in capsys.readouterr().err
    assert main(["generate", "-o", str(tmp_path / "Bad_Name"), *BASE]) == 2
    assert "use --name" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
