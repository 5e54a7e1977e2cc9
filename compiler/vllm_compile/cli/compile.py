"""`vllm-compile [options] PATH...`: compile profiles into out/ and print one line per profile."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..diagnostics import ExitCode
from .main import COMMANDS, EXIT_CODES


def compile_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vllm-compile",
        description="Compile vLLM deployment profiles into a lockfile and deployment artifacts.",
        epilog=f"{COMMANDS}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="profile files or directories (*.yaml, *.yml)"
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="output directory (default: out/ at the root of the git repository holding the first PATH, "
        "else in the working directory)",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any output is stale")
    parser.add_argument(
        "--prune", action="store_true", help="remove the output of profiles that no longer exist"
    )
    parser.add_argument("--force", action="store_true", help="re-plan even when the inputs match the lock")
    parser.add_argument(
        "--emit", metavar="LIST", help="artifacts to write, overriding deploy.targets (comma-separated)"
    )
    parser.add_argument(
        "--format", choices=["human", "json", "github"], default="human", help="output format"
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help="worker processes (default: one per core for 32+ profiles)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an internal error (any command)"
    )
    parser.add_argument("--version", action="version", version=f"vllm-compile {__version__}")
    return parser


def run(args: argparse.Namespace) -> int:
    from .. import api

    emit = [t.strip() for t in args.emit.split(",") if t.strip()] if args.emit else None
    if emit:
        from ..profile.v1 import Target

        unknown = sorted(set(emit) - set(Target.__args__))
        if unknown:
            print(f"vllm-compile: usage: unknown --emit target(s): {', '.join(unknown)}", file=sys.stderr)
            return ExitCode.INVALID
    result = api.compile_paths(
        args.paths,
        out_dir=args.out,
        check=args.check,
        prune=args.prune,
        force=args.force,
        emit=emit,
        jobs=args.jobs,
    )
    from .console import print_result

    print_result(result, args.format)
    return int(result.exit_code)
