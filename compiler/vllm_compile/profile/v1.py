"""Profile language, version 1: the single source of truth.

`schemas/profile.v1.schema.json` is generated from these models (`vllm-compile schema`). The vLLM
Config Wizard's profile shape (model/hardware/workload/policy) is a subset and compiles as it is.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Auto = Literal["auto"]
DEFAULT_VLLM_VERSION = "0.33.0"  # newest release in facts/vllm_versions.py

# vLLM `--dtype` choices (config/model.py), plus the common shorthand the wizard accepts.
DType = Literal["auto", "half", "float16", "bfloat16", "float", "float32", "fp16", "bf16"]
KvCacheDType = Literal["auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla"]
Quantization = Literal[
    "auto", "none", "awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "compressed-tensors",
    "modelopt", "modelopt_fp4", "mxfp4", "bitsandbytes", "gguf",
]  # fmt: skip
Target = Literal[
    "command", "vllm-config", "profile", "compose", "helm", "k8s", "lws", "kserve", "report", "charts"
]
PositiveInt = Annotated[int, Field(ge=1)]

# --- bounds from reality: past them a value is a typo or an attack, and the planner refuses it --------
# Tokens: above the longest context any released model has (Llama 4 Scout: 10M tokens, its model card).
MAX_TOKENS = 1 << 24
TokenCount = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
# GPUs for one replica: the largest vLLM deployments published run wide expert parallelism over a few
# hundred GPUs (vLLM blog, "Large scale serving: DeepSeek @ 2.2k tok/s/H200 with wide-EP", 2025).
MAX_GPUS = 1024
GpuCount = Annotated[int, Field(ge=1, le=MAX_GPUS)]
# Strings that end up in a shell command, an env file or a YAML key: no control characters (a newline
# would end the command or break the YAML); no leading `-` (it would reach `vllm serve` as a flag).
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
TEXT = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"  # free text: tabs and newlines allowed
ARGUMENT = r"^[^\x00-\x1f\x7f\s-][^\x00-\x1f\x7f]*$"  # a positional argument: not a flag
WORD = r"^[^\x00-\x20\x7f-][^\x00-\x20\x7f]*$"  # no whitespace at all (git refs, image names)
# Kubernetes names (apimachinery validation: DNS-1123 subdomain, label key and value).
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
LABEL_KEY = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][0-9]+|[numkMGTPE]|[KMGTPE]i)?$"  # k8s resource.Quantity
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # POSIX shell variable names (what serve.sh can export)
LabelKey = Annotated[str, Field(pattern=LABEL_KEY, max_length=317)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE, max_length=63)]
EnvName = Annotated[str, Field(pattern=ENV_NAME, max_length=256)]
EnvValue = Annotated[str, Field(pattern=r"^[^\x00-\x08\x0a-\x1f\x7f]*$", max_length=32768)]


class _Section(BaseModel):
    # Unknown keys are errors (with a did-you-mean in the diagnostics); `x-*` is for users' own notes.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class ModelSpec(_Section):
    """The model to serve: a Hugging Face id (catalog or Hub) or a local directory with config.json."""

    id: str = Field(
        min_length=1,
        max_length=1024,
        pattern=ARGUMENT,
        description="Hugging Face repo id, or a local directory with config.json.",
    )
    revision: str | None = Field(
        None,
        max_length=256,
        pattern=WORD,
        description="Branch, tag or commit; pinned to a commit sha in the lock.",
    )
    dtype: DType = Field(
        "auto", description="vLLM --dtype; `auto` follows the checkpoint (fp32 runs as bf16 on SM>=8.0)."
    )
    quantization: Quantization = Field(
        "auto", description="`auto`/`none`: as the checkpoint is; else vLLM --quantization."
    )
    kv_cache_dtype: KvCacheDType | None = Field(None, description="Shorthand for vllm.kv_cache_dtype.")
    max_model_len: TokenCount | Auto = Field(
        "auto", description="Context length; `auto` = the model's maximum, or the largest that fits."
    )
    params_b: float | None = Field(
        None,
        gt=0,
        le=10_000,  # 10 trillion: ten times the largest open-weight model (Kimi K2, 1.04T)
        description="Parameter count in billions for a model with no config (estimate).",
    )
    trust_remote_code: bool = False
    served_model_name: str | None = Field(None, max_length=256, pattern=ARGUMENT)


class HardwareSpec(_Section):
    gpu_name: str = Field(
        max_length=128,
        pattern=NO_CONTROL,
        description='GPU model, e.g. "H100", "A100 80GB", "RTX 4090", or `detect` (NVML).',
    )
    gpus: GpuCount = Field(1, description="GPUs for one replica of this deployment (all nodes).")
    gpus_per_node: PositiveInt | None = Field(
        None,
        le=72,  # GB200 NVL72: the largest NVLink domain sold as one system
        description="GPUs in one node; default: the catalog's usual node size.",
    )
    interconnect: Literal["unknown", "nvlink", "pcie", "infiniband", "ethernet"] = "unknown"
    vram_gib: float | None = Field(
        None,
        ge=1,
        le=1024,  # the largest GPUs today carry 288 GB (B300, MI355X datasheets)
        description="Override the GPU memory (GiB as CUDA reports it).",
    )
    vram_gb: float | None = Field(
        None, ge=1, le=1100, description="Override the GPU memory in decimal GB (the wizard's unit)."
    )


# MoE all-to-all backends any release accepts (`--all2all-backend` choices, or VLLM_ALL2ALL_BACKEND in
# vllm/envs.py before 0.11.1); which a release takes is checked against its own list (facts/wide_ep.py).
All2AllBackend = Literal[
    "naive", "allgather_reducescatter", "pplx", "deepep_high_throughput", "deepep_low_latency",
    "deepep_v2", "flashinfer_all2allv", "flashinfer_nvlink_one_sided", "flashinfer_nvlink_two_sided",
    "mori", "mori_high_throughput", "mori_low_latency", "nixl_ep", "moonep",
]  # fmt: skip


class ParallelismSpec(_Section):
    tensor_parallel_size: GpuCount | Auto = "auto"
    pipeline_parallel_size: GpuCount | Auto = "auto"
    data_parallel_size: GpuCount | Auto = "auto"
    enable_expert_parallel: bool | Auto = "auto"
    all2all_backend: All2AllBackend | Auto = Field(
        "auto",
        description="MoE all-to-all with expert parallelism (vLLM --all2all-backend, or VLLM_ALL2ALL_BACKEND "
        "before 0.11.1); `auto` = the release's default. DeepEP/pplx buffers are planned per GPU.",
    )
    data_parallel_size_local: GpuCount | None = Field(
        None,
        description="DP ranks on each node (vLLM --data-parallel-size-local); default: a node's GPUs / (TP x PP).",
    )
    enable_eplb: bool = Field(
        False, description="Expert-parallel load balancing (vLLM --enable-eplb); needs expert parallelism."
    )
    num_redundant_experts: int = Field(
        0,
        ge=0,
        le=4096,  # 16 x the 256 routed experts of DeepSeek-V3, the widest open MoE
        description="Extra expert replicas over all EP ranks with EPLB (vLLM eplb_config.num_redundant_experts).",
    )
    decode_context_parallel_size: GpuCount = Field(
        1,
        le=64,
        description="Decode context parallel (vLLM -dcp): shards KV tokens over the TP ranks; KV capacity x dcp.",
    )
    prefill_context_parallel_size: GpuCount = Field(
        1,
        le=64,
        description="Prefill context parallel (vLLM -pcp, from 0.12.0); multiplies the GPUs per engine.",
    )


class SloSpec(_Section):
    ttft_ms_p50: float | None = Field(None, gt=0, le=1e7)  # a day: no SLO is longer
    ttft_ms_p99: float | None = Field(None, gt=0, le=1e7)
    itl_ms: float | None = Field(None, gt=0, le=1e7, description="Inter-token latency (TPOT) target, ms.")
    e2e_s: float | None = Field(None, gt=0, le=1e5)
    ttft_ms_p90: float | None = Field(None, gt=0, le=1e7)
    itl_ms_p90: float | None = Field(None, gt=0, le=1e7, description="p90 over requests of their TPOT, ms.")
    itl_ms_p99: float | None = Field(None, gt=0, le=1e7)


class Distribution(_Section):
    mean: float | None = Field(
        None, gt=0, le=MAX_TOKENS, description="Mean tokens; from the histogram when it is given."
    )
    p50: float | None = Field(None, gt=0, le=MAX_TOKENS)
    p90: float | None = Field(None, gt=0, le=MAX_TOKENS)
    p99: float | None = Field(None, gt=0, le=MAX_TOKENS)
    max: float | None = Field(None, gt=0, le=MAX_TOKENS)
    histogram: (
        list[Annotated[list[Annotated[float, Field(ge=0, le=MAX_TOKENS)]], Field(min_length=2, max_length=2)]]
        | None
    ) = Field(
        None,
        max_length=4096,
        description="[[tokens, share], ...]: lengths and their share of requests (shares are normalised).",
    )


class WorkloadSpec(_Section):
    preset: Literal["chatbot", "batch_inference", "interactive", "long_context", "custom"] | None = None
    prompt_tokens: TokenCount | Distribution | None = None
    gen_tokens: TokenCount | Distribution | None = None
    concurrency: PositiveInt | None = Field(
        None, le=1_000_000, description="Requests in flight (closed loop)."
    )
    request_rate: float | None = Field(
        None, gt=0, le=1_000_000, description="Requests per second (open loop)."
    )
    mode: Literal["balanced", "throughput", "latency"] | None = Field(
        None, description="The wizard's objective."
    )
    objective: Literal["throughput", "latency", "balanced", "cost"] | None = None
    slo: SloSpec | None = None
    spec_acceptance_rate: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Speculative decoding: chance the model accepts each draft token; default per method.",
    )
    prefix_reuse: float | None = Field(
        None, ge=0, lt=1, description="Share of prompt tokens served from the prefix cache (0 = none)."
    )
    burstiness: float | None = Field(
        None,
        gt=0,
        description="Arrival burstiness as vLLM bench serve's: 1 Poisson, < 1 burstier (gamma gaps).",
    )
    trace: str | None = Field(
        None,
        description="CSV of arrivals and lengths (timestamp, prompt_tokens, output_tokens), relative to the profile; "
        "sets the lengths and the request rate.",
    )


SpecMethod = Literal[
    "ngram", "eagle", "eagle3", "mtp", "deepseek_mtp", "qwen3_next_mtp", "glm4_moe_mtp", "mimo_mtp",
    "ernie_mtp", "longcat_flash_mtp", "draft_model", "medusa", "mlp_speculator", "suffix",
]  # fmt: skip


class SpeculativeSpec(_Section):
    """Speculative decoding (vLLM `--speculative-config`): a draft proposes tokens, the model verifies them."""

    method: SpecMethod = Field(
        description="vLLM's speculative method; `mtp` = the model's own multi-token-prediction layers."
    )
    model: str | None = Field(
        None,
        description="Draft / EAGLE head: a catalog id, a local folder with config.json or a Hub id "
        "(not for ngram, suffix, mtp).",
    )
    num_speculative_tokens: PositiveInt = Field(description="Tokens the draft proposes per step (K).")
    draft_tensor_parallel_size: PositiveInt | None = Field(
        None, description="TP of the draft; default: the model's tensor_parallel_size (vLLM's default)."
    )


class LoraSpec(_Section):
    """Serve LoRA adapters (vLLM `--enable-lora`): vLLM allocates max_loras adapter slots on the GPU."""

    max_loras: PositiveInt = Field(1, description="Adapters in one batch (GPU slots); vLLM default 1.")
    max_lora_rank: PositiveInt = Field(
        16, description="Largest adapter rank the slots hold; vLLM default 16."
    )
    max_cpu_loras: PositiveInt | None = Field(None, description="Adapters cached in CPU memory.")
    lora_dtype: Literal["auto", "float16", "bfloat16"] = Field(
        "auto", description="Adapter weights dtype; `auto` = the model dtype."
    )
    target_modules: list[str] | None = Field(
        None,
        description="Modules the adapters touch (e.g. qkv_proj, o_proj); default: every linear layer "
        "vLLM wraps for the architecture.",
    )


# KV connectors vLLM's KVConnectorFactory registers (vllm/distributed/kv_transfer/kv_connector/factory.py);
# which release has which is in passes/kv_transfer.py.
KvConnector = Literal[
    "NixlConnector", "LMCacheConnectorV1", "OffloadingConnector", "MultiConnector", "P2pNcclConnector",
    "SharedStorageConnector",
]  # fmt: skip


class KvTransferSpec(_Section):
    """A KV connector (vLLM `--kv-transfer-config`): hands KV caches between engines (disaggregated
    prefill/decode) or to CPU/storage tiers. Written as the release's --kv-transfer-config JSON."""

    connector: KvConnector = Field(
        description="vLLM kv_connector: NixlConnector (P/D over NIXL: RDMA, NVLink or TCP), LMCacheConnectorV1, "
        "OffloadingConnector (vLLM's native CPU offload), MultiConnector (several in order), P2pNcclConnector."
    )
    kv_role: Literal["kv_producer", "kv_consumer", "kv_both"] | None = Field(
        None,
        description="vLLM kv_role; default: kv_both (a `roles:` profile: kv_producer for prefill and kv_consumer "
        "for decode where the connector distinguishes them, kv_both for NIXL as vLLM's NIXL guide runs it).",
    )
    kv_buffer_device: Literal["cuda", "cpu"] | None = Field(
        None,
        description="Where NIXL stages the KV it sends: cuda (the KV cache itself, vLLM's default) or cpu "
        "(a pinned host copy as large as the KV cache).",
    )
    kv_buffer_size: float | None = Field(
        None,
        gt=0,
        le=1 << 40,
        description="Bytes of the P2pNcclConnector buffer (vLLM KVTransferConfig.kv_buffer_size, default 1e9).",
    )
    kv_connector_extra_config: dict[str, Any] = Field(
        default_factory=dict,
        max_length=256,
        description="Passed as kv_connector_extra_config (e.g. OffloadingConnector num_cpu_blocks, LMCache "
        "lmcache.max_local_cpu_size GiB, MultiConnector connectors: [...]); keys the planner does not model "
        "are reported as not modelled.",
    )
    kv_connector_module_path: str | None = Field(
        None,
        max_length=256,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
        description="Python module of an out-of-tree connector (its memory is not modelled).",
    )


class KvOffloadSpec(_Section):
    """CPU offload of the KV cache (vLLM >= 0.11.1 `--kv-offloading-size` / `--kv-offloading-backend`;
    on earlier releases written as the OffloadingConnector's --kv-transfer-config)."""

    size_gib: float = Field(
        gt=0,
        le=8192,  # 8 TB: the largest host memory sold
        description="Pinned host memory for offloaded KV blocks, GiB in total over the TP x PP ranks "
        "(vLLM kv_offloading_size).",
    )
    backend: Literal["native", "lmcache"] = Field(
        "native", description="native = vLLM's OffloadingConnector; lmcache = LMCacheConnectorV1 local CPU."
    )


class VllmSpec(_Section):
    """The targeted vLLM release and its engine settings; a setting left out or `auto` is decided."""

    version: str = Field(DEFAULT_VLLM_VERSION, pattern=r"^\d+\.\d+\.\d+$")
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] | Auto = "auto"
    max_num_seqs: Annotated[int, Field(ge=1, le=1 << 20)] | Auto = "auto"
    max_num_batched_tokens: Annotated[int, Field(ge=1, le=1 << 26)] | Auto = "auto"
    block_size: Literal[8, 16, 32, 64, 128] | Auto = "auto"
    kv_cache_dtype: KvCacheDType = "auto"
    enforce_eager: bool | Auto = "auto"
    enable_prefix_caching: bool | Auto = "auto"
    enable_chunked_prefill: bool | Auto = "auto"
    max_cudagraph_capture_size: Annotated[int, Field(ge=1, le=1 << 16)] | Auto | None = Field(
        None,
        description="Largest CUDA graph size; left out: vLLM's default; `auto`: chosen for the workload "
        "(graph coverage of its decode batches against the KV cache the graphs take).",
    )
    cudagraph_capture_sizes: list[Annotated[int, Field(ge=1, le=1 << 16)]] | None = Field(
        None,
        max_length=1024,
        description="Explicit CUDA graph sizes (validated: sorted, within the batch limits).",
    )
    kv_cache_memory_bytes: Annotated[int, Field(ge=1, le=1 << 40)] | None = None  # per GPU; 1 TiB
    num_gpu_blocks_override: Annotated[int, Field(ge=1, le=1 << 31)] | None = None
    cpu_offload_gb: float = Field(0.0, ge=0, le=8192)  # 8 TB: the largest host memory sold
    extra_args: list[Annotated[str, Field(max_length=4096, pattern=NO_CONTROL)]] = Field(
        max_length=256,
        default_factory=list,
        description="More `vllm serve` flags, checked against the version's flags.",
    )
    cudagraph_capture_sizes: list[PositiveInt] | None = Field(
        None, description="CUDA graph sizes to capture; default: vLLM's list for the batch settings."
    )
    speculative: SpeculativeSpec | None = Field(None, description="Speculative decoding; default off.")
    lora: LoraSpec | None = Field(None, description="LoRA adapter serving; default off.")
    limit_mm_per_prompt: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        None,
        description="Multimodal items per prompt by modality (e.g. {image: 2}); all 0 = text-only serving.",
    )
    mm_processor_kwargs: dict[str, Any] | None = Field(
        None, description="Passed to the model's multimodal processor (vLLM --mm-processor-kwargs)."
    )
    kv_transfer: KvTransferSpec | None = Field(
        None, description="KV connector (--kv-transfer-config); default none (a `roles:` profile: NIXL)."
    )
    kv_offload: KvOffloadSpec | None = Field(None, description="CPU KV cache offload; default off.")


class PolicySpec(_Section):
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="The wizard's utilization; used when vllm.gpu_memory_utilization is auto."
    )
    fragmentation_factor: float = Field(
        1.0, ge=1, le=2, description="Safety factor on the non-KV estimate for the risk level."
    )
    headroom_gb: float = Field(
        0.5, ge=0, le=1024, description="Memory that must stay free outside vLLM's budget (GB)."
    )
    overhead_gb: float | None = Field(
        None,
        ge=0,
        le=1024,
        description="The wizard's flat overhead; recorded, superseded by the measured model.",
    )
    fail_on: Literal["high", "medium", "never"] = Field(
        "high", description="Risk that fails the compile (exit 1)."
    )
    medium_kv_margin: float = Field(
        0.10, ge=0, le=1, description="KV cache below this share of the budget is MEDIUM risk."
    )
    allow_quantization: bool = Field(
        False, description="Let the recommender quantize (fp8) when that is what fits."
    )
    max_gpu_memory_utilization: float = Field(
        0.95, gt=0, le=1, description="Upper bound the recommender may pick."
    )
    fail_on_unmodelled: bool = Field(
        False,
        description="Fail the compile (exit 1) when vllm.extra_args holds a flag the planner does not model.",
    )
    allow_speculative: bool = Field(
        False, description="Let the recommender turn speculative decoding on (it only proposes it otherwise)."
    )


class Toleration(_Section):
    key: LabelKey | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class ResourcesSpec(_Section):
    cpu: str | None = Field(None, pattern=QUANTITY, max_length=64)
    memory: str | None = Field(None, pattern=QUANTITY, max_length=64)


class DeploySpec(_Section):
    targets: list[Target] = Field(
        max_length=64,
        default_factory=lambda: ["command", "vllm-config", "compose", "helm", "k8s", "report", "charts"],
    )
    image: str = Field("vllm/vllm-openai", max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
    tag: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",  # docker reference grammar
        description="Image tag; default v<vllm.version>.",
    )
    port: int = Field(8000, ge=1, le=65535)
    replicas: Annotated[int, Field(ge=1, le=10_000)] | Auto = 1
    namespace: str = Field("default", max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    node_selector: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64)
    storage_class: str | None = Field(None, max_length=253, pattern=DNS_SUBDOMAIN)
    storage_size: str = Field("100Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=256)
    hf_token_secret: str = Field(
        "hf-token",
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Kubernetes secret holding HF_TOKEN (key: token).",
    )
    gated: bool | None = Field(None, description="The model needs HF_TOKEN; default: as the catalog says.")
    shm_size: str = Field("16g", max_length=32, pattern=r"^[0-9]+(\.[0-9]+)?([bkmgtKMGT][bB]?|[KMGT]i)?$")


class CostSpec(_Section):
    """GPU prices over the built-in table; in a base profile (`extends`) for a whole repository."""

    usd_per_gpu_hour: float | None = Field(
        None, gt=0, description="This deployment's GPU price, USD per GPU-hour (overrides the table)."
    )
    prices: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="USD per GPU-hour by GPU name or alias (e.g. {H100: 2.1}); used by `recommend` too.",
    )
    source: str | None = Field(None, description="Where the override comes from (a contract, a quote).")


class RoleHardwareSpec(HardwareSpec):
    """A role's hardware over the profile's (fields left out are the profile's)."""

    gpu_name: str | None = Field(  # type: ignore[assignment]
        None, max_length=128, pattern=NO_CONTROL, description="GPU model of this role; default the profile's."
    )


class RoleSpec(_Section):
    """One pool of a disaggregated deployment: its GPUs, parallelism, engine settings and replicas,
    over the profile's (deep merge: what a role leaves out is the profile's)."""

    hardware: RoleHardwareSpec = Field(default_factory=RoleHardwareSpec)
    parallelism: ParallelismSpec = Field(default_factory=ParallelismSpec)
    vllm: VllmSpec = Field(
        default_factory=VllmSpec,
        description="vLLM settings of this role over the profile's `vllm` section (only the fields given).",
    )
    replicas: Annotated[int, Field(ge=1, le=10_000)] | Auto = Field(
        1, description="Engines of this role; `auto`: the prefill:decode ratio the workload needs."
    )


class RolesSpec(_Section):
    """Disaggregated prefill/decode: two engine pools handing KV caches over a KV connector."""

    prefill: RoleSpec = Field(default_factory=RoleSpec)
    decode: RoleSpec = Field(default_factory=RoleSpec)
    router: Literal["llm-d", "production-stack", "toy-proxy"] = Field(
        "llm-d",
        description="What routes each request to a prefill then a decode engine: the `helm` target writes "
        "its chart's values (llm-d: llm-d-values.yaml, production-stack: helm-values.yaml, toy-proxy: none); "
        "compose and k8s/ run vLLM's toy proxy.",
    )


class Profile(_Section):
    """One vLLM deployment."""

    model_config = ConfigDict(extra="forbid", title="vllm-compile profile v1")

    profile_version: Literal[1] = Field(description="Profile language version.")
    extends: str | None = Field(
        None,
        max_length=1024,
        pattern=NO_CONTROL,
        description="Relative path of a base profile to overlay (deep merge).",
    )
    name: str | None = Field(
        None,
        max_length=63,  # a Kubernetes label value and DNS label: the name becomes both
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Output folder; default the file name.",
    )
    description: str | None = Field(None, max_length=4096, pattern=TEXT)
    model: ModelSpec
    hardware: HardwareSpec
    parallelism: ParallelismSpec = Field(default_factory=ParallelismSpec)
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    vllm: VllmSpec = Field(default_factory=VllmSpec)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    deploy: DeploySpec = Field(default_factory=DeploySpec)
    cost: CostSpec = Field(default_factory=CostSpec)
    roles: RolesSpec | None = Field(
        None,
        description="Disaggregated serving: `prefill` and `decode` pools planned as two engines that share the "
        "model and workload; default one aggregated engine.",
    )
