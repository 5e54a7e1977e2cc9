"""Diff reports as tables (see compare.tables): a summary table first, one folded section per deployment."""

from __future__ import annotations

from typing import Any

from .lock_diff import Change, DeploymentDiff
from .tables import Section


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(map(str, value[:8])) + (" ..." if len(value) > 8 else "")
    return str(value)


def _arrow(change: Change | None) -> str:
    if change is None:
        return "="
    text = f"{_value(change.before)} -> {_value(change.after)}"
    if change.relative is not None:
        text += f" ({change.relative * 100:+.1f}%)"
    return text + (" !" if change.flagged else "")


def _find(changes: list[Change], field: str) -> Change | None:
    return next((c for c in changes if c.field == field), None)


def diff_sections(diffs: list[DeploymentDiff]) -> list[Section]:
    if not diffs:
        return [Section("No deployment changes", lines=["every lock is as it was"])]
    summary = Section(
        "Summary",
        ["deployment", "change", "risk", "GPUs", "KV tokens", "KV per request (GiB)", "max concurrency"],
    )
    details: list[Section] = []
    for d in diffs:
        risk = d.risk_after or d.risk_before or "-"
        if d.status == "changed" and d.risk_before != d.risk_after:
            risk = f"{d.risk_before} -> {d.risk_after}"
        status = d.status + (" (REGRESSION)" if d.regressions else "")
        gpus = _find(d.headline, "GPUs")
        summary.rows.append(
            [
                d.name,
                status,
                risk,
                _arrow(gpus) if gpus else (d.gpus or "-"),
                _arrow(_find(d.headline, "KV tokens")) if d.status == "changed" else "-",
                _arrow(_find(d.headline, "KV per request (GiB)")) if d.status == "changed" else "-",
                _arrow(_find(d.headline, "max concurrency")) if d.status == "changed" else "-",
            ]
        )
        if d.status != "changed":
            continue
        rows = []
        for group, changes in (("", d.headline), ("memory/GPU ", d.memory), ("estimate ", d.performance)):
            for c in changes:
                rel = (
                    f"{c.relative * 100:+.1f}%" + (" !" if c.flagged else "")
                    if c.relative is not None
                    else ""
                )
                rows.append([group + c.field, _value(c.before), _value(c.after), rel])
        lines = [f"REGRESSION: {r}" for r in d.regressions]
        lines += [
            f"setting {c.field}: {_value(c.before)} -> {_value(c.after)} ({c.note})" for c in d.settings
        ]
        lines += [f"artifact {c.field} {c.note}" for c in d.artifacts]
        details.append(
            Section(
                f"{d.name}: {d.profile or ''}",
                ["what", "before", "after", "change"],
                rows,
                lines,
                folded=True,
            )
        )
    return [summary, *details]
