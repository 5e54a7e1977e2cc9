"""Diagnostics (`file:line:column: code: message`) and the documented exit codes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

Severity = Literal["error", "warning", "note"]


class ExitCode(IntEnum):
    OK = 0
    POLICY = 1  # a deployment fails its policy (HIGH OOM risk by default), or stale output under --check
    INVALID = 2  # invalid input or usage
    INTERNAL = 3  # a bug in vllm-compile (not the input's fault): please report it


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
    import difflib  # only when a name is misspelt: start-up time

    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- the one error boundary ------------------------------------------------------------------------

ISSUES_URL = "https://github.com/vllm-compile/vllm-compile/issues"
DEBUG_ENV = "VLLM_COMPILE_DEBUG"  # set by `--debug`; forked workers inherit it


def debug_enabled() -> bool:
    """`--debug` (or VLLM_COMPILE_DEBUG=1): internal errors raise with their traceback."""
    import os

    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


class InputError(ValueError):
    """A problem with the input found past the front end (a pass, the resolver, a renderer).
    `path` is the profile field to point the diagnostic at; `code` its diagnostic code."""

    code = "invalid"

    def __init__(self, message: str, path: tuple[str | int, ...] = ()):
        super().__init__(message)
        self.path = path


def is_input_error(exc: BaseException) -> bool:
    """Raised on purpose about the input: our own ValueError subclasses (WorkloadError, WeightsError,
    SettingsError, RenderError ... and any a new pass adds). A bare ValueError, a TypeError, an
    OverflowError ... from anywhere is a bug: the input should have been refused before it got there."""
    if isinstance(exc, DiagnosticError):
        return True
    cls = type(exc)
    return (
        isinstance(exc, ValueError) and cls is not ValueError and cls.__module__.startswith("vllm_compile.")
    )


def internal_message(exc: BaseException) -> str:
    """One line for a bug: what broke, where to report it, how to see the traceback."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    where = ""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        import os

        where = f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
    return (
        f"internal error (a bug in vllm-compile, not in your input): {type(exc).__name__}{where}"
        f"{': ' + text if text else ''}; please report it at {ISSUES_URL} with the input; "
        "--debug shows the traceback"
    )


def diagnostics_for(exc: BaseException, display: str, position=None) -> list[Diagnostic]:
    """An exception that reached the boundary as diagnostics. `position(path)` -> (file, line, column)
    where the input has positions. Internal errors re-raise under --debug."""
    if isinstance(exc, DiagnosticError):
        return list(exc.diagnostics)
    if is_input_error(exc):
        path = tuple(getattr(exc, "path", ()) or ())
        where = position(path) if position is not None else (display, 0, 0)
        code = getattr(exc, "code", None) or _code_for(exc)
        return [Diagnostic(*where, code, str(exc))]
    if debug_enabled():
        raise exc
    return [Diagnostic(display, 0, 0, INTERNAL_CODE, internal_message(exc))]


INTERNAL_CODE = "internal-error"


def _code_for(exc: BaseException) -> str:
    """`WorkloadError` -> `workload`: the error's family names the diagnostic."""
    name = type(exc).__name__
    return name.removesuffix("Error").lower() or "invalid"
