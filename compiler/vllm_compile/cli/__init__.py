"""The command line: one module per command, each parsing its flags and printing; the work is in api.py.

`main` (the `vllm-compile` entry point) dispatches: a compile by default (`compile`), `schema`, and the
subcommands, each imported only when used (start-up time: the hook runs on every commit).
"""

from .main import main

__all__ = ["main"]
