"""Repository-level configuration: `vllm-compile.yaml` at the repository root, or `[tool.vllm-compile]` in
its `pyproject.toml` (the YAML file wins when both exist).

    defaults:        profile keys every profile starts from (a profile overrides them; deep merge)
    diff:            regression thresholds for `vllm-compile diff --fail-on-regression`
    verify:          tolerance for `vllm-compile verify`
    calibration:     repository calibration files (globs relative to the root) compiles use
    out:             output folder relative to the root (default out/)
    prices:          GPU prices in $ per GPU-hour, recorded in the lock for cost tools

Every lock compiled with a config records the file and its sha256 (lock `config:`), and the defaults are
part of the profile the inputs hash covers, so changing the config re-plans exactly what it affects.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .diagnostics import Diagnostic, DiagnosticError

CONFIG_FILE = "vllm-compile.yaml"
SCHEMA_ID = "https://github.com/vllm-compile/vllm-compile/raw/main/schemas/repo-config.v1.schema.json"
DEFAULT_CALIBRATION = "calibration/*.yaml"


class DiffConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kv_tokens_drop_pct: float = Field(
        10.0, ge=0, description="KV tokens down by more than this % is a regression."
    )
    itl_rise_pct: float = Field(10.0, ge=0, description="ITL up by more than this % is a regression.")
    flag_pct: float = Field(
        5.0, ge=0, description="Performance changes past this % are flagged in the report."
    )


class VerifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tolerance: float = Field(0.05, ge=0, description="Relative drift allowed per term.")
    floor_gib: float = Field(0.1, ge=0, description="Memory drift under this many GiB is never flagged.")


class RepoConfig(BaseModel):
    """vllm-compile repository configuration, version 1."""

    model_config = ConfigDict(extra="forbid", title="vllm-compile repository config v1")

    config_version: int = Field(1, ge=1, le=1)
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Profile keys every profile starts from (policy, vllm.version, ...).",
    )
    diff: DiffConfig = Field(default_factory=DiffConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    calibration: list[str] = Field(
        default_factory=lambda: [DEFAULT_CALIBRATION],
        description="Calibration files (globs relative to the repository root) that compiles use.",
    )
    out: str | None = Field(None, description="Output folder relative to the root; default out/.")
    prices: dict[str, float] = Field(default_factory=dict, description="GPU name -> $ per GPU-hour.")


class LoadedConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    config: RepoConfig
    file: str | None = None  # relative to the root; None = no config (every default)
    sha256: str | None = None

    def lock_record(self) -> dict[str, Any] | None:
        """What a lock records about the configuration it was compiled with (None without one)."""
        if self.file is None:
            return None
        return {
            "file": self.file,
            "sha256": self.sha256,
            "defaults": self.config.defaults,
            "prices": self.config.prices,
        }


def load_repo_config(root: Path) -> LoadedConfig:
    """The configuration at `root`; raises DiagnosticError when it is invalid."""
    from .yaml_text import load_yaml

    path = root / CONFIG_FILE
    data: Any = None
    text = ""
    display = CONFIG_FILE
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        try:
            data = load_yaml(text) or {}
        except Exception as exc:
            raise DiagnosticError([Diagnostic(display, 0, 0, "config", f"not valid YAML: {exc}")]) from exc
    else:
        pyproject = root / "pyproject.toml"
        if pyproject.is_file():
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]

            try:
                table = (
                    tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("vllm-compile")
                )
            except tomllib.TOMLDecodeError as exc:
                raise DiagnosticError([Diagnostic("pyproject.toml", 0, 0, "config", str(exc))]) from exc
            if table is not None:
                data, display = table, "pyproject.toml"
                text = json.dumps(table, sort_keys=True)
    if data is None:
        return LoadedConfig(config=RepoConfig())
    if not isinstance(data, dict):
        raise DiagnosticError([Diagnostic(display, 1, 1, "config", "the configuration is a mapping")])
    try:
        config = RepoConfig.model_validate(data)
    except ValidationError as exc:
        raise DiagnosticError(
            [
                Diagnostic(display, 0, 0, "config", f"{'.'.join(map(str, e['loc']))}: {e['msg']}")
                for e in exc.errors()
            ]
        ) from exc
    return LoadedConfig(config=config, file=display, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def config_json_schema_text() -> str:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID}
    schema.update(RepoConfig.model_json_schema())
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def config_reference_markdown() -> str:
    """The README's configuration reference, generated from the model (a test keeps it in sync)."""
    lines = ["| key | default | description |", "|---|---|---|"]
    for name, field in RepoConfig.model_fields.items():
        if name in ("diff", "verify"):
            sub = DiffConfig if name == "diff" else VerifyConfig
            for key, inner in sub.model_fields.items():
                lines.append(
                    f"| `{name}.{key}` | `{json.dumps(inner.default)}` | {inner.description or ''} |"
                )
            continue
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        lines.append(f"| `{name}` | `{json.dumps(default)}` | {field.description or ''} |")
    return "\n".join(lines) + "\n"
