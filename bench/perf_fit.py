"""Fit the step model's few named efficiencies on calibration rows, and check them on held-out splits.

Used by `python bench/perf_accuracy.py --fit` (prints the values that minimise the error on the in-scope
controlled entries) and `--cv` (leave-one-GPU-family-out and leave-one-source-out: each group's entries
are predicted with constants fitted on the other groups only, so the printed error is what the model
does on hardware, or on a harness, it was not fitted on).

The loss is the sum over entries and metrics (TPOT, throughput, TTFT at concurrency <= 4) of
|log(predicted / measured)|: robust to the odd outlier (L1), symmetric for too slow and too fast.
The search is coordinate descent on multiplicative steps within physical bounds; every fold starts from
the same prior (the values before this fit, PRIOR), never from the values fitted on all entries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from vllm_compile.passes import perf_model as pm

# name -> (prior, low, high); the priors are the values before this fit (perf_model.py names the fitted
# ones and their provenance). Bounds are physical: an efficiency is a share of a datasheet peak; the
# request overhead is the API server's per-request cost (HTTP, templating, tokenising, first chunk).
# Not fitted: BW_EFF (0.70) and BW_EFF_AMD (0.50), pinned by the single-request decode entries (A100 and
# MI300X batch-1 within a few %; a free fit leaves BW_EFF where it is), and COMPUTE_EFF (0.40, CUDA
# GEMM share): the in-scope entries barely constrain it (three short-prompt TTFTs, entangled with the
# request overhead), so a free fit trades it against the ROCm ratio; the long-prompt V1 entries of
# 0.8.2-0.8.4 (out of scope, not fitted on) sit within a few % at 0.40.
PRIOR: dict[str, tuple[float, float, float]] = {
    "ROCM_GEMM_RATIO": (0.60, 0.30, 1.00),
    "ROCM_ATTN_EFF": (0.24, 0.05, 0.75),
    "MOE_EFF": (0.50, 0.25, 1.00),
    "REQUEST_OVERHEAD_S": (20e-3, 5e-3, 60e-3),
    "ROCM_BLAS_BW_RATIO": (0.50, 0.25, 1.00),
}
FITTED = tuple(PRIOR)
_STEPS = (0.7, 0.85, 0.93, 1.07, 1.18, 1.4)


def _terms(rows: Iterable[dict[str, Any]]) -> list[float]:
    out = []
    for r in rows:
        for key in ("tpot_err", "thr_err", "ttft_err"):
            e = r.get(key)
            if e is None or e <= -1:
                continue
            if key == "ttft_err" and (r["concurrency"] > 4 or r["ttft_caveat"]):
                continue
            out.append(abs(math.log1p(e)))
    return out


# Prior spread: a fitted value pays (log(value / prior) / PRIOR_SPREAD)^2, i.e. moving a constant 2x
# from its prior costs as much as one entry off by a factor e. Keeps a constant only a few entries are
# sensitive to near its physical prior (a MAP fit, not a free one).
PRIOR_SPREAD = math.log(4.0)


def loss(rows: Iterable[dict[str, Any]], values: dict[str, float] | None = None) -> float:
    penalty = sum((math.log(v / PRIOR[k][0]) / PRIOR_SPREAD) ** 2 for k, v in (values or {}).items())
    return sum(_terms(rows)) + penalty


class Constants:
    """Set pm's fitted constants for the duration of a `with` block."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values, self.saved = values, {}

    def __enter__(self) -> None:
        for k, v in self.values.items():
            self.saved[k] = getattr(pm, k)
            setattr(pm, k, v)

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            setattr(pm, k, v)


def evaluate(
    collect: Callable, entries: list[dict[str, Any]], values: dict[str, float]
) -> list[dict[str, Any]]:
    with Constants(values):
        rows, _ = collect(entries)
    return rows


def fit(collect: Callable, entries: list[dict[str, Any]], passes: int = 4) -> dict[str, float]:
    """Coordinate descent from PRIOR; a constant no training entry is sensitive to keeps its prior."""
    values = {k: p[0] for k, p in PRIOR.items()}
    best = loss(evaluate(collect, entries, values), values)
    for _ in range(passes):
        improved = False
        for name in FITTED:
            _, lo, hi = PRIOR[name]
            for step in _STEPS:
                trial = dict(values)
                trial[name] = min(hi, max(lo, values[name] * step))
                if trial[name] == values[name]:
                    continue
                cand = loss(evaluate(collect, entries, trial), trial)
                if cand < best - 1e-9:
                    values, best, improved = trial, cand, True
        if not improved:
            break
    return values


def split_check(
    collect: Callable, entries: list[dict[str, Any]], group: Callable[[dict[str, Any]], str]
) -> list[dict[str, Any]]:
    """Each group's rows predicted with constants fitted on the other groups' entries only."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for o in entries:
        groups.setdefault(group(o), []).append(o)
    held: list[dict[str, Any]] = []
    for name in sorted(groups):
        train = [o for g, os in groups.items() if g != name for o in os]
        values = fit(collect, train)
        for r in evaluate(collect, groups[name], values):
            r["fold"] = name
            r["fold_values"] = values
            held.append(r)
    return held
