from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the network: the Hub is offline unless a test points HF_ENDPOINT at a local server."""
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "1"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _locks_validate_against_the_published_schema(request: pytest.FixtureRequest):
    """Every lock a test writes under its tmp_path must validate against schemas/lock.v1.schema.json."""
    base = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if base is None:
        return
    locks = sorted(base.rglob("vllm.lock.yaml"))
    if not locks:
        return
    from .lock_schema_check import lock_schema_errors

    for path in locks:
        errors = lock_schema_errors(path)
        assert not errors, f"{path}: does not validate against schemas/lock.v1.schema.json: {errors[:3]}"
