"""`vllm-compile diff [--base REF | --base-dir DIR] [PATH...]`: what this change does to every deployment."""

from __future__ import annotations

import argparse
import sys

from .sections import FORMATS, non_negative, print_sections


def run(args: argparse.Namespace) -> int:
    from .. import api
    from ..compare.diff_report import diff_sections
    from ..compare.lock_diff import Policy
    from ..diagnostics import ExitCode

    overrides = {
        k: v
        for k, v in {"kv_tokens_drop_pct": args.kv_drop_pct, "itl_rise_pct": args.itl_rise_pct}.items()
        if v is not None
    }
    policy = Policy(**{**api.repo_diff_policy(args.paths), **overrides})
    result = api.diff(
        args.paths, base=args.base, base_dir=args.base_dir, policy=policy, head_out=args.head_out
    )
    for diagnostic in result.diagnostics:
        print(diagnostic.format(), file=sys.stderr)
    if any(d.severity == "error" for d in result.diagnostics):
        return ExitCode.INVALID
    changed = len(result.diffs)
    title = f"vllm-compile diff against {result.base[:12]}: {changed} deployment(s) changed"
    if result.regressions:
        title += " - REGRESSION"
    sections = diff_sections(result.diffs)
    payload = {
        "base": result.base,
        "regressions": result.regressions,
        "deployments": [d.model_dump(mode="json") for d in result.diffs],
    }
    print_sections(title, sections, args.format, payload)
    return ExitCode.POLICY if args.fail_on_regression and result.regressions else ExitCode.OK


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "diff",
        help="What this change does to every deployment, against the locks committed at a git ref.",
        description="Compiles the working tree's profiles (nothing under out/ changes) and compares each "
        "deployment with its lock at --base (default: the merge base with the default branch).",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="profiles or folders (default: profiles/)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--base", metavar="REF", help="git ref whose committed out/ is the base")
    where.add_argument(
        "--base-dir", metavar="DIR", help="a folder of locks (<name>/vllm.lock.yaml) as the base"
    )
    parser.add_argument(
        "--head-out",
        metavar="DIR",
        help="read the working tree's locks from this folder (e.g. its committed out/) instead of compiling",
    )
    parser.add_argument("--format", choices=FORMATS, default="human")
    parser.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a deployment got worse: risk up, no longer starts, KV tokens or ITL past the thresholds",
    )
    parser.add_argument(
        "--kv-drop-pct", type=non_negative, help="KV tokens drop that is a regression (default 10)"
    )
    parser.add_argument(
        "--itl-rise-pct", type=non_negative, help="ITL rise that is a regression (default 10)"
    )
    parser.set_defaults(func=run)
