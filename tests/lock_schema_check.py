"""Validate a written lock against the committed lock schema (shared by conftest and the schema tests)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from vllm_compile.yaml_text import load_yaml

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "lock.v1.schema.json"


@functools.cache
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def lock_schema_errors(path: Path) -> list[str]:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except Exception as exc:  # a lock that is not even YAML fails loudly
        return [f"unreadable: {exc}"]
    return [f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in _validator().iter_errors(data)]
