"""The published JSON Schema, generated from the pydantic models (the source of truth)."""

from __future__ import annotations

import json

SCHEMA_ID = "https://github.com/vllm-compile/vllm-compile/raw/main/schemas/profile.v1.schema.json"


def profile_json_schema() -> dict:
    from .v1 import Profile

    schema = Profile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def profile_json_schema_text() -> str:
    """Exactly the committed `schemas/profile.v1.schema.json`."""
    return json.dumps(profile_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
