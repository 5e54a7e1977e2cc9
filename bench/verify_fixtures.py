"""`vllm-compile verify` over the public start-up logs and benchmarks under tests/fixtures/ whose settings
a profile in tests/fixtures/logs/profiles/ states: the drift each entry really has, as a table.

Exit code 0 always (a benchmark, not a test).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vllm_compile import api  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
PROFILES = FIXTURES / "logs" / "profiles"


def pairs() -> list[tuple[Path, Path]]:
    """(profile, log): each profile names the fixture whose settings it states on its first line."""
    out = []
    for profile in sorted(PROFILES.glob("*.yaml")):
        first = profile.read_text(encoding="utf-8").splitlines()[0]
        match = re.search(r"tests/fixtures/(\S+?)[ )]", first + " ")
        if match:
            out.append((profile, FIXTURES / match.group(1)))
    return out


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() and abs(x) >= 100 else f"{x:,.2f}"


def main() -> None:
    rows = []
    for profile, log in pairs():
        (report,) = api.verify(profile, [log])
        for t in report.terms:
            rel = "-" if t.relative is None else f"{t.relative * 100:+.1f}%"
            rows.append(
                (
                    log.name[:52],
                    t.term,
                    f"{t.predicted:,.2f}",
                    f"{t.observed:,.2f}",
                    rel,
                    "DRIFT" if t.beyond else "",
                )
            )
        verdict = getattr(report, "verdict", None)
        if verdict is not None:
            rows.append(
                (
                    log.name[:52],
                    "verdict",
                    str(verdict.predicted_starts),
                    str(verdict.observed_started),
                    "",
                    "" if verdict.correct is not False else "WRONG",
                )
            )
    widths = [max(len(r[i]) for r in [*rows, ("log", "term", "lock", "vLLM", "drift", "")]) for i in range(6)]
    header = ("log", "term", "lock", "vLLM", "drift", "")
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    beyond = sum(1 for r in rows if r[5])
    print(f"\n{len(pairs())} entries, {len(rows)} figures compared, {beyond} beyond tolerance or wrong")


if __name__ == "__main__":
    main()
