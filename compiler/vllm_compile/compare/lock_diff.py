"""Lock against lock: what a change does to each deployment (pure; `vllm-compile diff` feeds it locks).

Per deployment: added / removed / changed; the start-up verdict and risk; GPUs and replicas; memory per GPU
by term; KV tokens, KV per request and maximum concurrency; the performance estimates (relative change,
flagged past a threshold); every engine setting that changed with who decided it and why; the artifacts
that changed. A regression (for --fail-on-regression) is what the policy says got worse.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RISK_ORDER = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}
MEMORY_TERMS = (
    "weights_gib",
    "activation_peak_gib",
    "non_torch_gib",
    "cuda_graph_gib",
    "kv_cache_gib",
    "requested_gib",
)
PERF_FIGURES = (
    ("ttft_ms", "TTFT", "ms", True),
    ("itl_ms", "ITL", "ms", True),
    ("output_tok_s", "output", "tok/s", False),
)


class Policy(BaseModel):
    """What counts as worse (repository config `diff:`; flags override)."""

    model_config = ConfigDict(extra="forbid")

    kv_tokens_drop_pct: float = 10.0  # KV tokens down by more than this
    itl_rise_pct: float = 10.0  # ITL up by more than this
    flag_pct: float = 5.0  # a performance change past this is shown flagged


class Change(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str
    before: Any
    after: Any
    relative: float | None = None  # (after - before) / before
    flagged: bool = False
    note: str = ""  # for settings: who decided the new value and why


class DeploymentDiff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    status: Literal["added", "removed", "changed", "unchanged"]
    profile: str | None = None
    risk_before: str | None = None
    risk_after: str | None = None
    starts_before: bool | None = None
    starts_after: bool | None = None
    gpus: str | None = None  # "2 x NVIDIA H100 80GB HBM3" after the change (before, if removed)
    headline: list[Change] = Field(default_factory=list)  # GPUs, replicas, KV tokens, KV/request, concurrency
    memory: list[Change] = Field(default_factory=list)
    performance: list[Change] = Field(default_factory=list)
    settings: list[Change] = Field(default_factory=list)
    artifacts: list[Change] = Field(default_factory=list)
    regressions: list[str] = Field(default_factory=list)


def _relative(before: Any, after: Any) -> float | None:
    if isinstance(before, (int, float)) and isinstance(after, (int, float)) and before:
        return round((after - before) / before, 4)
    return None


def _change(
    field: str, before: Any, after: Any, flag_pct: float | None = None, note: str = ""
) -> Change | None:
    if before == after:
        return None
    rel = _relative(before, after)
    flagged = rel is not None and flag_pct is not None and abs(rel) * 100 > flag_pct
    return Change(field=field, before=before, after=after, relative=rel, flagged=flagged, note=note)


def _kv_per_request_gib(lock: dict[str, Any]) -> float:
    kv = lock["memory"]["kv_cache"]
    return round(kv["blocks_per_request"] * kv["bytes_per_block"] / 2**30, 3)


def _gpus(lock: dict[str, Any]) -> str:
    engine, gpu = lock["engine"], lock["resolved"]["gpu"]["name"]
    count = engine["tensor_parallel_size"] * engine["pipeline_parallel_size"] * engine["data_parallel_size"]
    return f"{count} x {gpu}"


def _replicas(lock: dict[str, Any]) -> int | None:
    cluster = lock.get("cluster") or {}
    return cluster.get("replicas") or (lock.get("inputs", {}).get("profile", {}).get("deploy", {}) or {}).get(
        "replicas", 1
    )


def _headline(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    kv_b, kv_a = before["memory"]["kv_cache"], after["memory"]["kv_cache"]
    pairs = [
        ("GPUs", _gpus(before), _gpus(after)),
        ("replicas", _replicas(before), _replicas(after)),
        ("max_model_len", before["engine"]["max_model_len"], after["engine"]["max_model_len"]),
        ("KV tokens", kv_b["tokens"], kv_a["tokens"]),
        ("KV per request (GiB)", _kv_per_request_gib(before), _kv_per_request_gib(after)),
        ("max concurrency", kv_b["max_concurrency"], kv_a["max_concurrency"]),
    ]
    return [c for c in (_change(*p) for p in pairs) if c]


def _perf(lock: dict[str, Any]) -> dict[str, float]:
    perf = lock.get("performance") or {}
    return {key: perf[key]["value"] for key, *_ in PERF_FIGURES if isinstance(perf.get(key), dict)}


def diff_locks(
    name: str, before: dict[str, Any] | None, after: dict[str, Any] | None, policy: Policy | None = None
) -> DeploymentDiff:
    policy = policy or Policy()
    if before is None and after is None:
        raise ValueError("nothing to compare")
    if before is None or after is None:
        lock = after or before
        assert lock is not None
        return DeploymentDiff(
            name=name,
            status="added" if before is None else "removed",
            profile=lock.get("profile"),
            risk_after=after["verdict"]["oom_risk"] if after else None,
            risk_before=before["verdict"]["oom_risk"] if before else None,
            starts_after=after["verdict"]["starts"] if after else None,
            starts_before=before["verdict"]["starts"] if before else None,
            gpus=_gpus(lock),
        )
    out = DeploymentDiff(
        name=name,
        status="changed",
        profile=after.get("profile"),
        risk_before=before["verdict"]["oom_risk"],
        risk_after=after["verdict"]["oom_risk"],
        starts_before=before["verdict"]["starts"],
        starts_after=after["verdict"]["starts"],
        gpus=_gpus(after),
    )
    out.headline = _headline(before, after)
    gib_b, gib_a = before["memory"]["binding_gpu_gib"], after["memory"]["binding_gpu_gib"]
    out.memory = [c for c in (_change(t, gib_b.get(t), gib_a.get(t)) for t in MEMORY_TERMS) if c]
    perf_b, perf_a = _perf(before), _perf(after)
    for key, label, unit, _ in PERF_FIGURES:
        if key in perf_b or key in perf_a:
            change = _change(f"{label} ({unit})", perf_b.get(key), perf_a.get(key), policy.flag_pct)
            if change:
                out.performance.append(change)
    settings_b, settings_a = before.get("settings", {}), after.get("settings", {})
    for key in sorted(set(settings_b) | set(settings_a)):
        old, new = settings_b.get(key, {}), settings_a.get(key, {})
        if old.get("value") != new.get("value"):
            why = f"{new.get('by', '?')}: {new.get('reason', '')}".rstrip(": ") if new else "no longer set"
            out.settings.append(Change(field=key, before=old.get("value"), after=new.get("value"), note=why))
    arts_b, arts_a = before.get("artifacts", {}), after.get("artifacts", {})
    for path in sorted(set(arts_b) | set(arts_a)):
        if arts_b.get(path) != arts_a.get(path):
            state = "added" if path not in arts_b else "removed" if path not in arts_a else "changed"
            out.artifacts.append(
                Change(field=path, before=arts_b.get(path), after=arts_a.get(path), note=state)
            )
    out.regressions = _regressions(before, after, perf_b, perf_a, policy)
    if not (out.headline or out.memory or out.performance or out.settings or out.artifacts) and (
        out.risk_before == out.risk_after and out.starts_before == out.starts_after
    ):
        out.status = "unchanged"
    return out


def _regressions(
    before: dict[str, Any],
    after: dict[str, Any],
    perf_b: dict[str, float],
    perf_a: dict[str, float],
    policy: Policy,
) -> list[str]:
    found = []
    rb, ra = before["verdict"]["oom_risk"], after["verdict"]["oom_risk"]
    if RISK_ORDER[ra] > RISK_ORDER[rb]:
        found.append(f"risk {rb} -> {ra}")
    if before["verdict"]["starts"] and not after["verdict"]["starts"]:
        found.append("no longer starts")
    tb, ta = before["memory"]["kv_cache"]["tokens"], after["memory"]["kv_cache"]["tokens"]
    if tb > 0 and (tb - ta) / tb * 100 > policy.kv_tokens_drop_pct:
        found.append(
            f"KV tokens {tb:,} -> {ta:,} (-{(tb - ta) / tb * 100:.1f}% > {policy.kv_tokens_drop_pct:g}%)"
        )
    ib, ia = perf_b.get("itl_ms"), perf_a.get("itl_ms")
    if ib and ia and (ia - ib) / ib * 100 > policy.itl_rise_pct:
        found.append(f"ITL {ib:g} -> {ia:g} ms (+{(ia - ib) / ib * 100:.1f}% > {policy.itl_rise_pct:g}%)")
    return found


def diff_all(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], policy: Policy | None = None
) -> list[DeploymentDiff]:
    """Every deployment present on either side, by name; unchanged ones left out."""
    diffs = [diff_locks(n, before.get(n), after.get(n), policy) for n in sorted(set(before) | set(after))]
    return [d for d in diffs if d.status != "unchanged"]
