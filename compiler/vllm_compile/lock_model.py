"""The lockfile's typed model: `schemas/lock.v1.schema.json` is generated from it.

`lock.build_lock` writes plain sorted data (that is what keeps the bytes stable); this model describes
that data so that tools reading a committed lock (diff, verify, other people's CI) have a published
contract. The sections made of planner records reuse those records (EngineConfig, RankMemory, ...), so
a field added to a pass's record appears in the schema after `vllm-compile schema --lock`.

Stability: `lock_version`, `name`, `profile`, `vllm_version`, `inputs_sha256`, `engine`, `settings`,
`memory.binding_gpu_gib`, `memory.kv_cache`, `verdict`, `summary` and `artifacts` are stable within
lock version 1 (fields are only added). `resolved`, `performance`, `cluster` and `calibration` follow the
planner and may gain fields. Top-level sections this version does not know are allowed, so a lock
written by a newer compiler with an additive section still validates.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .facts.gpu_spec import GpuSpec
from .facts.model_facts import ModelFacts
from .facts.vllm_version import VllmVersion
from .passes.cluster import ClusterPlan
from .passes.kv_transfer import KvConnectorPlan
from .plan import Decision, EngineConfig, KvCachePlan, PerfEstimate, RankMemory, Risk, Verdict

LOCK_SCHEMA_ID = "https://github.com/vllm-compile/vllm-compile/raw/main/schemas/lock.v1.schema.json"


class _Section(BaseModel):
    """A lock-only section: known fields are typed; added fields are allowed (additive evolution)."""

    model_config = ConfigDict(extra="allow")


class LockInputs(_Section):
    profile: dict[str, Any] = Field(description="The profile after `extends` overlays, as compiled.")


class LockResolved(_Section):
    model: ModelFacts = Field(description="Model facts (pinned revision, architecture, parameters by dtype).")
    gpu: GpuSpec
    vllm: VllmVersion = Field(description="The targeted release's defaults that change the numbers.")


class BindingGpuGib(_Section):
    """The binding GPU in GiB, in the terms vLLM prints at start-up (what `verify` compares)."""

    gpu_total_gib: float
    requested_gib: float
    baseline_gib: float
    weights_gib: float
    activation_peak_gib: float
    non_torch_gib: float
    cuda_graph_gib: float
    kv_cache_gib: float


class LockMemory(_Section):
    binding_gpu_gib: BindingGpuGib
    binding_pp_rank: int
    per_gpu: list[RankMemory] = Field(description="vLLM's start-up accounting per pipeline stage, bytes.")
    kv_cache: KvCachePlan
    largest_max_model_len: int | None = None
    assumptions: list[str] = Field(default_factory=list)


class LockPerformance(PerfEstimate):
    model_config = ConfigDict(extra="allow")

    estimate: Literal[True] = Field(description="Always true: performance figures are estimates.")


class LockSummary(_Section):
    """What the one-line report and the policy need (so an unchanged profile is not re-read)."""

    name: str
    gpu: str
    gpus: int
    starts: bool
    oom_risk: Risk
    fails_policy: bool
    kv_tokens: int
    max_concurrency: float
    reasons: list[str]
    warnings: list[str]
    capacity_ok: bool
    capacity_notes: list[str]


class LockV1(BaseModel):
    """A vllm-compile lockfile (`out/<name>/vllm.lock.yaml`), lock version 1."""

    model_config = ConfigDict(extra="allow", title="vllm-compile lock v1")

    lock_version: Literal[1]
    compiler_version: str
    vllm_version: str
    name: str = Field(description="The profile's name: its output folder.")
    profile: str = Field(description="The profile's path, relative to the repository root.")
    inputs_sha256: str = Field(pattern="^[0-9a-f]{64}$", description="Hash of every input of the plan.")
    inputs: LockInputs
    resolved: LockResolved
    settings: dict[str, Decision] = Field(description="Every engine setting with who decided it and why.")
    engine: EngineConfig = Field(description="The engine configuration, fully decided.")
    memory: LockMemory
    verdict: Verdict
    artifacts: dict[str, str] = Field(description="sha256 of every artifact written beside the lock.")
    summary: LockSummary | None = None  # written by compiles (generate writes none)
    cluster: ClusterPlan | None = Field(
        default=None, description="Replicas, GPUs and nodes for the workload."
    )
    performance: LockPerformance | None = None
    calibration: list[dict[str, Any]] | None = Field(
        default=None, description="Repository measurements this plan used (calibration files)."
    )
    config: dict[str, Any] | None = Field(
        default=None, description="Repository-level settings (vllm-compile.yaml) this compile used."
    )
    kv_connector: KvConnectorPlan | None = Field(
        default=None, description="The KV connector: its --kv-transfer-config, memory and pinned host memory."
    )
    roles: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="A `roles:` profile's prefill and decode engines (settings, engine, memory, verdict, "
        "kv_connector); the top-level sections are the decode pool's.",
    )
    disaggregation: dict[str, Any] | None = Field(
        default=None,
        description="Disaggregated serving estimate: KV transfer, prefill:decode ratio, aggregated vs "
        "disaggregated comparison.",
    )


def lock_json_schema() -> dict:
    schema = LockV1.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": LOCK_SCHEMA_ID, **schema}


def lock_json_schema_text() -> str:
    """Exactly the committed `schemas/lock.v1.schema.json`."""
    return json.dumps(lock_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
