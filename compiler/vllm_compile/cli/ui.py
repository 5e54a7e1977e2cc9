"""`vllm-compile ui [PATH...]`: the local web page over the profiles (the `[web]` extra)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..diagnostics import ExitCode

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ui", help="Serve a local web page: fleet, deployments, what-if, compare.")
    parser.add_argument(
        "paths", nargs="*", default=["profiles"], help="profile files or directories (default: profiles)"
    )
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 picks a free one)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--out", metavar="DIR", help="where the locks are (default: out/ of the repository)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..ui.app import create_app
    except ImportError as exc:
        print(
            f"vllm-compile ui needs the web extra ({exc.name} is missing): pip install 'vllm-compile[web]'",
            file=sys.stderr,
        )
        return ExitCode.INVALID
    if not 0 <= args.port <= 65535:
        print(f"--port {args.port}: not a TCP port", file=sys.stderr)
        return ExitCode.INVALID
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return ExitCode.INVALID
    if args.host not in LOOPBACK:
        print(f"warning: serving on {args.host}: other machines can reach this page", file=sys.stderr)
    app = create_app([Path(p) for p in args.paths], out_dir=Path(args.out) if args.out else None)
    print(f"vllm-compile ui: http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return ExitCode.OK
