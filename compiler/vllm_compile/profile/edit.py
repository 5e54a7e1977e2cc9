"""Edit a profile's YAML text in place: comments, key order and flow style kept (ruamel round-trip).

The web page's what-if shows the change to apply as a diff of the user's own file, not a re-dump.
"""

from __future__ import annotations

import difflib
import io
from typing import Any

Path_ = tuple[str, ...]


def set_values(text: str, changes: dict[Path_, Any]) -> str:
    """`text` with each dotted path set (a value of None removes the key); missing sections are added."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a user's long lines
    yaml.indent(mapping=2, sequence=4, offset=2)  # the style of the bundled profiles and `generate`
    doc = yaml.load(text) or CommentedMap()
    for path, value in sorted(changes.items(), key=lambda kv: kv[0]):
        node = doc
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                if value is None:
                    break
                node[key] = CommentedMap()
            node = node[key]
        else:
            if value is None:
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def unified_diff(old: str, new: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{name}",
            tofile=f"b/{name}",
        )
    )
