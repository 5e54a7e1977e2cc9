"""`vllm-compile verify PROFILE_OR_LOCK LOG...`: a lock against what vLLM really did at start-up."""

from __future__ import annotations

import argparse
import sys

from .sections import FORMATS, non_negative, print_sections


def run(args: argparse.Namespace) -> int:
    from .. import api
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
    payload = {
        "drift": drift,
        "reports": [r.model_dump(mode="json") | {"drift": r.drift} for r in reports],
        "recorded": recorded,
    }
    print_sections(title, sections, args.format, payload)
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
    parser.add_argument("--format", choices=FORMATS, default="human")
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="append the observed figures to this repository calibration file (e.g. calibration/fleet.yaml)",
    )
    parser.set_defaults(func=run)
