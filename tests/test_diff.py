"""`vllm-compile diff`: what a change does to each deployment, in a temporary git repository with
committed out/ (the pull-request workflow), and the pure lock-to-lock comparison."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from vllm_compile.api import compile_paths, read_lock
from vllm_compile.cli import main
from vllm_compile.compare.lock_diff import Policy, diff_all, diff_locks

from .conftest import write

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

CHAT = """profile_version: 1
model:
  id: meta-llama/Llama-3.1-8B-Instruct
  max_model_len: 8192
hardware:
  gpu_name: L4
workload:
  preset: chatbot
  concurrency: 8
vllm:
  gpu_memory_utilization: 0.9
  kv_cache_dtype: auto
"""
BATCH = """profile_version: 1
model:
  id: Qwen/Qwen2.5-7B-Instruct
  max_model_len: 16384
hardware:
  gpu_name: H100
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "deployments"
    write(root / "profiles" / "chat-l4.yaml", CHAT)
    write(root / "profiles" / "batch-h100.yaml", BATCH)
    _git(root.parent, "init", "-q", str(root))
    for key, value in (("user.email", "ci@example.com"), ("user.name", "ci"), ("commit.gpgsign", "false")):
        _git(root, "config", key, value)
    assert int(compile_paths([root / "profiles"]).exit_code) == 0
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "deployments")
    monkeypatch.chdir(root)
    return root


def test_raising_max_model_len_shows_that_deployment_only(repo: Path, capsys) -> None:
    before = read_lock(repo / "out" / "chat-l4" / "vllm.lock.yaml")
    profile = repo / "profiles" / "chat-l4.yaml"
    profile.write_text(CHAT.replace("max_model_len: 8192", "max_model_len: 131072"), encoding="utf-8")
    committed = {p: p.read_bytes() for p in (repo / "out").rglob("*") if p.is_file()}
    assert main(["diff", "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert {
        p: p.read_bytes() for p in (repo / "out").rglob("*") if p.is_file()
    } == committed  # out/ untouched
    summary = text.split("<details>")[0]
    assert "| chat-l4 | changed (REGRESSION) | LOW -> HIGH |" in summary
    assert "batch-h100" not in text  # untouched profiles print nothing
    kv = before["memory"]["kv_cache"]
    per_request = kv["blocks_per_request"] * kv["bytes_per_block"] / 2**30
    assert f"| {per_request:,.2f} -> {per_request * 16:,.2f} (+1500.0%) |" in summary  # KV per request x16
    assert f"| {kv['max_concurrency']:,.2f} -> " in summary  # the concurrency drop, from the committed lock
    assert "- REGRESSION: risk LOW -> HIGH" in text
    assert "setting max_model_len: 8,192 -> 131,072 (user: set in the profile)" in text
    assert "artifact serve.sh changed" in text
    assert main(["diff", "--fail-on-regression"]) == 1
    capsys.readouterr()


def test_json_and_github_formats(repo: Path, capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    profile = repo / "profiles" / "chat-l4.yaml"
    profile.write_text(CHAT.replace("max_model_len: 8192", "max_model_len: 4096"), encoding="utf-8")
    assert main(["diff", "--format", "json", "--fail-on-regression"]) == 0  # a smaller context is not worse
    payload = json.loads(capsys.readouterr().out)
    (chat,) = payload["deployments"]
    assert chat["name"] == "chat-l4" and chat["status"] == "changed" and chat["regressions"] == []
    fields = {c["field"]: c for c in chat["headline"]}
    assert fields["max_model_len"]["before"] == 8192 and fields["max_model_len"]["after"] == 4096
    assert fields["max concurrency"]["after"] > fields["max concurrency"]["before"]
    step_summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    assert main(["diff", "--format", "github"]) == 0
    assert step_summary.read_text(encoding="utf-8") == capsys.readouterr().out


def test_added_and_removed_deployments(repo: Path, capsys) -> None:
    (repo / "profiles" / "batch-h100.yaml").unlink()
    write(repo / "profiles" / "new.yaml", BATCH.replace("16384", "8192"))
    assert main(["diff", "--format", "json"]) == 0
    status = {d["name"]: d["status"] for d in json.loads(capsys.readouterr().out)["deployments"]}
    assert status == {"batch-h100": "removed", "new": "added"}


def test_base_dir_and_bad_ref(repo: Path, capsys, tmp_path: Path) -> None:
    base = tmp_path / "base-out"
    shutil.copytree(repo / "out", base)
    assert main(["diff", "--base-dir", str(base), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["deployments"] == []
    assert main(["diff", "--base", "no-such-ref"]) == 2


def _lock(path: Path) -> dict:
    data = read_lock(path)
    assert data is not None
    return data


def test_policy_thresholds(repo: Path) -> None:
    lock = _lock(repo / "out" / "chat-l4" / "vllm.lock.yaml")
    worse = copy.deepcopy(lock)
    worse["memory"]["kv_cache"]["tokens"] = int(lock["memory"]["kv_cache"]["tokens"] * 0.85)
    worse["performance"]["itl_ms"]["value"] = lock["performance"]["itl_ms"]["value"] * 1.08
    d = diff_locks("chat-l4", lock, worse)
    assert [r.split(" ")[0] for r in d.regressions] == ["KV"]  # -15% KV > 10%; +8% ITL < 10%
    assert any(c.flagged for c in d.performance)  # +8% is past the 5% flag
    d = diff_locks("chat-l4", lock, worse, Policy(kv_tokens_drop_pct=20, itl_rise_pct=5))
    assert [r.split(" ")[0] for r in d.regressions] == ["ITL"]
    assert diff_all({"chat-l4": lock}, {"chat-l4": copy.deepcopy(lock)}) == []


def test_a_corrupt_committed_lock_is_a_warning_and_compared_as_absent(repo: Path, capsys) -> None:
    lock = repo / "out" / "batch-h100" / "vllm.lock.yaml"
    text = lock.read_text(encoding="utf-8").replace("engine:", "engin:")
    lock.write_text("# edited by hand\n" + text, encoding="utf-8")
    _git(repo, "commit", "-q", "-am", "corrupt")
    assert main(["diff", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert "out/batch-h100/vllm.lock.yaml" in captured.err and "not a valid lock" in captured.err
    assert {d["name"]: d["status"] for d in json.loads(captured.out)["deployments"]} == {
        "batch-h100": "added"
    }


def test_head_out_reads_the_working_trees_committed_locks(repo: Path, capsys) -> None:
    profile = repo / "profiles" / "chat-l4.yaml"
    profile.write_text(CHAT.replace("max_model_len: 8192", "max_model_len: 131072"), encoding="utf-8")
    assert main(["diff", "--head-out", "out", "--format", "json"]) == 0  # out/ not recompiled: no change yet
    assert json.loads(capsys.readouterr().out)["deployments"] == []
    compile_paths([repo / "profiles"])
    assert main(["diff", "--head-out", "out", "--format", "json", "--fail-on-regression"]) == 1
    assert [d["name"] for d in json.loads(capsys.readouterr().out)["deployments"]] == ["chat-l4"]
