"""Printing a compile result: human (rich), JSON, or GitHub Actions annotations."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from ..api import CompileResult, ProfileResult


def print_result(result: CompileResult, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(_as_json(result), indent=2, sort_keys=True, ensure_ascii=False))
    elif fmt == "github":
        _print_github(result)
    else:
        _print_human(result)


def _status(item: ProfileResult, check: bool) -> str:
    if item.invalid and not item.summary:
        return "invalid"
    s = item.summary
    verdict = ("starts" if s["starts"] else "WOULD NOT START") + f", {s['oom_risk']} risk"
    if check and item.changes:
        verdict += ", stale"
    elif item.reused:
        verdict += ", unchanged"
    elif item.changes:
        verdict += f", {len(item.changes)} file(s) {'to write' if check else 'written'}"
    return verdict


class _PlainConsole:
    """What rich prints when it writes to no terminal (pre-commit, CI, a pipe): the text as it is.
    Importing rich costs ~40 ms of a hook run that prints a few lines, so it is loaded for a terminal only."""

    def __init__(self, stderr: bool = False) -> None:
        self.stream = sys.stderr if stderr else sys.stdout

    def print(self, text: str, *, markup: bool = True, style: str | None = None, end: str = "\n") -> None:
        print(text, end=end, file=self.stream)


def _wants_color() -> bool:
    """rich's own rule, in short: a terminal on either stream, or FORCE_COLOR; never under NO_COLOR."""
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or sys.stdout.isatty() or sys.stderr.isatty()


def _consoles() -> tuple[Any, Any, Callable[[str, str], str]]:
    """(stdout, stderr, style(text, colour)): rich on a terminal, plain text elsewhere."""
    if not _wants_color():
        return _PlainConsole(), _PlainConsole(stderr=True), lambda text, _colour: text
    from rich.console import Console
    from rich.markup import escape

    out, err = Console(highlight=False, soft_wrap=True), Console(stderr=True, highlight=False, soft_wrap=True)
    return out, err, lambda text, colour: f"[{colour}]{escape(text)}[/{colour}]"


def _print_human(result: CompileResult) -> None:
    out, err, styled = _consoles()
    for diagnostic in result.diagnostics:
        err.print(diagnostic.format(), markup=False)
    rows = []
    for item in result.results:
        for diagnostic in item.diagnostics:
            err.print(
                diagnostic.format(), markup=False, style="red" if diagnostic.severity == "error" else "yellow"
            )
        s = item.summary
        if s:
            style = "red" if s["fails_policy"] else "yellow" if s["oom_risk"] != "LOW" else "green"
            rows.append(
                (
                    item.name or item.display,
                    f"{_short_gpu(s['gpu'])} x{s['gpus']}",
                    _status(item, result.check),
                    f"{s['kv_tokens']:,} KV tokens",
                    f"{s['max_concurrency']:.2f}x max concurrency",
                    style,
                )
            )
        else:
            rows.append((item.display, "-", "invalid", "-", "-", "red"))
    if not rows:
        err.print("no profiles found")
    widths = [max(len(r[i]) for r in rows) for i in range(5)] if rows else []
    for *cells, style in rows:
        padded = [
            c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        padded[2] = styled(padded[2], style)
        out.print("  ".join(padded[:2] + [padded[2]] + padded[3:]).rstrip())
    if result.check:
        for item in result.results:
            for change in item.changes:
                out.print(f"stale: {_rel(change.path, result)} ({change.kind})", markup=False)
                out.print(change.diff(result.root), markup=False, end="")
    for directory in result.stale:
        action = (
            "removed"
            if not result.check and _pruned(directory)
            else "stale output (run with --prune to remove)"
        )
        out.print(f"{_rel(directory, result)}: {action}", markup=False)


def _short_gpu(name: str) -> str:
    return name.removeprefix("NVIDIA ").removeprefix("GeForce ").removeprefix("AMD ")


def _pruned(directory) -> bool:
    return not directory.exists()


def _rel(path, result: CompileResult) -> str:
    try:
        return path.relative_to(result.root).as_posix()
    except ValueError:
        return str(path)


def _print_github(result: CompileResult) -> None:
    for diagnostic in result.diagnostics:
        print(diagnostic.github())
    for item in result.results:
        for diagnostic in item.diagnostics:
            print(diagnostic.github())
        if item.summary:
            s = item.summary
            print(
                f"{item.name}: {_short_gpu(s['gpu'])} x{s['gpus']}, {_status(item, result.check)}, "
                f"{s['kv_tokens']:,} KV tokens, {s['max_concurrency']:.2f}x max concurrency"
            )
        if result.check:
            for change in item.changes:
                print(
                    f"::error file={_rel(change.path, result)}::stale output ({change.kind}); run vllm-compile and commit out/"
                )
    for directory in result.stale:
        print(
            f"::error file={_rel(directory, result)}::stale output of a deleted profile; run vllm-compile --prune"
        )


def _as_json(result: CompileResult) -> dict:
    return {
        "exit_code": int(result.exit_code),
        "diagnostics": [d.__dict__ for d in result.diagnostics],
        "profiles": [
            {
                "profile": item.display,
                "name": item.name,
                "diagnostics": [d.__dict__ for d in item.diagnostics],
                "summary": item.summary,
                "reused": item.reused,
                "changes": [{"path": _rel(c.path, result), "kind": c.kind} for c in item.changes],
            }
            for item in result.results
        ],
        "stale": [_rel(d, result) for d in result.stale],
    }
