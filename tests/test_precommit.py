"""The pre-commit hook in a consumer repository holding only profiles: passes on a good profile,
fails on a broken one. Offline: a local `system` hook runs this interpreter's vllm-compile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, write

GOOD = """profile_version: 1
model: {id: meta-llama/Llama-3.1-8B-Instruct, max_model_len: 8192}
hardware: {gpu_name: L4, gpus: 1}
"""


def hook_entry() -> str:
    """The consumer hook's entry and args, as .pre-commit-hooks.yaml publishes them."""
    from ruamel.yaml import YAML

    (hook,) = YAML(typ="safe").load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert (
        hook["id"] == "vllm-compile" and hook["entry"] == "vllm-compile" and hook["pass_filenames"] is False
    )
    return " ".join([f"{sys.executable} -m vllm_compile", *hook["args"]])


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=240)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_hook_blocks_a_broken_profile_and_passes_a_good_one(tmp_path: Path) -> None:
    repo = tmp_path / "consumer"
    write(repo / "profiles" / "svc.yaml", GOOD)
    write(
        repo / ".pre-commit-config.yaml",
        "repos:\n  - repo: local\n    hooks:\n      - id: vllm-compile\n        name: vllm-compile\n"
        f"        entry: {hook_entry()}\n        language: system\n        pass_filenames: false\n"
        "        files: ^profiles/\n",
    )
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    pre_commit = [sys.executable, "-m", "pre_commit", "run", "--all-files"]
    assert run(["git", "init", "-q"], repo, env).returncode == 0
    assert run(["git", "add", "-A"], repo, env).returncode == 0

    good = run(pre_commit, repo, env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert (repo / "out" / "svc" / "vllm.lock.yaml").is_file()

    (repo / "profiles" / "svc.yaml").write_text(GOOD.replace("max_model_len", "max_modle_len"))
    run(["git", "add", "-A"], repo, env)
    broken = run(pre_commit, repo, env)
    assert broken.returncode == 1
    assert "profiles/svc.yaml:2:" in broken.stdout and "did you mean 'max_model_len'?" in broken.stdout
