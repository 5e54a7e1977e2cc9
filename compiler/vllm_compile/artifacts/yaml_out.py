"""Deterministic YAML text from plain data: sorted keys, block style, LF, no aliases."""

from __future__ import annotations

import io
import re
from typing import Any

from ruamel.yaml import YAML

# Plain scalars a YAML 1.1 reader (PyYAML, Helm's and kubectl's go-yaml) would not read back as the
# same string: booleans like `on`/`no`, nulls, and anything that looks like a number.
_AMBIGUOUS = re.compile(
    r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|~|null|Null|NULL|[-+]?\.?[0-9].*|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|)$"
)


def _represent_str(representer: Any, data: str) -> Any:
    style = "'" if _AMBIGUOUS.match(data) else None
    if "\n" in data:
        style = '"'
    return representer.represent_scalar("tag:yaml.org,2002:str", data, style=style)


class _Dumper:
    def __init__(self) -> None:
        self.yaml = YAML(typ="safe", pure=True)
        self.yaml.default_flow_style = False
        self.yaml.width = 4096  # never fold long strings: a folded shell script is harder to review
        self.yaml.representer.ignore_aliases = lambda _data: True
        self.yaml.sort_base_mapping_type_on_output = True  # type: ignore[assignment]
        self.yaml.representer.add_representer(str, _represent_str)


def _sorted(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(k): _sorted(data[k]) for k in sorted(data, key=str)}
    if isinstance(data, list | tuple):
        return [_sorted(v) for v in data]
    return data


def to_yaml(data: Any) -> str:
    """One YAML document, keys sorted at every level, ending with one newline."""
    buf = io.StringIO()
    _Dumper().yaml.dump(_sorted(data), buf)
    return buf.getvalue().rstrip("\n") + "\n"


def to_yaml_documents(docs: list[Any]) -> str:
    """Several documents separated by `---`."""
    return "---\n".join(to_yaml(d) for d in docs)
