"""ModelFacts from a Hugging Face `config.json` (plus the quantization files beside it).

One code path for every source: the catalog, a local directory and the Hub all hand their
config dict here. Parameter counts are exact for the families below (they match the
safetensors counts); an unknown architecture gets a generic decoder estimate and a warning that
names every guessed field.

Layer shapes follow vLLM's model files (vllm/model_executor/models/<family>.py); defaults for
absent keys follow each family's transformers `PretrainedConfig` subclass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vllm_compile.facts.model_facts import LayerGroup, LayerKind, ModelFacts
from vllm_compile.facts.quant_config import quantization_from_config


class ModelConfigError(ValueError):
    """config.json lacks what the planner needs, or contradicts itself."""


# transformers defaults for keys a config.json may omit (configuration_<family>.py).
# tie_word_embeddings: PretrainedConfig defaults to True; most decoder families override to False.
_FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"tie_word_embeddings": False, "max_position_embeddings": 2048, "vocab_size": 32000},
    "mistral": {"tie_word_embeddings": False, "max_position_embeddings": 131072, "sliding_window": 4096},
    "mixtral": {"tie_word_embeddings": False, "max_position_embeddings": 131072, "sliding_window": None},
    "qwen2": {"tie_word_embeddings": False, "max_position_embeddings": 32768},
    "qwen2_moe": {"tie_word_embeddings": False, "max_position_embeddings": 32768},
    "qwen2_5_vl": {"tie_word_embeddings": False, "max_position_embeddings": 128000},
    "qwen2_5_vl_text": {"tie_word_embeddings": False, "max_position_embeddings": 128000},
    "qwen3": {"tie_word_embeddings": False, "max_position_embeddings": 32768},
    "qwen3_moe": {"tie_word_embeddings": False, "max_position_embeddings": 32768},
    "gemma": {"tie_word_embeddings": True, "max_position_embeddings": 8192, "head_dim": 256},
    "gemma2": {"tie_word_embeddings": True, "max_position_embeddings": 8192, "sliding_window": 4096},
    # configuration_gemma3.py: Gemma3TextConfig defaults (the 27B config.json omits them).
    "gemma3_text": {
        "tie_word_embeddings": True,
        "vocab_size": 262208,
        "max_position_embeddings": 131072,
        "head_dim": 256,
        "sliding_window": 4096,
        "sliding_window_pattern": 6,
        "rope_theta": 1_000_000.0,
        "rope_local_base_freq": 10_000.0,
    },
    "gemma4_text": {"tie_word_embeddings": True},
    "phi": {"tie_word_embeddings": False, "max_position_embeddings": 2048, "partial_rotary_factor": 0.5},
    "phi3": {"tie_word_embeddings": False, "max_position_embeddings": 4096},
    "granite": {"tie_word_embeddings": False, "max_position_embeddings": 2048},
    "deepseek_v2": {"tie_word_embeddings": False},
    "deepseek_v3": {"tie_word_embeddings": False},
    "kimi_vl": {"tie_word_embeddings": False},
    "gpt_oss": {"tie_word_embeddings": False},
    "llama4_text": {"tie_word_embeddings": False},
    "mllama_text_model": {"tie_word_embeddings": False},
}

_TEXT_MODEL_TYPE = {  # wrapper model_type -> text model_type when text_config omits it
    "gemma3": "gemma3_text",
    "gemma4": "gemma4_text",
    "llama4": "llama4_text",
    "mllama": "mllama_text_model",
    "mistral3": "mistral",
    "kimi_vl": "deepseek_v3",
    "llava_next": "llama",
    "llava": "llama",
}

# vLLM ModelConfig._get_and_verify_max_len (vllm/config/model.py): the keys that bound the context.
_MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)

_KNOWN_TYPES = {
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen2_5_vl", "qwen2_5_vl_text", "qwen3",
    "qwen3_moe", "gemma", "gemma2", "gemma3_text", "phi", "phi3", "granite", "deepseek_v2",
    "deepseek_v3", "gpt_oss", "llama4_text", "mllama_text_model",
}  # fmt: skip


@dataclass
class _Text:
    """The text model's config with family defaults applied."""

    cfg: dict[str, Any]
    model_type: str
    warnings: list[str] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.cfg:  # an explicit null (sliding_window: null) overrides the family default
            return self.cfg[key] if self.cfg[key] is not None else default
        fam = _FAMILY_DEFAULTS.get(self.model_type, {})
        return fam.get(key, default)

    def has(self, key: str) -> bool:
        return self.cfg.get(key) is not None

    def need(self, key: str, *aliases: str) -> int:
        for k in (key, *aliases):
            v = self.get(k)
            if v is not None:
                return int(v)
        raise ModelConfigError(f"config.json has no `{key}`: cannot size the model")


def _text_config(config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The language model's config: `text_config` for multimodal wrappers, else the top level."""
    top_type = str(config.get("model_type", ""))
    sub = config.get("text_config") or config.get("llm_config") or config.get("language_config")
    if isinstance(sub, dict) and sub:
        merged = dict(sub)
        for key in ("torch_dtype", "dtype", "tie_word_embeddings", "quantization_config"):
            if key not in merged and key in config:
                merged[key] = config[key]
        return merged, str(sub.get("model_type") or _TEXT_MODEL_TYPE.get(top_type, top_type))
    return config, top_type


def _dtype(config: dict[str, Any], text: dict[str, Any]) -> tuple[str, bool]:
    """Checkpoint dtype (vLLM `_find_dtype`: top level, then text config); float32 when absent."""
    for src in (config, text, config.get("vision_config") or {}):
        for key in ("torch_dtype", "dtype"):
            val = src.get(key)
            if isinstance(val, str):
                name = val.replace("torch.", "")
                return {"half": "float16", "float": "float32", "bf16": "bfloat16"}.get(name, name), False
    return "float32", True


def _rope_scaling(t: _Text) -> dict[str, Any] | None:
    rs = t.cfg.get("rope_scaling")
    if rs is None:
        rp = t.cfg.get("rope_parameters")
        # transformers v5 keeps rope settings in rope_parameters (per layer type for hybrids).
        if isinstance(rp, dict) and "rope_type" in rp:
            rs = rp
        elif isinstance(rp, dict) and isinstance(rp.get("full_attention"), dict):
            rs = rp["full_attention"]
    if not isinstance(rs, dict):
        return None
    rs = dict(rs)
    # vLLM patch_rope_parameters: legacy `type` -> `rope_type`, su -> longrope, mrope -> default.
    rtype = rs.get("rope_type", rs.get("type", "default"))
    rtype = {"su": "longrope", "mrope": "default"}.get(rtype, rtype)
    rs["rope_type"] = rtype
    return rs


def derive_max_model_len(t: _Text, model_type_top: str) -> int:
    """vLLM `_get_and_verify_max_len` (vllm/config/model.py) for `max_model_len: auto`."""
    derived = math.inf
    for key in _MAX_LEN_KEYS:
        val = t.get(key)
        if isinstance(val, (int, float)) and val > 0:
            derived = min(derived, val)
    if derived == math.inf:
        t.warnings.append("max_position_embeddings absent: context assumed 2048 (vLLM's fallback)")
        derived = 2048
    rs = _rope_scaling(t)
    # Gemma3's max_position_embeddings is already the scaled length: vLLM skips the factor for it.
    if rs is not None and "gemma3" not in model_type_top and "gemma3" not in t.model_type:
        rtype = rs["rope_type"]
        if rtype not in ("su", "longrope", "llama3"):
            factor = float(rs.get("factor", 1.0))
            if rtype == "yarn" and "original_max_position_embeddings" in rs:
                derived = rs["original_max_position_embeddings"]
            derived = derived * factor
    return int(derived)


def _layer_kinds(t: _Text, n_layers: int, mla: bool) -> tuple[list[LayerKind], int | None, int | None]:
    """Attention kind of each decoder layer as vLLM builds its KV specs."""
    mt = t.model_type
    sw = t.get("sliding_window")
    chunk = t.get("attention_chunk_size")
    if mla:
        return ["mla"] * n_layers, None, None
    types = t.cfg.get("layer_types")
    if isinstance(types, list) and len(types) == n_layers:
        kinds: list[LayerKind] = []
        for lt in types:
            if lt in ("sliding_attention", "local_attention", "sliding"):
                kinds.append("sliding")
            elif lt in ("chunked_attention",):
                kinds.append("chunked")
            elif lt in ("linear_attention", "mamba", "mamba2", "gated_delta_net"):
                kinds.append("mamba")
            else:
                kinds.append("full")
        return kinds, (int(sw) if sw and "sliding" in kinds else None), None
    if mt == "gemma2" and sw:
        # models/gemma2.py: even layers are local (sliding), odd ones global.
        return ["sliding" if i % 2 == 0 else "full" for i in range(n_layers)], int(sw), None
    if mt == "gemma3_text" and sw:
        pattern = int(t.get("sliding_window_pattern", 6))
        # models/gemma3.py: is_sliding = (layer_idx + 1) % sliding_window_pattern != 0
        return ["sliding" if (i + 1) % pattern else "full" for i in range(n_layers)], int(sw), None
    if mt == "llama4_text" and chunk:
        # Llama4TextConfig.no_rope_layers: every 4th layer is NoPE global attention; the rest
        # use chunked local attention (models/llama4.py use_chunked_local_attn).
        interval = int(t.get("no_rope_layer_interval", 4))
        nope = t.cfg.get("no_rope_layers")
        if isinstance(nope, list) and len(nope) == n_layers:
            kinds = ["chunked" if nope[i] else "full" for i in range(n_layers)]
        else:
            kinds = ["chunked" if (i + 1) % interval else "full" for i in range(n_layers)]
        return kinds, None, int(chunk)  # type: ignore[return-value]
    if mt == "mllama_text_model":
        cross = set(t.get("cross_attention_layers", []))
        # Cross-attention layers keep encoder K/V, not a per-token decoder cache.
        return ["none" if i in cross else "full" for i in range(n_layers)], None, None
    if mt in ("qwen2", "qwen2_moe", "qwen2_5_vl", "qwen2_5_vl_text", "qwen3", "qwen3_moe"):
        if t.get("use_sliding_window") and sw:
            mwl = int(t.get("max_window_layers", n_layers))
            return ["sliding" if i >= mwl else "full" for i in range(n_layers)], int(sw), None
        return ["full"] * n_layers, None, None
    if sw and mt in ("mistral", "mixtral", "phi3", "llama"):
        return ["sliding"] * n_layers, int(sw), None
    return ["full"] * n_layers, None, None


# ---------------------------------------------------------------------------------------------
# Parameter layout of one decoder layer
# ---------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    tp_linear: int = 0
    tp_other: int = 0
    kv_linear: int = 0
    kv_other: int = 0
    rep_linear: int = 0
    rep_other: int = 0
    expert_linear: int = 0
    expert_other: int = 0
    linear_in_rows: int = 0
    expert_in_rows: int = 0
    linear_out_rows: int = 0
    expert_out_rows: int = 0

    def total(self) -> int:
        return (
            self.tp_linear + self.tp_other + self.kv_linear + self.kv_other + self.rep_linear
            + self.rep_other + self.expert_linear + self.expert_other
        )  # fmt: skip

    def key(self) -> tuple[int, ...]:
        return tuple(vars(self).values())


@dataclass
class _Arch:
    H: int
    nh: int
    nkv: int
    hd: int
    vocab: int
    n_layers: int
    intermediate: int
    qkv_bias: bool = False
    o_bias: bool = False
    norms_per_layer: int = 2  # H-sized norm weights per layer
    norm_bias: bool = False  # LayerNorm with bias (phi)
    qk_norm: bool = False
    gated_mlp: bool = True
    mlp_bias: bool = False


def _attention(a: _Arch, lay: _Layer) -> None:
    q, kv = a.nh * a.hd, a.nkv * a.hd
    lay.tp_linear += a.H * q + q * a.H
    lay.kv_linear += 2 * a.H * kv
    lay.linear_in_rows += a.H + q  # fused qkv_proj reads H; o_proj reads nh*hd
    lay.linear_out_rows += q + 2 * kv + a.H
    if a.qkv_bias:
        lay.tp_other += q
        lay.kv_other += 2 * kv
    if a.o_bias:
        lay.rep_other += a.H
    if a.qk_norm:
        lay.rep_other += 2 * a.hd


def _dense_mlp(a: _Arch, lay: _Layer, inter: int) -> None:
    if a.gated_mlp:
        lay.tp_linear += 3 * a.H * inter
        lay.linear_in_rows += a.H + inter
        lay.linear_out_rows += 2 * inter + a.H
    else:
        lay.tp_linear += 2 * a.H * inter
        lay.linear_in_rows += a.H + inter
        lay.linear_out_rows += inter + a.H
    if a.mlp_bias:
        lay.tp_other += inter * (2 if a.gated_mlp else 1)
        lay.rep_other += a.H


def _norms(a: _Arch, lay: _Layer) -> None:
    lay.rep_other += a.norms_per_layer * a.H * (2 if a.norm_bias else 1)


def _routed_experts(a: _Arch, lay: _Layer, n_exp: int, inter: int, *, router_bias: bool = False) -> None:
    lay.expert_linear += n_exp * 3 * a.H * inter
    lay.expert_in_rows += a.H + inter
    lay.expert_out_rows += 2 * inter + a.H
    lay.rep_other += n_exp * a.H + (n_exp if router_bias else 0)  # router: ReplicatedLinear


def _mla_attention(t: _Text, a: _Arch, lay: _Layer) -> None:
    """DeepSeek-V2/V3 multi-head latent attention (models/deepseek_v2.py DeepseekV2MLAAttention)."""
    qlr = t.get("q_lora_rank")
    kvlr = int(t.get("kv_lora_rank"))
    rope = int(t.get("qk_rope_head_dim", 64))
    nope = int(t.get("qk_nope_head_dim", 128))
    vhd = int(t.get("v_head_dim", 128))
    qk = nope + rope
    if qlr:
        lay.rep_linear += a.H * int(qlr)  # q_a_proj (replicated)
        lay.rep_other += int(qlr)  # q_a_layernorm
        lay.tp_linear += int(qlr) * a.nh * qk  # q_b_proj
        lay.linear_in_rows += a.H + int(qlr)
        lay.linear_out_rows += int(qlr) + a.nh * qk
    else:
        lay.tp_linear += a.H * a.nh * qk
        lay.linear_in_rows += a.H
        lay.linear_out_rows += a.nh * qk
    lay.rep_linear += a.H * (kvlr + rope)  # kv_a_proj_with_mqa (replicated)
    lay.rep_other += kvlr  # kv_a_layernorm
    lay.tp_linear += kvlr * a.nh * (nope + vhd) + a.nh * vhd * a.H  # kv_b_proj, o_proj
    lay.linear_in_rows += a.H + kvlr + a.nh * vhd
    lay.linear_out_rows += kvlr + rope + a.nh * (nope + vhd) + a.H


# ---------------------------------------------------------------------------------------------
# Vision towers (counted, loaded on the first PP rank)
# ---------------------------------------------------------------------------------------------


def _vit_layers(
    hv: int, iv: int, n: int, *, bias: bool = True, gated: bool = False, ln_bias: bool = True
) -> int:
    attn = 4 * hv * hv + (4 * hv if bias else 0)
    mlp = (3 if gated else 2) * hv * iv + (((2 if gated else 1) * iv + hv) if bias else 0)
    norms = 2 * hv * (2 if ln_bias else 1)
    return n * (attn + mlp + norms)


def _siglip(vc: dict[str, Any]) -> int:
    """SigLIP vision model (transformers modeling_siglip.py), without the pooling head."""
    hv, iv = int(vc.get("hidden_size", 1152)), int(vc.get("intermediate_size", 4304))
    n, p = int(vc.get("num_hidden_layers", 27)), int(vc.get("patch_size", 14))
    img, ch = int(vc.get("image_size", 384)), int(vc.get("num_channels", 3))
    embed = ch * p * p * hv + hv + (img // p) ** 2 * hv
    return embed + _vit_layers(hv, iv, n) + 2 * hv


def _vision_params(config: dict[str, Any], text_hidden: int, warnings: list[str]) -> int:
    vc = config.get("vision_config")
    arch = (config.get("architectures") or [""])[0]
    mt = str(config.get("model_type", ""))
    if not isinstance(vc, dict):
        if mt in ("llama4",) or "Vision" in arch or "ConditionalGeneration" in arch:
            warnings.append("vision_config absent: vision tower not counted")
        return 0
    vt = str(vc.get("model_type", ""))
    if mt == "gemma3":
        hv = int(vc.get("hidden_size", 1152))
        # Gemma3MultiModalProjector: mm_input_projection_weight [hv, H] + RMSNorm(hv).
        return _siglip(vc) + hv * text_hidden + hv
    if mt == "qwen2_5_vl":
        hv = int(vc.get("hidden_size", 1280))
        iv = int(vc.get("intermediate_size", 3420))
        depth = int(vc.get("depth", 32))
        p, tp_ = (
            int(vc.get("patch_size", vc.get("spatial_patch_size", 14))),
            int(vc.get("temporal_patch_size", 2)),
        )
        ch = int(vc.get("in_channels", vc.get("in_chans", 3)))
        merge = int(vc.get("spatial_merge_size", 2)) ** 2
        out = int(vc.get("out_hidden_size", text_hidden))
        # Qwen2_5_VisionTransformer: conv3d patch embed, RMSNorm blocks with gated MLP (biases),
        # PatchMerger (RMSNorm + Linear(hv*4, hv*4) + Linear(hv*4, out)).
        blocks = depth * (2 * hv + 3 * hv * hv + 3 * hv + hv * hv + hv + 3 * hv * iv + 2 * iv + hv)
        merger = hv + (hv * merge) ** 2 + hv * merge + hv * merge * out + out
        return ch * tp_ * p * p * hv + blocks + merger
    if vt == "pixtral" or mt == "mistral3":
        hv, iv = int(vc.get("hidden_size", 1024)), int(vc.get("intermediate_size", 4096))
        n, p, ch = (
            int(vc.get("num_hidden_layers", 24)),
            int(vc.get("patch_size", 14)),
            int(vc.get("num_channels", 3)),
        )
        merge = int(config.get("spatial_merge_size", 2)) ** 2
        tower = ch * p * p * hv + hv + n * (2 * hv + 4 * hv * hv + 3 * hv * iv)
        # Mistral3MultiModalProjector: RMSNorm, patch merger Linear(hv*4, hv), linear_1, linear_2.
        bias = bool(config.get("multimodal_projector_bias", False))
        proj = hv + hv * merge * hv + hv * text_hidden + text_hidden * text_hidden
        proj += 2 * text_hidden if bias else 0
        return tower + proj
    if vt in ("siglip_vision_model", "siglip") or mt in ("llava_next", "llava"):
        hv = int(vc.get("hidden_size", 1152))
        layers = config.get("vision_feature_layer", -1)
        n_feat = len(layers) if isinstance(layers, list) else 1
        # LlavaMultiModalProjector: Linear(hv*n_feat, H) + Linear(H, H) with biases; image_newline.
        proj = hv * n_feat * text_hidden + text_hidden + text_hidden * text_hidden + text_hidden
        newline = text_hidden if mt == "llava_next" else 0
        return _siglip(vc) + proj + newline
    if vt == "moonvit" or mt == "kimi_vl":
        hv, iv = int(vc.get("hidden_size", 1152)), int(vc.get("intermediate_size", 4304))
        n, p = int(vc.get("num_hidden_layers", 27)), int(vc.get("patch_size", 14))
        ph, pw = int(vc.get("init_pos_emb_height", 64)), int(vc.get("init_pos_emb_width", 64))
        mk = vc.get("merge_kernel_size", [2, 2])
        merge = int(mk[0]) * int(mk[1])
        # MoonVisionPatchEmbed (conv + learnable 2D pos-emb) + ViT blocks + final LayerNorm;
        # KimiVLMultiModalProjector: LayerNorm(hv) + Linear(hv*4, hv*4) + Linear(hv*4, H).
        tower = 3 * p * p * hv + hv + ph * pw * hv + _vit_layers(hv, iv, n) + 2 * hv
        proj = 2 * hv + (hv * merge) ** 2 + hv * merge + hv * merge * text_hidden + text_hidden
        return tower + proj
    if vt == "llama4_vision_model" or mt == "llama4":
        hv, iv = int(vc.get("hidden_size", 1408)), int(vc.get("intermediate_size", 5632))
        n, p = int(vc.get("num_hidden_layers", 34)), int(vc.get("patch_size", 14))
        img = int(vc.get("image_size", 336))
        pin, pout = int(vc.get("projector_input_dim", 4096)), int(vc.get("projector_output_dim", 4096))
        vout = int(vc.get("vision_output_dim", 4096))
        ratio = float(vc.get("pixel_shuffle_ratio", 0.5))
        shuffled = int(hv / (ratio * ratio))
        # Llama4VisionModel: unfold patch embed, class emb, pos emb, pre/post LayerNorm, encoder,
        # pixel-shuffle MLP (no bias); Llama4MultiModalProjector Linear(vout, H) no bias.
        embed = 3 * p * p * hv + hv + ((img // p) ** 2 + 1) * hv + 4 * hv
        adapter = shuffled * pin + pin * pout
        return embed + _vit_layers(hv, iv, n) + adapter + vout * text_hidden
    if vt == "mllama_vision_model" or mt == "mllama":
        hv = int(vc.get("hidden_size", 1280))
        iv = int(vc.get("intermediate_size", 5120))
        n, ng = int(vc.get("num_hidden_layers", 32)), int(vc.get("num_global_layers", 8))
        p, img = int(vc.get("patch_size", 14)), int(vc.get("image_size", 560))
        tiles, ar = int(vc.get("max_num_tiles", 4)), int(vc.get("max_aspect_ratio_id", 8))
        out = int(vc.get("vision_output_dim", 7680))
        npatch = (img // p) ** 2 + 1
        # MllamaVisionModel: patch conv, class emb, gated positional + tile embeddings, pre/post
        # tile embeddings, local (no gate) and global (gated) encoders, LayerNorms; projector.
        embed = 3 * p * p * hv + hv + npatch * hv + (ar + 1) * tiles * npatch * hv + 1
        embed += 2 * ((ar + 1) * tiles * hv + 1)
        enc = (
            _vit_layers(hv, iv, n, bias=True) - n * 3 * hv + _vit_layers(hv, iv, ng, bias=True) - ng * 3 * hv
        )
        enc += 2 * ng  # global layers' attention/MLP gates
        warnings.append("Mllama vision tower counted from an estimate of its shapes")
        return embed + enc + 4 * hv + out * text_hidden + text_hidden
    hv = vc.get("hidden_size")
    n = vc.get("num_hidden_layers", vc.get("depth"))
    if hv and n:
        iv = int(vc.get("intermediate_size", 4 * int(hv)))
        warnings.append(f"vision tower `{vt or mt}` estimated as a plain ViT ({n} layers x {hv} hidden)")
        return _vit_layers(int(hv), iv, int(n)) + int(hv) * text_hidden
    warnings.append("vision_config without sizes: vision tower not counted")
    return 0


# ---------------------------------------------------------------------------------------------
# Rotary caches
# ---------------------------------------------------------------------------------------------


def _rope_cache_len(t: _Text, max_pos: int, rs: dict[str, Any] | None) -> int:
    """Rows of vLLM's cos/sin cache (layers/rotary_embedding get_rope + each class's cache)."""
    if rs is None:
        return max_pos
    rtype = rs["rope_type"]
    factor = float(rs.get("factor", 1.0))
    if rtype in ("linear", "dynamic"):
        return int(max_pos * factor)
    if rtype in ("yarn", "deepseek_yarn"):
        orig = int(rs.get("original_max_position_embeddings", max_pos))
        return int(orig * factor)
    return max_pos


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------


def facts_from_config(
    config: dict[str, Any],
    *,
    model_id: str,
    source: str,
    source_note: str = "",
    revision: str | None = None,
    quant_config: dict[str, Any] | None = None,
    safetensors_params: dict[str, int] | None = None,
    gated: bool = False,
) -> ModelFacts:
    """Build ModelFacts from a config.json dict (and an optional separate quantization file)."""
    if not isinstance(config, dict):
        raise ModelConfigError(f"{model_id}: config.json is not a JSON object")
    archs = config.get("architectures") or []
    architecture = str(archs[0]) if archs else str(config.get("model_type", "unknown"))
    text_cfg, text_type = _text_config(config)
    t = _Text(text_cfg, text_type)
    top_type = str(config.get("model_type", text_type))
    known = text_type in _KNOWN_TYPES
    if not known:
        t.warnings.append(
            f"architecture {architecture} (model_type {text_type or '?'}) is not modelled: parameters "
            "estimated as a generic decoder (gated MLP, 2 norms per layer, no biases)"
        )

    H = t.need("hidden_size", "d_model", "n_embd")
    L = t.need("num_hidden_layers", "n_layer", "num_layers")
    nh = t.need("num_attention_heads", "n_head")
    nkv = int(t.get("num_key_value_heads") or nh)
    vocab = t.need("vocab_size")
    mla = t.get("kv_lora_rank") is not None
    if t.has("head_dim"):
        hd = int(t.get("head_dim"))
    elif mla:
        hd = int(t.get("qk_nope_head_dim", 128)) + int(t.get("qk_rope_head_dim", 64))
    elif t.get("head_dim") is not None and text_type.startswith("gemma"):
        hd = int(t.get("head_dim"))
    else:
        hd = H // nh
    inter = int(t.get("intermediate_size") or t.get("ffn_dim") or 0)
    if not inter:
        inter = 4 * H
        t.warnings.append("intermediate_size absent: assumed 4 x hidden_size")

    tie = t.get("tie_word_embeddings")
    if tie is None:
        tie = bool(config.get("tie_word_embeddings", True))
        if not known:
            t.warnings.append("tie_word_embeddings absent: assumed true (transformers default)")

    a = _Arch(H=H, nh=nh, nkv=nkv, hd=hd, vocab=vocab, n_layers=L, intermediate=inter)
    mt = text_type
    if mt in ("qwen2", "qwen2_moe", "qwen2_5_vl", "qwen2_5_vl_text"):
        a.qkv_bias = True
    if t.get("attention_bias"):
        a.qkv_bias = a.o_bias = True
    if mt in ("gemma2", "gemma3_text", "gemma4_text"):
        a.norms_per_layer = 4
    if mt in ("qwen3", "qwen3_moe", "gemma3_text", "gemma4_text"):
        a.qk_norm = True
    if mt == "phi":
        a.qkv_bias = a.o_bias = True
        a.norms_per_layer, a.norm_bias = 1, True
        a.gated_mlp, a.mlp_bias = False, True
    if t.get("mlp_bias"):
        a.mlp_bias = True

    # ---- MoE layout ----
    n_exp = int(t.get("num_local_experts") or t.get("n_routed_experts") or t.get("num_experts") or 0)
    top_k = int(t.get("num_experts_per_tok") or t.get("experts_per_token") or t.get("top_k_experts") or 0)
    moe_inter = int(t.get("moe_intermediate_size") or inter) if n_exp else None
    n_shared = int(t.get("n_shared_experts") or 0)
    shared_inter: int | None = None
    if t.get("shared_expert_intermediate_size"):
        shared_inter = int(t.get("shared_expert_intermediate_size"))
        n_shared = max(n_shared, 1)
    elif mt == "llama4_text" and n_exp:
        n_shared, shared_inter = 1, inter
    elif n_shared and moe_inter:
        shared_inter = n_shared * moe_inter

    def is_moe(i: int) -> bool:
        if not n_exp:
            return False
        if mt in ("deepseek_v2", "deepseek_v3"):
            return i >= int(t.get("first_k_dense_replace", 0)) and i % int(t.get("moe_layer_freq", 1)) == 0
        if mt in ("qwen2_moe", "qwen3_moe"):
            step = int(t.get("decoder_sparse_step", 1))
            return i not in set(t.get("mlp_only_layers") or []) and (i + 1) % step == 0
        if mt == "llama4_text":
            step = int(t.get("interleave_moe_layer_step", 1))
            return step > 0 and (i + 1) % step == 0
        return True

    moe_layers = [i for i in range(L) if is_moe(i)]

    # ---- per-layer parameters ----
    kinds, sliding_window, chunk = _layer_kinds(t, L, mla)
    cross = set(t.get("cross_attention_layers") or []) if mt == "mllama_text_model" else set()
    layers: list[_Layer] = []
    for i in range(L):
        lay = _Layer()
        if mla:
            _mla_attention(t, a, lay)
        elif mt == "gemma4_text":
            _gemma4_attention(t, a, lay, kinds[i])
        else:
            _attention(a, lay)
        if i in cross:
            lay.rep_other += 2 * a.hd + 2  # q/k norms and the two tanh gates (models/mllama.py)
        if mt == "gpt_oss":
            lay.tp_other += nh  # attention sinks, one per head
        _norms(a, lay)
        if i in moe_layers and moe_inter:
            if mt == "gpt_oss":
                # GptOssMLP: fused gate_up [E, H, 2I] + down [E, I, H], biases, router with bias.
                lay.expert_linear += n_exp * 3 * H * moe_inter
                lay.expert_other += n_exp * (2 * moe_inter + H)
                lay.expert_in_rows += H + moe_inter
                lay.expert_out_rows += 2 * moe_inter + H
                lay.rep_other += n_exp * H + n_exp
            else:
                router_bias = t.get("topk_method") == "noaux_tc"  # e_score_correction_bias
                _routed_experts(a, lay, n_exp, moe_inter, router_bias=router_bias)
            if shared_inter:
                _dense_mlp(a, lay, shared_inter)
                if mt == "qwen2_moe":
                    lay.rep_other += H  # shared_expert_gate Linear(H, 1)
            if mt == "gemma4_text":
                _dense_mlp(a, lay, inter)  # Gemma4 runs a dense MLP beside the MoE block
        else:
            dense_inter = int(t.get("intermediate_size_mlp") or inter) if mt == "llama4_text" else inter
            _dense_mlp(a, lay, dense_inter)
        layers.append(lay)

    groups: dict[tuple[int, ...], list[int]] = {}
    shapes: dict[tuple[int, ...], _Layer] = {}
    for i, lay in enumerate(layers):
        groups.setdefault(lay.key(), []).append(i)
        shapes[lay.key()] = lay
    layer_groups = [LayerGroup(layers=idx, **vars(shapes[k])) for k, idx in groups.items()]

    embed = vocab * H
    lm_head = 0 if tie else vocab * H
    final = H * (2 if a.norm_bias else 1) + (vocab if mt == "phi" else 0)
    params_layers = sum(lay.total() for lay in layers)
    params_vision = _vision_params(config, H, t.warnings)
    text_params = embed + lm_head + final + params_layers
    params_total = text_params + params_vision

    # Active per token: everything but the routed experts not chosen.
    inactive = 0
    for i in moe_layers:
        lay = layers[i]
        if n_exp and top_k:
            inactive += (lay.expert_linear + lay.expert_other) * (n_exp - top_k) // n_exp
    params_active = params_total - params_vision - inactive

    # MTP layers: DeepSeek-V3 ships num_nextn_predict_layers extra decoder layers (+ eh_proj and
    # norms); vLLM's main model skips them (DeepseekV2Model builds num_hidden_layers only).
    n_mtp = int(t.get("num_nextn_predict_layers") or 0)
    params_mtp = 0
    if n_mtp and layers:
        last = layers[moe_layers[-1]] if moe_layers else layers[-1]
        # each MTP module also stores its own embedding and shared head copies.
        params_mtp = n_mtp * (last.total() + 2 * H * H + 3 * H + 2 * vocab * H)

    # ---- rotary caches ----
    max_pos = int(t.get("max_position_embeddings") or 2048)
    rs = _rope_scaling(t)
    if mla:
        rot_dim = int(t.get("qk_rope_head_dim", 64))
    else:
        rot_dim = int(hd * float(t.get("partial_rotary_factor", 1.0)))
    rope_elems = _rope_cache_len(t, max_pos, rs) * rot_dim
    if mt == "gemma3_text":
        rope_elems += max_pos * rot_dim  # the local (sliding) layers' unscaled rope
    if mt == "llama4_text":
        rope_elems = _rope_cache_len(t, max_pos, rs) * rot_dim  # NoPE layers add none

    dtype, dtype_guessed = _dtype(config, text_cfg)
    if dtype_guessed:
        t.warnings.append("torch_dtype absent: checkpoint assumed float32 (vLLM's fallback)")

    quant = quantization_from_config(config, text_cfg, quant_config)

    if not known and safetensors_params:
        counted = sum(safetensors_params.values())
        if counted > 0 and abs(counted - params_total) / counted > 0.02:
            t.warnings.append(
                f"generic estimate {params_total} differs from the safetensors count {counted}: "
                "using the safetensors count"
            )
            scale = counted / params_total
            params_total = counted
            params_active = int(params_active * scale)
            layer_groups = []  # the generic layout is wrong: weights fall back to the count

    mm_tokens = config.get("mm_tokens_per_image")
    return ModelFacts(
        id=model_id,
        revision=revision,
        source=source,  # type: ignore[arg-type]
        source_note=source_note,
        architecture=architecture,
        model_type=mt or top_type,
        dtype=dtype,
        num_hidden_layers=L,
        hidden_size=H,
        num_attention_heads=nh,
        num_key_value_heads=nkv,
        head_dim=hd,
        v_head_dim=int(t.get("v_head_dim")) if mla else None,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_word_embeddings=bool(tie),
        max_model_len=derive_max_model_len(t, top_type),
        layer_kinds=kinds,
        sliding_window=sliding_window,
        attention_chunk_size=chunk,
        kv_lora_rank=int(t.get("kv_lora_rank")) if mla else None,
        qk_rope_head_dim=int(t.get("qk_rope_head_dim", 64)) if mla else None,
        num_experts=n_exp,
        num_experts_per_tok=top_k,
        num_shared_experts=n_shared,
        moe_intermediate_size=moe_inter,
        shared_expert_intermediate_size=shared_inter,
        moe_layers=moe_layers,
        quantization=quant,
        params_total=params_total,
        params_active=params_active,
        params_vision=params_vision,
        multimodal=params_vision > 0 or isinstance(config.get("vision_config"), dict),
        mm_tokens_per_item=int(mm_tokens) if isinstance(mm_tokens, int) else None,
        warnings=t.warnings,
        layer_groups=layer_groups,
        final_params=final,
        rope_cache_elements=rope_elems,
        params_mtp=params_mtp,
        checkpoint_params=dict(sorted((safetensors_params or {}).items())),
        gated=gated,
    )


def _gemma4_attention(t: _Text, a: _Arch, lay: _Layer, kind: LayerKind) -> None:
    """Gemma4: sliding layers use head_dim/num_key_value_heads; global layers use
    global_head_dim/num_global_key_value_heads, and with attention_k_eq_v share K and V."""
    if kind == "sliding":
        hd, nkv, k_eq_v = a.hd, a.nkv, False
    else:
        hd = int(t.get("global_head_dim", a.hd))
        nkv = int(t.get("num_global_key_value_heads", a.nkv))
        k_eq_v = bool(t.get("attention_k_eq_v", False))
    q, kv = a.nh * hd, nkv * hd
    lay.tp_linear += a.H * q + q * a.H
    lay.kv_linear += (1 if k_eq_v else 2) * a.H * kv
    lay.linear_in_rows += a.H + q
    lay.linear_out_rows += q + 2 * kv + a.H
    lay.rep_other += 2 * hd  # q/k norms
