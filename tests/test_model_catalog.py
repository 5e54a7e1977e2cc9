"""The built-in catalog, resolve_model's order, and `vllm-compile models`."""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path

import pytest

from vllm_compile.facts.model_catalog import all_catalog_facts, catalog_facts, catalog_ids, catalog_row
from vllm_compile.facts.model_facts import ModelFacts
from vllm_compile.facts.models import ModelResolutionError, resolve_model
from vllm_compile.profile.v1 import ModelSpec

FIXTURES = Path(__file__).parent / "fixtures" / "models"

WIZARD_EXAMPLES = ["TheBloke/Llama-2-70B-AWQ", "meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-70b-hf"]
FAMILIES = [
    "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.1-405B-Instruct",
    "meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3", "mistralai/Mixtral-8x7B-Instruct-v0.1", "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
    "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen3-8B", "Qwen/Qwen3-30B-A3B", "Qwen/Qwen1.5-MoE-A2.7B",
    "google/gemma-7b", "google/gemma-2-9b-it", "google/gemma-3-27b-it", "microsoft/phi-2", "microsoft/Phi-3-mini-4k-instruct",
    "microsoft/phi-4", "ibm-granite/granite-3.1-8b-instruct", "deepseek-ai/DeepSeek-V2-Lite", "deepseek-ai/DeepSeek-V3",
    "deepseek-ai/DeepSeek-R1", "openai/gpt-oss-20b", "openai/gpt-oss-120b", "moonshotai/Kimi-VL-A3B-Instruct",
    "Qwen/Qwen2.5-72B-Instruct-AWQ", "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", "Qwen/Qwen3-32B-FP8",
    "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", "nvidia/Llama-3.1-70B-Instruct-FP8",
]  # fmt: skip


def test_catalog_has_at_least_50_models_with_sources() -> None:
    ids = catalog_ids()
    assert len(ids) >= 50
    assert len({i.lower() for i in ids}) == len(ids)
    for mid in ids:
        row = catalog_row(mid)
        assert row is not None and row["source"], mid
        assert isinstance(row["gated"], bool)


@pytest.mark.parametrize("model_id", WIZARD_EXAMPLES + FAMILIES)
def test_required_models_are_in_the_catalog(model_id: str) -> None:
    assert catalog_row(model_id) is not None


@pytest.mark.parametrize("model_id", catalog_ids())
def test_every_row_resolves_offline(model_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    facts = resolve_model(ModelSpec(id=model_id))
    assert facts.source == "catalog" and facts.id == model_id
    assert facts.params_total > 0 and facts.max_model_len > 0
    assert len(facts.layer_kinds) == facts.num_hidden_layers
    # Lockfile round trip: JSON and back gives the same facts.
    again = ModelFacts.model_validate(json.loads(json.dumps(facts.model_dump(mode="json"))))
    assert again == facts


def test_only_unmodelled_rows_carry_guess_warnings() -> None:
    warned = {f.id for f in all_catalog_facts() if f.warnings}
    assert warned <= {"google/gemma-4-26B-A4B", "meta-llama/Llama-3.2-11B-Vision"}


def test_lookup_is_case_insensitive() -> None:
    facts = catalog_facts("META-LLAMA/llama-3.1-8b-instruct")
    assert facts is not None and facts.id == "meta-llama/Llama-3.1-8B-Instruct"


def test_lock_wins_and_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sha = "a" * 40
    base = catalog_facts("Qwen/Qwen3-8B")
    assert base is not None
    locked = base.model_copy(update={"id": "someone/private-model", "revision": sha, "source": "hub"})
    got = resolve_model(ModelSpec(id="someone/private-model", revision="main"), locked=locked)
    assert got == locked  # unchanged, so re-locking is byte-identical
    assert resolve_model(ModelSpec(id="someone/private-model", revision=sha), locked=locked) == locked
    # A different pinned sha is a changed profile: the lock does not apply (and offline, nothing else does).
    with pytest.raises(ModelResolutionError, match="HF_HUB_OFFLINE"):
        resolve_model(ModelSpec(id="someone/private-model", revision="b" * 40), locked=locked)


def test_unknown_model_offline_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelResolutionError, match="params_b"):
        resolve_model(ModelSpec(id="nobody/nothing-7b"))


def test_a_revision_offline_uses_the_catalog_and_says_it_is_not_pinned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue #11: a catalog model with a revision compiles offline; the lock says the revision is not pinned.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    facts = resolve_model(ModelSpec(id="Qwen/Qwen3-8B", revision="c" * 40))
    assert facts.source == "catalog" and facts.revision is None
    assert any("is not pinned" in w and "c" * 40 in w for w in facts.warnings)


def test_params_b_estimate_warns() -> None:
    facts = resolve_model(ModelSpec(id="my/model", params_b=13))
    assert facts.source == "params_b"
    assert abs(facts.params_total - 13e9) / 13e9 < 0.03
    assert any("estimated" in w for w in facts.warnings) and any("MHA" in w for w in facts.warnings)


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    header: dict[str, object] = {}
    offset = 0
    sizes = {"F16": 2, "BF16": 2, "F32": 4, "I32": 4}
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def test_local_directory_with_quant_file_and_safetensors(tmp_path: Path) -> None:
    src = FIXTURES / "tiny-llama-awq"
    for f in src.iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    _write_safetensors(
        tmp_path / "model.safetensors", {"a.qweight": ("I32", [256, 96]), "a.scales": ("F16", [2, 768])}
    )
    facts = resolve_model(ModelSpec(id=str(tmp_path)))
    assert facts.source == "local" and facts.quantization is not None and facts.quantization.method == "awq"
    assert facts.checkpoint_params == {"F16": 1536, "I32": 24576}
    assert facts.max_model_len == 4096  # llama3 rope type is not rescaled
    assert facts.dtype == "float16"


def test_local_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelResolutionError, match="no config.json"):
        resolve_model(ModelSpec(id=str(tmp_path)))
    with pytest.raises(ModelResolutionError, match="no such directory"):
        resolve_model(ModelSpec(id=str(tmp_path / "missing")))


def test_models_command_json_is_sorted(capsys: pytest.CaptureFixture[str]) -> None:
    from vllm_compile.cli import models as cli_models

    parser = argparse.ArgumentParser()
    cli_models.register(parser.add_subparsers())
    args = parser.parse_args(["models", "--json"])
    assert args.func(args) == 0
    rows = json.loads(capsys.readouterr().out)
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids, key=str.lower) and len(ids) == len(catalog_ids())
    by_id = {r["id"]: r for r in rows}
    assert by_id["meta-llama/Llama-3.1-8B-Instruct"]["params_total"] == 8_030_261_248
    assert by_id["TheBloke/Llama-2-70B-AWQ"]["quantization"] == "awq"


def test_models_command_table(capsys: pytest.CaptureFixture[str]) -> None:
    from vllm_compile.cli import models as cli_models

    parser = argparse.ArgumentParser()
    cli_models.register(parser.add_subparsers())
    args = parser.parse_args(["models"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "TheBloke/Llama-2-70B-AWQ" in out and "gpt-oss-120b" in out
