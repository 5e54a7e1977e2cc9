"""Speculative decoding: what the draft adds to vLLM's start-up accounting, and what it does to decoding.

Memory, as the V1 engine accounts it (vLLM sources):
- **draft weights** are loaded by `GPUModelRunner.load_model` (`self.drafter.load_model(self.model)`)
  inside the weights measurement, so vLLM prints them in "Model loading took". They run in the
  target's dtype (`config/speculative.py`: the draft ModelConfig takes the target dtype) and are
  sharded over the draft's TP (default: the target's). embed_tokens / lm_head shared with the target
  cost nothing (`v1/spec_decode/eagle.py: EagleProposer.load_model`).
- **draft KV cache**: the draft's attention layers register like the target's
  (`get_layers_from_vllm_config(..., AttentionLayerBase)` after `get_model`), so
  `get_kv_cache_spec` returns them too and they join the target's groups: they share the block pool
  and every block gets their pages (`v1/core/kv_cache_utils.py: get_kv_cache_groups`).
- **profile run**: `_dummy_run` runs `self.drafter.dummy_run(num_tokens)` after the target forward.
  EAGLE-3 keeps three target hidden states alive for the draft (`aux_hidden_state_layers`, llama.py),
  3 x T x H; the proposer's persistent buffers `hidden_states` and `inputs_embeds` ([T, hidden],
  `EagleProposer.__init__`) are allocated before profiling. The rejection sampler's dummy run
  (`_dummy_sampler_run`: 2 x num_reqs logits rows, their fp32 probs) stays below the sampler's own
  peak (>= 3 fp32 copies of num_reqs x vocab), so it adds nothing.
- **CUDA graphs**: the capture ceiling is min(max_num_seqs x (1 + K) x 2, 512) (`config/vllm.py:
  _set_cudagraph_sizes`, decode_query_len) and, with FULL decode graphs, every size is rounded up to a
  multiple of 1 + K (`config/compilation.py: adjust_cudagraph_sizes_for_spec_decode`); the drafter
  captures its own piecewise graphs (`EagleProposer.use_cuda_graph`).

Decoding (`speculative_step`): one engine step verifies K draft tokens per request in one target
forward of (K + 1) tokens and runs the draft K times; it emits on average
(1 - a^(K+1)) / (1 - a) tokens per request (a = per-token acceptance rate; Leviathan et al. 2023, eq. 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from ..facts.drafts import DraftFacts
from ..facts.vllm_versions import version_key
from ..facts.weights import dtype_bytes
from ..plan import EngineConfig, MemoryFeature, Resolved
from ..profile.v1 import SpeculativeSpec
from . import kv_cache as kv
from . import perf_model as pm

# Per-token acceptance rates assumed when workload.spec_acceptance_rate is not given. A measured mean
# acceptance length AL (tokens per step, bonus included) at K drafts gives a from AL = (1-a^(K+1))/(1-a):
# - eagle3 0.74: yuhuili/EAGLE3-LLaMA3.1-Instruct-8B on Llama-3.1-8B-Instruct, MT-Bench, K=7, greedy:
#   "mean acceptance length: 3.53" (vllm-project/vllm#26191, citing the #17504 measurement).
# - eagle 0.54: EAGLE-1 head on Llama-3-8B-Instruct, MT-Bench, K=2: "Accpt Len: 1.89" (vllm#16035).
# - mtp 0.85: "the acceptance rate of the second token prediction ranges between 85% and 90%"
#   (DeepSeek-V3 technical report, arXiv:2412.19437, section 5.4.3).
# - ngram / suffix 0.3, draft_model 0.6, medusa / mlp_speculator 0.5: assumptions (no public chat-workload
#   figure found; n-gram lookup reaches AL 2.96 only on an edit-heavy dataset, vllm#24344): set
#   workload.spec_acceptance_rate for your traffic.
DEFAULT_ACCEPTANCE: dict[str, float] = {
    "eagle3": 0.74,
    "eagle": 0.54,
    "mtp": 0.85,
    "draft_model": 0.6,
    "medusa": 0.5,
    "mlp_speculator": 0.5,
    "ngram": 0.3,
    "suffix": 0.3,
}
ACCEPTANCE_UNCERTAINTY = 0.15  # +-15 points of acceptance rate: the figure that dominates the ITL range

# adjust_cudagraph_sizes_for_spec_decode (vllm-project/vllm#28207 stopgap) first shipped after 0.11.0;
# assumed from 0.12.0, the first release whose config/compilation.py we read with it.
ROUND_CAPTURE_SIZES_SINCE = "0.12.0"


def spec_of(resolved: Resolved) -> SpeculativeSpec | None:
    return resolved.profile.vllm.speculative


def num_speculative_tokens(resolved: Resolved) -> int:
    spec = spec_of(resolved)
    return spec.num_speculative_tokens if spec is not None else 0


def acceptance_rate(resolved: Resolved) -> float:
    spec = spec_of(resolved)
    given = resolved.profile.workload.spec_acceptance_rate
    if given is not None:
        return given
    if spec is None:
        return 0.0
    method = "mtp" if spec.method.endswith("mtp") else spec.method
    return DEFAULT_ACCEPTANCE.get(method, 0.5)


def tokens_per_step(alpha: float, k: int) -> float:
    """Expected tokens emitted per request per verify step: (1 - a^(K+1)) / (1 - a)."""
    if k <= 0:
        return 1.0
    if alpha >= 1.0:
        return float(k + 1)
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


def draft_tp(resolved: Resolved, engine: EngineConfig) -> int:
    spec = spec_of(resolved)
    if spec is not None and spec.draft_tensor_parallel_size is not None:
        return spec.draft_tensor_parallel_size
    return engine.tensor_parallel_size


def draft_weight_bytes(resolved: Resolved, engine: EngineConfig) -> int:
    """Draft weights on one GPU, in the target's dtype (MTP: the target's own bytes per parameter)."""
    draft = resolved.draft
    if draft is None:
        return 0
    tp = draft_tp(resolved, engine)
    params = draft.params(tp)
    if draft.source == "mtp" and resolved.model.quantization is not None:
        bits = resolved.model.quantization.bits or 8
        return int(params * bits / 8) + draft.extra_bytes()
    return params * dtype_bytes(engine.dtype) + draft.extra_bytes()


def draft_layer_specs(resolved: Resolved, engine: EngineConfig) -> list[kv.LayerSpec]:
    """The draft's attention layers as KV specs on one GPU (they join the target's KV groups)."""
    draft = resolved.draft
    if draft is None:
        return []
    if draft.mla:
        per_token = kv.layer_bytes_per_token(resolved.model, engine, "mla")
        return [kv.LayerSpec("mla", per_token) for _ in range(draft.num_layers)]
    heads = kv.kv_heads_per_rank(draft.num_key_value_heads, draft_tp(resolved, engine))
    per_token = heads * 2 * draft.head_dim * kv.kv_dtype_bytes(engine.kv_cache_dtype, engine.dtype)
    return [kv.LayerSpec("full", per_token) for _ in range(draft.num_layers)]


def activation_bytes(resolved: Resolved, engine: EngineConfig) -> int:
    """What the profile run holds on top of the target's own peak (see the module docstring)."""
    draft = resolved.draft
    if draft is None:
        return 0
    t = engine.max_num_batched_tokens
    dt = dtype_bytes(engine.dtype)
    buffers = t * draft.hidden_size * dt + t * resolved.model.hidden_size * dt
    aux = 3 * t * resolved.model.hidden_size * dt if draft.method == "eagle3" else 0
    return buffers + aux


def draft_graph_layers(resolved: Resolved) -> int:
    draft = resolved.draft
    return draft.num_layers if draft is not None else 0


def round_capture_sizes(sizes: list[int], k: int, version: str) -> list[int]:
    """`adjust_cudagraph_sizes_for_spec_decode`: every size rounded up to a multiple of 1 + K, those above
    the old maximum dropped; none left -> [1 + K] when it fits under the maximum."""
    if k <= 0 or not sizes or version_key(version) < version_key(ROUND_CAPTURE_SIZES_SINCE):
        return sizes
    q, top = 1 + k, max(sizes)
    rounded = sorted({ceil(s / q) * q for s in sizes if ceil(s / q) * q <= top})
    if not rounded and q <= top:
        return [q]
    return rounded or sizes


def memory_features(resolved: Resolved, engine: EngineConfig) -> list[MemoryFeature]:
    draft = resolved.draft
    spec = spec_of(resolved)
    if spec is None:
        return []
    k = spec.num_speculative_tokens
    out: list[MemoryFeature] = []
    if draft is None:
        out.append(
            MemoryFeature(
                name="speculative",
                bytes_per_gpu=0,
                detail=f"{spec.method}, K={k}: proposals from the prompt on the CPU, no draft weights or KV cache",
            )
        )
        return out
    tp = draft_tp(resolved, engine)
    out.append(
        MemoryFeature(
            name="draft weights",
            bytes_per_gpu=draft_weight_bytes(resolved, engine),
            detail=f"{draft.id} ({draft.method}, {draft.params(1) / 1e6:.0f}M parameters, TP {tp}); "
            f"embed_tokens {'own' if draft.own_embed_tokens else 'shared with the target'}, lm_head "
            f"{'own (' + str(draft.draft_vocab_size) + ' rows)' if draft.own_lm_head else 'shared with the target'}",
        )
    )
    specs = draft_layer_specs(resolved, engine)
    out.append(
        MemoryFeature(
            name="draft KV cache",
            bytes_per_gpu=0,  # filled in by the memory pass: the draft's pages in every block of the cache
            detail=f"{len(specs)} draft attention layer(s), {specs[0].bytes_per_token if specs else 0} bytes per "
            "token each, in the target's KV groups: every block holds them too (share of the KV cache)",
        )
    )
    out.append(
        MemoryFeature(
            name="draft profile run",
            bytes_per_gpu=activation_bytes(resolved, engine),
            detail="proposer buffers [max_num_batched_tokens, hidden]"
            + (" and EAGLE-3's three target hidden states" if draft.method == "eagle3" else "")
            + f"; CUDA graphs sized for {1 + k} query tokens per request",
        )
    )
    return out


@dataclass(frozen=True)
class ServingStep(pm.StepModel):
    """A StepModel with the serving features' step costs: speculative verification and LoRA kernels.

    Speculative: a decode step verifies K drafts per request in one target forward of (K + 1) tokens
    per request and runs the draft K times; it emits `accepted` tokens per request, so the decode part
    of the step is divided by it (a prefill chunk in the same step progresses once).
    LoRA (passes/lora.py): the punica shrink/expand kernels of every wrapped linear and the active
    slots' A/B read once per step."""

    k: int = 0
    accepted: float = 1.0  # tokens emitted per request per step
    draft_bytes: float = 0.0  # draft weights read per draft forward, one GPU
    draft_kv_bytes_per_token: float = 0.0  # draft KV read per context token per draft forward
    draft_layers: int = 0
    lora_bytes: float = 0.0  # the LoRA slots read per step (every slot active: the worst case)
    lora_kernels: int = 0  # shrink + expand launches per forward

    def _draft_time(self, ctx: float) -> float:
        if self.draft_layers == 0:
            return 0.0  # ngram / suffix: proposals on the CPU
        mem = (self.draft_bytes + ctx * self.draft_kv_bytes_per_token) / (self.hw.bw_eff * self.hw.bw)
        return mem + self.draft_layers * pm.LAYER_FLOOR_S + DRAFT_FORWARD_OVERHEAD_S

    def _lora_time(self) -> float:
        return self.lora_bytes / (self.hw.bw_eff * self.hw.bw) + self.lora_kernels * LORA_KERNEL_S

    def step_time(self, decode: float, ctx: float, prefill: float = 0.0, prefill_ctx: float = 0.0) -> float:
        base = pm.StepModel.step_time
        lora = self._lora_time() if decode + prefill > 0 else 0.0
        if decode <= 0 or self.k <= 0:
            return base(self, decode, ctx, prefill, prefill_ctx) + lora
        verify = decode * (1 + self.k)
        drafts = self.k * self._draft_time(ctx)
        t_decode = base(self, verify, ctx) + drafts + lora
        t_all = base(self, verify, ctx, prefill, prefill_ctx) + drafts + lora
        return t_decode / self.accepted + (t_all - t_decode)


# Host and launch cost of one draft forward in the propose loop (metadata for the next position, the
# drafter's piecewise graph, argmax). From vllm-project/vllm#16937 on an H100 at batch 1: Llama-3.1-8B
# 133 tok/s alone, 201.7 tok/s with an EAGLE-1 head at K=2 (1.51x); with the acceptance length 1.89 of
# EAGLE-1 at K=2 (vllm#16035), 1.51 = 1.89 / (1 + 2 t_d / 7.52 ms) gives t_d ~ 0.95 ms per draft forward,
# of which ~0.2 ms is reading the head's weights: the rest is this overhead.
DRAFT_FORWARD_OVERHEAD_S = 0.75e-3

# GPU time of one punica shrink or expand launch at decode sizes under CUDA graphs: an assumption of a
# few microseconds per small Triton kernel (not calibrated: no public LoRA step-time figures found).
LORA_KERNEL_S = 4e-6


def serving_step(sm: pm.StepModel, resolved: Resolved, engine: EngineConfig, alpha: float) -> pm.StepModel:
    """`sm` with the profile's speculative decoding (at acceptance `alpha`) and LoRA; unchanged without."""
    from . import lora as lora_terms

    k = num_speculative_tokens(resolved)
    lora = resolved.profile.vllm.lora
    if k <= 0 and lora is None:
        return sm
    draft: DraftFacts | None = resolved.draft
    specs = draft_layer_specs(resolved, engine) if k else []
    fields = {f: getattr(sm, f) for f in pm.StepModel.__dataclass_fields__}
    layers = resolved.model.num_hidden_layers
    lora_bytes = (
        lora_terms.weight_bytes(resolved, engine, (0, layers), True) / max(1, engine.pipeline_parallel_size)
        if lora is not None
        else 0.0
    )
    return ServingStep(
        **fields,
        k=k,
        accepted=tokens_per_step(alpha, k),
        draft_bytes=float(draft_weight_bytes(resolved, engine)) if k else 0.0,
        draft_kv_bytes_per_token=float(sum(s.bytes_per_token for s in specs)),
        draft_layers=draft.num_layers if draft is not None and k else 0,
        lora_bytes=float(lora_bytes),
        lora_kernels=2 * 4 * layers if lora is not None else 0,
    )
