"""`verify`: a lock compiled for the settings of a real vLLM start-up against that start-up's log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vllm_compile import api
from vllm_compile.cli import main
from vllm_compile.compare.verify import verify_startup
from vllm_compile.observe.vllm_log import parse_log

LOGS = Path(__file__).parent / "fixtures" / "logs"
PROFILES = LOGS / "profiles"

# log fixture -> the profile with the settings that log ran (both from llm-d-planner's v0.19.0 runs)
PAIRS = {
    "v0190-llama31-8b-h100-tp1.log": "llama31-8b-h100-v019-tp1.yaml",
    "v0190-llama31-8b-h100-tp2.log": "llama31-8b-h100-v019-tp2.yaml",
    "v0190-llama31-8b-h100-pp2.log": "llama31-8b-h100-v019-pp2.yaml",
    "v0190-gpt-oss-20b-h100-sampler-oom.log": "gpt-oss-20b-h100-v019.yaml",
    # dennislee22/vLLM-benchmarking, vLLM 0.10.1.1 on A100 80GB
    "v01011-qwen2-7b-a100-util05.log": "qwen2-7b-a100-v01011-tp1.yaml",
    "v01011-qwen2-7b-2xa100-tp2.log": "qwen2-7b-a100-v01011-tp2.yaml",
    "v01011-gpt-oss-120b-4xa100-ray-tp4.log": "gpt-oss-120b-a100-v01011-tp4.yaml",
}


@pytest.fixture(scope="module")
def locks() -> dict[str, dict]:
    return {name: api.lock_for(PROFILES / name) for name in sorted(set(PAIRS.values()))}


@pytest.mark.parametrize("log_name", sorted(PAIRS))
def test_drift_is_observed_minus_the_lock(log_name: str, locks) -> None:
    lock = locks[PAIRS[log_name]]
    log = parse_log((LOGS / log_name).read_text(encoding="utf-8"))
    report = verify_startup(lock, log, log_name=log_name)
    assert report.settings == []  # the profile states what the log ran
    by_term = {t.term: t for t in report.terms}
    terms = ("weights_gib", "activation_peak_gib", "non_torch_gib")
    printed = [t for t in terms if getattr(log.figures, t) is not None]
    assert {*printed, "kv_cache_gib", "kv_tokens"} <= set(by_term)  # every term the log prints is compared
    stage = next((r for r in lock["memory"]["per_gpu"] if f"PP{r['pp_rank']}" in log.binding_rank), None)
    for term in (*(t for t in printed if t != "activation_peak_gib"), "kv_cache_gib"):
        t = by_term[term]
        assert t.observed == getattr(log.figures, term)
        expected = round(stage[term.removesuffix("_gib") + "_bytes"] / 2**30, 2) if stage else None
        assert t.predicted == (expected if stage else lock["memory"]["binding_gpu_gib"][term])
        assert t.delta == pytest.approx(t.observed - t.predicted, abs=1e-3)
        assert t.beyond == (abs(t.delta) > 0.1 and abs(t.relative or 1) > 0.05)
    assert by_term["kv_tokens"].predicted == lock["memory"]["kv_cache"]["tokens"]
    assert by_term["kv_tokens"].observed == log.figures.kv_cache_tokens


def test_a_start_up_that_succeeded_checks_the_verdict(locks) -> None:
    log = parse_log((LOGS / "v0190-llama31-8b-h100-tp1.log").read_text(encoding="utf-8"))
    report = verify_startup(locks["llama31-8b-h100-v019-tp1.yaml"], log, log_name="x")
    assert report.verdict.predicted_starts and report.verdict.observed_started and report.verdict.correct
    assert any(
        "CUDA graphs took 0.91 GiB" in n for n in report.notes
    )  # 0.19 sizes the KV cache before capture


def test_a_missed_failure_is_reported_as_a_wrong_verdict(locks) -> None:
    log = parse_log((LOGS / "v0190-gpt-oss-20b-h100-sampler-oom.log").read_text(encoding="utf-8"))
    report = verify_startup(locks["gpt-oss-20b-h100-v019.yaml"], log, log_name="x")
    assert report.verdict.observed_started is False and report.verdict.failure_kind == "oom-sampler-warmup"
    assert report.verdict.correct is (not report.verdict.predicted_starts)
    assert report.drift == (report.verdict.correct is False or any(t.beyond for t in report.terms))


def test_settings_that_differ_come_first(locks) -> None:
    lock = json.loads(json.dumps(locks["llama31-8b-h100-v019-tp1.yaml"]))
    lock["engine"]["gpu_memory_utilization"] = 0.9
    lock["engine"]["enable_prefix_caching"] = True
    log = parse_log((LOGS / "v0190-llama31-8b-h100-tp1.log").read_text(encoding="utf-8"))
    report = verify_startup(lock, log, log_name="x")
    assert [(s.setting, s.locked, s.observed) for s in report.settings] == [
        ("gpu_memory_utilization", 0.9, 0.95),
        ("enable_prefix_caching", True, False),
    ]
    assert report.drift
    other = verify_startup(locks["gpt-oss-20b-h100-v019.yaml"], log, log_name="x")
    assert other.settings[0].setting == "model"
    assert ("quantization", "mxfp4", None) in [(s.setting, s.locked, s.observed) for s in other.settings]


def test_another_release_is_a_setting_difference(locks) -> None:
    text = (
        (LOGS / "v0190-llama31-8b-h100-tp1.log")
        .read_text(encoding="utf-8")
        .replace("version 0.19.0", "version 0.18.0")
    )
    text = text.replace("(v0.19.0)", "(v0.18.0)")
    report = verify_startup(locks["llama31-8b-h100-v019-tp1.yaml"], parse_log(text), log_name="x")
    assert report.settings[0].setting == "vllm_version" and report.settings[0].observed == "0.18.0"


def test_cli_exit_codes_and_formats(tmp_path: Path, capsys, monkeypatch) -> None:
    profile = str(PROFILES / "llama31-8b-h100-v019-tp2.yaml")
    assert main(["verify", profile, str(LOGS / "v0190-llama31-8b-h100-tp2.log"), "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["drift"] is False and payload["reports"][0]["settings"] == []
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    other = str(LOGS / "v0190-llama31-8b-h100-tp1.log")  # one GPU's log against the TP2 lock: it drifts
    assert main(["verify", profile, other, "--format", "github"]) == 1
    out = capsys.readouterr().out
    assert "| tensor_parallel_size | 2 | 1 |" in out and "<details>" in out
    assert summary.read_text(encoding="utf-8") == out
    assert main(["verify", profile, str(tmp_path / "missing.log")]) == 2
    assert main(["verify", str(tmp_path / "missing.yaml"), other]) == 2
    assert main(["verify", profile, other, "--tolerance", "-1"]) == 2


def test_bad_input_is_a_diagnostic_never_a_crash(tmp_path: Path, capsys) -> None:
    profile = str(PROFILES / "llama31-8b-h100-v019-tp1.yaml")
    junk = tmp_path / "junk.log"
    junk.write_bytes(bytes(range(256)) * 8)
    assert main(["verify", profile, str(junk)]) == 2
    assert "no vLLM start-up lines" in capsys.readouterr().err
    broken = tmp_path / "vllm.lock.yaml"
    broken.write_text("lock_version: 1\nname: x\n", encoding="utf-8")
    assert main(["verify", str(broken), str(LOGS / "v0190-llama31-8b-h100-tp1.log")]) == 2
    assert "not a valid lock" in capsys.readouterr().err
    bad_json = tmp_path / "bench.json"
    bad_json.write_text('{"completed": ', encoding="utf-8")
    assert main(["verify", profile, str(bad_json)]) == 2


def test_spellings_vllm_treats_alike_are_not_differences(locks) -> None:
    lock = json.loads(json.dumps(locks["llama31-8b-h100-v019-tp1.yaml"]))
    lock["engine"]["kv_cache_dtype"] = "fp8"
    text = (LOGS / "v0190-llama31-8b-h100-tp1.log").read_text(encoding="utf-8")
    log = parse_log(text.replace("kv_cache_dtype=auto", "kv_cache_dtype=fp8_e4m3"))
    assert [s.setting for s in verify_startup(lock, log, log_name="x").settings] == []
    local = parse_log(text.replace("model='meta-llama/Llama-3.1-8B-Instruct'", "model='/models/llama-8b'"))
    local.settings["model"] = "/models/llama-8b"
    report = verify_startup(locks["llama31-8b-h100-v019-tp1.yaml"], local, log_name="x")
    assert report.settings == [] and any("/models/llama-8b" in n for n in report.notes)
