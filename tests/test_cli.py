"""End to end, as a user runs it: vllm-compile PATH..., --check, --prune, formats, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vllm_compile.cli import main

from .conftest import REPO, write

WIZARD_70B_4090 = """profile_version: 1
model: {id: meta-llama/Llama-2-70b-hf, dtype: auto, quantization: none, max_model_len: 4096}
hardware: {gpu_name: "RTX 4090", gpus: 1, interconnect: unknown}
workload: {prompt_tokens: 512, gen_tokens: 256, concurrency: 4, mode: balanced}
policy: {gpu_memory_utilization: 0.90, fragmentation_factor: 1.15, headroom_gb: 1.0}
"""

GOOD = """profile_version: 1
model: {id: meta-llama/Llama-2-7b-hf, max_model_len: 4096}
hardware: {gpu_name: "A100 80GB", gpus: 1}
workload: {prompt_tokens: 512, gen_tokens: 256, concurrency: 4}
"""


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    target = tmp_path / "profiles"
    shutil.copytree(REPO / "profiles", target)
    return target


def test_bundled_profiles_compile_and_recompile_byte_identically(
    profiles: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    assert main([str(profiles), "--out", str(out)]) == 0
    first = tree(out)
    names = {p.split("/")[0] for p in first}
    assert {"llama31-8b-l4", "chat-prod", "chat-staging", "wizard-llama2-7b-a100"} <= names
    assert "_base" not in names
    assert all(f"{n}/vllm.lock.yaml" in first for n in names)
    shutil.rmtree(out)
    assert main([str(profiles), "--out", str(out)]) == 0
    assert tree(out) == first
    assert main([str(profiles), "--out", str(out), "--check"]) == 0
    capsys.readouterr()
    assert main([str(profiles), "--out", str(out)]) == 0
    assert "unchanged" in capsys.readouterr().out  # inputs matched the lock: not re-planned


def test_committed_out_is_current() -> None:
    assert main([str(REPO / "profiles"), "--out", str(REPO / "out"), "--check"]) == 0


def test_wizard_70b_on_one_4090_fails_with_high_risk(tmp_path: Path, capsys) -> None:
    profile = write(tmp_path / "p" / "big.yaml", WIZARD_70B_4090)
    out = tmp_path / "out"
    assert main([str(profile), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "HIGH" in captured.out + captured.err
    assert "oom-risk-high" in captured.err
    assert "weights" in captured.err.lower()  # says why: the weights alone exceed the GPU
    lock = (out / "big" / "vllm.lock.yaml").read_text()
    assert "starts: false" in lock and "oom_risk: HIGH" in lock


def test_misspelt_key_exits_2_with_position_and_suggestion(tmp_path: Path, capsys) -> None:
    text = "profile_version: 1\nhardware: {gpu_name: H100}\nmodel:\n  max_modle_len: 4096\n  id: meta-llama/Llama-2-7b-hf\n"
    profile = write(tmp_path / "p" / "typo.yaml", text)
    out = tmp_path / "out"
    assert main([str(profile), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "typo.yaml:4:" in err and "did you mean 'max_model_len'?" in err
    assert not out.exists()  # nothing written


def test_invalid_profile_leaves_its_previous_output_untouched(tmp_path: Path) -> None:
    profile = write(tmp_path / "p" / "a.yaml", GOOD)
    out = tmp_path / "out"
    assert main([str(profile), "--out", str(out)]) == 0
    before = tree(out)
    profile.write_text(GOOD.replace("gpus: 1", "gpus: -1"))
    assert main([str(profile), "--out", str(out)]) == 2
    assert tree(out) == before


def test_check_reports_stale_output_with_a_diff(tmp_path: Path, capsys) -> None:
    profile = write(tmp_path / "p" / "a.yaml", GOOD)
    out = tmp_path / "out"
    assert main([str(profile), "--out", str(out)]) == 0
    profile.write_text(GOOD.replace("max_model_len: 4096", "max_model_len: 2048"))
    before = tree(out)
    capsys.readouterr()
    assert main([str(profile), "--out", str(out), "--check"]) == 1
    printed = capsys.readouterr().out
    assert "stale: " in printed and "vllm.lock.yaml" in printed and "+" in printed and "2048" in printed
    assert tree(out) == before  # --check writes nothing


def test_deleted_profile_is_stale_and_pruned(tmp_path: Path, capsys) -> None:
    directory = tmp_path / "p"
    write(directory / "a.yaml", GOOD)
    write(directory / "b.yaml", GOOD)
    out = tmp_path / "out"
    assert main([str(directory), "--out", str(out)]) == 0
    (directory / "b.yaml").unlink()
    assert main([str(directory), "--out", str(out), "--check"]) == 1
    assert "out/b" in capsys.readouterr().out
    assert main([str(directory), "--out", str(out)]) == 0  # reported, kept
    assert (out / "b").exists()
    assert main([str(directory), "--out", str(out), "--prune"]) == 0
    assert not (out / "b").exists() and (out / "a").exists()


def test_github_format_annotates_the_line(tmp_path: Path, capsys) -> None:
    text = "profile_version: 1\nhardware: {gpu_name: H100}\nmodel:\n  max_modle_len: 4096\n  id: a/b\n"
    profile = write(tmp_path / "p" / "typo.yaml", text)
    assert main([str(profile), "--out", str(tmp_path / "out"), "--format", "github"]) == 2
    out = capsys.readouterr().out
    assert "::error file=" in out and "typo.yaml,line=4,col=3::unknown-key" in out


def test_json_format(tmp_path: Path, capsys) -> None:
    write(tmp_path / "p" / "a.yaml", GOOD)
    write(tmp_path / "p" / "big.yaml", WIZARD_70B_4090)
    assert main([str(tmp_path / "p"), "--out", str(tmp_path / "out"), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in data["profiles"]}
    assert data["exit_code"] == 1
    assert by_name["a"]["summary"]["starts"] is True and by_name["a"]["summary"]["kv_tokens"] > 100_000
    assert by_name["big"]["summary"]["oom_risk"] == "HIGH"


def test_policy_fail_on_never_lets_a_high_risk_profile_pass(tmp_path: Path) -> None:
    text = WIZARD_70B_4090.replace("headroom_gb: 1.0}", "headroom_gb: 1.0, fail_on: never}")
    profile = write(tmp_path / "p" / "big.yaml", text)
    assert main([str(profile), "--out", str(tmp_path / "out")]) == 0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    assert main([]) == 2
    assert main([str(tmp_path), "--emit", "nonsense"]) == 2


def test_module_entry_point_and_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vllm_compile", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "exit codes:" in done.stdout and "2  invalid input" in done.stdout


def test_executable_writes_what_main_writes_and_keeps_exit_codes(tmp_path: Path) -> None:
    """The executable skips the interpreter's last garbage collection (cli.console): every file is
    still written whole, and the exit codes are main's."""
    directory = tmp_path / "p"
    write(directory / "good.yaml", GOOD)
    assert main([str(directory), "--out", str(tmp_path / "in-process")]) == 0

    def executable(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vllm_compile", *args], capture_output=True, text=True, check=False
        )

    assert executable(str(directory), "--out", str(tmp_path / "executable")).returncode == 0
    assert tree(tmp_path / "executable") == tree(tmp_path / "in-process") != {}
    write(directory / "bad.yaml", "profile_version: 1\nmodel: {id: 12}\n")
    done = executable(str(directory), "--out", str(tmp_path / "executable"))
    assert done.returncode == 2 and "bad.yaml:2:" in done.stderr


def test_parallel_compile_is_byte_identical_to_serial(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    for index, gpu in enumerate(["H100", "L40S", "A100 80GB", "L4"]):
        write(directory / f"p{index}.yaml", GOOD.replace('"A100 80GB"', f'"{gpu}"'))
    assert main([str(directory), "--out", str(tmp_path / "serial"), "--jobs", "1"]) == 0
    assert main([str(directory), "--out", str(tmp_path / "parallel"), "--jobs", "2"]) == 0
    assert tree(tmp_path / "serial") == tree(tmp_path / "parallel") != {}
