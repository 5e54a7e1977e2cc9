"""The published lock schema: generated from the lock model, in sync, and every lock validates."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema

from vllm_compile.api import compile_paths
from vllm_compile.cli import main
from vllm_compile.lock_model import lock_json_schema_text
from vllm_compile.yaml_text import load_yaml

from .conftest import REPO
from .lock_schema_check import lock_schema_errors

SCHEMA_FILE = REPO / "schemas" / "lock.v1.schema.json"


def test_committed_lock_schema_matches_the_model() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == lock_json_schema_text(), (
        "run: vllm-compile schema --lock > schemas/lock.v1.schema.json"
    )


def test_schema_command_prints_the_lock_schema(capsys) -> None:
    assert main(["schema", "--lock"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text(encoding="utf-8")


def test_every_committed_and_golden_lock_validates() -> None:
    locks = sorted((REPO / "out").glob("*/vllm.lock.yaml")) + sorted(
        (REPO / "tests" / "golden" / "locks").glob("*.lock.yaml")
    )
    assert len(locks) >= 5
    for path in locks:
        assert lock_schema_errors(path) == [], path


def test_every_bundled_profile_compiles_to_a_valid_lock(tmp_path: Path) -> None:
    result = compile_paths([REPO / "profiles"], out_dir=tmp_path)
    written = sorted(tmp_path.glob("*/vllm.lock.yaml"))
    assert len(written) == len([r for r in result.results if r.name])
    for path in written:
        assert lock_schema_errors(path) == [], path


def _lock() -> dict:
    return load_yaml(
        (REPO / "tests" / "golden" / "locks" / "qwen3-8b-fp8kv-v019.lock.yaml").read_text("utf-8")
    )


def _errors(data: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    return [e.message for e in validator.iter_errors(data)]


def test_the_schema_rejects_a_broken_lock_and_allows_additive_sections() -> None:
    lock = _lock()
    assert _errors(lock) == []
    missing = copy.deepcopy(lock)
    del missing["engine"]
    assert any("'engine' is a required property" in e for e in _errors(missing))
    wrong = copy.deepcopy(lock)
    wrong["verdict"]["oom_risk"] = "EXTREME"
    assert _errors(wrong)
    typo = copy.deepcopy(lock)
    typo["engine"]["max_model_lenn"] = 1  # the engine section is closed: a typo is an error
    assert _errors(typo)
    newer = copy.deepcopy(lock)
    newer["charts"] = {"memory.svg": "0" * 64}  # a section a newer compiler adds still validates
    newer["memory"]["binding_gpu_gib"]["lora_gib"] = 0.5
    assert _errors(newer) == []
