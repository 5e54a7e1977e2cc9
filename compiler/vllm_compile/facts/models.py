"""Resolve a profile's `model:` section to ModelFacts.

Order (first that applies wins):

1. **The lock** — a locked ModelFacts whose id matches (and, when the profile pins a commit sha,
   whose revision is that sha; a branch or tag name is what the lock pinned). A locked profile
   never touches the network again. The locked facts come back unchanged (their `source` stays
   what it was when locked, so re-locking is byte-identical).
2. **A local directory** holding `config.json` (plus quantization files and safetensors headers).
3. **The built-in catalog** (`facts/data/model_catalog.json`) — unless the profile pins a
   revision, which the catalog cannot vouch for.
4. **`model.params_b`** — no config anywhere: a generic dense decoder of that size, with warnings.
5. **The Hugging Face Hub** — unless offline (`HF_HUB_OFFLINE=1`); the revision is resolved to a
   commit sha, recorded in the facts (and so in the lock).
6. Otherwise a `ModelResolutionError` saying what to do.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from pathlib import Path
from typing import Any

from vllm_compile.facts.model_config import ModelConfigError, facts_from_config
from vllm_compile.facts.model_facts import ModelFacts
from vllm_compile.profile.v1 import ModelSpec

QUANT_FILES = ("quantize_config.json", "quant_config.json", "hf_quant_config.json")
_SHA = re.compile(r"^[0-9a-f]{40}$")


class ModelResolutionError(ValueError):
    """The model cannot be resolved to facts; the message says what to do."""


def hub_offline() -> bool:
    """huggingface_hub's own switch (constants.HF_HUB_OFFLINE), read from the environment."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _lock_matches(spec: ModelSpec, locked: ModelFacts) -> bool:
    if locked.id.lower() != spec.id.strip().lower():
        return False
    if spec.revision is None or not _SHA.match(spec.revision.lower()):
        return True
    return (locked.revision or "").lower() == spec.revision.lower()


def resolve_model(
    spec: ModelSpec, *, locked: ModelFacts | None = None, base_dir: Path | None = None
) -> ModelFacts:
    """ModelFacts for a profile's model, from the lock, a directory, the catalog or the Hub.
    A relative directory is relative to `base_dir` (the profile's folder) when given."""
    if locked is not None and _lock_matches(spec, locked):
        return locked

    path = local_model_path(spec.id, base_dir)
    if _looks_like_path(spec.id) or path.is_dir():
        if (path / "config.json").is_file():
            return facts_from_dir(path, model_id=spec.id)
        raise ModelResolutionError(
            f"model {spec.id!r}: the directory has no config.json" if path.is_dir()
            else f"model {spec.id!r}: no such directory (give a Hugging Face id or a folder with config.json)"
        )  # fmt: skip

    if spec.revision is None or hub_offline():
        from vllm_compile.facts.model_catalog import catalog_facts

        facts = catalog_facts(spec.id)
        if facts is not None and spec.revision is not None:
            # Offline, a revision cannot be pinned to a commit: the catalog's facts stand in, and say so.
            return facts.model_copy(
                update={
                    "warnings": [
                        *facts.warnings,
                        f"model.revision {spec.revision!r} is not pinned (HF_HUB_OFFLINE=1): the built-in "
                        "catalog's facts for this model are used; compile once with network access to pin "
                        "the commit in the lock",
                    ]
                }
            )
        if facts is not None:
            return facts

    if spec.params_b is not None:
        return estimate_from_params(spec.id, spec.params_b)

    if hub_offline():
        raise ModelResolutionError(
            f"model {spec.id!r} is not in the lock or the built-in catalog and HF_HUB_OFFLINE=1: "
            "compile once with network access to lock it, point model.id at a local folder with "
            "config.json, or give model.params_b for an estimate"
        )
    from vllm_compile.facts.hub import facts_from_hub

    return facts_from_hub(spec.id, revision=spec.revision)


def local_model_path(model_id: str, base_dir: Path | None) -> Path:
    """Where a local model.id points: relative to the profile's folder, not the working directory."""
    path = Path(model_id).expanduser()
    return base_dir / path if base_dir is not None and not path.is_absolute() else path


def _looks_like_path(model_id: str) -> bool:
    return (
        model_id.startswith(("/", "./", "../", "~")) or model_id.count("/") > 1 or os.sep + os.sep in model_id
    )


# ---------------------------------------------------------------------------------------------
# A local directory
# ---------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelResolutionError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelResolutionError(f"{path}: expected a JSON object")
    return data


def safetensors_header_counts(files: list[Path]) -> dict[str, int]:
    """Parameter counts by dtype from safetensors headers (8-byte length + JSON; no weights read)."""
    counts: dict[str, int] = {}
    for f in files:
        try:
            with f.open("rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > 100_000_000:
                    continue
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error):
            continue
        for name, meta in header.items():
            if name == "__metadata__" or not isinstance(meta, dict):
                continue
            counts[meta["dtype"]] = counts.get(meta["dtype"], 0) + math.prod(meta.get("shape", []))
    return dict(sorted(counts.items()))


def facts_from_dir(path: Path, *, model_id: str) -> ModelFacts:
    """ModelFacts of a local checkpoint folder."""
    config = _read_json(path / "config.json")
    quant: dict[str, Any] | None = None
    for name in QUANT_FILES:
        if (path / name).is_file():
            quant = _read_json(path / name)
            break
    st = safetensors_header_counts(sorted(path.glob("*.safetensors")))
    try:
        return facts_from_config(
            config,
            model_id=model_id,
            source="local",
            source_note=f"local directory {path}",
            quant_config=quant,
            safetensors_params=st or None,
        )
    except ModelConfigError as exc:
        raise ModelResolutionError(f"{path / 'config.json'}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# model.params_b: no config at all
# ---------------------------------------------------------------------------------------------


def estimate_from_params(model_id: str, params_b: float) -> ModelFacts:
    """A Llama-shaped dense decoder with about `params_b` billion parameters.

    Shape: head_dim 128, hidden ~ layers x 128 (Llama-2/3 aspect ratio), gated MLP 3.5 x hidden,
    MHA (KV heads = heads, so KV estimates are an upper bound), vocabulary 32000, bf16, 8192 context.
    """
    if not params_b or params_b <= 0:
        raise ModelResolutionError("model.params_b must be a positive number of billions")
    p = params_b * 1e9
    vocab = 32000
    # 12.5 x H^2 per layer (4 H^2 attention + 3 x 3.5 H^2 MLP ~ 14.5; Llama-2 ratios) with L = H/128.
    hidden = max(256, int(round((p * 128 / 14.5) ** (1 / 3) / 128)) * 128)
    layers = max(1, round((p - 2 * vocab * hidden) / (14.5 * hidden * hidden)))
    per_layer_target = max(0.0, (p - 2 * vocab * hidden) / layers)
    inter = max(128, int(round((per_layer_target - 4 * hidden * hidden) / (3 * hidden) / 128)) * 128)
    heads = max(1, hidden // 128)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "intermediate_size": inter,
        "vocab_size": vocab,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    facts = facts_from_config(
        config, model_id=model_id, source="params_b", source_note=f"estimate from model.params_b={params_b}"
    )
    warnings = [
        f"no config.json: {model_id} estimated as a Llama-shaped dense model of {params_b}B parameters "
        f"({layers} layers, hidden {hidden}, intermediate {inter}, vocab {vocab})",
        "num_key_value_heads guessed = num_attention_heads (MHA): KV cache per token is an upper bound",
        "max_position_embeddings guessed 8192; dtype guessed bfloat16",
    ]
    return facts.model_copy(update={"warnings": warnings})
