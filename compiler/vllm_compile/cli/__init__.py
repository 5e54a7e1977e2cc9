"""The command line: one module per command, each parsing its flags and printing; the work is in api.py.

`main` dispatches: a compile by default (`compile`), `schema`, and the subcommands, each imported only
when used (start-up time: the hook runs on every commit). `console` is the `vllm-compile` executable.
"""

from __future__ import annotations

import gc

from .main import main

__all__ = ["console", "main"]


def console() -> None:
    """`main`, then the process exits. Everything it made dies with the process, so the interpreter's
    last garbage collection is skipped (gc.freeze): on a one-profile compile that collection walks every
    object the imports and the plan left and costs ~40 ms of a ~0.3 s pre-commit hook. Files are closed
    where they are written (write.py), and Python flushes stdout and stderr at exit either way."""
    code = main()
    gc.freeze()
    raise SystemExit(code)
