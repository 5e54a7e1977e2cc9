"""`vllm-compile verify PROFILE_OR_LOCK LOG...`: a lock against what vLLM really did at start-up."""

from __future__ import annotations

import argparse
import json
import os
import sys


def non_negative(text: str) -> float:
    """A flag's number >= 0 (argparse turns the error into a usage error, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from .. import api
    from ..compare.tables import markdown, print_rich
    from ..compare.verify_report import verify_sections
    from ..diagnostics import DiagnosticError, ExitCode

    try:
        reports = api.verify(args.target, args.logs, tolerance=args.tolerance, floor_gib=args.floor_gib)
        recorded = api.record_calibration(args.record, args.target, args.logs) if args.record else []
    except DiagnosticError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic.format(), file=sys.stderr)
        return ExitCode.INVALID
    drift = any(r.drift for r in reports)
    title = f"vllm-compile verify: {'DRIFT' if drift else 'as planned'} ({len(reports)} log(s))"
    sections = verify_sections(reports)
    if args.format == "json":
        payload = {
            "drift": drift,
            "reports": [r.model_dump(mode="json") | {"drift": r.drift} for r in reports],
        }
        payload["recorded"] = recorded
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    elif args.format in ("markdown", "github"):
        text = markdown(title, sections)
        sys.stdout.write(text)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if args.format == "github" and summary:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(text)
    else:
        print_rich(title, sections)
    if recorded and args.format != "json":
        print(f"recorded {len(recorded)} measurement(s) in {args.record}", file=sys.stderr)
    return ExitCode.POLICY if drift else ExitCode.OK


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "verify",
        help="Compare a lock with vLLM start-up logs: settings that differ, the verdict, each memory term.",
        description="Exit 0 when vLLM did what the lock says (within the tolerance), 1 on drift, 2 on bad input.",
    )
    parser.add_argument("target", metavar="PROFILE_OR_LOCK", help="a vllm.lock.yaml, or a profile (compiled)")
    parser.add_argument("logs", metavar="LOG", nargs="+", help="vLLM start-up logs (any release, V0 or V1)")
    parser.add_argument(
        "--tolerance",
        type=non_negative,
        default=None,
        help="relative drift allowed per term (default 0.05)",
    )
    parser.add_argument(
        "--floor-gib",
        type=non_negative,
        default=None,
        help="absolute drift under which a memory term is never flagged (default 0.1 GiB)",
    )
    parser.add_argument("--format", choices=["human", "markdown", "github", "json"], default="human")
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="append the observed figures to this repository calibration file (e.g. calibration/fleet.yaml)",
    )
    parser.set_defaults(func=run)
