"""The vLLM Config Wizard's flags (and a few more), turned into a profile_version 1 dict.

Shared by `plan` and `generate`: `add_profile_flags(parser)` then `profile_from_args(args, base)`.
Flags override what a `--profile` file says; a flag left out leaves the file's value (or the default).
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from typing import Any

_SUPPRESS = argparse.SUPPRESS


class ProfileFlagError(ValueError):
    """The flags do not make a profile (e.g. no model and no --profile)."""


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def context_len(text: str) -> int | str:
    """--max-model-len accepts 8192, 32k, 1M or auto (as vLLM does)."""
    t = text.strip().lower()
    if t in ("auto", "-1"):
        return "auto"
    mult = 1
    if t.endswith("k"):
        mult, t = 1024, t[:-1]
    elif t.endswith("m"):
        mult, t = 1024 * 1024, t[:-1]
    try:
        value = int(float(t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a length like 8192, 32k or auto, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"max-model-len must be >= 1, got {value}")
    return value


def _number(text: str, expected: str, ok: Callable[[float], bool]) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def _fraction(text: str) -> float:
    return _number(text, "a number in (0, 1]", lambda v: 0 < v <= 1)


def _non_negative(text: str) -> float:
    return _number(text, "a number >= 0", lambda v: v >= 0)


def add_profile_flags(parser: argparse.ArgumentParser) -> None:
    """Add the profile flags; every default is SUPPRESS so only flags given reach the profile."""
    m = parser.add_argument_group("model")
    m.add_argument("--profile", "-p", default=None, help="A profile YAML to start from; flags override it.")
    m.add_argument("--model", "-m", default=_SUPPRESS, help="Hugging Face id or local directory.")
    m.add_argument("--revision", default=_SUPPRESS)
    m.add_argument(
        "--dtype",
        default=_SUPPRESS,
        choices=["auto", "half", "float16", "bfloat16", "float", "float32", "fp16", "bf16"],
    )
    m.add_argument(
        "--quantization", "-q", default=_SUPPRESS, help="vLLM quantization method (awq, gptq, fp8, ...)."
    )
    m.add_argument("--kv-cache-dtype", default=_SUPPRESS, help="auto, fp8, fp8_e4m3, fp8_e5m2, ...")
    m.add_argument("--max-model-len", type=context_len, default=_SUPPRESS, help="8192, 32k or auto.")
    m.add_argument(
        "--params-b", type=float, default=_SUPPRESS, help="Parameters in billions (model without a config)."
    )

    h = parser.add_argument_group("hardware")
    h.add_argument("--gpu", default=_SUPPRESS, help='GPU model, e.g. "H100", "A100 80GB", "RTX 4090".')
    h.add_argument("--gpus", type=positive_int, default=_SUPPRESS, help="GPUs for one replica.")
    h.add_argument("--vram-gb", type=float, default=_SUPPRESS, help="Override GPU memory, decimal GB.")
    h.add_argument(
        "--vram-gib", type=float, default=_SUPPRESS, help="Override GPU memory, GiB as CUDA reports it."
    )
    h.add_argument(
        "--interconnect", default=_SUPPRESS, choices=["unknown", "nvlink", "pcie", "infiniband", "ethernet"]
    )

    par = parser.add_argument_group("parallelism")
    par.add_argument("--tensor-parallel-size", "--tp", type=positive_int, default=_SUPPRESS)
    par.add_argument("--pipeline-parallel-size", "--pp", type=positive_int, default=_SUPPRESS)
    par.add_argument("--data-parallel-size", "--dp", type=positive_int, default=_SUPPRESS)

    w = parser.add_argument_group("workload")
    w.add_argument("--prompt-tokens", type=positive_int, default=_SUPPRESS)
    w.add_argument("--gen-tokens", type=positive_int, default=_SUPPRESS)
    w.add_argument("--concurrency", "-c", type=positive_int, default=_SUPPRESS, help="Requests in flight.")
    w.add_argument("--request-rate", type=float, default=_SUPPRESS, help="Requests per second (open loop).")
    w.add_argument("--batching-mode", default=_SUPPRESS, choices=["balanced", "throughput", "latency"])

    v = parser.add_argument_group("vLLM")
    v.add_argument("--vllm-version", default=_SUPPRESS, help="Targeted vLLM release, e.g. 0.19.0.")
    v.add_argument("--gpu-memory-utilization", type=_fraction, default=_SUPPRESS)
    v.add_argument("--max-num-seqs", type=positive_int, default=_SUPPRESS)
    v.add_argument("--max-num-batched-tokens", type=positive_int, default=_SUPPRESS)
    v.add_argument("--block-size", type=int, default=_SUPPRESS, choices=[8, 16, 32, 64, 128])
    v.add_argument("--enforce-eager", action="store_true", default=_SUPPRESS)

    f = parser.add_argument_group("serving features")
    f.add_argument(
        "--speculative-method", default=_SUPPRESS, help="eagle3, eagle, mtp, ngram, draft_model ..."
    )
    f.add_argument(
        "--speculative-model", default=_SUPPRESS, help="Draft / EAGLE head (catalog id or folder)."
    )
    f.add_argument("--num-speculative-tokens", type=positive_int, default=_SUPPRESS)
    f.add_argument(
        "--spec-acceptance-rate", type=_fraction, default=_SUPPRESS, help="Per draft token, (0, 1)."
    )
    f.add_argument(
        "--max-loras", type=positive_int, default=_SUPPRESS, help="Serve LoRA with this many slots."
    )
    f.add_argument("--max-lora-rank", type=positive_int, default=_SUPPRESS)
    f.add_argument(
        "--prefix-reuse", type=_non_negative, default=_SUPPRESS, help="Prompt share from the prefix cache."
    )

    pol = parser.add_argument_group("policy")
    pol.add_argument(
        "--overhead-gb",
        type=_non_negative,
        default=_SUPPRESS,
        help="The wizard's flat overhead (recorded only).",
    )
    pol.add_argument("--fragmentation-factor", type=float, default=_SUPPRESS)
    pol.add_argument("--headroom-gb", type=_non_negative, default=_SUPPRESS)


# flag dest -> (section, key) in the profile
_MAP: dict[str, tuple[str, str]] = {
    "model": ("model", "id"),
    "revision": ("model", "revision"),
    "dtype": ("model", "dtype"),
    "quantization": ("model", "quantization"),
    "max_model_len": ("model", "max_model_len"),
    "params_b": ("model", "params_b"),
    "gpu": ("hardware", "gpu_name"),
    "gpus": ("hardware", "gpus"),
    "vram_gb": ("hardware", "vram_gb"),
    "vram_gib": ("hardware", "vram_gib"),
    "interconnect": ("hardware", "interconnect"),
    "tensor_parallel_size": ("parallelism", "tensor_parallel_size"),
    "pipeline_parallel_size": ("parallelism", "pipeline_parallel_size"),
    "data_parallel_size": ("parallelism", "data_parallel_size"),
    "prompt_tokens": ("workload", "prompt_tokens"),
    "gen_tokens": ("workload", "gen_tokens"),
    "concurrency": ("workload", "concurrency"),
    "request_rate": ("workload", "request_rate"),
    "batching_mode": ("workload", "mode"),
    "vllm_version": ("vllm", "version"),
    "gpu_memory_utilization": ("vllm", "gpu_memory_utilization"),
    "max_num_seqs": ("vllm", "max_num_seqs"),
    "max_num_batched_tokens": ("vllm", "max_num_batched_tokens"),
    "block_size": ("vllm", "block_size"),
    "enforce_eager": ("vllm", "enforce_eager"),
    "kv_cache_dtype": ("vllm", "kv_cache_dtype"),
    "overhead_gb": ("policy", "overhead_gb"),
    "fragmentation_factor": ("policy", "fragmentation_factor"),
    "headroom_gb": ("policy", "headroom_gb"),
}


# flag dest -> path of a nested field (serving features)
_NESTED: dict[str, tuple[str, ...]] = {
    "speculative_method": ("vllm", "speculative", "method"),
    "speculative_model": ("vllm", "speculative", "model"),
    "num_speculative_tokens": ("vllm", "speculative", "num_speculative_tokens"),
    "spec_acceptance_rate": ("workload", "spec_acceptance_rate"),
    "max_loras": ("vllm", "lora", "max_loras"),
    "max_lora_rank": ("vllm", "lora", "max_lora_rank"),
    "prefix_reuse": ("workload", "prefix_reuse"),
}


def profile_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A profile_version 1 dict: `base` (a --profile file's data) overlaid with the flags given."""
    data: dict[str, Any] = copy.deepcopy(base) if base else {}
    data["profile_version"] = 1
    given = vars(args)
    for dest, (section, key) in _MAP.items():
        if dest in given and given[dest] is not None:
            data.setdefault(section, {})[key] = given[dest]
    for dest, path in _NESTED.items():
        if dest in given and given[dest] is not None:
            node = data
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = given[dest]
    if data.get("model", {}).get("kv_cache_dtype") and "kv_cache_dtype" in given:
        data["model"].pop("kv_cache_dtype")  # the flag wins over the file's shorthand
    if "id" not in data.get("model", {}):
        raise ProfileFlagError("no model: pass --model/-m <Hugging Face id> or --profile/-p <file>")
    if "gpu_name" not in data.get("hardware", {}):
        raise ProfileFlagError("no GPU: pass --gpu <name> (e.g. --gpu H100) or --profile/-p <file>")
    return data
