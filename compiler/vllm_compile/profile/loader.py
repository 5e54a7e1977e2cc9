"""Front end: read a profile with ruamel.yaml (keeping positions), apply `extends` overlays, validate
against the published JSON Schema, and build the typed Profile. Every problem is a Diagnostic with
file:line:column."""

from __future__ import annotations

import contextlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic, DiagnosticError, did_you_mean
from ..resources import resource_dir
from . import v1
from .v1 import Profile

# What a pattern of the schema means, said to a person.
PATTERN_MEANING = {
    v1.NO_CONTROL: "contains a control character (a newline, a tab ...)",
    v1.TEXT: "contains a control character",
    v1.ARGUMENT: "must not start with '-' or a space (vLLM would read it as a flag) nor contain control characters",
    v1.WORD: "must be one word: no spaces or control characters, not starting with '-'",
    v1.DNS_SUBDOMAIN: "is not a Kubernetes name: lowercase letters, digits, '-' and '.', "
    "starting and ending with a letter or digit",
    v1.LABEL_KEY: "is not a Kubernetes label key (e.g. cloud.google.com/gke-accelerator)",
    v1.LABEL_VALUE: "is not a Kubernetes label value: letters, digits, '-', '_' and '.', at most 63",
    v1.QUANTITY: "is not a Kubernetes quantity like 8, 500m, 64Gi",
    v1.ENV_NAME: "is not an environment variable name: letters, digits and '_', not starting with a digit",
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "must be lowercase letters, digits and '-', "
    "starting and ending with a letter or digit",
}

SCHEMA_FILE = "profile.v1.schema.json"
Path_ = tuple[str | int, ...]
Position = tuple[str, int, int]  # file, line, column (1-based)


Source = tuple[Path, str, Any]  # path, display, libyaml's node of the file (None: ruamel read it)


class Positions:
    """Where each value of a merged profile came from (file, line, column), computed on first use:
    only a diagnostic needs them, so the common case never pays for them."""

    def __init__(self, files: list[Source], index: dict[Path_, Position] | None = None):
        self._files = files  # base first: later files win
        self._index = index

    def _build(self) -> dict[Path_, Position]:
        if self._index is None:
            index: dict[Path_, Position] = {}
            for path, display, node in self._files:
                index.update(_file_positions(path, display, node))
            self._index = index
        return self._index

    def __call__(self, path: Path_) -> Position:
        """The closest known position of a value (walks up to the parent when the value has none)."""
        index = self._build()
        while path and path not in index:
            path = path[:-1]
        return index.get(path, (self._files[-1][1], 0, 0) if self._files else ("<profile>", 0, 0))


class LoadedProfile:
    """A profile after overlays: the merged document, where each value came from, and the model."""

    def __init__(self, path: Path, name: str, data: dict[str, Any], positions: Positions, profile: Profile):
        self.path = path
        self.name = name
        self.data = data
        self.position = positions
        self.profile = profile


def is_base(path: Path) -> bool:
    """Files named `_*.yaml` are bases for `extends`, not compiled on their own."""
    return path.name.startswith("_")


def profile_name(path: Path, data: dict[str, Any]) -> str:
    name = data.get("name")
    return name if isinstance(name, str) and name else path.stem


def load_profile(
    path: Path, display: str | None = None, defaults: dict[str, Any] | None = None
) -> LoadedProfile:
    """Load, overlay, validate. Raises DiagnosticError listing every problem found.

    `defaults`: the repository configuration's profile defaults, under every overlay (the profile wins)."""
    display = display or str(path)
    files: list[Source] = []
    data = _load_with_extends(path, display, stack=(), files=files)
    if defaults:
        data = _deep_merge(defaults, data)
    positions = Positions(files)
    _validate_schema(data, positions)
    profile = _build_model(data, positions)
    return LoadedProfile(path, profile_name(path, data), data, positions, profile)


def profile_from_dict(data: dict[str, Any], display: str = "<profile>") -> Profile:
    """Validate a profile built in memory (the `plan`/`generate` flags) exactly like a file."""
    positions = Positions([(Path(display), display, None)], index={})
    _validate_schema(data, positions)
    return _build_model(data, positions)


# --- YAML ---------------------------------------------------------------------------------------

# YAML 1.2 core schema (what ruamel.yaml resolves by default), so the fast reader and ruamel agree
# on every value: `yes`/`on` stay strings, `010` is an int 10, `1:20` a string.
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9][0-9_]*$")  # ruamel.yaml reads 1_000 as 1000
_INT_BASE = re.compile(r"^0o[0-7]+$|^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_SPECIAL_FLOAT = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}


# Limits checked before anything is expanded or built: a profile is a few KB; these are a hundred
# times what a real one needs, and they keep a hostile file (an alias bomb, 10,000-deep nesting, half a
# million keys) from costing more than milliseconds.
MAX_FILE_BYTES = 256 * 1024
MAX_NODES = 20_000  # scalars, mappings and sequences after aliases and merge keys are expanded
MAX_DEPTH = 32
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Duplicate(Exception):
    pass


class _Limit(Exception):
    def __init__(self, message: str, mark: Any):
        super().__init__(message)
        self.mark = mark


class _Budget:
    """Counts nodes as they are expanded (an alias costs what it expands to)."""

    def __init__(self) -> None:
        self.left = MAX_NODES

    def take(self, node: Any, depth: int) -> None:
        self.left -= 1
        if self.left < 0:
            raise _Limit(
                f"the profile expands to more than {MAX_NODES:,} values (keys, items and aliases "
                "expanded); a profile is a few hundred",
                node.start_mark,
            )
        if depth > MAX_DEPTH:
            raise _Limit(f"nesting deeper than {MAX_DEPTH} levels", node.start_mark)


def _scalar(node: Any) -> Any:
    value = node.value
    if node.style in ("'", '"', "|", ">"):  # quoted or block: a string
        return value
    if node.tag not in (None, "tag:yaml.org,2002:str") and not node.tag.startswith("tag:yaml.org,2002:"):
        return value
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT.match(value):
        return int(value.replace("_", ""))
    if _INT_BASE.match(value):
        return int(value, 0)
    if _FLOAT.match(value):
        return float(value)
    if value.lower() in _SPECIAL_FLOAT:
        return _SPECIAL_FLOAT[value.lower()]
    return value


def _plain_from_node(node: Any, budget: _Budget | None = None, depth: int = 0) -> Any:
    """Plain data from libyaml's node graph. Aliases are the same node object (each use is counted
    against the budget); `<<` merge keys merge as YAML 1.1 says (explicit keys win, earlier maps win)."""
    import yaml

    budget = budget or _Budget()
    budget.take(node, depth)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG and isinstance(key_node, yaml.ScalarNode):
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    part = _plain_from_node(source, budget, depth + 1)
                    if not isinstance(part, dict):
                        raise _Limit(
                            "a `<<` merge key takes a mapping or a list of mappings", source.start_mark
                        )
                    for key, value in part.items():
                        merged.setdefault(key, value)
                continue
            key = _plain_from_node(key_node, budget, depth + 1)
            key = str(key) if not isinstance(key, str) else key
            if key in out:
                raise _Duplicate(key)
            out[key] = _plain_from_node(value_node, budget, depth + 1)
        for key, value in merged.items():
            out.setdefault(key, value)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain_from_node(item, budget, depth + 1) for item in node.value]
    return _scalar(node)


def _read_text(path: Path, display: str) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DiagnosticError([Diagnostic(display, 0, 0, "read", exc.strerror or str(exc))]) from exc
    if len(raw) > MAX_FILE_BYTES:
        raise DiagnosticError(
            [
                Diagnostic(
                    display,
                    0,
                    0,
                    "limit",
                    f"file larger than {MAX_FILE_BYTES // 1024} KiB; a profile is a few KB",
                )
            ]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DiagnosticError(
            [Diagnostic(display, line, 0, "read", f"not UTF-8 text ({exc.reason})")]
        ) from exc


def _reader_error(exc: Any, text: str, display: str) -> DiagnosticError:
    """A character YAML does not allow (a control character, even in a comment), at its position."""
    position = getattr(exc, "position", 0) or 0
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    character = text[position] if 0 <= position < len(text) else ""
    what = f"U+{ord(character):04X}" if character else "a character"
    return DiagnosticError(
        [
            Diagnostic(
                display,
                line,
                column,
                "yaml",
                f"{what} is not allowed in YAML (control characters are refused even in comments); remove it",
            )
        ]
    )


def _read_yaml(path: Path, display: str) -> tuple[Any, Any]:
    """Plain data, fast (libyaml's composer), within the limits above, and the node graph it was read
    from (None where ruamel.yaml read it). A syntax error or a duplicate key goes to ruamel.yaml, which
    reports it with its position; explicit tags (`!`) are read by ruamel too (its semantics decide),
    once the limits hold."""
    import yaml

    text = _read_text(path, display)
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, display) from exc
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" in str(exc.problem):  # libyaml's own guard (1000 levels)
            mark = exc.problem_mark
            raise DiagnosticError(
                [
                    Diagnostic(
                        display,
                        mark.line + 1,
                        mark.column + 1,
                        "limit",
                        f"nesting deeper than {MAX_DEPTH} levels",
                    )
                ]
            ) from exc
        return _ruamel_load(text, display), None
    except yaml.YAMLError:
        return _ruamel_load(text, display), None
    if node is None:
        return None, None
    try:
        data = _plain_from_node(node)
    except _Duplicate:
        return _ruamel_load(text, display), None
    except _Limit as exc:
        mark = exc.mark
        raise DiagnosticError(
            [Diagnostic(display, mark.line + 1, mark.column + 1, "limit", str(exc))]
        ) from exc
    if "!" in text:  # maybe a tag: ruamel's reading decides (it is bounded: the limits held above)
        return _ruamel_load(text, display), None
    return data, node


def _ruamel_yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _ruamel_load(text: str, display: str) -> Any:
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    try:
        return _plain(_ruamel_yaml().load(text))
    except ReaderError as exc:
        raise _reader_error(exc, text, display) from exc
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
    except (YAMLError, RecursionError) as exc:
        raise DiagnosticError([Diagnostic(display, 0, 0, "yaml", str(exc).splitlines()[0][:200])]) from exc


def _file_positions(path: Path, display: str, node: Any) -> dict[Path_, Position]:
    """A file's positions from the node graph it was read from: the marks ruamel.yaml records are the
    same nodes' (a round-trip parse costs ~2 ms a profile, for every profile with a warning). ruamel
    is asked where its keys could differ from the plain reading's: `<<` merges (their keys have no
    line of their own) and keys that are not plain names (ruamel keeps its own types: 1.5, dates)."""
    if node is not None:
        positions: dict[Path_, Position] = {}
        try:
            _node_positions(node, (), display, positions)
            return positions
        except _RuamelKeys:
            pass  # ruamel's reading of the keys decides
    return _ruamel_positions(path, display)


class _RuamelKeys(Exception):
    """A mapping whose keys ruamel.yaml reads its own way: its positions come from ruamel."""


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _node_positions(node: Any, path: Path_, display: str, out: dict[Path_, Position]) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if key_node.tag == _MERGE_TAG or not isinstance(key, str) or not _PLAIN_KEY.match(key):
                raise _RuamelKeys
            mark = key_node.start_mark
            out[(*path, key)] = (display, mark.line + 1, mark.column + 1)
            _node_positions(value_node, (*path, key), display, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            mark = item.start_mark
            out[(*path, index)] = (display, mark.line + 1, mark.column + 1)
            _node_positions(item, (*path, index), display, out)


def _ruamel_positions(path: Path, display: str) -> dict[Path_, Position]:
    try:
        doc = _ruamel_yaml().load(_read_text(path, display))
    except Exception:  # the file was read once already; if it changed meanwhile, positions are best effort
        return {}
    positions: dict[Path_, Position] = {}
    with contextlib.suppress(Exception):  # best effort too: a diagnostic without a line beats none
        _collect_positions(doc, (), display, positions)
    return positions


def _collect_positions(node: Any, path: Path_, display: str, out: dict[Path_, Position]) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        for key in node:
            where = node.lc.key(key)  # None for a key merged in by `<<`: it has no line of its own
            if not where:
                _collect_positions(node[key], (*path, key), display, out)
                continue
            line, col = where
            out[(*path, key)] = (display, line + 1, col + 1)
            _collect_positions(node[key], (*path, key), display, out)
    elif isinstance(node, CommentedSeq):
        for index, item in enumerate(node):
            line, col = node.lc.item(index)
            out[(*path, index)] = (display, line + 1, col + 1)
            _collect_positions(item, (*path, index), display, out)


def _plain(node: Any, budget: list[int] | None = None, depth: int = 0) -> Any:
    """ruamel's round-trip types to plain dict/list/str/int/float/bool, within the same limits (ruamel
    shares an aliased object; expanding it is what costs)."""
    budget = budget if budget is not None else [MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        what = (
            f"more than {MAX_NODES:,} values" if budget[0] < 0 else f"nesting deeper than {MAX_DEPTH} levels"
        )
        raise DiagnosticError([Diagnostic("<profile>", 0, 0, "limit", f"the profile has {what}")])
    if isinstance(node, dict):
        return {str(k): _plain(v, budget, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, budget, depth + 1) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return str(node)


# --- extends ---------------------------------------------------------------------------------------


def _load_with_extends(path: Path, display: str, stack: tuple[Path, ...], files: list[Source]) -> dict:
    resolved = path.resolve()
    if resolved in stack:
        chain = " -> ".join(p.name for p in (*stack, resolved))
        raise DiagnosticError([Diagnostic(display, 0, 0, "extends-cycle", f"extends cycle: {chain}")])
    data, node = _read_yaml(path, display)
    here = Positions([(path, display, node)])
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DiagnosticError([Diagnostic(display, 1, 1, "type", "a profile is a YAML mapping")])
    base_ref = data.pop("extends", None)
    if base_ref is None:
        files.append((path, display, node))
        return data
    if not isinstance(base_ref, str) or not base_ref:
        raise DiagnosticError([Diagnostic(*here(("extends",)), "type", "extends takes a relative path")])
    base_path = path.parent / base_ref
    if not base_path.is_file():
        raise DiagnosticError(
            [Diagnostic(*here(("extends",)), "extends", f"base profile '{base_ref}' not found")]
        )
    base_display = str(Path(display).parent / base_ref)
    base = _load_with_extends(base_path, base_display, (*stack, resolved), files)
    files.append((path, display, node))
    return _deep_merge(base, data)


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


def _validate_schema(data: dict, positions: Positions) -> None:
    diagnostics = []
    for error in _validator().iter_errors(data):
        diagnostics.extend(_diagnose(error, positions))
    if diagnostics:
        raise DiagnosticError(set(diagnostics))


def _dotted(path: Path_) -> str:
    """`a.b.0`; a key with a newline or another control character is shown quoted, on one line."""
    return ".".join(str(p) if str(p).isprintable() else repr(str(p)) for p in path) or "(top level)"


def _diagnose(error, positions: Positions) -> list[Diagnostic]:
    path: Path_ = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        return [
            Diagnostic(
                *positions((*path, key)),
                "unknown-key",
                f"unknown key '{key}' in {_dotted(path)}{did_you_mean(key, allowed)}",
            )
            for key in sorted(set(error.instance) - allowed)
        ]
    if error.validator == "required":
        hint = ""
        if not path and "'profile_version'" in error.message:
            hint = "; add `profile_version: 1` at the top (the vLLM Config Wizard's format is version 1)"
        return [Diagnostic(*positions(path), "missing-key", f"{_dotted(path)}: {error.message}{hint}")]
    if error.validator == "propertyNames":
        return [Diagnostic(*positions(path), "value", f"{_dotted(path)}: {_message(error, error)}")]
    leaf = _most_relevant(error)
    code = (
        "range"
        if leaf.validator in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
        else "type"
    )
    if leaf.validator in {"enum", "const", "pattern", "minLength", "maxLength"}:
        code = "value"
    if leaf.validator in {"maxLength", "maxItems", "maxProperties"}:
        code = "limit"
    return [Diagnostic(*positions(path), code, f"{_dotted(path)}: {_message(error, leaf)}")]


def _most_relevant(error):
    """For `x | 'auto'` unions, the branch whose type matches says what is wrong (e.g. the maximum)."""
    if not error.context:
        return error
    non_type = [e for e in error.context if e.validator not in {"type", "const", "enum"}]
    return min(non_type, key=lambda e: len(e.absolute_path)) if non_type else error


def _message(error, leaf) -> str:
    if leaf.validator == "pattern":
        return f"{leaf.instance!r} {PATTERN_MEANING.get(leaf.validator_value, 'is not valid here')}"
    if error.validator == "propertyNames" and error.context:
        inner = error.context[0]
        return f"key {inner.instance!r} {PATTERN_MEANING.get(inner.validator_value, 'is not valid here')}"
    if leaf.validator == "maxLength":
        return f"{len(leaf.instance)} characters; at most {leaf.validator_value}"
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


def _build_model(data: dict, positions: Positions) -> Profile:
    from pydantic import ValidationError

    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise DiagnosticError(_pydantic_diagnostic(e, positions) for e in exc.errors()) from exc


def _pydantic_diagnostic(error: dict, positions: Positions) -> Diagnostic:
    loc = tuple(p for p in error["loc"] if p != "[key]")
    message = error["msg"]
    pattern = (error.get("ctx") or {}).get("pattern")
    if error["type"] == "string_pattern_mismatch" and pattern in PATTERN_MEANING:
        what = "key" if "[key]" in error["loc"] else "value"
        shown = error["input"] if isinstance(error["input"], str) else str(error["input"])
        message = f"{what} {shown!r} {PATTERN_MEANING[pattern]}"
        return Diagnostic(*positions(loc), "value", f"{_dotted(loc)}: {message}")
    return Diagnostic(*positions(loc), "invalid", f"{_dotted(loc)}: {message}")
