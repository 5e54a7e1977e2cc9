"""`vllm-compile schema [--lock | --config]`: print a published JSON Schema."""

from __future__ import annotations

import argparse
import sys

from ..diagnostics import ExitCode


def run(rest: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vllm-compile schema", description="Print the profile JSON Schema.")
    parser.add_argument(
        "--lock", action="store_true", help="print the lockfile schema (schemas/lock.v1.schema.json) instead"
    )
    parser.add_argument(
        "--config",
        action="store_true",
        help="print the repository config schema (schemas/repo-config.v1.schema.json) instead",
    )
    parsed = parser.parse_args(rest)
    if parsed.config:
        from ..repo_config import config_json_schema_text

        sys.stdout.write(config_json_schema_text())
        return ExitCode.OK
    if parsed.lock:
        from ..lock_model import lock_json_schema_text

        sys.stdout.write(lock_json_schema_text())
        return ExitCode.OK
    from ..profile.schema import profile_json_schema_text

    sys.stdout.write(profile_json_schema_text())
    return ExitCode.OK
