"""A lock against a real start-up: did the deployment run what was locked, and how far off was the plan.

Order of the report (what a reader must see first): settings vLLM ran with that differ from the lock
(the figures below then compare different things), the start-up verdict, then each memory term and the
KV figures with their drift. A term drifts when it is off by more than `tolerance` (relative) and by more
than `floor_gib` (vLLM prints GiB with two decimals, so tiny terms are only known to +-0.005 GiB).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..observe.vllm_log import ENGINE_SETTING_KEYS, StartupLog
from ..units import gib

DEFAULT_TOLERANCE = 0.05
DEFAULT_FLOOR_GIB = 0.1

SETTING_KEYS = ENGINE_SETTING_KEYS  # the settings verify compares with the lock (observe.vllm_log)

# (observed figure, lock figure under memory.binding_gpu_gib, label)
MEMORY_TERMS = (
    ("gpu_total_gib", "gpu_total_gib", "GPU memory (total)"),
    ("requested_gib", "requested_gib", "budget (total x utilization)"),
    ("weights_gib", "weights_gib", "weights"),
    ("activation_peak_gib", "activation_peak_gib", "activation peak"),
    ("non_torch_gib", "non_torch_gib", "non-torch memory"),
    ("kv_cache_gib", "kv_cache_gib", "KV cache"),
)


class SettingDiff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    setting: str
    locked: Any
    observed: Any


class TermDrift(BaseModel):
    model_config = ConfigDict(extra="forbid")

    term: str
    label: str
    unit: str
    predicted: float
    observed: float
    delta: float  # observed - predicted
    relative: float | None  # delta / predicted (None when predicted is 0)
    beyond: bool  # past the tolerance


class VerdictCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predicted_starts: bool
    observed_started: bool | None  # None: the log ends before start-up finished or failed
    failure_kind: str | None = None
    failure_message: str | None = None
    correct: bool | None = None


class VerifyReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    log: str  # the log's display name (a path relative to the working directory, or its sha256)
    log_sha256: str
    locked_version: str
    observed_version: str | None
    settings: list[SettingDiff] = Field(default_factory=list)
    verdict: VerdictCheck
    terms: list[TermDrift] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    tolerance: float
    floor_gib: float

    @property
    def drift(self) -> bool:
        """Beyond tolerance anywhere: another configuration ran, the verdict was wrong, or a term is off."""
        return bool(self.settings) or self.verdict.correct is False or any(t.beyond for t in self.terms)


# Spellings vLLM treats alike (config/cache.py: "fp8" is fp8_e4m3 on CUDA; "auto" is the model dtype).
_ALIASES = {"fp8_e4m3": "fp8", "none": None, "auto": None}


def _same(locked: Any, observed: Any) -> bool:
    if isinstance(locked, str) and isinstance(observed, str):
        return _ALIASES.get(locked, locked) == _ALIASES.get(observed, observed)
    if isinstance(locked, bool) or isinstance(observed, bool):
        return locked is observed or locked == observed
    if isinstance(locked, (int, float)) and isinstance(observed, (int, float)):
        return abs(float(locked) - float(observed)) < 1e-9
    if locked in (None, "auto", "none") and observed in (None, "auto", "none"):
        return True
    return str(locked) == str(observed)


def _same_model(locked: str, served: str) -> bool:
    """A Hub id, or a local copy of it (vLLM prints the path it loaded: compare the last component)."""
    name = locked.rstrip("/").split("/")[-1].lower()
    return served.rstrip("/").split("/")[-1].lower() in (name, name.replace(".", "_"))


def _release(version: str | None) -> str | None:
    """0.19.0 of "0.19.0.dev12+gabc": releases compare by their number."""
    if not version:
        return None
    parts = version.split("+")[0].split(".")
    return ".".join(p for p in parts[:3] if p.isdigit())


def _drift(term: str, label: str, unit: str, predicted: float, observed: float, tol: float, floor: float):
    delta = observed - predicted
    relative = delta / predicted if predicted else None
    beyond = abs(delta) > floor and (relative is None or abs(relative) > tol)
    return TermDrift(
        term=term,
        label=label,
        unit=unit,
        predicted=round(predicted, 4),
        observed=round(observed, 4),
        delta=round(delta, 4),
        relative=round(relative, 4) if relative is not None else None,
        beyond=beyond,
    )


def verify_startup(
    lock: dict[str, Any],
    log: StartupLog,
    *,
    log_name: str,
    tolerance: float = DEFAULT_TOLERANCE,
    floor_gib: float = DEFAULT_FLOOR_GIB,
) -> VerifyReport:
    engine = lock["engine"]
    notes: list[str] = []
    settings = [
        SettingDiff(setting=key, locked=engine.get(key), observed=log.settings[key])
        for key in SETTING_KEYS
        if key in log.settings and key in engine and not _same(engine.get(key), log.settings[key])
    ]
    for key in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"):
        seen = log.layout.get(key)
        if key not in log.settings and seen is not None and seen > int(engine.get(key, 1)):
            settings.append(SettingDiff(setting=key, locked=engine.get(key), observed=seen))
    observed_release, locked_release = _release(log.vllm_version), _release(lock.get("vllm_version"))
    if observed_release and locked_release and observed_release != locked_release:
        settings.insert(
            0, SettingDiff(setting="vllm_version", locked=lock["vllm_version"], observed=log.vllm_version)
        )
    if not log.vllm_version:
        notes.append("the log does not print vLLM's version: the release is assumed to be the locked one")
    model_id = lock.get("resolved", {}).get("model", {}).get("id")
    seen_model = log.settings.get("model")
    if model_id and seen_model and not _same_model(str(model_id), str(seen_model)):
        if str(seen_model).startswith(("/", ".", "~")):  # a local copy under another name: it may be the same
            notes.append(
                f"vLLM loaded '{seen_model}', the lock plans '{model_id}': check it is the same model"
            )
        else:
            settings.insert(0, SettingDiff(setting="model", locked=model_id, observed=seen_model))
    verdict = lock["verdict"]
    started = log.started
    check = VerdictCheck(
        predicted_starts=bool(verdict["starts"]),
        observed_started=started,
        failure_kind=log.failure.kind if log.failure else None,
        failure_message=log.failure.message if log.failure else None,
        correct=None if started is None else bool(verdict["starts"]) == started,
    )
    if started is None and not log.failure:
        notes.append("the log ends before vLLM finished starting: the verdict cannot be checked")
    terms = _terms(lock, log, tolerance, floor_gib, notes)
    return VerifyReport(
        name=lock["name"],
        log=log_name,
        log_sha256=log.sha256,
        locked_version=lock["vllm_version"],
        observed_version=log.vllm_version,
        settings=settings,
        verdict=check,
        terms=terms,
        notes=notes,
        tolerance=tolerance,
        floor_gib=floor_gib,
    )


def _rank_gib(memory: dict[str, Any], rank_label: str, notes: list[str]) -> dict[str, float]:
    """The lock's figures for the GPU the log's figures come from: a pipeline stage has its own."""
    match = re.search(r"PP(\d+)", rank_label)
    if match is None or int(match.group(1)) == memory.get("binding_pp_rank"):
        return memory["binding_gpu_gib"]
    stage = int(match.group(1))
    rank = next((r for r in memory.get("per_gpu", []) if r.get("pp_rank") == stage), None)
    if rank is None:
        return memory["binding_gpu_gib"]
    notes.append(
        f"the log's per-GPU figures are pipeline stage {stage}'s; compared with the lock's stage {stage}"
    )
    return {
        key.removesuffix("_bytes") + "_gib": gib(value)
        for key, value in rank.items()
        if key.endswith("_bytes")
    }


def _terms(
    lock: dict[str, Any], log: StartupLog, tol: float, floor: float, notes: list[str]
) -> list[TermDrift]:
    memory = lock["memory"]
    binding = _rank_gib(memory, log.binding_rank, notes)
    fig = log.figures
    out: list[TermDrift] = []
    for observed_key, lock_key, label in MEMORY_TERMS:
        observed = getattr(fig, observed_key)
        if observed is not None and binding.get(lock_key) is not None:
            out.append(_drift(lock_key, label, "GiB", float(binding[lock_key]), float(observed), tol, floor))
    graph = binding.get("cuda_graph_gib") or 0.0
    if graph:  # the lock deducts a graph pool estimate before the KV cache: vLLM's own estimate is the match
        observed = (
            fig.cuda_graph_estimated_gib if fig.cuda_graph_estimated_gib is not None else fig.cuda_graph_gib
        )
        if observed is not None:
            out.append(
                _drift("cuda_graph_gib", "CUDA graph pool (deducted)", "GiB", graph, observed, tol, floor)
            )
    elif fig.cuda_graph_gib is not None:
        notes.append(
            f"CUDA graphs took {fig.cuda_graph_gib} GiB after the KV cache was sized; this release does not deduct "
            "them, so the lock plans none"
        )
    kv = memory["kv_cache"]
    if fig.kv_cache_tokens is not None:
        out.append(
            _drift("kv_tokens", "GPU KV cache size", "tokens", kv["tokens"], fig.kv_cache_tokens, tol, 0)
        )
    if fig.max_concurrency is not None:
        tokens = fig.max_concurrency_tokens
        if tokens is not None and tokens != lock["engine"]["max_model_len"]:
            notes.append(
                f"vLLM's concurrency is for {tokens} tokens per request, the lock's for max_model_len"
            )
        else:
            out.append(
                _drift(
                    "max_concurrency",
                    "maximum concurrency",
                    "x",
                    kv["max_concurrency"],
                    fig.max_concurrency,
                    tol,
                    0,
                )
            )
    if fig.gpu_blocks is not None:
        out.append(_drift("gpu_blocks", "GPU blocks", "blocks", kv["num_blocks"], fig.gpu_blocks, tol, 0))
    return out
