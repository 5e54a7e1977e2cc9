"""A checkpoint's quantization, read the way vLLM reads it (config/model.py `_verify_quantization`).

Sources, first found wins: `quantization_config` (or `compression_config`) in config.json, then a
separate file's dict (`quantize_config.json` GPTQ, `quant_config.json` AWQ, `hf_quant_config.json`
ModelOpt), passed in as `quant_config`.
"""

from __future__ import annotations

import re
from typing import Any

from vllm_compile.facts.model_facts import QuantizationFacts


def _ignored(q: dict[str, Any]) -> list[str]:
    """Modules left unquantized; per-layer names collapse to one `layers.*` pattern each."""
    out: set[str] = set()
    for key in ("modules_to_not_convert", "ignored_layers", "ignore", "exclude_modules"):
        val = q.get(key)
        if isinstance(val, list):
            out.update(re.sub(r"\.(layers|h|blocks)\.\d+\.", r".\1.*.", str(v)) for v in val)
    return sorted(out)


def _compressed_tensors(q: dict[str, Any]) -> QuantizationFacts:
    """compressed-tensors (llm-compressor): the first config group's weight scheme."""
    groups = q.get("config_groups") or {}
    weights: dict[str, Any] = {}
    for grp in groups.values() if isinstance(groups, dict) else []:
        if isinstance(grp, dict) and isinstance(grp.get("weights"), dict):
            weights = grp["weights"]
            break
    if not weights and isinstance(q.get("weights"), dict):
        weights = q["weights"]
    bits = int(weights.get("num_bits", 8))
    wtype = str(weights.get("type", "int"))
    strategy = weights.get("strategy")
    group = weights.get("group_size")
    block = weights.get("block_structure")
    fmt = str(q.get("format", ""))
    if strategy is None:
        # llm-compressor presets: W4A16 = int4 group 128, W8A8/FP8 = per channel.
        strategy = "group" if bits == 4 and wtype == "int" else "channel"
        group = group or (128 if strategy == "group" else None)
    if "nvfp4" in fmt or (bits == 4 and wtype == "float"):
        strategy, group = "tensor_group", 16
    ignored = _ignored(q)
    return QuantizationFacts(
        method="compressed-tensors",
        bits=bits,
        group_size=int(group) if group else (-1 if strategy == "channel" else None),
        zero_point=not bool(weights.get("symmetric", True)),
        desc_act=weights.get("actorder") in ("group", "weight", True),
        weight_block_size=[int(x) for x in block] if isinstance(block, list) else None,
        strategy=f"{wtype}-{strategy}",
        # vLLM's CompressedTensorsConfig quantizes LinearBase/FusedMoE only: lm_head stays high precision.
        lm_head_quantized=False,
        ignored_modules=ignored,
        kv_cache_scheme="fp8" if q.get("kv_cache_scheme") else None,
    )


def _modelopt(q: dict[str, Any]) -> QuantizationFacts | None:
    inner = q.get("quantization") if isinstance(q.get("quantization"), dict) else q
    algo = str(inner.get("quant_algo") or "").upper()
    kv = inner.get("kv_cache_quant_algo")
    ignored = _ignored(inner)
    if algo in ("FP8", "FP8_PER_CHANNEL_PER_TOKEN", "FP8_BLOCK"):
        return QuantizationFacts(
            method="modelopt", bits=8, strategy="tensor" if algo == "FP8" else algo.lower(),
            ignored_modules=ignored, kv_cache_scheme="fp8" if kv else None,
        )  # fmt: skip
    if algo in ("NVFP4", "W4A16_NVFP4", "NVFP4_AWQ"):
        group = int(inner.get("group_size") or 16)
        return QuantizationFacts(
            method="modelopt_fp4", bits=4, group_size=group, strategy="tensor_group",
            ignored_modules=ignored, kv_cache_scheme="fp8" if kv else None,
        )  # fmt: skip
    return None


def quantization_from_config(
    config: dict[str, Any], text_cfg: dict[str, Any], quant_config: dict[str, Any] | None
) -> QuantizationFacts | None:
    """QuantizationFacts of a checkpoint, or None for an unquantized one."""
    q = (
        config.get("quantization_config")
        or config.get("compression_config")
        or text_cfg.get("quantization_config")
    )
    if not isinstance(q, dict):
        q = quant_config if isinstance(quant_config, dict) else None
    if not q:
        return None
    if "producer" in q or isinstance(q.get("quantization"), dict):
        return _modelopt(q)
    method = str(q.get("quant_method") or "").lower()
    if not method:
        # AutoAWQ quant_config.json / AutoGPTQ quantize_config.json carry no quant_method.
        if "w_bit" in q or "q_group_size" in q:
            method = "awq"
        elif "bits" in q and ("desc_act" in q or "sym" in q):
            method = "gptq"
    ignored = _ignored(q)
    if method in ("awq", "awq_marlin"):
        return QuantizationFacts(
            method="awq",
            bits=int(q.get("bits", q.get("w_bit", 4))),
            group_size=int(q.get("group_size", q.get("q_group_size", 128))),
            zero_point=bool(q.get("zero_point", True)),
            ignored_modules=ignored,
        )
    if method in ("gptq", "gptq_marlin"):
        return QuantizationFacts(
            method="gptq",
            bits=int(q.get("bits", 4)),
            group_size=int(q.get("group_size", 128)),
            zero_point=not bool(q.get("sym", True)),
            desc_act=bool(q.get("desc_act", False)),
            lm_head_quantized=bool(q.get("lm_head", False)),
            ignored_modules=ignored,
        )
    if method == "fp8":
        block = q.get("weight_block_size")
        return QuantizationFacts(
            method="fp8",
            bits=8,
            weight_block_size=[int(x) for x in block] if isinstance(block, list) else None,
            strategy="block" if block else "tensor",
            ignored_modules=ignored,
        )
    if method == "compressed-tensors":
        return _compressed_tensors(q)
    if method in ("modelopt", "modelopt_fp4"):
        return _modelopt(q)
    if method == "mxfp4":
        # gpt-oss: MXFP4 (e2m1 + one e8m0 scale per 32) on the MoE experts only.
        return QuantizationFacts(
            method="mxfp4", bits=4, group_size=32, experts_only=True, ignored_modules=ignored
        )
    if method == "bitsandbytes":
        bits = 4 if q.get("load_in_4bit") else 8
        return QuantizationFacts(method="bitsandbytes", bits=bits, group_size=64 if bits == 4 else None,
                                 ignored_modules=ignored)  # fmt: skip
    return QuantizationFacts(method=method or "unknown", bits=q.get("bits"), ignored_modules=ignored)
