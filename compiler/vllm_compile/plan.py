"""Typed data flowing between the stages: Resolved -> (passes) -> Plan.

Passes are functions from these records to these records; nothing here does I/O.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from .facts.drafts import DraftFacts
from .facts.gpu_spec import GpuSpec
from .facts.model_facts import ModelFacts
from .facts.trace import Trace
from .facts.vllm_version import VllmVersion
from .profile.v1 import Profile

DecidedBy = Literal["user", "vllm-default", "recommended", "derived"]
Risk = Literal["LOW", "MEDIUM", "HIGH"]


class NotModelled(BaseModel):
    """A flag of vllm.extra_args that vLLM accepts and no pass models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flag: str
    may_change: str

    def message(self) -> str:
        return (
            f"not-modelled: vllm.extra_args {self.flag} is accepted by vLLM but the planner does not model it; "
            f"it may change {self.may_change}, which the plan gives as with vLLM's default"
        )


class ExtraArgsReport(BaseModel):
    """How the profile's vllm.extra_args were read (passes/extra_args.py); recorded in the lock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modelled: dict[str, str] = Field(default_factory=dict)  # flag -> the field it was read into
    neutral: list[str] = Field(default_factory=list)
    not_modelled: list[NotModelled] = Field(default_factory=list)


class Resolved(BaseModel):
    """A profile with the facts it names: the input of the planning passes."""

    model_config = ConfigDict(frozen=True)

    name: str  # profile name: the output folder
    profile: Profile
    model: ModelFacts
    gpu: GpuSpec
    vllm: VllmVersion
    draft: DraftFacts | None = None  # speculative decoding's draft model (facts/drafts.py)
    extra_args: ExtraArgsReport = Field(default_factory=ExtraArgsReport)
    trace: Trace | None = None  # workload.trace, read at resolve time
    roles: dict[str, Resolved] | None = (
        None  # `roles:` profile: each pool resolved (passes/disaggregation.py)
    )


class Decision(BaseModel):
    """Who decided one engine setting, and why."""

    model_config = ConfigDict(extra="forbid")

    value: Any
    by: DecidedBy
    reason: str = ""
    runner_up: Any = None


_WIDE_EP_DEFAULTS: dict[str, Any] = {
    "all2all_backend": None,
    "data_parallel_size_local": None,
    "enable_eplb": False,
    "num_redundant_experts": 0,
    "decode_context_parallel_size": 1,
    "prefill_context_parallel_size": 1,
}


class EngineConfig(BaseModel):
    """Every vLLM engine setting the plan depends on, fully decided (no `auto` left)."""

    model_config = ConfigDict(extra="forbid")

    dtype: str  # torch dtype vLLM runs in: bfloat16 | float16 | float32
    quantization: str | None = None  # vLLM method name, None = unquantized
    kv_cache_dtype: str = "auto"  # vLLM's value; "auto" = the model dtype
    max_model_len: int
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    enable_expert_parallel: bool = False
    gpu_memory_utilization: float
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int = 16
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    kv_cache_memory_bytes: int | None = None
    num_gpu_blocks_override: int | None = None
    max_cudagraph_capture_size: int | None = None
    cudagraph_capture_sizes: list[int] | None = None
    cpu_offload_gb: float = 0.0
    # Wide expert parallel and context parallel (passes/all2all.py, passes/context_parallel.py).
    all2all_backend: str | None = None  # the release's backend in effect with EP (None: no EP / no MoE)
    data_parallel_size_local: int | None = None
    enable_eplb: bool = False
    num_redundant_experts: int = 0
    decode_context_parallel_size: int = 1
    prefill_context_parallel_size: int = 1

    @model_serializer(mode="wrap")
    def _drop_default_wide_ep(self, handler: Any) -> dict[str, Any]:
        # The wide-EP / context-parallel fields appear in the lock only when set, so the locks of
        # every other deployment stay as they were.
        data = handler(self)
        for key, default in _WIDE_EP_DEFAULTS.items():
            if data.get(key, default) == default:
                data.pop(key, None)
        return data

    @property
    def gpus_per_replica(self) -> int:
        # vLLM's world size per DP rank: TP x PP x prefill context parallel (config/parallel.py).
        return self.tensor_parallel_size * self.pipeline_parallel_size * self.prefill_context_parallel_size

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_replica * self.data_parallel_size


class RankMemory(BaseModel):
    """vLLM's start-up accounting on one GPU (one PP stage; TP ranks of a stage are alike)."""

    model_config = ConfigDict(extra="forbid")

    pp_rank: int
    gpu_total_bytes: int
    requested_bytes: int  # ceil(total x gpu_memory_utilization)
    baseline_bytes: int  # in use before vLLM's snapshot (CUDA context, NCCL): outside the budget
    weights_bytes: int
    activation_peak_bytes: int
    non_torch_bytes: int
    cuda_graph_bytes: int  # deducted before the KV cache (0 where the version does not)
    kv_cache_bytes: int  # what is left; negative = vLLM fails to start
    num_blocks: int


class KvCachePlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bytes_per_token: int  # per GPU, every layer of the binding stage
    block_size: int
    bytes_per_block: int
    num_groups: int = 1
    num_blocks: int  # min over ranks
    blocks_per_request: int  # for one max_model_len request, summed over groups
    tokens: int  # "GPU KV cache size: N tokens"
    max_concurrency: float  # "Maximum concurrency for L tokens per request: Cx"


class MemoryFeature(BaseModel):
    """One term a serving feature adds (speculative decoding, LoRA, multimodal), per GPU of the binding stage."""

    model_config = ConfigDict(extra="forbid")

    name: str
    bytes_per_gpu: int  # already inside weights / activation of RankMemory; 0 where it only reshapes the KV
    detail: str


class MemoryPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ranks: list[RankMemory]
    binding_pp_rank: int  # the stage with the fewest blocks
    kv: KvCachePlan
    largest_max_model_len: int | None = None  # what --max-model-len auto would pick; None if nothing fits
    assumptions: list[str] = Field(default_factory=list)
    features: list[MemoryFeature] = Field(default_factory=list)  # written to the lock only when present

    @property
    def binding(self) -> RankMemory:
        return next(r for r in self.ranks if r.pp_rank == self.binding_pp_rank)


class Verdict(BaseModel):
    """Two questions, never mixed: will it start, and does the KV cache hold the workload."""

    model_config = ConfigDict(extra="forbid")

    starts: bool
    oom_risk: Risk
    reasons: list[str]
    capacity_ok: bool = True
    capacity_notes: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    fails_policy: bool = False  # the profile's policy.fail_on is met


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float
    low: float
    high: float


class PerfEstimate(BaseModel):
    """Closed-loop estimate at the workload's concurrency. Physics times calibrated efficiencies."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int
    ttft_ms: Range
    itl_ms: Range
    output_tok_s: Range
    total_tok_s: Range
    request_rps: Range
    e2e_latency_s: Range
    assumptions: list[str] = Field(default_factory=list)
    curve: list[dict[str, float]] = Field(default_factory=list)  # per concurrency level
    replicas: int | None = None  # cluster plan: replicas needed for the request rate
    slo_met: bool | None = None
    notes: list[str] = Field(default_factory=list)
    # p50/p90/p99 over the simulated requests: ttft_ms_*, itl_ms_* (per-request TPOT), e2e_s_*
    percentiles: dict[str, float] = Field(default_factory=dict)


class LayoutPoint(BaseModel):
    """One layout the recommender weighed (or its neighbours with the profile's fixed settings lifted),
    as the Pareto view shows it: per-GPU throughput against latency at the workload's load."""

    model_config = ConfigDict(extra="forbid")

    tensor_parallel_size: int
    pipeline_parallel_size: int
    data_parallel_size: int
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    gpus: int  # every GPU the layout uses (TP x PP x DP)
    starts: bool
    within_profile: bool  # respects every setting the profile fixed (else: a what-if)
    searched: bool  # the recommend pass itself evaluated it
    holds_workload: bool = False
    slo_met: bool | None = None
    output_tok_s: float | None = None
    output_tok_s_per_gpu: float | None = None
    itl_ms: float | None = None
    ttft_ms: float | None = None
    kv_tokens: int = 0
    usd_per_mtok: float | None = None  # output tokens; None while no GPU price is known
    frontier: bool = False
    role: Literal["chosen", "runner-up", ""] = ""

    @property
    def label(self) -> str:
        parts = [f"TP{self.tensor_parallel_size}"]
        if self.pipeline_parallel_size > 1:
            parts.append(f"PP{self.pipeline_parallel_size}")
        if self.data_parallel_size > 1:
            parts.append(f"DP{self.data_parallel_size}")
        if self.quantization:
            parts.append(self.quantization)
        if self.kv_cache_dtype != "auto":
            parts.append(f"KV {self.kv_cache_dtype}")
        return " ".join(parts)


class Plan(BaseModel):
    """Everything the lockfile and the artifacts are made from."""

    model_config = ConfigDict(frozen=False)

    resolved: Resolved
    engine: EngineConfig
    decisions: dict[str, Decision]
    memory: MemoryPlan
    verdict: Verdict
    performance: PerfEstimate | None = None
    cluster: dict[str, Any] | None = None  # passes.cluster.ClusterPlan, with a request rate or replicas: auto
    calibration: list[dict[str, Any]] | None = None  # repository measurements used (passes.calibration)
    cost: dict[str, Any] | None = None  # passes.cost.CostPlan, when the GPU has a price
    cuda_graphs: dict[str, Any] | None = None  # passes.capture_sizes.CapturePlan (None in eager mode)
    layouts: list[LayoutPoint] = Field(default_factory=list)  # passes.layouts: the Pareto view (not locked)
    kv_connector: dict[str, Any] | None = None  # passes.kv_transfer.KvConnectorPlan (a KV connector is set)
    roles: dict[str, Plan] | None = None  # `roles:` profile: the prefill and decode engine plans
    disaggregation: dict[str, Any] | None = None  # passes.disaggregation: transfer, ratio, agg vs disagg
