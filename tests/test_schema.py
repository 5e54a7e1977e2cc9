"""The published schema is exactly what the models generate, and it validates the bundled profiles."""

from __future__ import annotations

import json

from vllm_compile.cli import main
from vllm_compile.profile.schema import profile_json_schema_text

from .conftest import REPO


def test_committed_schema_matches_the_models() -> None:
    committed = (REPO / "schemas" / "profile.v1.schema.json").read_text(encoding="utf-8")
    assert committed == profile_json_schema_text(), (
        "run: vllm-compile schema > schemas/profile.v1.schema.json"
    )


def test_schema_command_prints_the_committed_file(capsys) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == (REPO / "schemas" / "profile.v1.schema.json").read_text(
        encoding="utf-8"
    )


def test_schema_rejects_unknown_keys_everywhere() -> None:
    schema = json.loads(profile_json_schema_text())
    objects = [schema, *schema["$defs"].values()]
    assert all(
        o.get("additionalProperties") is False
        for o in objects
        if o.get("type") == "object" and "properties" in o
    )


def test_every_bundled_profile_names_the_schema_for_editors() -> None:
    for path in (REPO / "profiles").rglob("*.yaml"):
        assert path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema="), path


def test_readme_profile_reference_is_generated_from_the_schema() -> None:
    from vllm_compile.profile.schema import profile_reference_markdown

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- profile-reference:start -->\n")[1].split("<!-- profile-reference:end -->")[0]
    assert section == profile_reference_markdown()
