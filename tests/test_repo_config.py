"""Repository configuration (vllm-compile.yaml or [tool.vllm-compile]): defaults under every profile,
output folder, diff and verify thresholds; the lock records the configuration it was compiled with."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllm_compile.api import compile_paths, read_lock, repo_diff_policy
from vllm_compile.cli import main
from vllm_compile.repo_config import config_json_schema_text, config_reference_markdown

from .conftest import REPO, write

PROFILE = """profile_version: 1
model:
  id: meta-llama/Llama-3.1-8B-Instruct
  max_model_len: 8192
hardware:
  gpu_name: H100
"""
CONFIG = """defaults:
  vllm:
    version: 0.19.0
  policy:
    fail_on: medium
    headroom_gb: 1.0
diff:
  kv_tokens_drop_pct: 3
prices:
  H100: 2.5
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    write(root / "profiles" / "a.yaml", PROFILE)
    write(root / "profiles" / "b.yaml", PROFILE + "vllm:\n  version: 0.18.0\n")
    return root


def test_defaults_apply_under_every_profile_and_the_lock_records_them(repo: Path) -> None:
    write(repo / "vllm-compile.yaml", CONFIG)
    assert int(compile_paths([repo / "profiles"]).exit_code) == 0
    a, b = (read_lock(repo / "out" / n / "vllm.lock.yaml") for n in ("a", "b"))
    assert a["vllm_version"] == "0.19.0"  # the repository's default release
    assert b["vllm_version"] == "0.18.0"  # a profile overrides it
    assert a["inputs"]["profile"]["policy"] == {"fail_on": "medium", "headroom_gb": 1.0}
    assert a["config"]["file"] == "vllm-compile.yaml" and a["config"]["prices"] == {"H100": 2.5}
    assert len(a["config"]["sha256"]) == 64
    assert repo_diff_policy([repo / "profiles"])["kv_tokens_drop_pct"] == 3


def test_changing_the_config_replans(repo: Path) -> None:
    write(repo / "vllm-compile.yaml", CONFIG)
    compile_paths([repo / "profiles"])
    assert all(not r.changes for r in compile_paths([repo / "profiles"]).results)
    write(repo / "vllm-compile.yaml", CONFIG.replace("2.5", "3.0"))
    assert all(r.changes for r in compile_paths([repo / "profiles"]).results)


def test_no_config_changes_nothing(repo: Path) -> None:
    compile_paths([repo / "profiles"])
    assert "config" not in read_lock(repo / "out" / "a" / "vllm.lock.yaml")


def test_pyproject_table_and_output_folder(repo: Path) -> None:
    write(
        repo / "pyproject.toml",
        '[tool.vllm-compile]\nout = "deploy"\n[tool.vllm-compile.defaults.vllm]\nversion = "0.19.0"\n',
    )
    compile_paths([repo / "profiles"])
    lock = read_lock(repo / "deploy" / "a" / "vllm.lock.yaml")
    assert lock["vllm_version"] == "0.19.0" and lock["config"]["file"] == "pyproject.toml"
    assert not (repo / "out").exists()


def test_invalid_config_is_a_diagnostic(repo: Path, capsys) -> None:
    write(repo / "vllm-compile.yaml", "diff:\n  kv_drop: 3\n")
    assert main([str(repo / "profiles")]) == 2
    assert (
        "vllm-compile.yaml: config: diff.kv_drop: Extra inputs are not permitted" in capsys.readouterr().err
    )
    assert not (repo / "out").exists()
    write(repo / "vllm-compile.yaml", "defaults:\n  vllm:\n    version: 0.19.0\n  modle: {}\n")
    assert main([str(repo / "profiles")]) == 2  # a default the profile language rejects is invalid input


def test_schema_and_readme_reference_are_generated() -> None:
    assert (REPO / "schemas" / "repo-config.v1.schema.json").read_text(
        encoding="utf-8"
    ) == config_json_schema_text()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- config-reference:start -->\n")[1].split("<!-- config-reference:end -->")[0]
    assert section == config_reference_markdown()
