"""The built-in model catalog: popular Hub models, so profiles compile offline.

Each row of `data/model_catalog.json` is a (trimmed) config.json, the quantization file beside it
when there is one, safetensors parameter counts where known, the `gated` flag and a source note.
ModelFacts come from the same `facts_from_config` as a local directory or the Hub.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from vllm_compile.facts.model_config import facts_from_config
from vllm_compile.facts.model_facts import ModelFacts

_DATA = "model_catalog.json"


@lru_cache(maxsize=1)
def _rows() -> dict[str, dict[str, Any]]:
    from importlib import resources

    text = resources.files("vllm_compile.facts").joinpath("data", _DATA).read_text(encoding="utf-8")
    return {row["id"].lower(): row for row in json.loads(text)["models"]}


def catalog_ids() -> list[str]:
    """Every catalog id, sorted case-insensitively."""
    return sorted((row["id"] for row in _rows().values()), key=str.lower)


def catalog_row(model_id: str) -> dict[str, Any] | None:
    """The raw row of a Hub id (case-insensitive), or None."""
    return _rows().get(model_id.strip().lower())


@lru_cache(maxsize=256)
def catalog_facts(model_id: str) -> ModelFacts | None:
    """ModelFacts of a catalog model, or None when the id is not in the catalog."""
    row = catalog_row(model_id)
    if row is None:
        return None
    return facts_from_config(
        row["config"],
        model_id=row["id"],
        source="catalog",
        source_note=row.get("source", ""),
        quant_config=row.get("quant_config"),
        safetensors_params=row.get("safetensors_params"),
        gated=bool(row.get("gated", False)),
    )


def all_catalog_facts() -> list[ModelFacts]:
    out = []
    for mid in catalog_ids():
        facts = catalog_facts(mid)
        if facts is not None:
            out.append(facts)
    return out
