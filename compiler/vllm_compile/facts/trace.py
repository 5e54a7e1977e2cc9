"""A workload trace: request arrivals and lengths as a gateway exports them (CSV), read at resolve time.

Columns (header row, names case-insensitive; extra columns ignored):
- arrival time in seconds: `timestamp`, `arrival`, `arrival_s`, `time` (any origin; sorted on read);
- prompt tokens: `prompt_tokens`, `input_tokens`, `input_len`, `prompt_len`;
- generated tokens: `gen_tokens`, `output_tokens`, `output_len`, `completion_tokens`.
The file's sha256 goes into the lock's inputs hash, so a changed trace re-plans.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

from pydantic import BaseModel, ConfigDict

MAX_ROWS = 20_000  # a planning sample, not a day of traffic: more rows only slow the simulation

_TIME = ("timestamp", "arrival", "arrival_s", "time")
_PROMPT = ("prompt_tokens", "input_tokens", "input_len", "prompt_len")
_GEN = ("gen_tokens", "output_tokens", "output_len", "completion_tokens")


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the file and the row."""


class Trace(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str  # the path as the profile gives it
    sha256: str
    arrivals: tuple[float, ...]  # seconds from the first request, ascending
    prompts: tuple[int, ...]
    gens: tuple[int, ...]

    @property
    def duration_s(self) -> float:
        return self.arrivals[-1] - self.arrivals[0] if len(self.arrivals) > 1 else 0.0

    @property
    def request_rate(self) -> float:
        """Mean arrival rate: (n - 1) gaps over the span between the first and last arrival."""
        n = len(self.arrivals)
        return (n - 1) / self.duration_s if self.duration_s > 0 else float(n)


def _column(header: list[str], names: tuple[str, ...], what: str, path: str) -> int:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    raise TraceError(f"{path}: no {what} column (one of {', '.join(names)}); header is {', '.join(header)}")


def parse_trace(text: str, source: str) -> Trace:
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if len(rows) < 3:
        raise TraceError(f"{source}: a trace needs a header and at least two requests")
    header, body = rows[0], rows[1:]
    if len(body) > MAX_ROWS:
        raise TraceError(f"{source}: {len(body)} requests; keep a sample of at most {MAX_ROWS}")
    it, ip, ig = (
        _column(header, n, w, source)
        for n, w in ((_TIME, "arrival time"), (_PROMPT, "prompt tokens"), (_GEN, "generated tokens"))
    )
    items: list[tuple[float, int, int]] = []
    for line, row in enumerate(body, start=2):
        try:
            t, p, g = float(row[it]), int(float(row[ip])), int(float(row[ig]))
        except (ValueError, IndexError):
            raise TraceError(
                f"{source}:{line}: expected numbers in the time and token columns, got {row}"
            ) from None
        if p < 1 or g < 1 or t != t or t < 0:
            raise TraceError(f"{source}:{line}: token counts must be >= 1 and times >= 0, got {row}")
        items.append((t, p, g))
    items.sort(key=lambda x: x[0])
    t0 = items[0][0]
    return Trace(
        source=source,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        arrivals=tuple(round(t - t0, 6) for t, _, _ in items),
        prompts=tuple(p for _, p, _ in items),
        gens=tuple(g for _, _, g in items),
    )


def read_trace(source: str, base_dir: Path | None = None) -> Trace:
    """Read `source` (relative to the profile's folder when given, else the working directory)."""
    path = Path(source)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read the trace {source}: {exc}") from exc
    return parse_trace(text, source)
