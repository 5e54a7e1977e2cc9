"""A wheel built from the repo works outside it: templates and schemas ship as package data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, write

PROFILE = """profile_version: 1
model: {id: Qwen/Qwen2.5-7B-Instruct, max_model_len: 8192}
hardware: {gpu_name: L40S, gpus: 1}
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip(
        "hatchling", reason="the build backend (a dev dependency) is needed to build the wheel"
    )
    wheels = tmp_path_factory.mktemp("wheels")
    target = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    # Offline: no build isolation (hatchling is installed), no dependencies (they are in this environment).
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)], check=True
    )
    (wheel,) = wheels.glob("vllm_compile-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True)
    return target


def run(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_wheel_ships_templates_and_schemas(installed: Path) -> None:
    package = installed / "vllm_compile"
    assert (package / "schemas" / "profile.v1.schema.json").is_file()
    assert (package / "templates" / "serve.sh.j2").is_file()
    assert (package / "templates" / "k8s" / "deployment.yaml.j2").is_file()
    assert (package / "facts" / "data" / "model_catalog.json").is_file()


def test_installed_wheel_compiles_outside_the_repo(installed: Path, tmp_path: Path) -> None:
    where = run(installed, tmp_path, "-c", "import vllm_compile; print(vllm_compile.__file__)")
    assert where.stdout.strip().startswith(str(installed)), where.stdout + where.stderr
    schema = run(installed, tmp_path, "-m", "vllm_compile", "schema")
    assert schema.returncode == 0
    assert schema.stdout == (REPO / "schemas" / "profile.v1.schema.json").read_text(encoding="utf-8")
    write(tmp_path / "profiles" / "svc.yaml", PROFILE)
    done = run(installed, tmp_path, "-m", "vllm_compile", "profiles", "--out", "out")
    assert done.returncode == 0, done.stdout + done.stderr
    serve = (tmp_path / "out" / "svc" / "serve.sh").read_text()
    assert "exec vllm serve Qwen/Qwen2.5-7B-Instruct" in serve
    assert (tmp_path / "out" / "svc" / "vllm.lock.yaml").is_file()
