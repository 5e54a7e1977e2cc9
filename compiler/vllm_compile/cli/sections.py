"""Printing a titled list of sections (what `diff` and `verify` report) in the format asked for, and
the flag types those commands share."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

FORMATS = ["human", "markdown", "github", "json"]


def non_negative(text: str) -> float:
    """A flag's number >= 0 (argparse turns the error into a usage error, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def print_sections(title: str, sections: list[Any], fmt: str, payload: dict[str, Any]) -> None:
    """json: `payload`; markdown/github: the sections as Markdown (github also appends them to the job
    summary, $GITHUB_STEP_SUMMARY); human: rich tables."""
    from ..compare.tables import markdown, print_rich

    if fmt == "json":
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    elif fmt in ("markdown", "github"):
        text = markdown(title, sections)
        sys.stdout.write(text)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if fmt == "github" and summary:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(text)
    else:
        print_rich(title, sections)
