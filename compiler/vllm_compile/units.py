"""Units and the one float format every output uses (determinism: no repr() of floats anywhere)."""

from __future__ import annotations

GIB = 1 << 30
MIB = 1 << 20
GB = 10**9


def gib(n_bytes: float) -> float:
    """Bytes to GiB rounded to 2 decimals, as vLLM prints its memory figures."""
    return round(n_bytes / GIB, 2)


def stable_float(x: float, digits: int = 4) -> float:
    """Round so that serialised floats are identical on every machine."""
    return float(f"{x:.{digits}g}") if abs(x) >= 1e4 else round(x, digits)
