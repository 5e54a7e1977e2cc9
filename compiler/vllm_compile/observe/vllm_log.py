"""vLLM start-up logs read back: the engine configuration vLLM printed and its own memory figures.

One parser for every release we target, V0 and V1: each figure has the patterns of the releases that print
it (the source of each wording is noted), so a log of any era yields what it contains and nothing more; a
figure the log does not print stays None. Multi-rank logs carry a process prefix per line
("(Worker_TP1 pid=..)", "(EngineCore_DP2 pid=..)", "(VllmWorker rank=1 pid=..)", "(Worker_PP0 pid=..)");
figures are kept per rank, and the binding rank (the one with the least KV cache, as vLLM takes the minimum
over workers) is what a lock is compared with.

All memory figures are GiB as vLLM prints them. V0 releases print "GB" for the same quantity: they divide
by 2**30 (vllm/worker/model_runner.py `self.model_memory_usage / float(2**30)`), so both are GiB here.
"""

from __future__ import annotations

import ast
import hashlib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FailureKind = Literal[
    "no-kv-memory",  # "No available memory for the cache blocks" / a negative KV figure / 0 GPU blocks
    "max-seq-len",  # one max_model_len request does not fit in the KV cache
    "oom-profiling",  # CUDA out of memory during the profiling (dummy) run
    "oom-graph-capture",  # CUDA out of memory while capturing CUDA graphs
    "oom-sampler-warmup",  # CUDA out of memory warming up the sampler (V1)
    "oom-loading",  # CUDA out of memory loading the weights
    "oom",  # CUDA out of memory, phase not in the log
    "free-memory",  # less free memory at start-up than gpu_memory_utilization asks for (V1)
]

FIGURES = (
    "gpu_total_gib",
    "requested_gib",
    "free_at_start_gib",
    "baseline_gib",
    "weights_gib",
    "activation_peak_gib",
    "non_torch_gib",
    "non_kv_total_gib",
    "cuda_graph_gib",
    "cuda_graph_estimated_gib",
    "kv_cache_gib",
    "kv_cache_tokens",
    "gpu_blocks",
    "max_concurrency",
    "max_concurrency_tokens",
)


class RankFigures(BaseModel):
    """What one process printed about its GPU (or, for EngineCore lines, about the engine)."""

    model_config = ConfigDict(extra="forbid")

    gpu_total_gib: float | None = None
    requested_gib: float | None = None  # total x gpu_memory_utilization
    free_at_start_gib: float | None = None
    baseline_gib: float | None = None  # in use before vLLM's snapshot (CUDA context, NCCL)
    weights_gib: float | None = None
    activation_peak_gib: float | None = None
    non_torch_gib: float | None = None
    non_kv_total_gib: float | None = None
    cuda_graph_gib: float | None = None  # actual pool after capture
    cuda_graph_estimated_gib: float | None = None  # vLLM's profiled estimate before the KV cache
    kv_cache_gib: float | None = None
    kv_cache_tokens: int | None = None
    gpu_blocks: int | None = None
    max_concurrency: float | None = None
    max_concurrency_tokens: int | None = None  # the T of "Maximum concurrency for T tokens per request"


class Failure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FailureKind
    message: str
    line: int  # 1-based line of the log
    needed_gib: float | None = None  # max-seq-len: KV for one request
    available_gib: float | None = None  # max-seq-len: the KV cache there was
    estimated_max_model_len: int | None = None  # max-seq-len: vLLM's own suggestion


class StartupLog(BaseModel):
    """A start-up as vLLM printed it."""

    model_config = ConfigDict(extra="forbid")

    sha256: str
    vllm_version: str | None = None
    engine: Literal["V0", "V1"] | None = None
    settings: dict[str, Any] = Field(default_factory=dict)  # normalised engine settings vLLM printed
    layout: dict[str, int] = Field(default_factory=dict)  # world size; tp/pp/dp ranks seen (a lower bound)
    ranks: dict[str, RankFigures] = Field(default_factory=dict)  # "" = lines without a worker rank
    figures: RankFigures = Field(default_factory=RankFigures)  # the binding rank, engine lines merged
    binding_rank: str = ""
    failure: Failure | None = None
    started: bool | None = None  # True: the server came up; False: a failure; None: the log ends before


_NUM = r"(-?[\d,]*\.?\d+)"

# (figure, pattern, group) — the wording of each release that prints the figure.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # V1 gpu_model_runner.py "Model loading took X GiB" (0.8: "... GB"); V0 model_runner.py "Loading model weights took X GB"
    ("weights_gib", re.compile(r"(?:Model loading|Loading model weights) took " + _NUM + r" ?Gi?B")),
    # V1 gpu_worker.py determine_available_memory
    ("kv_cache_gib", re.compile(r"Available KV cache memory: " + _NUM + r" ?GiB")),
    # V1 kv_cache_utils.py
    ("kv_cache_tokens", re.compile(r"GPU KV cache size: " + _NUM + r" tokens")),
    # V0 executors "# GPU blocks: N" / "# cuda blocks: N"; V1 0.7 "# GPU blocks: N"
    ("gpu_blocks", re.compile(r"(?:#\s*)?(?:GPU|cuda|CUDA) blocks: (\d+)")),
    # V1 gpu_model_runner.py capture_model
    ("cuda_graph_gib", re.compile(r"Graph capturing finished in [\d.]+ secs?, took " + _NUM + r" ?GiB")),
    ("cuda_graph_gib", re.compile(r"CUDA graph pool memory: " + _NUM + r" GiB \(actual\)")),
    ("cuda_graph_estimated_gib", re.compile(r"CUDA graph pool memory: [\d.]+ GiB \(actual\), " + _NUM)),
    ("cuda_graph_estimated_gib", re.compile(r"Estimated CUDA graph memory: " + _NUM + r" GiB")),
    # V1 gpu_worker.py (DEBUG in 0.19): the profile's breakdown
    ("non_kv_total_gib", re.compile(r"Total non KV cache memory: " + _NUM + r" ?GiB")),
    ("activation_peak_gib", re.compile(r"torch peak memory increase: " + _NUM + r" ?GiB")),
    ("non_torch_gib", re.compile(r"non-torch forward increase memory: " + _NUM + r" ?GiB")),
    ("requested_gib", re.compile(r"Requested memory: [\d.]+ \(util\), " + _NUM + r" ?GiB")),
    ("requested_gib", re.compile(r"worker requested memory: " + _NUM + r" ?GiB")),
    ("free_at_start_gib", re.compile(r"Initial free memory:? " + _NUM + r" ?GiB")),
    (
        "free_at_start_gib",
        re.compile(r"Free memory on device (?:\S+ )?\(" + _NUM + r"/[\d.]+ GiB\) on startup"),
    ),
    ("gpu_total_gib", re.compile(r"Free memory on device (?:\S+ )?\([\d.]+/" + _NUM + r" GiB\) on startup")),
    ("gpu_total_gib", re.compile(r"worker init memory snapshot: .*total_memory=" + _NUM + r"GiB")),
    ("baseline_gib", re.compile(r"worker init memory snapshot: .*cuda_memory=" + _NUM + r"GiB")),
    # V0 worker.py (0.6.4 - 0.8): "the current vLLM instance can use total_gpu_memory (T) x gpu_memory_utilization (u) = R"
    ("gpu_total_gib", re.compile(r"total_gpu_memory \(" + _NUM + r"GiB\) x gpu_memory_utilization")),
    ("requested_gib", re.compile(r"x gpu_memory_utilization \([\d.]+\) = " + _NUM + r"GiB")),
    ("weights_gib", re.compile(r"model weights take " + _NUM + r"GiB")),
    ("non_torch_gib", re.compile(r"non_torch_memory takes " + _NUM + r"GiB")),
    ("activation_peak_gib", re.compile(r"PyTorch activation peak memory takes " + _NUM + r"GiB")),
    (
        "kv_cache_gib",
        re.compile(r"the rest of the memory reserved for KV Cache is (?:only )?" + _NUM + r"GiB"),
    ),
    # V0 worker.py (0.6.x): "Memory profiling results: total_gpu_memory=T ... non_torch_memory=N kv_cache_size=K"
    ("gpu_total_gib", re.compile(r"Memory profiling results: total_gpu_memory=" + _NUM + r"GiB")),
    ("non_torch_gib", re.compile(r"Memory profiling results: .*non_torch_memory=" + _NUM + r"GiB")),
    ("kv_cache_gib", re.compile(r"Memory profiling results: .*kv_cache_size=" + _NUM + r"GiB")),
]
_CONCURRENCY = re.compile(r"Maximum concurrency for " + _NUM + r" tokens per request: " + _NUM + r"x")
_MAX_SEQ_LEN_V1 = re.compile(
    r"To serve at least one request with the models?'s max seq len \((\d+)\), \(?"
    + _NUM
    + r" GiB KV cache is "
    r"needed, which is larger than the available KV cache memory \(" + _NUM + r" GiB\)"
    r"(?:\. Based on the available memory, the estimated maximum model length is (\d+))?"
)
_MAX_SEQ_LEN_V0 = re.compile(
    r"The model's max seq len \((\d+)\) is larger than the maximum number of tokens that can be stored in KV "
    r"cache \((\d+)\)"
)
_NO_KV = re.compile(r"No available memory for the cache blocks")
_OOM = re.compile(r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError")
_FREE_MEMORY = re.compile(r"Free memory on device .* on startup is less than desired GPU memory utilization")
# Markers of the start-up phase a later OOM belongs to (vLLM's method names in tracebacks, its own log lines).
_PHASES: list[tuple[FailureKind, re.Pattern[str]]] = [
    ("oom-loading", re.compile(r"Starting to load model|load_model\b")),
    (
        "oom-profiling",
        re.compile(r"profile_run|determine_available_memory|determine_num_available_blocks|_dummy_run\b"),
    ),
    (
        "oom-graph-capture",
        re.compile(r"Capturing (?:cudagraphs|CUDA graphs|the model for CUDA graphs)|capture_model"),
    ),
    ("oom-sampler-warmup", re.compile(r"_dummy_sampler_run|warming up sampler")),
]
_STARTED = re.compile(
    r"Starting vLLM API server|Application startup complete|Available routes are|init engine \(profile, create kv cache"
)
_VERSION = [
    re.compile(r"█\s+version (\d+\.\d+\.\d+\S*)"),  # the V1 banner (0.11+)
    re.compile(r"vLLM API server version (\d+\.\d+\.\d+\S*)"),
    re.compile(r"Initializing an? (?:V[01] )?LLM engine \(v(\d+\.\d+\.\d+[^)]*)\)"),
]
_ENGINE = re.compile(r"Initializing an? (V[01] )?LLM engine \(v?([^)]*)\) with config: (.*)")
_NON_DEFAULT = re.compile(r"non-default args: (\{.*)")
_RANK = re.compile(
    r"rank \d+ in world size \d+ is assigned as DP rank (\d+), PP rank (\d+), (?:PCP rank \d+, )?TP rank (\d+)"
)
_PREFIX = re.compile(r"^\s*(?:[\w.-]+\s+\|\s+)?((?:\(?[A-Za-z_]+[\w]*(?: [\w=.,: -]*)?\)\s*)+)")
# "(Worker_TP1 pid=..)", "(Worker_PP0_TP1 ..)", "(EngineCore_DP2 ..)", "(VllmWorker TP0 pid=..)" (0.10),
# "(EngineCore_0 pid=..)" (0.10: the engine index is the DP rank), "(VllmWorker rank=1 pid=..)" (0.8).
_PROC = re.compile(
    r"\(?([A-Za-z]+)(?:[_ ](DP|TP|PP)?(\d+)(?=[_ )]))?(?:_(TP|PP)(\d+))?(?: rank=(\d+))?[^)]*\)"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Wording only one engine prints (V0: vllm/worker/worker.py, executors; V1: vllm/v1/worker/gpu_worker.py,
# vllm/v1/core/kv_cache_utils.py).
_V0_WORDING = re.compile(
    r"\b(?:worker\.py|model_runner\.py|llm_engine\.py|distributed_gpu_executor\.py)|Memory profiling results:|"
    r"the current vLLM instance can use|The model's max seq len \(\d+\) is larger than"
)
_V1_WORDING = re.compile(
    r"gpu_worker\.py|kv_cache_utils\.py|EngineCore|Available KV cache memory|GPU KV cache size|"
    r"To serve at least one request"
)

# Settings vLLM prints, mapped to the lock's engine keys.
_ENGINE_KEYS = {
    "max_seq_len": "max_model_len",
    "tensor_parallel_size": "tensor_parallel_size",
    "pipeline_parallel_size": "pipeline_parallel_size",
    "data_parallel_size": "data_parallel_size",
    "dtype": "dtype",
    "quantization": "quantization",
    "enforce_eager": "enforce_eager",
    "kv_cache_dtype": "kv_cache_dtype",
    "enable_prefix_caching": "enable_prefix_caching",
    "enable_chunked_prefill": "enable_chunked_prefill",
    "chunked_prefill_enabled": "enable_chunked_prefill",
    "model": "model",
}
# Engine settings vLLM prints (non-default args, the engine configuration dump) that a lock decides.
ENGINE_SETTING_KEYS = (
    "max_model_len",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "gpu_memory_utilization",
    "max_num_seqs",
    "max_num_batched_tokens",
    "block_size",
    "enforce_eager",
    "enable_prefix_caching",
    "enable_chunked_prefill",
    "kv_cache_dtype",
    "dtype",
    "quantization",
    "enable_expert_parallel",
    "kv_cache_memory_bytes",
    "num_gpu_blocks_override",
)
# Read from the log as well: compared by verify's own rules (offload, the model served).
_ARG_KEYS = {*ENGINE_SETTING_KEYS, "cpu_offload_gb", "model"}


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _scalar(text: str) -> Any:
    text = text.strip().strip("'\"")
    if text in ("None", ""):
        return None
    if text in ("True", "False"):
        return text == "True"
    if text.startswith("torch."):
        return text.removeprefix("torch.")
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d*\.\d+", text):
        return float(text)
    return text


def _rank_of(line: str) -> tuple[str, str]:
    """(rank label, rest of the line). Labels: "TP1", "PP0", "DP2", "DP0.TP1", "rank1"; "" for none."""
    match = _PREFIX.match(line)
    if not match:
        return "", line
    parts: list[str] = []
    for proc in _PROC.finditer(match.group(1)):
        name, kind, index, kind2, index2, rank = proc.groups()
        if index is not None:
            parts.append(f"{kind or 'DP'}{index}")  # a bare engine index is the DP rank
        if kind2:
            parts.append(f"{kind2}{index2}")
        if rank is not None and name.startswith(("VllmWorker", "Worker")):
            parts.append(f"rank{rank}")
    # An engine core's own lines (no worker) are engine-wide: DP rank only.
    return ".".join(parts), line[match.end() :]


def _non_default_args(text: str) -> dict[str, Any]:
    try:
        parsed = ast.literal_eval(text)
        return {k: v for k, v in parsed.items() if k in _ARG_KEYS} if isinstance(parsed, dict) else {}
    except (ValueError, SyntaxError):  # a quoted excerpt cut mid-dict: read the complete pairs
        found = {}
        for key, value in re.findall(r"'(\w+)': ('[^']*'|[^,'{}\[\]]+)(?=,|\})", text):
            if key in _ARG_KEYS:
                found[key] = _scalar(value)
        return found


def _engine_settings(text: str) -> dict[str, Any]:
    found = {}
    for key, value in re.findall(r"(?:^|, )(\w+)=('[^']*'|[^,]*)", text):
        if key in _ENGINE_KEYS and value != "":
            found[_ENGINE_KEYS[key]] = _scalar(value)
    return found


def _normalise_settings(settings: dict[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    if out.get("quantization") in ("None", "none"):
        out["quantization"] = None
    if isinstance(out.get("dtype"), str):
        out["dtype"] = {"half": "float16", "float": "float32", "bf16": "bfloat16"}.get(
            out["dtype"], out["dtype"]
        )
    return out


def parse_log(text: str) -> StartupLog:
    """Everything a start-up log says, per rank; the binding rank's figures in `figures`."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    ranks: dict[str, dict[str, Any]] = {}
    engine_settings: dict[str, Any] = {}
    args: dict[str, Any] = {}
    effective: dict[str, Any] = {}
    version = engine = None
    layout: dict[str, int] = {}
    failure: Failure | None = None
    phase: FailureKind | None = None
    started = False
    v0_hint = False
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.lstrip().startswith("#") and "blocks" not in raw:  # fixture headers, never vLLM output
            continue
        raw = _ANSI.sub("", raw)  # colour codes of Ray / TTY logs
        rank, line = _rank_of(raw)
        figures = ranks.setdefault(rank, {})
        for name, pattern in _PATTERNS:
            match = pattern.search(line)
            if match:
                figures[name] = _number(match.group(1))
        match = _CONCURRENCY.search(line)
        if match:
            figures["max_concurrency_tokens"] = _number(match.group(1))
            figures["max_concurrency"] = _number(match.group(2))
        if version is None:
            for pattern in _VERSION:
                match = pattern.search(line)
                if match:
                    version = match.group(1).strip()
                    break
        match = _ENGINE.search(line)
        if match:
            engine = (match.group(1) or "").strip() or None
            engine_settings.update(_engine_settings(match.group(3)))
        match = _NON_DEFAULT.search(line)
        if match:
            args.update(_non_default_args(match.group(1)))
        match = re.search(r"Using max model len (\d+)", line)
        if match:
            effective["max_model_len"] = int(match.group(1))
        match = re.search(r"Chunked prefill is enabled with max_num_batched_tokens=(\d+)", line)
        if match:
            effective["max_num_batched_tokens"] = int(match.group(1))
        match = re.search(r"Defaulting max_num_seqs to (\d+)", line)
        if match:
            effective["max_num_seqs"] = int(match.group(1))
        match = _RANK.search(line)
        if match:
            dp, pp, tp = (int(g) for g in match.groups())
            layout["data_parallel_size"] = max(layout.get("data_parallel_size", 1), dp + 1)
            layout["pipeline_parallel_size"] = max(layout.get("pipeline_parallel_size", 1), pp + 1)
            layout["tensor_parallel_size"] = max(layout.get("tensor_parallel_size", 1), tp + 1)
        if _V1_WORDING.search(raw):
            engine = engine or "V1"
        if _V0_WORDING.search(line) and "v1/" not in line:
            v0_hint = True
        match = re.search(r"in world size (\d+)", line)
        if match:
            layout["world_size"] = max(layout.get("world_size", 1), int(match.group(1)))
        if rank:
            for kind, index in re.findall(r"(DP|TP|PP)(\d+)", rank):
                key = {"DP": "data", "TP": "tensor", "PP": "pipeline"}[kind] + "_parallel_size"
                layout[key] = max(layout.get(key, 1), int(index) + 1)
        for kind, pattern in _PHASES:
            if pattern.search(line):
                phase = kind
        if _STARTED.search(line):
            started = True
        if failure is None or failure.kind in ("oom", "no-kv-memory"):
            failure = _failure(line, number, phase) or failure
    if engine is None and v0_hint:
        engine = "V0"
    binding, merged = _binding(ranks)
    if failure is None and merged.kv_cache_gib is not None and merged.kv_cache_gib <= 0:
        failure = Failure(
            kind="no-kv-memory", message=f"Available KV cache memory: {merged.kv_cache_gib} GiB", line=0
        )
    if failure is None and merged.gpu_blocks == 0:
        failure = Failure(kind="no-kv-memory", message="0 GPU blocks", line=0)
    if failure is not None and failure.available_gib is not None and merged.kv_cache_gib is None:
        merged = merged.model_copy(update={"kv_cache_gib": failure.available_gib})  # the message's own figure
    settings = _normalise_settings({**engine_settings, **effective, **args})
    return StartupLog(
        sha256=digest,
        vllm_version=version,
        engine=engine,  # type: ignore[arg-type]
        settings=settings,
        layout=layout,
        ranks={k: RankFigures(**_typed(v)) for k, v in sorted(ranks.items()) if v},
        figures=merged,
        binding_rank=binding,
        failure=failure,
        started=False if failure is not None else (True if started else None),
    )


def _failure(line: str, number: int, phase: FailureKind | None) -> Failure | None:
    match = _MAX_SEQ_LEN_V1.search(line)
    if match:
        return Failure(
            kind="max-seq-len",
            message=line.strip(),
            line=number,
            needed_gib=_number(match.group(2)),
            available_gib=_number(match.group(3)),
            estimated_max_model_len=int(match.group(4)) if match.group(4) else None,
        )
    if _MAX_SEQ_LEN_V0.search(line):
        return Failure(kind="max-seq-len", message=line.strip(), line=number)
    if _FREE_MEMORY.search(line):
        return Failure(kind="free-memory", message=line.strip(), line=number)
    if _NO_KV.search(line) and "raise" not in line:
        return Failure(kind="no-kv-memory", message=line.strip(), line=number)
    if _OOM.search(line) and "File " not in line:
        kind: FailureKind = "oom-sampler-warmup" if "warming up sampler" in line else (phase or "oom")
        return Failure(kind=kind, message=line.strip(), line=number)
    return None


_INTS = {"kv_cache_tokens", "gpu_blocks", "max_concurrency_tokens"}


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    return {k: int(v) if k in _INTS else float(v) for k, v in values.items()}


def _binding(ranks: dict[str, dict[str, Any]]) -> tuple[str, RankFigures]:
    """The rank with the least KV cache (vLLM sizes every worker by the minimum), engine-wide lines merged in.

    Engine-wide figures (tokens, concurrency: printed once by the engine core) come from the rank-less or
    DP-only lines; per-GPU figures from the binding worker."""
    workers = {k: v for k, v in ranks.items() if v}
    with_kv = {k: v for k, v in workers.items() if "kv_cache_gib" in v}
    if with_kv:
        binding = min(with_kv, key=lambda k: (with_kv[k]["kv_cache_gib"], k))
    else:
        binding = max(workers, key=lambda k: (len(workers[k]), k == "", k), default="")
    merged: dict[str, Any] = {}
    for key in sorted(workers, key=lambda k: (k != binding, k)):
        for name, value in workers[key].items():
            merged.setdefault(name, value)
    return binding, RankFigures(**_typed(merged))
