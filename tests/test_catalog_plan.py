"""`vllm-compile plan --model <catalog id>` works offline for every catalog row (issue #3)."""

from __future__ import annotations

import json

import pytest

from vllm_compile.cli import main
from vllm_compile.facts.model_catalog import catalog_ids


@pytest.mark.parametrize("model_id", catalog_ids())
def test_plan_every_catalog_model_offline(model_id: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(
        ["plan", "--model", model_id, "--gpu", "H200", "--gpus", "8", "--max-model-len", "4096", "--json"]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == (0 if data["verdict"]["starts"] else 1)
    assert data["model"]["id"].lower() == model_id.lower() and data["model"]["source"] == "catalog"
    assert data["model"]["params_total"] >= data["model"]["params_active"] > 0
    assert data["model"]["weight_bytes_total"] > 0
    if data["verdict"]["starts"]:
        assert data["kv_cache"]["tokens"] >= 4096
