"""Calibration from your own fleet: `verify --record` then a recompile uses the measurement."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vllm_compile.api import compile_paths, read_lock, verify
from vllm_compile.cli import main
from vllm_compile.observe.calibration import read_file

from .conftest import write

LOGS = Path(__file__).parent / "fixtures" / "logs"
PROFILE = LOGS / "profiles" / "llama31-8b-h100-v019-pp2.yaml"
LOG = LOGS / "v0190-llama31-8b-h100-pp2.log"
GIB = 2**30


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "fleet"
    (root / ".git").mkdir(parents=True)
    shutil.copy(PROFILE, write(root / "profiles" / PROFILE.name, ""))
    assert int(compile_paths([root / "profiles"]).exit_code) == 0
    monkeypatch.chdir(root)
    return root


def _stage(lock: dict, rank: int) -> dict:
    return next(r for r in lock["memory"]["per_gpu"] if r["pp_rank"] == rank)


def test_record_then_recompile_moves_the_prediction_to_the_measurement(repo: Path, capsys) -> None:
    lock_path = repo / "out" / PROFILE.stem / "vllm.lock.yaml"
    before = read_lock(lock_path)
    assert "calibration" not in before
    assert (
        main(["verify", str(lock_path), str(LOG), "--record", "calibration/fleet.yaml", "--format", "json"])
        == 0
    )
    capsys.readouterr()
    (record,) = read_file(repo / "calibration" / "fleet.yaml").records
    assert record.observed["activation_peak_gib"] == 1.1 and record.pp_rank == 0  # the log's PP0 figures
    assert record.gpu == "h100-sxm-80gb" and record.vllm_version == "0.19.0"
    assert str(LOG) not in (repo / "calibration" / "fleet.yaml").read_text(encoding="utf-8")  # hash only
    result = compile_paths([repo / "profiles"])
    assert [bool(r.changes) for r in result.results] == [True]  # the record is an input: re-planned
    after = read_lock(lock_path)
    (used,) = after["calibration"]
    assert used["id"] == record.id and used["file"] == "calibration/fleet.yaml"
    assert used["terms"]["activation_peak_gib"] == {
        "measured": 1.1,
        "modelled": round(_stage(before, 0)["activation_peak_bytes"] / GIB, 2),
    }
    stage = _stage(after, 0)
    assert stage["activation_peak_bytes"] == round(1.1 * GIB)
    assert stage["kv_cache_bytes"] == (
        stage["requested_bytes"] - stage["weights_bytes"] - stage["activation_peak_bytes"]
        - stage["non_torch_bytes"] - stage["cuda_graph_bytes"]
    )  # fmt: skip
    assert any(
        a.startswith(f"calibrated from repository measurement {record.id}")
        for a in after["memory"]["assumptions"]
    )
    (report,) = verify(lock_path, [LOG])
    terms = {t.term: t for t in report.terms}
    assert terms["activation_peak_gib"].delta == 0.0
    assert (
        abs(terms["kv_cache_gib"].delta) <= 0.01
    )  # the stage-0 KV cache now matches vLLM's within print rounding
    text = lock_path.read_text(encoding="utf-8")
    assert all(not r.changes for r in compile_paths([repo / "profiles"], force=True).results)  # deterministic
    assert lock_path.read_text(encoding="utf-8") == text


def test_recording_twice_keeps_one_record_and_failures_are_not_recorded(repo: Path, capsys) -> None:
    lock = str(repo / "out" / PROFILE.stem / "vllm.lock.yaml")
    for _ in range(2):
        assert main(["verify", lock, str(LOG), "--record", "calibration/fleet.yaml", "--format", "json"]) == 0
    failed = LOGS / "v0190-gpt-oss-20b-h100-sampler-oom.log"
    main(["verify", lock, str(failed), "--record", "calibration/fleet.yaml", "--format", "json"])
    capsys.readouterr()
    assert len(read_file(repo / "calibration" / "fleet.yaml").records) == 1


def test_a_record_of_another_release_is_not_used(repo: Path, capsys) -> None:
    lock = str(repo / "out" / PROFILE.stem / "vllm.lock.yaml")
    assert main(["verify", lock, str(LOG), "--record", "calibration/fleet.yaml", "--format", "json"]) == 0
    capsys.readouterr()
    path = repo / "calibration" / "fleet.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("vllm_version: '0.19.0'", "vllm_version: 0.18.0")
    )
    compile_paths([repo / "profiles"])
    assert "calibration" not in read_lock(repo / "out" / PROFILE.stem / "vllm.lock.yaml")


def test_record_outside_the_repository_and_a_broken_file_are_errors(
    repo: Path, tmp_path: Path, capsys
) -> None:
    lock = str(repo / "out" / PROFILE.stem / "vllm.lock.yaml")
    assert main(["verify", lock, str(LOG), "--record", str(tmp_path / "elsewhere.yaml")]) == 2
    write(repo / "calibration" / "bad.yaml", "records: [1, 2]\n")
    result = compile_paths([repo / "profiles"])
    assert int(result.exit_code) == 2 and result.diagnostics[0].file == "calibration/bad.yaml"
    capsys.readouterr()
