"""The entry point: the error boundary of every command and the dispatch to its module."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..diagnostics import DEBUG_ENV, ExitCode, debug_enabled, internal_message, is_input_error

# Subcommands living in their own modules, imported only when used (start-up time: the hook runs on every commit).
SUBCOMMAND_MODULES = {
    "plan": "plan",
    "models": "models",
    "detect": "detect",
    "generate": "generate",
    "verify": "verify",
    "diff": "diff",
    "recommend": "recommend",
    "ui": "ui",
}

EXIT_CODES = """exit codes:
  0  every profile compiled and passes its policy (and, with --check, out/ is current)
  1  a policy failure (HIGH OOM risk by default; per profile policy.fail_on),
     or stale output under --check
  2  invalid input (a profile, a fact that cannot be resolved) or usage
  3  internal error: a bug in vllm-compile, not in the input (please report it;
     --debug prints the traceback)"""

COMMANDS = """commands:
  vllm-compile [options] PATH...   compile profiles (files or directories) into out/
  vllm-compile schema [--lock]     print the profile (or lock) JSON Schema (schemas/*.v1.schema.json)
  vllm-compile plan ...            plan one deployment from flags (--json, --explain)
  vllm-compile models [--json]     list the built-in model catalog
  vllm-compile detect [--json]     detect local GPUs (NVML, else nvidia-smi)
  vllm-compile generate ...        write a profile and its artifacts from flags
  vllm-compile diff [--base REF]   what a change does to every deployment (a pull-request comment)
  vllm-compile verify LOCK LOG...  compare a lock with what vLLM really did at start-up
  vllm-compile recommend ...       rank GPU types and layouts for a workload by $ per million tokens
  vllm-compile ui [PATH...]        a local web page: fleet, deployments, what-if, compare ([web] extra)"""


def main(argv: Sequence[str] | None = None) -> int:
    """The one error boundary of every command: input errors are diagnostics (exit 2), anything else
    is reported as a bug (exit 3) with its traceback only under --debug."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # This process uses no pydantic plugins; without this pydantic scans every installed package's
    # entry points when the first model is validated (~10-20 ms of a ~300 ms hook run).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if "--debug" in args_list:
        args_list = [a for a in args_list if a != "--debug"]
        os.environ[DEBUG_ENV] = "1"
    try:
        return _dispatch(args_list)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help/--version exit 0
        return int(exc.code or 0) if isinstance(exc.code, int) else ExitCode.INVALID
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if is_input_error(exc) or isinstance(exc, OSError):  # the input's or the environment's
            print(f"vllm-compile: error: {exc}", file=sys.stderr)
            return ExitCode.INVALID
        if debug_enabled():
            raise
        print(f"vllm-compile: {internal_message(exc)}", file=sys.stderr)
        return ExitCode.INTERNAL


def _dispatch(args_list: list[str]) -> int:
    if args_list and args_list[0] == "schema":
        from .schema import run as schema

        return schema(args_list[1:])
    if args_list and args_list[0] in SUBCOMMAND_MODULES:
        return _subcommand(args_list[0], args_list[1:])
    from .compile import compile_parser, run

    return run(compile_parser().parse_args(args_list))


def _subcommand(name: str, rest: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="vllm-compile", epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    importlib.import_module(f".{SUBCOMMAND_MODULES[name]}", __package__).register(sub)
    args = parser.parse_args([name, *rest])
    return int(args.func(args))
