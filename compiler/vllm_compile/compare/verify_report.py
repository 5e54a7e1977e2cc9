"""Verify reports as tables (see compare.tables): settings first, then the verdict, then each term."""

from __future__ import annotations

from .bench import BenchReport
from .tables import Section
from .verify import VerifyReport


def _num(value: float | int | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.2f}" if isinstance(value, float) and not value.is_integer() else f"{int(value):,}"
    return f"{text} {unit}".rstrip()


def _pct(relative: float | None) -> str:
    return "-" if relative is None else f"{relative * 100:+.1f}%"


def _bench_section(r: BenchReport) -> Section:
    return Section(
        f"{r.name}: estimate vs benchmark {r.log}",
        ["figure", "estimate", "benchmark", "drift", ""],
        [
            [
                t.label,
                _num(t.predicted, t.unit),
                _num(t.observed, t.unit),
                f"{_num(t.delta, t.unit)} ({_pct(t.relative)})",
                "OUTSIDE RANGE" if t.beyond else "ok",
            ]
            for t in r.terms
        ],
        list(r.notes),
        folded=True,
    )


def verify_sections(reports: list[VerifyReport | BenchReport]) -> list[Section]:
    summary = Section(
        "Summary",
        ["deployment", "log", "vLLM", "settings", "start-up verdict", "terms beyond tolerance"],
    )
    details: list[Section] = []
    for r in reports:
        if isinstance(r, BenchReport):
            beyond = [t.term for t in r.terms if t.beyond]
            summary.rows.append([r.name, r.log, "benchmark", "-", "-", ", ".join(beyond) or "none"])
            details.append(_bench_section(r))
            continue
        v = r.verdict
        observed = {True: "started", False: f"failed ({v.failure_kind})", None: "unknown"}[v.observed_started]
        verdict = f"{'starts' if v.predicted_starts else 'fails'} / {observed}"
        if v.correct is False:
            verdict += " WRONG"
        beyond = [t.term for t in r.terms if t.beyond]
        summary.rows.append(
            [
                r.name,
                r.log,
                r.observed_version or f"({r.locked_version} assumed)",
                "as locked" if not r.settings else f"{len(r.settings)} differ",
                verdict,
                ", ".join(beyond) or "none",
            ]
        )
        if r.settings:
            details.append(
                Section(
                    f"{r.name}: vLLM did not run what was locked ({r.log})",
                    ["setting", "locked", "vLLM ran"],
                    [[s.setting, str(s.locked), str(s.observed)] for s in r.settings],
                )
            )
        lines = list(r.notes)
        if v.failure_message:
            lines.insert(0, f"vLLM: {v.failure_message[:300]}")
        details.append(
            Section(
                f"{r.name}: lock vs {r.log} (tolerance {r.tolerance * 100:g}%, {r.floor_gib:g} GiB floor)",
                ["term", "lock", "vLLM", "drift", ""],
                [
                    [
                        t.label,
                        _num(t.predicted, t.unit),
                        _num(t.observed, t.unit),
                        f"{_num(t.delta, t.unit)} ({_pct(t.relative)})",
                        "DRIFT" if t.beyond else "ok",
                    ]
                    for t in r.terms
                ],
                lines,
                folded=True,
            )
        )
    return [summary, *details]
