"""Front end: read a profile with ruamel.yaml (keeping positions), apply `extends` overlays, validate
against the published JSON Schema, and build the typed Profile. Every problem is a Diagnostic with
file:line:column."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic, DiagnosticError, did_you_mean
from ..resources import resource_dir
from .v1 import Profile

SCHEMA_FILE = "profile.v1.schema.json"
Path_ = tuple[str | int, ...]
Position = tuple[str, int, int]  # file, line, column (1-based)


class LoadedProfile:
    """A profile after overlays: the merged document, where each value came from, and the model."""

    def __init__(
        self, path: Path, name: str, data: dict[str, Any], positions: dict[Path_, Position], profile: Profile
    ):
        self.path = path
        self.name = name
        self.data = data
        self.positions = positions
        self.profile = profile

    def position(self, path: Path_) -> Position:
        """The closest known position of a value (walks up to the parent when the value has none)."""
        while path and path not in self.positions:
            path = path[:-1]
        return self.positions.get(path, (str(self.path), 0, 0))


def is_base(path: Path) -> bool:
    """Files named `_*.yaml` are bases for `extends`, not compiled on their own."""
    return path.name.startswith("_")


def profile_name(path: Path, data: dict[str, Any]) -> str:
    name = data.get("name")
    return name if isinstance(name, str) and name else path.stem


def load_profile(path: Path, display: str | None = None) -> LoadedProfile:
    """Load, overlay, validate. Raises DiagnosticError listing every problem found."""
    display = display or str(path)
    data, positions = _load_with_extends(path, display, stack=())
    _validate_schema(data, positions, display)
    profile = _build_model(data, positions, display)
    return LoadedProfile(path, profile_name(path, data), data, positions, profile)


def profile_from_dict(data: dict[str, Any], display: str = "<profile>") -> Profile:
    """Validate a profile built in memory (the `plan`/`generate` flags) exactly like a file."""
    positions: dict[Path_, Position] = {}
    _validate_schema(data, positions, display)
    return _build_model(data, positions, display)


# --- YAML with positions ---------------------------------------------------------------------------


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _read_yaml(path: Path, display: str) -> tuple[Any, dict[Path_, Position]]:
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DiagnosticError([Diagnostic(display, 0, 0, "read", str(exc))]) from exc
    try:
        doc = _yaml().load(text)
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        key = str(exc.problem).split('"')[1] if '"' in str(exc.problem) else "?"
        raise DiagnosticError(
            [
                Diagnostic(
                    display, mark.line + 1, mark.column + 1, "duplicate-key", f"key '{key}' appears twice"
                )
            ]
        ) from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise DiagnosticError(
            [Diagnostic(display, line, col, "yaml", f"{exc.problem or exc.context}")]
        ) from exc
    positions: dict[Path_, Position] = {}
    _collect_positions(doc, (), display, positions)
    return _plain(doc), positions


def _collect_positions(node: Any, path: Path_, display: str, out: dict[Path_, Position]) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        for key in node:
            line, col = node.lc.key(key)
            out[(*path, key)] = (display, line + 1, col + 1)
            _collect_positions(node[key], (*path, key), display, out)
    elif isinstance(node, CommentedSeq):
        for index, item in enumerate(node):
            line, col = node.lc.item(index)
            out[(*path, index)] = (display, line + 1, col + 1)
            _collect_positions(item, (*path, index), display, out)


def _plain(node: Any) -> Any:
    """ruamel's round-trip types to plain dict/list/str/int/float/bool."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return str(node)


# --- extends ---------------------------------------------------------------------------------------


def _load_with_extends(
    path: Path, display: str, stack: tuple[Path, ...]
) -> tuple[dict, dict[Path_, Position]]:
    resolved = path.resolve()
    if resolved in stack:
        chain = " -> ".join(p.name for p in (*stack, resolved))
        raise DiagnosticError([Diagnostic(display, 0, 0, "extends-cycle", f"extends cycle: {chain}")])
    data, positions = _read_yaml(path, display)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DiagnosticError([Diagnostic(display, 1, 1, "type", "a profile is a YAML mapping")])
    base_ref = data.pop("extends", None)
    if base_ref is None:
        return data, positions
    where = positions.get(("extends",), (display, 0, 0))
    if not isinstance(base_ref, str) or not base_ref:
        raise DiagnosticError([Diagnostic(*where, "type", "extends takes a relative path")])
    base_path = path.parent / base_ref
    if not base_path.is_file():
        raise DiagnosticError([Diagnostic(*where, "extends", f"base profile '{base_ref}' not found")])
    base_display = str(Path(display).parent / base_ref)
    base, base_positions = _load_with_extends(base_path, base_display, (*stack, resolved))
    return _deep_merge(base, data), {**base_positions, **positions}


def _deep_merge(base: dict, overlay: dict) -> dict:
    """Mappings merge key by key, the overlay wins; lists and scalars replace."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# --- validation ------------------------------------------------------------------------------------


@cache
def profile_schema() -> dict[str, Any]:
    return json.loads((resource_dir("schemas") / SCHEMA_FILE).read_text(encoding="utf-8"))


@cache
def _validator():
    from jsonschema import Draft202012Validator

    return Draft202012Validator(profile_schema())


def _validate_schema(data: dict, positions: dict[Path_, Position], display: str) -> None:
    diagnostics = []
    for error in _validator().iter_errors(data):
        diagnostics.extend(_diagnose(error, positions, display))
    if diagnostics:
        raise DiagnosticError(set(diagnostics))


def _where(positions: dict[Path_, Position], path: Path_, display: str) -> Position:
    while path and path not in positions:
        path = path[:-1]
    return positions.get(path, (display, 0, 0))


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _diagnose(error, positions: dict[Path_, Position], display: str) -> list[Diagnostic]:
    path: Path_ = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        return [
            Diagnostic(
                *_where(positions, (*path, key), display),
                "unknown-key",
                f"unknown key '{key}' in {_dotted(path)}{did_you_mean(key, allowed)}",
            )
            for key in sorted(set(error.instance) - allowed)
        ]
    if error.validator == "required":
        return [
            Diagnostic(*_where(positions, path, display), "missing-key", f"{_dotted(path)}: {error.message}")
        ]
    leaf = _most_relevant(error)
    code = (
        "range"
        if leaf.validator in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
        else "type"
    )
    if leaf.validator in {"enum", "const", "pattern", "minLength"}:
        code = "value"
    return [Diagnostic(*_where(positions, path, display), code, f"{_dotted(path)}: {_message(error, leaf)}")]


def _most_relevant(error):
    """For `x | 'auto'` unions, the branch whose type matches says what is wrong (e.g. the maximum)."""
    if not error.context:
        return error
    non_type = [e for e in error.context if e.validator not in {"type", "const", "enum"}]
    return min(non_type, key=lambda e: len(e.absolute_path)) if non_type else error


def _message(error, leaf) -> str:
    if leaf is not error:
        return leaf.message
    if error.validator in {"anyOf", "oneOf"}:
        return f"{error.instance!r} is not {_expected(error.schema)}"
    return error.message


def _expected(schema: dict) -> str:
    options = []
    for branch in schema.get("anyOf", schema.get("oneOf", [])):
        if "const" in branch:
            options.append(repr(branch["const"]))
        elif "enum" in branch:
            options.extend(repr(v) for v in branch["enum"])
        elif "type" in branch:
            options.append(f"a{'n' if branch['type'][0] in 'aeiou' else ''} {branch['type']}")
        elif "$ref" in branch:
            options.append("a mapping")
    return "one of: " + ", ".join(options) if options else "valid here"


def _build_model(data: dict, positions: dict[Path_, Position], display: str) -> Profile:
    from pydantic import ValidationError

    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise DiagnosticError(
            Diagnostic(
                *_where(positions, tuple(e["loc"]), display),
                "invalid",
                f"{_dotted(tuple(e['loc']))}: {e['msg']}",
            )
            for e in exc.errors()
        ) from exc
