"""Every flag in `vllm.extra_args`, classified before planning: nothing is ignored silently.

- **modelled**: a pass models it; it is read into the profile exactly like its first-class field
  (`--max-num-seqs 64` plans as `vllm.max_num_seqs: 64`, `--speculative-config {...}` as
  `vllm.speculative`, `--enable-lora --max-loras 4` as `vllm.lora`). Setting both the field and the
  flag is an error that points at the field.
- **neutral**: cannot change memory or speed (`--port`, `--api-key`, `--served-model-name`, logging,
  chat templates, tool parsers ...); passed through.
- **not modelled**: the release accepts it but no pass models it: passed through, and a `not-modelled`
  warning names it and the numbers it may change (`policy.fail_on_unmodelled: true` fails the compile).

Flags the release does not accept are left to the flag check (`facts/vllm_flags.check_args`), which
refuses them with a did-you-mean. The first-class feature sections (speculative, lora, multimodal
limits) are written back as the release's flags, so every artifact carries them and the flag check
sees them like any other flag.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..facts import vllm_flags
from ..plan import Decision, ExtraArgsReport, NotModelled, Resolved, Verdict
from ..profile.v1 import LoraSpec, Profile, SpeculativeSpec


class ExtraArgsError(ValueError):
    """A flag in extra_args contradicts the profile or cannot be read; `path` is the field to point at."""

    def __init__(self, path: tuple[str, ...], message: str):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class ParsedArg:
    option: str  # as vLLM reads it (`--x_y` -> `--x-y`, `=value` split off)
    flag: vllm_flags.Flag
    values: list[str]


# Flags that cannot change memory or speed: serving front-end, auth, logging, naming, parsing of
# requests and responses (vllm/entrypoints/openai/cli_args.py, the frontend part of EngineArgs).
NEUTRAL: frozenset[str] = frozenset(
    {
        "--host", "--port", "--uds", "--api-key", "--served-model-name", "--root-path", "--middleware",
        "--allowed-origins", "--allowed-methods", "--allowed-headers", "--allow-credentials",
        "--ssl-keyfile", "--ssl-certfile", "--ssl-ca-certs", "--ssl-cert-reqs", "--enable-ssl-refresh",
        "--uvicorn-log-level", "--disable-uvicorn-access-log", "--disable-log-stats", "--disable-log-requests",
        "--enable-log-requests", "--enable-log-outputs", "--max-log-len", "--log-config-file",
        "--disable-fastapi-docs", "--enable-request-id-headers", "--enable-server-load-tracking",
        "--enable-prompt-tokens-details", "--enable-force-include-usage", "--return-tokens-as-token-ids",
        "--chat-template", "--chat-template-content-format", "--response-role", "--enable-auto-tool-choice",
        "--tool-call-parser", "--tool-parser-plugin", "--reasoning-parser", "--tool-server",
        "--expand-tools-even-if-tool-choice-none", "--exclude-tools-when-tool-choice-none",
        "--lora-modules", "--prompt-adapters", "--download-dir", "--hf-token", "--tokenizer",
        "--tokenizer-revision", "--code-revision", "--config-format", "--seed", "--generation-config",
        "--override-generation-config", "--disable-frontend-multiprocessing", "--logits-processor-pattern",
        "--enable-tokenizer-info-endpoint", "--h11-max-incomplete-event-size", "--h11-max-header-count",
        "--log-error-stack", "--otlp-traces-endpoint", "--collect-detailed-traces", "--show-hidden-metrics-for-version",
        "--kv-events-config", "--enable-sleep-mode", "--config",
    }
)  # fmt: skip

# Engine settings with a first-class field: flag -> (profile path, parser).
_INT, _FLOAT, _STR = int, float, str


def _bool(arg: ParsedArg) -> bool:
    """A switch: its name (or --enable-x) is on; --no-x / --disable-x is off."""
    return arg.option == arg.flag.name


def _human_int(text: str) -> int | str:
    """vLLM's `human_readable_int` (engine/arg_utils.py): 32k = 32000, 32K = 32768; `auto` / -1 = the
    largest that fits (`--max-model-len auto`)."""
    text = text.strip()
    if text in ("auto", "-1"):
        return "auto"
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG])", text)
    if m:
        scale = {"k": 10**3, "m": 10**6, "g": 10**9, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2)]
        return int(float(m.group(1)) * scale)
    return int(text)


FIELDS: dict[str, tuple[tuple[str, str], Callable[[Any], Any]]] = {
    "--max-model-len": (("model", "max_model_len"), _human_int),
    "--dtype": (("model", "dtype"), _STR),
    "--quantization": (("model", "quantization"), _STR),
    "--trust-remote-code": (("model", "trust_remote_code"), bool),
    "--revision": (("model", "revision"), _STR),
    "--served-model-name": (("model", "served_model_name"), _STR),
    "--tensor-parallel-size": (("parallelism", "tensor_parallel_size"), _INT),
    "--pipeline-parallel-size": (("parallelism", "pipeline_parallel_size"), _INT),
    "--data-parallel-size": (("parallelism", "data_parallel_size"), _INT),
    "--enable-expert-parallel": (("parallelism", "enable_expert_parallel"), bool),
    "--all2all-backend": (("parallelism", "all2all_backend"), _STR),
    "--data-parallel-size-local": (("parallelism", "data_parallel_size_local"), _INT),
    "--enable-eplb": (("parallelism", "enable_eplb"), bool),
    "--num-redundant-experts": (("parallelism", "num_redundant_experts"), _INT),
    "--decode-context-parallel-size": (("parallelism", "decode_context_parallel_size"), _INT),
    "--prefill-context-parallel-size": (("parallelism", "prefill_context_parallel_size"), _INT),
    "--gpu-memory-utilization": (("vllm", "gpu_memory_utilization"), _FLOAT),
    "--max-num-seqs": (("vllm", "max_num_seqs"), _INT),
    "--max-num-batched-tokens": (("vllm", "max_num_batched_tokens"), _human_int),
    "--block-size": (("vllm", "block_size"), _INT),
    "--kv-cache-dtype": (("vllm", "kv_cache_dtype"), _STR),
    "--enforce-eager": (("vllm", "enforce_eager"), bool),
    "--enable-prefix-caching": (("vllm", "enable_prefix_caching"), bool),
    "--enable-chunked-prefill": (("vllm", "enable_chunked_prefill"), bool),
    "--max-cudagraph-capture-size": (("vllm", "max_cudagraph_capture_size"), _INT),
    "--kv-cache-memory-bytes": (("vllm", "kv_cache_memory_bytes"), _INT),
    "--num-gpu-blocks-override": (("vllm", "num_gpu_blocks_override"), _INT),
    "--cpu-offload-gb": (("vllm", "cpu_offload_gb"), _FLOAT),
    "--port": (("deploy", "port"), _INT),
    "--limit-mm-per-prompt": (("vllm", "limit_mm_per_prompt"), json.loads),
    "--mm-processor-kwargs": (("vllm", "mm_processor_kwargs"), json.loads),
}
# Modelled by a pass straight from extra_args (no first-class field): kept as given.
READ_IN_PLACE = {
    "--language-model-only": "vllm.extra_args (multimodal pass: text-only, no vision encoder)",
    "--skip-mm-profiling": "vllm.extra_args (multimodal pass: no encoder profiling run)",
}
# Before 0.11.1 the capture sizes flag was --cuda-graph-sizes (vllm PR #26016).
CAPTURE_SIZE_FLAGS = ("--cudagraph-capture-sizes", "--cuda-graph-sizes")
LORA_FLAGS = {
    "--max-loras": "max_loras",
    "--max-lora-rank": "max_lora_rank",
    "--max-cpu-loras": "max_cpu_loras",
    "--lora-dtype": "lora_dtype",
    "--lora-target-modules": "target_modules",
}
_SPEC_KEYS = {"method", "model", "num_speculative_tokens", "draft_tensor_parallel_size"}

# What a not-modelled flag may change, by the part of vLLM it configures (first match wins).
_MAY_CHANGE: tuple[tuple[tuple[str, ...], str], ...] = (
    (("--compilation-config", "-O", "--cudagraph", "--cuda-graph"), "the CUDA graph memory, the activation peak and the step times"),
    (("--long-prefill", "--max-num-partial", "--max-long-partial", "--scheduling-policy", "--scheduler",
      "--async-scheduling", "--num-scheduler-steps", "--preemption", "--stream-interval"),
     "the scheduling of prefills and decodes: TTFT, ITL and throughput"),
    (("--swap-space", "--kv-offloading", "--kv-transfer", "--cpu-offload", "--offload", "--kv-connector"),
     "the memory outside the GPU budget and the KV cache capacity"),
    (("--attention-backend", "--mamba", "--kv-sharing", "--hybrid", "--disable-hybrid", "--calculate-kv-scales",
      "--kv-cache", "--num-gpu-blocks", "--prefix-caching-hash"), "the KV cache size and the step times"),
    (("--hf-overrides", "--rope", "--max-seq-len", "--override", "--model-impl", "--load-format",
      "--quantization-param", "--tokenizer-pool"), "the model as loaded: weights, activation peak and KV cache"),
    (("--distributed", "--data-parallel", "--enable-eplb", "--eplb", "--expert", "--all2all", "--worker",
      "--ray", "--nccl", "--disable-custom-all-reduce", "--decode-context", "--dcp"),
     "the memory per GPU (communication buffers) and the step times"),
    (("--mm-", "--skip-mm", "--disable-mm", "--disable-chunked-mm", "--interleave-mm"),
     "the vision encoder's profiling run and encoder cache"),
    (("--lora", "--max-lora", "--fully-sharded-loras", "--enable-lora-bias", "--long-lora"), "the LoRA buffers and LoRA kernel time"),
    (("--speculative", "--num-speculative", "--ngram"), "the draft's weights and KV cache, and the decode speed"),
)  # fmt: skip


def may_change(flag: str) -> str:
    for prefixes, what in _MAY_CHANGE:
        if flag.startswith(prefixes):
            return what
    return "the memory plan (activation peak, KV cache) and the step times"


def _option(token: str) -> tuple[str, str | None]:
    """`--gpu_memory_utilization=0.9` -> (`--gpu-memory-utilization`, `0.9`), as FlexibleArgumentParser reads it."""
    value: str | None = None
    if token.startswith("--") and "=" in token:
        token, value = token.split("=", 1)
    if token.startswith("--"):
        token = "--" + token[2:].split(".", 1)[0].replace("_", "-")
    return token, value


def parse(version: str, args: list[str]) -> list[ParsedArg] | None:
    """The arguments as flags of `version`; None when the flag check refuses them (it reports why)."""
    if vllm_flags.check_args(version, args):
        return None
    fs = vllm_flags.flag_set(version)
    out: list[ParsedArg] = []
    i = 0
    while i < len(args):
        option, inline = _option(args[i])
        i += 1
        flag = fs.lookup(option) or fs.maybe.get(option)
        if flag is None:  # check_args accepted it, so it cannot happen; stay safe
            continue
        values: list[str] = [] if inline is None else [inline]
        if not flag.is_bool and inline is None:
            while i < len(args) and not vllm_flags.is_option(args[i]):
                values.append(args[i])
                i += 1
                if flag.nargs not in ("+", "*"):
                    break
        out.append(ParsedArg(option, flag, values))
    return out


def _is_set(profile: Profile, path: tuple[str, str]) -> bool:
    section = getattr(profile, path[0])
    if path[1] not in section.model_fields_set:
        return False
    value = getattr(section, path[1])
    return value is not None and value != "auto"


def _convert(arg: ParsedArg, parser: Callable[[Any], Any]) -> Any:
    if parser is bool:
        return _bool(arg)
    if not arg.values:
        raise ExtraArgsError(("vllm", "extra_args"), f"vllm.extra_args: {arg.option} needs a value")
    raw = arg.values[0] if len(arg.values) == 1 else " ".join(arg.values)
    try:
        return parser(raw)
    except (ValueError, TypeError) as exc:
        raise ExtraArgsError(
            ("vllm", "extra_args"), f"vllm.extra_args: {arg.option} {raw!r}: {exc}"
        ) from None


def _conflict(path: tuple[str, ...], flag: str) -> ExtraArgsError:
    return ExtraArgsError(
        path,
        f"{'.'.join(path)} is set and vllm.extra_args also gives {flag}; keep one (the field is read the same way)",
    )


def _spec_from_json(arg: ParsedArg) -> tuple[dict[str, Any], list[str]]:
    raw = " ".join(arg.values)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ExtraArgsError(
            ("vllm", "extra_args"), f"vllm.extra_args: --speculative-config is not JSON ({exc})"
        ) from None
    if not isinstance(data, dict):
        raise ExtraArgsError(
            ("vllm", "extra_args"), "vllm.extra_args: --speculative-config must be a JSON object"
        )
    if "method" not in data and data.get("model"):
        # SpeculativeConfig.__post_init__: the method follows the draft's name when it is not given.
        name = str(data["model"]).lower()
        data["method"] = "eagle3" if "eagle3" in name else "eagle" if "eagle" in name else "draft_model"
    spec = {k: v for k, v in data.items() if k in _SPEC_KEYS}
    other = sorted(k for k in data if k not in _SPEC_KEYS)
    return spec, other


def _mm_limit(value: Any, version_flag: str) -> dict[str, int]:
    if not isinstance(value, dict) or not all(isinstance(v, int) for v in value.values()):
        raise ExtraArgsError(
            ("vllm", "extra_args"), f"vllm.extra_args: {version_flag} must be a JSON object of counts"
        )
    return dict(value)


def normalise(profile: Profile, version: str) -> tuple[Profile, ExtraArgsReport]:
    """The profile with every modelled extra_args flag read into its field, and the classification.

    The returned profile's extra_args hold the neutral and not-modelled flags as given, then the feature
    sections (speculative, lora, multimodal) spelt as the release's flags."""
    args = list(profile.vllm.extra_args)
    if not args:  # nothing to read: the profile as given (its unset fields stay unset), plus feature flags
        return with_feature_flags(profile, version), ExtraArgsReport()
    parsed = parse(version, args)
    if parsed is None:  # refused flags: the flag check reports them; plan the profile as it is
        return profile, ExtraArgsReport()
    updates: dict[str, dict[str, Any]] = {"model": {}, "parallelism": {}, "vllm": {}, "deploy": {}}
    modelled: dict[str, str] = {}
    neutral: list[str] = []
    unmodelled: list[NotModelled] = []
    kept: list[str] = []
    lora: dict[str, Any] = {}
    lora_on: bool | None = None
    spec: dict[str, Any] | None = None
    kv_transfer: dict[str, Any] | None = None
    offload: dict[str, Any] = {}
    offload_words: dict[str, list[str]] = {}
    for arg in parsed:
        name = arg.flag.name
        words = [arg.option, *arg.values]
        if name in FIELDS:
            path, parser = FIELDS[name]
            if _is_set(profile, path):
                raise _conflict(path, arg.option)
            value = _convert(arg, parser)
            if name == "--limit-mm-per-prompt":
                value = _mm_limit(value, arg.option)
            if value is not None:
                updates[path[0]][path[1]] = value
            modelled[arg.option] = ".".join(path)
        elif name in CAPTURE_SIZE_FLAGS:
            sizes = [int(v) for w in arg.values for v in w.replace(",", " ").split()]
            path = ("vllm", "cudagraph_capture_sizes")
            if _is_set(profile, path) or _is_set(profile, ("vllm", "max_cudagraph_capture_size")):
                raise _conflict(path, arg.option)
            if (
                len(sizes) == 1
                and vllm_flags.resolve_flag(vllm_flags.flag_set(version), "--max-cudagraph-capture-size")
                is None
            ):
                # Before 0.11.1 one value is the cap vLLM fills the sizes up to (config.py _set_cudagraph_sizes).
                updates["vllm"]["max_cudagraph_capture_size"] = sizes[0]
                modelled[arg.option] = "vllm.max_cudagraph_capture_size"
            else:
                updates["vllm"]["cudagraph_capture_sizes"] = sorted(set(sizes))
                modelled[arg.option] = ".".join(path)
        elif name == "--speculative-config":
            if profile.vllm.speculative is not None:
                raise _conflict(("vllm", "speculative"), arg.option)
            spec, other = _spec_from_json(arg)
            modelled[arg.option] = "vllm.speculative"
            unmodelled.extend(
                NotModelled(flag=f"--speculative-config {key}", may_change=may_change("--speculative"))
                for key in other
            )
        elif name in ("--kv-offloading-size", "--kv-offloading-backend"):
            if profile.vllm.kv_offload is not None:
                raise _conflict(("vllm", "kv_offload"), arg.option)
            key = "size_gib" if name == "--kv-offloading-size" else "backend"
            offload[key] = float(arg.values[0]) if key == "size_gib" else arg.values[0]
            offload_words[key] = words
            modelled[arg.option] = f"vllm.kv_offload.{key}"
        elif name == "--kv-transfer-config":
            from .kv_transfer import spec_from_json

            if profile.vllm.kv_transfer is not None:
                raise _conflict(("vllm", "kv_transfer"), arg.option)
            found, other = spec_from_json(" ".join(arg.values))
            if found is None:  # an out-of-tree or unknown connector: passed through, not modelled
                unmodelled.append(NotModelled(flag=arg.option, may_change=may_change(arg.option)))
                kept.extend(words)
            else:
                kv_transfer = found
                modelled[arg.option] = "vllm.kv_transfer"
                unmodelled.extend(
                    NotModelled(flag=f"--kv-transfer-config {key}", may_change=may_change(arg.option))
                    for key in other
                )
        elif name == "--enable-lora":
            if profile.vllm.lora is not None:
                raise _conflict(("vllm", "lora"), arg.option)
            lora_on = _bool(arg)
            modelled[arg.option] = "vllm.lora"
        elif name in LORA_FLAGS:
            if profile.vllm.lora is not None:
                raise _conflict(("vllm", "lora", LORA_FLAGS[name]), arg.option)
            lora[LORA_FLAGS[name]] = arg.values if name == "--lora-target-modules" else arg.values[0]
            modelled[arg.option] = f"vllm.lora.{LORA_FLAGS[name]}"
        elif name in READ_IN_PLACE:
            modelled[arg.option] = READ_IN_PLACE[name]
            kept.extend(words)
        elif name in NEUTRAL:
            neutral.append(arg.option)
            kept.extend(words)
        else:
            unmodelled.append(NotModelled(flag=arg.option, may_change=may_change(arg.option)))
            kept.extend(words)
    if offload and "size_gib" not in offload:  # a backend without a size: vLLM offloads nothing
        for flag in [f for f, field in modelled.items() if field.startswith("vllm.kv_offload")]:
            del modelled[flag]
            unmodelled.append(NotModelled(flag=flag, may_change=may_change(flag)))
        kept.extend(offload_words["backend"])
        offload = {}
    vllm_update = dict(updates["vllm"])
    try:
        if spec is not None:
            vllm_update["speculative"] = SpeculativeSpec.model_validate(spec)
        if lora_on:
            vllm_update["lora"] = LoraSpec.model_validate(lora)
        if kv_transfer is not None:
            from ..profile.v1 import KvTransferSpec

            vllm_update["kv_transfer"] = KvTransferSpec.model_validate(kv_transfer)
        if offload:
            from ..profile.v1 import KvOffloadSpec

            vllm_update["kv_offload"] = KvOffloadSpec.model_validate(offload)
    except ValueError as exc:
        raise ExtraArgsError(("vllm", "extra_args"), f"vllm.extra_args: {_first_error(exc)}") from None
    sections: dict[str, Any] = {}
    for section, fields in (*((k, v) for k, v in updates.items() if k != "vllm"), ("vllm", vllm_update)):
        if fields or section == "vllm":
            current = getattr(profile, section)
            data = {**current.model_dump(exclude_unset=True), **{k: v for k, v in fields.items()}}
            if section == "vllm":
                data["extra_args"] = kept
            sections[section] = type(current).model_validate(
                {
                    k: (v.model_dump(exclude_unset=True) if isinstance(v, BaseModel) else v)
                    for k, v in data.items()
                }
            )
    try:
        result = profile.model_copy(update=sections)
    except ValueError as exc:
        raise ExtraArgsError(("vllm", "extra_args"), f"vllm.extra_args: {_first_error(exc)}") from None
    result = with_feature_flags(result, version)
    report = ExtraArgsReport(modelled=modelled, neutral=neutral, not_modelled=unmodelled)
    return result, report


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg', exc)}"
    return str(exc)


def feature_groups(profile: Profile, version: str) -> list[list[str]]:
    """The first-class feature sections as `vllm serve` flags of `version`, one group per section."""
    v = profile.vllm
    groups: list[list[str]] = []
    if v.speculative is not None:
        s = v.speculative
        config: dict[str, Any] = {"method": s.method, "num_speculative_tokens": s.num_speculative_tokens}
        if s.model:
            config["model"] = s.model
        if s.draft_tensor_parallel_size is not None:
            config["draft_tensor_parallel_size"] = s.draft_tensor_parallel_size
        groups.append(["--speculative-config", json.dumps(config, sort_keys=True, separators=(",", ":"))])
    if v.lora is not None:
        lo = v.lora
        group = ["--enable-lora", "--max-loras", str(lo.max_loras), "--max-lora-rank", str(lo.max_lora_rank)]
        if lo.max_cpu_loras is not None:
            group += ["--max-cpu-loras", str(lo.max_cpu_loras)]
        if lo.lora_dtype != "auto":
            group += ["--lora-dtype", lo.lora_dtype]
        if lo.target_modules:
            group += ["--lora-target-modules", *lo.target_modules]
        groups.append(group)
    if v.limit_mm_per_prompt is not None:
        groups.append(
            [
                "--limit-mm-per-prompt",
                json.dumps(v.limit_mm_per_prompt, sort_keys=True, separators=(",", ":")),
            ]
        )
    if v.mm_processor_kwargs is not None:
        groups.append(
            [
                "--mm-processor-kwargs",
                json.dumps(v.mm_processor_kwargs, sort_keys=True, separators=(",", ":")),
            ]
        )
    # vllm.cudagraph_capture_sizes is not a feature flag: the capture-size pass decides the engine's
    # sizes (the user's, validated) and the artifacts emit them as a setting (facts/vllm_flags.py
    # SETTING_FLAGS); a copy in extra_args would collide with it.
    if v.kv_transfer is not None or v.kv_offload is not None:
        # --kv-transfer-config / --kv-offloading-* (passes/kv_transfer.py)
        from .kv_transfer import flag_groups

        groups.extend(flag_groups(profile, version))
    return groups


def feature_args(profile: Profile, version: str) -> list[str]:
    """The first-class feature sections as `vllm serve` flags of `version` (checked like every flag)."""
    return [w for g in feature_groups(profile, version) for w in g]


def without_feature_flags(profile: Profile, version: str) -> Profile:
    """The profile as a user would write it: the feature sections as fields, not also as flags."""
    args = list(profile.vllm.extra_args)
    for group in feature_groups(profile, version):
        for i in range(len(args) - len(group), -1, -1):
            if args[i : i + len(group)] == group:
                del args[i : i + len(group)]
                break
    if args == list(profile.vllm.extra_args):
        return profile  # untouched: unset fields stay unset in the dump
    return profile.model_copy(update={"vllm": profile.vllm.model_copy(update={"extra_args": args})})


def with_feature_flags(profile: Profile, version: str, *, only: tuple[str, ...] | None = None) -> Profile:
    """The profile with its feature sections appended to extra_args as flags (all, or `only` those)."""
    if only is not None:
        keep = {k: getattr(profile.vllm, k) if k in only else None for k in ("speculative", "lora")}
        probe = profile.model_copy(
            update={
                "vllm": profile.vllm.model_copy(
                    update={
                        **keep,
                        "limit_mm_per_prompt": None,
                        "mm_processor_kwargs": None,
                        "kv_transfer": None,
                        "kv_offload": None,
                    }
                )
            }
        )
        extra = feature_args(probe, version)
    else:
        extra = feature_args(profile, version)
    if not extra:
        return profile
    vllm = profile.vllm.model_copy(update={"extra_args": [*profile.vllm.extra_args, *extra]})
    return profile.model_copy(update={"vllm": vllm})


def with_unmodelled(resolved: Resolved, verdict: Verdict) -> Verdict:
    """The verdict with a `not-modelled` warning per unmodelled flag; failing with policy.fail_on_unmodelled."""
    items = resolved.extra_args.not_modelled
    if not items:
        return verdict
    update: dict[str, Any] = {"warnings": [*verdict.warnings, *(i.message() for i in items)]}
    if resolved.profile.policy.fail_on_unmodelled:
        flags = ", ".join(i.flag for i in items)
        update["fails_policy"] = True
        update["reasons"] = [
            *verdict.reasons,
            f"policy.fail_on_unmodelled: vllm.extra_args holds flags the planner does not model ({flags}); "
            "model them as profile fields, remove them, or set fail_on_unmodelled: false to accept the estimate",
        ]
    return verdict.model_copy(update=update)


def annotate_decisions(resolved: Resolved, decisions: dict[str, Decision]) -> dict[str, Decision]:
    """Settings read from extra_args say so (`by: user`, reason: the flag)."""
    out = dict(decisions)
    for flag, field in resolved.extra_args.modelled.items():
        name = field.rsplit(".", 1)[-1]
        if name in out and out[name].by == "user":
            out[name] = out[name].model_copy(update={"reason": f"from vllm.extra_args {flag}"})
    return out
