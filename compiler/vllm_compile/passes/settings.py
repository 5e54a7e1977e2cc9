"""First planning pass: every engine setting gets a value and a decider.

A value the user set is final (`by: user`). Everything left out or `auto` takes what the targeted
vLLM release would do on this GPU (`by: vllm-default`) or what follows from the hardware
(`by: derived`); the recommend pass may then replace the non-user ones.
"""

from __future__ import annotations

from typing import Any

from ..facts.vllm_versions import batch_defaults, cudagraph_capture_sizes
from ..facts.weights import resolve_dtype
from ..plan import Decision, EngineConfig, Resolved


class SettingsError(ValueError):
    """An explicit setting vLLM would reject; `path` is the profile field to point at."""

    def __init__(self, path: tuple[str, ...], message: str):
        super().__init__(message)
        self.path = path


def _user(value: Any) -> bool:
    return value is not None and value != "auto"


def decide_engine(resolved: Resolved) -> tuple[EngineConfig, dict[str, Decision]]:
    profile, model, gpu, version = resolved.profile, resolved.model, resolved.gpu, resolved.vllm
    decisions: dict[str, Decision] = {}

    def pick(name: str, user_value: Any, default: Any, reason: str, by: str = "vllm-default") -> Any:
        if _user(user_value):
            decisions[name] = Decision(value=user_value, by="user", reason="set in the profile")
            return user_value
        decisions[name] = Decision(value=default, by=by, reason=reason)
        return default

    vllm_spec, par = profile.vllm, profile.parallelism
    v = version.version

    dtype_default = resolve_dtype(model, "auto", gpu.compute_capability)
    try:
        user_dtype = (
            resolve_dtype(model, profile.model.dtype, gpu.compute_capability)
            if _user(profile.model.dtype)
            else None
        )
    except ValueError as exc:  # e.g. bfloat16 on a T4: vLLM refuses it at start-up
        raise SettingsError(("model", "dtype"), str(exc)) from exc
    dtype = pick(
        "dtype",
        user_dtype,
        dtype_default,
        f"vLLM {v} `auto`: checkpoint dtype {model.dtype} on compute capability {gpu.compute_capability}",
    )
    checkpoint_quant = model.quantization.method if model.quantization else None
    quant_user = profile.model.quantization
    quantization = pick(
        "quantization",
        quant_user if quant_user not in ("auto", "none") else None,
        checkpoint_quant,
        "as the checkpoint is" + (f" ({checkpoint_quant})" if checkpoint_quant else " (unquantized)"),
    )
    kv_user = vllm_spec.kv_cache_dtype if vllm_spec.kv_cache_dtype != "auto" else profile.model.kv_cache_dtype
    kv_default = "fp8" if model.quantization and model.quantization.kv_cache_scheme else "auto"
    kv_cache_dtype = pick(
        "kv_cache_dtype",
        kv_user,
        kv_default,
        f"vLLM {v} `auto`: the model dtype or the checkpoint's KV scheme",
    )

    max_model_len = pick(
        "max_model_len",
        profile.model.max_model_len,
        model.max_model_len,
        "the model's maximum context as vLLM derives it",
    )

    gpus = profile.hardware.gpus
    per_node = profile.hardware.gpus_per_node or gpu.gpus_per_node
    if _user(par.pipeline_parallel_size) and not _user(par.tensor_parallel_size):
        default_tp = max(1, gpus // par.pipeline_parallel_size)
    else:
        default_tp = min(gpus, per_node)
    while default_tp > 1 and not model.supports_tensor_parallel(default_tp):
        default_tp -= 1  # the largest TP vLLM can shard this model's heads over
    if _user(par.tensor_parallel_size) and not model.supports_tensor_parallel(par.tensor_parallel_size):
        raise SettingsError(
            ("parallelism", "tensor_parallel_size"),
            f"vLLM cannot shard {model.id} over tensor_parallel_size={par.tensor_parallel_size}: "
            f"{model.num_attention_heads} attention heads and {model.num_key_value_heads} KV heads must divide "
            f"evenly (KV heads may also be replicated when TP is a multiple of them); valid sizes: "
            + ", ".join(str(t) for t in range(1, 65) if model.supports_tensor_parallel(t)),
        )
    tp = pick(
        "tensor_parallel_size",
        par.tensor_parallel_size,
        default_tp,
        f"{default_tp} GPU(s): tensor parallel within a node",
        "derived",
    )
    layers = model.num_hidden_layers
    if _user(par.pipeline_parallel_size) and par.pipeline_parallel_size > layers:
        raise SettingsError(
            ("parallelism", "pipeline_parallel_size"),
            f"pipeline_parallel_size {par.pipeline_parallel_size} is more stages than {model.id} has decoder "
            f"layers ({layers}); vLLM gives each stage at least one layer: use at most {layers}",
        )
    # A user-set data_parallel_size takes its share of the GPUs first (one engine per DP rank).
    dp_share = par.data_parallel_size if _user(par.data_parallel_size) else 1
    pp = pick(
        "pipeline_parallel_size",
        par.pipeline_parallel_size,
        min(max(1, gpus // (tp * dp_share)), layers),
        "the replica's remaining GPUs as pipeline stages (across nodes)",
        "derived",
    )
    dp = pick(
        "data_parallel_size",
        par.data_parallel_size,
        1,
        "one engine per replica; deploy.replicas scales out",
        "derived",
    )
    expert_parallel = pick("enable_expert_parallel", par.enable_expert_parallel, False, f"vLLM {v} default")

    # policy.max_gpu_memory_utilization bounds what is decided, vLLM's default included.
    cap = profile.policy.max_gpu_memory_utilization
    default_utilization = min(version.gpu_memory_utilization, cap)
    utilization = pick(
        "gpu_memory_utilization",
        vllm_spec.gpu_memory_utilization
        if _user(vllm_spec.gpu_memory_utilization)
        else profile.policy.gpu_memory_utilization,
        default_utilization,
        f"vLLM {v} default"
        if default_utilization == version.gpu_memory_utilization
        else f"policy.max_gpu_memory_utilization {cap:g} (vLLM {v}'s default {version.gpu_memory_utilization:g} is above it)",
    )

    chunked = pick(
        "enable_chunked_prefill",
        vllm_spec.enable_chunked_prefill,
        version.chunked_prefill_default,
        f"vLLM {v} default",
    )
    if version.chunked_prefill_forced and not chunked:
        # vLLM turns it back on at start-up: plan what runs (policy.judge warns about the profile).
        chunked = True
        decisions["enable_chunked_prefill"] = Decision(
            value=True,
            by="vllm-default",
            reason=f"vLLM {v} turns chunked prefill on at start-up for generative models whatever "
            "--enable-chunked-prefill says (engine/arg_utils.py: 'V1 always uses chunked prefills')",
        )
    batch = batch_defaults(version, gpu)
    seqs_default, tokens_default = batch.max_num_seqs, batch.max_num_batched_tokens
    # engine/arg_utils.py: without chunked prefill one step must hold a whole prompt; a step never
    # exceeds what max_num_seqs full-length requests could fill.
    if not chunked:
        tokens_default = max(tokens_default, max_model_len)
    max_num_seqs = pick(
        "max_num_seqs",
        vllm_spec.max_num_seqs,
        seqs_default,
        f"vLLM {v} `vllm serve` default for {gpu.memory_gib:.0f} GiB GPUs",
    )
    tokens_default = min(tokens_default, max_num_seqs * max_model_len)
    max_num_batched_tokens = pick(
        "max_num_batched_tokens",
        vllm_spec.max_num_batched_tokens,
        tokens_default,
        f"vLLM {v} `vllm serve` default for {gpu.memory_gib:.0f} GiB GPUs",
    )
    if decisions["max_num_seqs"].by != "user" and max_num_seqs > max_num_batched_tokens:
        max_num_seqs = max_num_batched_tokens
        decisions["max_num_seqs"] = Decision(
            value=max_num_seqs, by="vllm-default", reason="capped at max_num_batched_tokens"
        )

    block_size = pick(
        "block_size", vllm_spec.block_size, version.block_size, f"vLLM {v} attention backend default"
    )
    enforce_eager = pick("enforce_eager", vllm_spec.enforce_eager, False, f"vLLM {v} default: CUDA graphs on")
    prefix = pick(
        "enable_prefix_caching",
        vllm_spec.enable_prefix_caching,
        version.prefix_caching_default,
        f"vLLM {v} default",
    )
    max_capture = pick(
        "max_cudagraph_capture_size", vllm_spec.max_cudagraph_capture_size, None, f"vLLM {v} default"
    )

    wide = wide_ep_settings(resolved, tp, dp, expert_parallel, pick)
    # hardware.gpus as given is what one replica has: a layout wider than that cannot start.
    given_gpus = profile.hardware.gpus if "gpus" in profile.hardware.model_fields_set else None
    pcp = wide["prefill_context_parallel_size"]
    world = tp * pp * dp * pcp
    if given_gpus is not None and world > given_gpus:
        raise SettingsError(
            ("hardware", "gpus"),
            f"the parallel layout needs {world} GPUs (tensor {tp} x pipeline {pp} x data {dp}"
            + (f" x prefill context {pcp}" if pcp > 1 else "")
            + f") but hardware.gpus is {given_gpus}: vLLM would not find the devices; give hardware.gpus: "
            f"{world} or smaller parallel sizes",
        )
    max_num_seqs, max_num_batched_tokens = batched_dp_batch(
        resolved, wide, dp, max_num_seqs, max_num_batched_tokens, decisions
    )
    engine = EngineConfig(
        **wide,
        dtype=dtype,
        quantization=quantization,
        kv_cache_dtype=kv_cache_dtype,
        max_model_len=max_model_len,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        data_parallel_size=dp,
        enable_expert_parallel=expert_parallel,
        gpu_memory_utilization=utilization,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        block_size=block_size,
        enforce_eager=enforce_eager,
        enable_prefix_caching=prefix,
        enable_chunked_prefill=chunked,
        kv_cache_memory_bytes=vllm_spec.kv_cache_memory_bytes,
        num_gpu_blocks_override=vllm_spec.num_gpu_blocks_override,
        max_cudagraph_capture_size=max_capture,
        cpu_offload_gb=vllm_spec.cpu_offload_gb,
    )
    return with_capture_sizes(engine, resolved), decisions


# With a batched all-to-all (DeepEP low latency, NIXL EP) and DP > 1, vLLM caps the step at the tokens one
# dispatch can carry: max_num_batched_tokens defaults to 256 (engine/arg_utils.py get_batch_defaults, read in
# 0.33.0, reference/vllm_memory_model.md 3). Assumed from 0.20.0, the first release without
# VLLM_MOE_DP_CHUNK_SIZE (before it, the MoE layer chunks the step in VLLM_MOE_DP_CHUNK_SIZE pieces instead).
_BATCHED_DP_TOKENS = 256
_BATCHED_DP_BACKENDS = ("deepep_low_latency", "nixl_ep")


def batched_dp_batch(
    resolved: Resolved, wide: dict[str, Any], dp: int, seqs: int, tokens: int, decisions: dict[str, Decision]
) -> tuple[int, int]:
    from ..facts.wide_ep import facts as wide_ep_facts

    f = wide_ep_facts(resolved.vllm.version)
    if not (dp > 1 and wide["all2all_backend"] in _BATCHED_DP_BACKENDS and f.moe_dp_chunk is None):
        return seqs, tokens
    if f.backend_form != "flag":
        return seqs, tokens
    why = f"vLLM {resolved.vllm.version} default with {wide['all2all_backend']} and DP > 1: one dispatch's tokens"
    if decisions["max_num_batched_tokens"].by != "user":
        tokens = _BATCHED_DP_TOKENS
        decisions["max_num_batched_tokens"] = Decision(value=tokens, by="vllm-default", reason=why)
    if decisions["max_num_seqs"].by != "user" and seqs > tokens:
        seqs = tokens
        decisions["max_num_seqs"] = Decision(
            value=seqs, by="vllm-default", reason="capped at max_num_batched_tokens"
        )
    return seqs, tokens


def wide_ep_settings(
    resolved: Resolved, tp: int, dp: int, expert_parallel: bool, pick: Any
) -> dict[str, Any]:
    """The wide-EP / context-parallel settings, checked against the release (facts/wide_ep.py)."""
    from ..facts.wide_ep import facts as wide_ep_facts

    par, model, v = resolved.profile.parallelism, resolved.model, resolved.vllm.version
    f = wide_ep_facts(v)
    where = ("parallelism",)
    if par.all2all_backend != "auto":
        if par.all2all_backend not in f.backends:
            raise SettingsError(
                (*where, "all2all_backend"),
                f"vLLM {v} has no all-to-all backend {par.all2all_backend!r}; it accepts "
                + ", ".join(f.backends)
                + " (choose one of them, or a release that has it)",
            )
        if not expert_parallel:
            raise SettingsError(
                (*where, "all2all_backend"),
                "all2all_backend is used only with expert parallelism: set parallelism.enable_expert_parallel: true",
            )
    backend = None
    if expert_parallel and model.is_moe:
        backend = pick(
            "all2all_backend",
            par.all2all_backend,
            f.default_backend,
            f"vLLM {v} default ({'--all2all-backend' if f.backend_form == 'flag' else 'VLLM_ALL2ALL_BACKEND'})",
        )
    if par.enable_eplb and not f.has_eplb:
        raise SettingsError(
            (*where, "enable_eplb"),
            f"vLLM {v} has no --enable-eplb (EPLB arrived in 0.9.2): use a newer release",
        )
    if par.enable_eplb and not expert_parallel:
        raise SettingsError(
            (*where, "enable_eplb"), "EPLB balances experts over EP ranks: set enable_expert_parallel: true"
        )
    if par.num_redundant_experts and not par.enable_eplb:
        raise SettingsError(
            (*where, "num_redundant_experts"), "redundant experts are placed by EPLB: set enable_eplb: true"
        )
    dcp, pcp = par.decode_context_parallel_size, par.prefill_context_parallel_size
    if dcp > 1 and not f.has_dcp:
        raise SettingsError(
            (*where, "decode_context_parallel_size"),
            f"vLLM {v} has no --decode-context-parallel-size (from 0.10.2): use a newer release or leave it at 1",
        )
    if dcp > 1 and tp % dcp:
        raise SettingsError(
            (*where, "decode_context_parallel_size"),
            f"decode_context_parallel_size {dcp} must divide tensor_parallel_size {tp} (vLLM shards the KV "
            f"tokens over the TP ranks): use one of "
            + ", ".join(str(d) for d in range(1, tp + 1) if tp % d == 0),
        )
    if pcp > 1 and not f.has_pcp:
        raise SettingsError(
            (*where, "prefill_context_parallel_size"),
            f"vLLM {v} has no --prefill-context-parallel-size (from 0.12.0): use a newer release or leave it at 1",
        )
    local = par.data_parallel_size_local
    if local is not None and (dp % local or local > dp):
        raise SettingsError(
            (*where, "data_parallel_size_local"),
            f"data_parallel_size_local {local} must divide data_parallel_size {dp}",
        )
    # Recorded as the user's decisions only where the profile moves them off vLLM's defaults.
    for name, value, default in (
        ("enable_eplb", par.enable_eplb, False),
        ("num_redundant_experts", par.num_redundant_experts, 0),
        ("decode_context_parallel_size", dcp, 1),
        ("prefill_context_parallel_size", pcp, 1),
        ("data_parallel_size_local", local, None),
    ):
        if value != default:
            pick(name, value, default, "")
    return {
        "all2all_backend": backend,
        "data_parallel_size_local": local,
        "enable_eplb": par.enable_eplb,
        "num_redundant_experts": par.num_redundant_experts,
        "decode_context_parallel_size": dcp,
        "prefill_context_parallel_size": pcp,
    }


def with_capture_sizes(engine: EngineConfig, resolved: Resolved) -> EngineConfig:
    """CUDA graph capture sizes follow from the batch settings; recompute whenever those change."""
    if engine.enforce_eager:
        return engine.model_copy(update={"cudagraph_capture_sizes": []})
    spec = resolved.profile.vllm.speculative
    k = spec.num_speculative_tokens if spec is not None else 0
    given = resolved.profile.vllm.cudagraph_capture_sizes
    if given:
        # Explicit sizes: vLLM drops those above the token budget (config/vllm.py _set_cudagraph_sizes).
        sizes = sorted({s for s in given if s <= engine.max_num_batched_tokens})
    else:
        sizes = cudagraph_capture_sizes(
            resolved.vllm,
            engine.max_num_seqs,
            engine.max_num_batched_tokens,
            resolved.gpu,
            num_speculative_tokens=k,
        )
    if engine.max_cudagraph_capture_size:
        sizes = [s for s in sizes if s <= engine.max_cudagraph_capture_size]
    if k and not given:
        from .speculative import round_capture_sizes

        sizes = round_capture_sizes(sizes, k, resolved.vllm.version)
    return engine.model_copy(update={"cudagraph_capture_sizes": sizes})
