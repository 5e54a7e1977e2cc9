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


def profile_reference_markdown() -> str:
    """The profile reference for the README, generated from the same models as the schema."""
    schema = profile_json_schema()
    defs = schema["$defs"]
    lines = ["| key | type | default | description |", "|---|---|---|---|"]

    def type_of(node: dict) -> str:
        if "$ref" in node:
            return "mapping"
        if "anyOf" in node:
            return " \\| ".join(type_of(n) for n in node["anyOf"] if n.get("type") != "null")
        if "const" in node:
            return f"`{node['const']}`"
        if "enum" in node:
            return " \\| ".join(f"`{v}`" for v in node["enum"])
        if node.get("type") == "array":
            return f"list of {type_of(node.get('items', {}))}"
        if node.get("type") == "object":
            return "mapping"
        return str(node.get("type", "any"))

    def walk(node: dict, prefix: str) -> None:
        for key, prop in node.get("properties", {}).items():
            ref = prop.get("$ref") or next((n["$ref"] for n in prop.get("anyOf", []) if "$ref" in n), None)
            if key in node.get("required", []):
                shown = "required"
            else:
                shown = f"`{json.dumps(prop['default'])}`" if "default" in prop else "(its defaults)"
            description = prop.get(
                "description", defs.get(ref.split("/")[-1], {}).get("description", "") if ref else ""
            )
            lines.append(f"| `{prefix}{key}` | {type_of(prop)} | {shown} | {description.replace('|', '/')} |")
            if ref and ref.split("/")[-1] not in {"Toleration", "Distribution"}:
                walk(defs[ref.split("/")[-1]], f"{prefix}{key}.")

    walk(schema, "")
    return "\n".join(lines) + "\n"
