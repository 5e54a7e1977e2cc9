"""Multimodal models: the vision encoder's share of the profile run, and text-only serving.

vLLM (`v1/worker/gpu_model_runner.py: profile_run`, `multimodal/encoder_budget.py: MultiModalBudget`):
when the model takes multimodal inputs, the profile run first encodes dummy items of the largest size
and keeps their outputs in the encoder cache (budget = max(max_num_batched_tokens, tokens of one
item)), then runs the decoder on merged input embeddings. A model serves text only (no encoder
profiling) when every modality's `limit_mm_per_prompt` is 0 (`MultiModalRegistry
.supports_multimodal_inputs`: "All limits of multimodal modalities supported by the model are set
to 0, running in text-only mode") or with `--language-model-only`, which also skips loading the
vision tower's weights.
"""

from __future__ import annotations

from ..facts.model_facts import ModelFacts
from ..facts.weights import dtype_bytes
from ..plan import EngineConfig, MemoryFeature, Resolved

LANGUAGE_MODEL_ONLY = "--language-model-only"
# `--skip-mm-profiling` (0.10.2+, MultiModalConfig.skip_mm_profiling): the profile run skips the encoder,
# so its memory is not reserved (vLLM warns that it may then run out of memory at the first images).
SKIP_MM_PROFILING = "--skip-mm-profiling"


def language_model_only(resolved: Resolved) -> bool:
    return LANGUAGE_MODEL_ONLY in resolved.profile.vllm.extra_args


def text_only(resolved: Resolved) -> bool:
    """No encoder profiling: not multimodal, every limit 0, --language-model-only or --skip-mm-profiling."""
    if not resolved.model.multimodal or language_model_only(resolved):
        return True
    if SKIP_MM_PROFILING in resolved.profile.vllm.extra_args:
        return True
    limits = resolved.profile.vllm.limit_mm_per_prompt
    return limits is not None and len(limits) > 0 and all(v == 0 for v in limits.values())


def encoder_activation(model: ModelFacts, engine: EngineConfig) -> int:
    """Encoder outputs kept for the dummy run plus the merged input embeddings (first PP stage)."""
    t = engine.max_num_batched_tokens
    dt = dtype_bytes(engine.dtype)
    budget = max(t, model.mm_tokens_per_item or 0)
    return budget * model.hidden_size * dt + t * model.hidden_size * dt


def skipped_vision_bytes(resolved: Resolved, engine: EngineConfig) -> int:
    """Vision-tower weights vLLM does not load with --language-model-only (first PP stage, replicated)."""
    if not (resolved.model.multimodal and language_model_only(resolved)):
        return 0
    return resolved.model.params_vision * dtype_bytes(engine.dtype)


def notes(resolved: Resolved) -> list[str]:
    out = []
    if resolved.model.multimodal and SKIP_MM_PROFILING in resolved.profile.vllm.extra_args:
        out.append(
            "--skip-mm-profiling: vLLM reserves no memory for the vision encoder; the first large images "
            "may run out of memory"
        )
    if resolved.model.multimodal and resolved.profile.vllm.mm_processor_kwargs:
        out.append(
            "mm_processor_kwargs may change the tokens of one image; the encoder budget uses the config's "
            f"largest item ({resolved.model.mm_tokens_per_item or 'unknown'} tokens)"
        )
    if not resolved.model.multimodal and resolved.profile.vllm.limit_mm_per_prompt:
        out.append(f"limit_mm_per_prompt has no effect: {resolved.model.id} takes text only")
    return out


def memory_features(resolved: Resolved, engine: EngineConfig) -> list[MemoryFeature]:
    if not resolved.model.multimodal:
        return []
    if text_only(resolved):
        skipped = skipped_vision_bytes(resolved, engine)
        skip = SKIP_MM_PROFILING in resolved.profile.vllm.extra_args
        detail = (
            "--skip-mm-profiling: the encoder's memory is not reserved by the profile run (images may OOM)"
            if skip and not language_model_only(resolved)
            else "text-only serving: no encoder profiling run"
            + (", vision tower not loaded" if skipped else "")
        )
        return [MemoryFeature(name="multimodal encoder", bytes_per_gpu=-skipped, detail=detail)]
    limits = resolved.profile.vllm.limit_mm_per_prompt
    return [
        MemoryFeature(
            name="multimodal encoder",
            bytes_per_gpu=encoder_activation(resolved.model, engine),
            detail=f"encoder cache budget max(max_num_batched_tokens, {resolved.model.mm_tokens_per_item or 0} "
            "tokens per item) x hidden, and the merged embeddings, in the profile run"
            + (f"; limits {limits}" if limits else ""),
        )
    ]
