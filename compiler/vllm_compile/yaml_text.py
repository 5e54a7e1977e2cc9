"""Deterministic YAML text from plain data, for the lockfile and every YAML artifact.

Loading profiles needs positions (ruamel.yaml, profile/loader.py); writing needs speed and one stable
form: PyYAML's libyaml emitter (CSafeDumper, pure-Python fallback) is ~20x faster than a pure-Python
emitter, which matters for a hook that runs on every commit. Keys sorted at every level, block style,
no aliases, no line folding, `null` spelt out, strings a YAML 1.1 reader (PyYAML, go-yaml in kubectl
and Helm) would read as something else are quoted.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_BASE = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Plain scalars YAML 1.1 readers would not read back as the same string: booleans like `on`/`no`,
# nulls, and anything that starts like a number (a version "0.33.0" included, for older readers).
_AMBIGUOUS = re.compile(
    r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|~|null|Null|NULL|[-+]?\.?[0-9].*|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|)$"
)


class FlowList(list):
    """A list written on one line: `[1, 2, 4]` (a diff of capture sizes stays one line)."""


class _Dumper(_BASE):  # type: ignore[misc, valid-type]
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = '"' if "\n" in data else "'" if _AMBIGUOUS.match(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(
    FlowList, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)
_Dumper.add_representer(type(None), lambda d, _: d.represent_scalar("tag:yaml.org,2002:null", "null"))


def _prepared(data: Any, flow_scalar_lists: bool) -> Any:
    if isinstance(data, dict):
        return {str(k): _prepared(data[k], flow_scalar_lists) for k in sorted(data, key=str)}
    if isinstance(data, (list, tuple)):
        items = [_prepared(v, flow_scalar_lists) for v in data]
        scalars = all(isinstance(v, (int, float)) or (isinstance(v, str) and len(v) <= 16) for v in items)
        return FlowList(items) if flow_scalar_lists and items and scalars else items
    return data


def to_yaml(data: Any, *, flow_scalar_lists: bool = False) -> str:
    """One YAML document, keys sorted at every level, ending with one newline."""
    text = yaml.dump(
        _prepared(data, flow_scalar_lists),
        Dumper=_Dumper,
        default_flow_style=False,
        sort_keys=False,  # already sorted, with str() keys
        allow_unicode=True,
        width=1 << 16,  # never fold: folding points would move with content
    )
    return text.rstrip("\n") + "\n"


def to_yaml_documents(docs: list[Any]) -> str:
    """Several documents separated by `---`."""
    return "---\n".join(to_yaml(d) for d in docs)


def load_yaml(text: str) -> Any:
    """Plain data from YAML we wrote (locks): the fast C loader, no positions needed."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
