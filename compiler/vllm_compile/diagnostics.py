"""Diagnostics (`file:line:column: code: message`) and the documented exit codes."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

Severity = Literal["error", "warning", "note"]


class ExitCode(IntEnum):
    OK = 0
    POLICY = 1  # a deployment fails its policy (HIGH OOM risk by default), or stale output under --check
    INVALID = 2  # invalid input or usage


@dataclass(frozen=True, order=True)
class Diagnostic:
    file: str
    line: int  # 1-based; 0 = the whole file
    column: int  # 1-based; 0 = the whole line
    code: str  # e.g. unknown-key, type, range, duplicate-key, extends-cycle
    message: str
    severity: Severity = "error"

    def format(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        return f"{where}: {self.code}: {self.message}"

    def github(self) -> str:
        """A GitHub Actions workflow command, shown on the pull request's diff."""
        kind = {"error": "error", "warning": "warning", "note": "notice"}[self.severity]
        props = [f"file={self.file}"]
        if self.line:
            props.append(f"line={self.line}")
        if self.column:
            props.append(f"col={self.column}")
        message = f"{self.code}: {self.message}".replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return f"::{kind} {','.join(props)}::{message}"


class DiagnosticError(Exception):
    """Raised by the front end and the resolver: the input is invalid; carries every problem found."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
