"""The physics of one vLLM engine step: bytes over bandwidth, FLOPs over peak, collectives, overhead.

`StepModel.step_time(...)` is the time between two consecutive engine steps of one replica for a
batch of `decode` running requests (with `ctx` KV tokens between them) plus `prefill` prompt tokens
scheduled in the same step (vLLM V1 chunked prefill: one batch, one weight read). Everything here is
closed form and cheap: the closed-loop estimate, the request-rate simulator and the recommender's
search call it thousands of times.

Each operator (dense GEMMs, routed experts, attention) is its own roofline and the step is their sum,
plus collectives, per-layer floors and host time. Efficiency constants are the only calibrated numbers;
each names its source: a published figure, a physical prior, or (five of them: ROCM_GEMM_RATIO,
ROCM_ATTN_EFF, MOE_EFF, REQUEST_OVERHEAD_S, ROCM_BLAS_BW_RATIO) a fit over the in-scope controlled
calibration entries with its held-out error (bench/perf_accuracy.py --fit / --cv), never a value tuned to one entry.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

from ..facts.gpu_spec import GpuSpec
from ..facts.model_facts import ModelFacts
from ..facts.weights import dtype_bytes

# --- calibrated efficiencies (bench/perf_accuracy.py over the controlled entries) -------------------
# Five constants are fitted (FITTED; bench/perf_fit.py: L1 on log error over the 22 in-scope controlled
# entries, vLLM >= 0.8.5, with a factor-4 prior around the value each had before). Their held-out check,
# `python bench/perf_accuracy.py --cv` (each GPU family / each source predicted by constants fitted
# without it): TPOT median 4% (n=5), throughput 10% (n=16), TTFT 29% (n=3) leaving one family out;
# leaving AMD's own table out, ROCM_BLAS_BW_RATIO stays at its prior and those entries are 19% off.
# The rest are physical priors or published figures, named where they are set.
# Achieved share of peak HBM bandwidth in decode (weight GEMV + paged attention). Microbenchmarks of
# H100/A100 reach ~0.8-0.9 of datasheet bandwidth on streaming reads; vLLM decode steps land lower
# (many small kernels): the controlled single-request TPOTs put it near 0.7.
BW_EFF = 0.70
# ROCm builds of vLLM reach a smaller share of MI300-class HBM (the AMD entries of the calibration set,
# TP 1 and TP 8, dense and MoE, land near 0.5; microbenchmarks reach ~0.8 of 5.3 TB/s on MI300X).
BW_EFF_AMD = 0.50
# Achieved share of dense tensor-core peak in prefill / large-batch GEMMs (MFU). vLLM prefill MFU
# is typically 40-60% in steady GEMMs; chunked steps and small prompts lower it, and the controlled
# TTFT and long-prompt entries sit near 0.4.
COMPUTE_EFF = 0.40
# ROCm GEMMs without AITER (hipBLASLt for dense layers, vLLM's Triton fused-MoE for experts) reach a
# smaller share of the datasheet peak than CUDA's. The earlier figure (0.6, attributed to SemiAnalysis'
# Dec 2024 MI300X GEMM sweeps) could not be checked against the source; a secondary summary of
# independent measurements (aiweekly.co, "AMD MI300X hits only 45% of peak FLOPs in practice") agrees
# in direction. Fitted instead: 0.48, on the MI300X entries (vLLM PR 17530 Qwen3-30B-A3B FP8 prefill-heavy
# runs, AITER off, and AMD's 0.10.2 latency table; 6 entries); leaving MI300X out the fit has no ROCm
# entry to move it and MI300X throughput is then off by 14% median. It also scales the fused-MoE share
# (the Triton fused-MoE kernel is vLLM's default on ROCm too).
# With VLLM_ROCM_USE_AITER=1 vLLM switches to AMD's tuned AITER kernels (GEMM, fused MoE, attention):
# those keep the common efficiencies (an assumption, no published rates; the MI355X AITER entry, not
# sensitive to the fitted ROCm constants, is within 13% TPOT / 12% throughput).
ROCM_GEMM_RATIO = 0.48
# ROCm's decode GEMMs: vLLM sends a linear layer to its skinny HIP kernels only for the smallest batches
# (vllm/model_executor/layers/utils.py rocm_unquantized_gemm: wvSplitK for 1-4 tokens of bf16/fp16;
# quantization/utils/w8a8_utils.py rocm_per_tensor_w8a8_scaled_mm: wvSplitKQ for exactly 1 token of
# per-tensor FP8; nothing for block FP8) and to hipBLASLt otherwise. hipBLASLt at a few rows streams the
# weights at a smaller share of the bandwidth than the skinny kernels that BW_EFF_AMD was measured on
# (batch-1 entries). Prior 0.5: a rocprofv3 trace (mudler/vllm.cpp#487) has hipBLASLt's decode GEMMs 2.03x
# slower than wvSplitK on the same shapes. Fitted (bench/perf_fit.py): 0.72, on AMD's MI300X latency table
# (70B FP8 TP8, batch 1 / 2 / 4: the per-token time jumps 13% from 1 to 2 rows, where the kernel changes).
# AITER's tuned GEMMs replace hipBLASLt where it is switched on and keep the skinny share.
ROCM_BLAS_BW_RATIO = 0.72
# Prefill attention runs in its own kernel (FlashAttention / FlashInfer over the paged KV), whose share
# of the 16-bit tensor peak is set by the kernel generation and grows with the keys each query sees
# (short contexts leave tiles and SMs idle). Long-context forward rates: FlashAttention-2 reaches up to
# ~70% of A100 peak (Dao 2023, "FlashAttention-2", forward, head dim 128); FlashAttention-3 ~75% of H100
# FP16 peak (Shah et al. 2024, 740 TFLOP/s); Blackwell's FlashInfer/TRT-LLM kernels are taken as
# FA3's (no published figure). The half-rate context: those papers' causal forward curves are at about
# two thirds of their long-sequence rate at 512 keys, i.e. L/(L + 256).
ATTN_EFF_MAX = {8: 0.70, 9: 0.75, 10: 0.75, 12: 0.70}
ATTN_CTX_HALF = 256.0
# ROCm builds run prefill attention through vLLM's own Triton kernels unless AITER is switched on
# (vllm/v1/attention/backends/rocm_attn.py -> ops/chunked_prefill_paged_decode.py, the prefix_prefill
# kernel): no published rate, so its long-context share of the bf16 peak is fitted: 0.14 on the three
# PR 17530 entries (1k/5k/10k-token prompts separate it from the GEMM ratio), ~180 TFLOP/s on MI300X.
ROCM_ATTN_EFF = 0.14
# Per-request latency outside the engine steps, paid once before the first token: the API server's
# HTTP handling, chat templating and tokenisation, the hand-off to the engine core process and the
# first streamed chunk. Fitted: 30 ms on the three single-request TTFTs without cache hits (one
# harness, gpt-oss-20b on H100 PCIe / H200 / B200); held out one GPU at a time it lands at 19-32 ms.
REQUEST_OVERHEAD_S = 30e-3
# Per-step host overhead with CUDA graphs: scheduling, input preparation, sampling, detokenize and
# the output path of vLLM V1. Controlled single-request TPOTs of small models (where weights take
# ~1-3 ms) leave ~2 ms per step.
STEP_OVERHEAD_S = 1.5e-3
# Host time per running sequence per step (input preparation, sampling, detokenisation, output
# objects). V1's persistent batch and async output keep it small; V0 rebuilt Python metadata for
# every sequence every step (vLLM blog "vLLM V1", 2025-01: CPU overhead was V0's bottleneck). The
# V0 value comes from the V0-era large-batch throughput entries (0.5-0.7), V1's from the V1 ones.
HOST_PER_SEQ_S = {"V0": 250e-6, "V1": 15e-6}
# With async scheduling the host work overlaps the GPU step; one device-to-host copy of the sampled
# token ids and the event wait remain on the critical path (~0.1-0.2 ms, an assumption: a CUDA event
# sync plus a small copy are tens of microseconds each; not calibrated).
ASYNC_RESIDUAL_S = 0.15e-3
# Minimum GPU time per decoder layer per step even when its kernels move few bytes: ~10 kernels of a
# few microseconds each (norms, rotary, attention, activation). An MoE layer adds routing, top-k,
# token permute/unpermute and the grouped GEMMs (~15 more kernels).
LAYER_FLOOR_S = 20e-6
# Share of the dense bandwidth roofline the fused-MoE kernels reach when reading expert weights
# (vllm/model_executor/layers/fused_moe: a grouped GEMM over experts with few tokens each; vLLM PRs
# #3692/#4002 gained 1.3-2x just by tuning its tiles). Fitted: 0.63 on the in-scope MoE entries
# (gpt-oss-20b on H100 PCIe / H200 / B200, Qwen3-30B-A3B on MI300X; 8 entries); left-out fits range
# 0.43-0.88 (B200's batch-16 decode wants it low, H100 PCIe's high: one number cannot serve both).
# Prefill GEMMs with many tokens per expert are compute-bound and keep the dense efficiency.
MOE_EFF = 0.63
MOE_LAYER_FLOOR_S = 60e-6
# Extra host time per decoder layer per step when running eager (no CUDA graphs): ~10 kernel launches
# at ~5 us each (CUDA launch latency, NVIDIA CUDA C++ Best Practices Guide) - the cost graphs remove.
EAGER_PER_LAYER_S = 50e-6
# One all-reduce's fixed latency: vLLM's custom all-reduce over NVLink (~5-10 us for small messages,
# vllm/distributed/device_communicators/custom_all_reduce.py benchmarks) vs NCCL over PCIe (~25 us).
ALLREDUCE_LAT_NVLINK_S = 8e-6
ALLREDUCE_LAT_PCIE_S = 25e-6
# Pipeline hop latency between stages: same node (NCCL send/recv over NVLink/PCIe) and across nodes
# (InfiniBand/RoCE, ~20 us with NCCL).
P2P_LAT_NODE_S = 10e-6
P2P_LAT_INTERNODE_S = 20e-6
# Link bandwidths (one direction, GB/s): PCIe x16 per generation (PCI-SIG: 16/32/64 GB/s for 3/4/5),
# a 400 Gb/s NDR InfiniBand NIC per GPU (50 GB/s).
PCIE_GBPS = {3: 16.0, 4: 32.0, 5: 64.0, 6: 128.0}
INTERNODE_GBPS = 50.0

# Bytes per weight element by vLLM quantization method (weights only; scales amortised):
# 4-bit group-128 methods carry an fp16 scale (+ zero) per 128 weights; MXFP4 is 4 bits + an E8M0
# scale per 32 (OCP MX spec: 4.25 bits); NVFP4 is 4 bits + an FP8 scale per 16 (4.5 bits).
_Q4 = 0.5 + 4 / 128
_QUANT_BYTES: dict[str, float] = {
    "fp8": 1.0,
    "fbgemm_fp8": 1.0,
    "modelopt": 1.0,
    "ptpc_fp8": 1.0,
    "awq": _Q4,
    "awq_marlin": _Q4,
    "gptq": _Q4,
    "gptq_marlin": _Q4,
    "bitsandbytes": _Q4,
    "gguf": 0.5625,  # Q4_K_M averages ~4.5 bits (llama.cpp quantize table)
    "mxfp4": 4.25 / 8,
    "modelopt_fp4": 4.5 / 8,
}
# Methods whose GEMMs run in FP8 on tensor cores that have FP8 (W8A8); the rest dequantise to 16 bit.
_FP8_COMPUTE = {"fp8", "fbgemm_fp8", "modelopt", "ptpc_fp8"}
# NVFP4 checkpoints (ModelOpt W4A4) run their GEMMs on Blackwell's FP4 tensor cores (CUTLASS / FlashInfer
# FP4 GEMMs, vllm/model_executor/layers/quantization/modelopt.py), at twice the FP8 rate (NVIDIA
# Blackwell datasheet: B200 9 PFLOPS dense FP4 vs 4.5 FP8). MXFP4 checkpoints (gpt-oss) keep 16-bit
# activations by default (W4A16: dequantised in the MoE kernel), so they compute at the 16-bit rate.
_FP4_COMPUTE = {"modelopt_fp4"}
FP4_OVER_FP8 = 2.0


def kv_elem_bytes(kv_cache_dtype: str, dtype: str) -> float:
    return 1.0 if kv_cache_dtype.startswith("fp8") else float(dtype_bytes(dtype))


# Skinny-kernel batch limits (ROCM_BLAS_BW_RATIO's note): wvSplitK up to 4 rows of 16-bit weights,
# wvSplitKQ for one row of per-tensor FP8.
SKINNY_16BIT_TOKENS = 4
SKINNY_FP8_TOKENS = 1


@dataclass(frozen=True)
class ModelShape:
    """Parameter groups by how a step reads them, and per-token KV/attention sizes of one TP rank."""

    body_bytes: float  # attention + dense MLP + shared experts + norms (read every step)
    lm_head_bytes: float  # read every step (the embedding lookup itself reads only the batch's rows)
    expert_bytes: float  # routed experts: a step reads only the experts its tokens touch
    active_params: float  # multiply-accumulates per token (x2 = FLOPs), embedding lookup excluded
    active_expert_params: float  # the routed-expert part of active_params
    lm_head_params: float  # the lm_head part of active_params: computed only for the sampled rows
    num_experts: int
    experts_per_tok: int
    num_layers: int
    num_moe_layers: int
    hidden: int
    attn_dim: float  # query heads x head dim (attention FLOPs per token per context token / 4)
    kv_bytes_full: float  # KV bytes per token per layer-set of full-attention layers (one rank)
    kv_bytes_window: float  # same for sliding/chunked layers
    window: int  # their window (tokens)
    fp8_compute: bool
    fp4_compute: bool
    weight_bytes: float  # all weights (one replica, all ranks)
    # Most tokens per step ROCm's skinny GEMM kernels take for the dense linear layers and for lm_head
    # (16-bit): ROCM_BLAS_BW_RATIO's note.
    skinny_tokens: int = 0
    lm_head_skinny_tokens: int = SKINNY_16BIT_TOKENS


def skinny_tokens(model: ModelFacts, method: str | None) -> int:
    """The most tokens per step for which vLLM's ROCm skinny GEMMs serve the dense linear layers."""
    if method is None:
        return SKINNY_16BIT_TOKENS
    q = model.quantization
    per_tensor = q is None or (not q.weight_block_size and q.strategy in (None, "tensor"))
    return SKINNY_FP8_TOKENS if method == "fp8" and per_tensor else 0


def _quant_method(model: ModelFacts, quantization: str | None) -> tuple[str | None, int | None]:
    if quantization:
        return quantization, model.quantization.bits if model.quantization else None
    if model.quantization:
        return model.quantization.method, model.quantization.bits
    return None, None


def model_shape(
    model: ModelFacts, *, dtype: str, quantization: str | None, kv_cache_dtype: str, tp: int
) -> ModelShape:
    """Split the checkpoint by read pattern. Dense bytes follow the weight dtype; quantized linear
    layers follow the method's bytes per weight; embeddings and lm_head stay 16 bit unless the
    checkpoint quantizes lm_head (vLLM keeps ParallelLMHead unquantized by default)."""
    method, bits = _quant_method(model, quantization)
    wb = float(dtype_bytes(dtype))
    if method is None:
        qb = wb
    elif method == "compressed-tensors":
        qb = 1.0 if (bits or 8) >= 8 else _Q4 if bits == 4 else (bits or 8) / 8
    else:
        qb = _QUANT_BYTES.get(method, (bits / 8) if bits else wb)
    experts_only = bool(model.quantization and model.quantization.experts_only)
    lin_b = wb if experts_only else qb

    h, vocab = model.hidden_size, model.vocab_size
    embed = float(vocab * h)
    lm_head = 0.0 if model.tie_word_embeddings else embed
    n_moe = len(model.moe_layers) or (model.num_hidden_layers if model.num_experts else 0)
    moe_inter = model.moe_intermediate_size or model.intermediate_size
    experts = float(n_moe * model.num_experts * 3 * h * moe_inter) if model.num_experts else 0.0
    total_text = max(float(model.params_total - model.params_vision), embed + lm_head + 1.0)
    experts = min(experts, max(total_text - embed - lm_head, 0.0))
    body = max(total_text - embed - lm_head - experts, 0.0)
    head_elems = embed  # lm_head (or the tied embedding) is read whole every step
    head_b = qb if (model.quantization and model.quantization.lm_head_quantized) else wb

    k, e = model.num_experts_per_tok, model.num_experts
    active = body + head_elems + (experts * k / e if e else 0.0)

    # KV bytes per token of one rank: vLLM shards KV heads over TP (replicated when tp > kv heads);
    # MLA keeps one latent per token on every rank (vllm/model_executor/layers/mla.py).
    kvb = kv_elem_bytes(kv_cache_dtype, dtype)
    full = win = 0.0
    window = 0
    for kind in model.layer_kinds:
        if kind == "mla":
            per = ((model.kv_lora_rank or 0) + (model.qk_rope_head_dim or 0)) * kvb
        elif kind in ("full", "sliding", "chunked"):
            per = 2 * max(1.0, model.num_key_value_heads / tp) * model.head_dim * kvb
        else:
            continue
        if kind == "sliding":
            win += per
            window = model.sliding_window or window
        elif kind == "chunked":
            win += per
            window = model.attention_chunk_size or window
        else:
            full += per
    return ModelShape(
        body_bytes=body * lin_b,
        lm_head_bytes=head_elems * head_b,
        expert_bytes=experts * qb,
        active_params=active,
        active_expert_params=experts * k / e if e else 0.0,
        lm_head_params=head_elems,
        num_experts=e,
        experts_per_tok=k,
        num_layers=model.num_hidden_layers,
        num_moe_layers=n_moe,
        hidden=h,
        attn_dim=float(model.num_attention_heads * model.head_dim),
        kv_bytes_full=full,
        kv_bytes_window=win,
        window=window,
        fp8_compute=method in _FP8_COMPUTE,
        fp4_compute=method in _FP4_COMPUTE,
        weight_bytes=body * lin_b + embed * wb + lm_head * head_b + experts * qb,
        skinny_tokens=SKINNY_16BIT_TOKENS if experts_only else skinny_tokens(model, method),
        lm_head_skinny_tokens=0 if head_b != wb else SKINNY_16BIT_TOKENS,
    )


def touched_expert_fraction(num_experts: int, k: int, tokens: float) -> float:
    """Expected share of routed experts a step reads: with uniform routing each token picks k of E, so
    the expected distinct experts over b tokens is E(1 - (1 - k/E)^b) per layer."""
    if num_experts <= 0 or tokens <= 0:
        return 0.0
    return 1.0 - (1.0 - k / num_experts) ** tokens


@dataclass(frozen=True)
class Hardware:
    bw: float  # bytes/s, one GPU
    bw_eff: float  # achieved share of it in decode
    peak: float  # FLOP/s, one GPU, in the GEMM dtype
    peak16: float  # FLOP/s in bf16/fp16 (attention)
    link_bw: float  # bytes/s one direction for TP all-reduce
    allreduce_lat: float
    p2p_lat: float
    p2p_bw: float
    compute_eff: float = COMPUTE_EFF  # achieved share of tensor peak in GEMMs
    attn_eff: float = COMPUTE_EFF  # long-context share of the 16-bit peak in prefill attention
    moe_eff: float = MOE_EFF  # share of the bandwidth roofline the fused-MoE kernels reach
    # Share of the decode bandwidth a dense GEMM reaches past the skinny-kernel batch sizes (ROCm's
    # hipBLASLt; 1.0 where one kernel family serves every batch size).
    blas_bw_ratio: float = 1.0


def hardware(
    gpu: GpuSpec,
    *,
    dtype: str,
    fp8_compute: bool,
    tp: int,
    multi_node_pp: bool,
    rocm_aiter: bool = False,
    fp4_compute: bool = False,
) -> Hardware:
    if fp4_compute and gpu.vendor == "nvidia" and gpu.sm[0] >= 10 and gpu.fp8_tflops:
        peak = gpu.fp8_tflops * FP4_OVER_FP8  # FP4 tensor cores: sm_100 and later
    elif fp8_compute and gpu.fp8_tflops:  # (NVFP4 before Blackwell: Marlin W4A16, the 16-bit rate)
        peak = gpu.fp8_tflops
    elif dtype == "float16":
        peak = gpu.fp16_tflops
    elif dtype == "float32":
        peak = gpu.bf16_tflops / 2  # vLLM runs fp32 weights through TF32-class paths at best
    else:
        peak = gpu.bf16_tflops
    pcie = PCIE_GBPS.get(gpu.pcie_gen, 32.0) * 1e9
    rocm_default = gpu.vendor == "amd" and not rocm_aiter
    if gpu.vendor != "amd":
        attn_eff = ATTN_EFF_MAX.get(gpu.sm[0], COMPUTE_EFF)
    else:
        attn_eff = ROCM_ATTN_EFF if rocm_default else COMPUTE_EFF
    if gpu.nvlink_gbps:
        link, lat = gpu.nvlink_gbps / 2 * 1e9, ALLREDUCE_LAT_NVLINK_S
    else:
        link, lat = pcie, ALLREDUCE_LAT_PCIE_S
    if multi_node_pp:
        p2p_lat, p2p_bw = P2P_LAT_INTERNODE_S, INTERNODE_GBPS * 1e9
    else:
        p2p_lat, p2p_bw = P2P_LAT_NODE_S, link
    return Hardware(
        bw=gpu.memory_bandwidth_gbps * 1e9,
        bw_eff=BW_EFF_AMD if gpu.vendor == "amd" else BW_EFF,
        peak=peak * 1e12,
        peak16=(gpu.fp16_tflops if dtype == "float16" else gpu.bf16_tflops) * 1e12,
        link_bw=link,
        allreduce_lat=lat,
        p2p_lat=p2p_lat,
        p2p_bw=p2p_bw,
        compute_eff=COMPUTE_EFF * (ROCM_GEMM_RATIO if rocm_default else 1.0),
        attn_eff=attn_eff,
        # ROCm's default fused-MoE is vLLM's Triton kernel, as its dense GEMMs short of CUDA's tuning.
        moe_eff=MOE_EFF * (ROCM_GEMM_RATIO if rocm_default else 1.0),
        blas_bw_ratio=ROCM_BLAS_BW_RATIO if rocm_default else 1.0,
    )


@dataclass(frozen=True)
class StepModel:
    """One replica (TP x PP) of one engine configuration."""

    shape: ModelShape
    hw: Hardware
    tp: int
    pp: int
    eager: bool
    graph_max_batch: int  # decode batches above the largest captured size run eager
    engine: str = "V1"  # vLLM engine generation: its host cost per sequence differs
    act_bytes: float = 2.0  # activation element size on the wire (bf16/fp16)
    # Captured sizes, ascending; a step replaying a graph computes its tokens padded up to the next
    # captured size (vLLM pads the batch to the graph's size). Empty: padding not modelled.
    graph_sizes: tuple[int, ...] = ()
    # Wide expert parallel (passes/all2all_perf.py): the DP ranks the experts spread over (they step
    # together, so a rank's experts see every rank's tokens) and the dispatch/combine cost per MoE layer.
    ep_dp: int = 1
    all2all: Any = None
    async_scheduling: bool = False  # host work of the next step overlaps this one (the release's default)

    def padded(self, tokens: float) -> float:
        """Tokens a graph replay computes for a step of `tokens` (itself when no graph serves it)."""
        if self.eager or not self.graph_sizes or tokens > self.graph_sizes[-1]:
            return tokens
        return float(self.graph_sizes[bisect.bisect_left(self.graph_sizes, math.ceil(tokens))])

    def step_time(self, decode: float, ctx: float, prefill: float = 0.0, prefill_ctx: float = 0.0) -> float:
        """Seconds per engine step (= one token of every decoding request).

        decode: running requests that emit a token this step; ctx: their KV tokens in total;
        prefill: prompt tokens scheduled in the same step; prefill_ctx: mean position of those tokens
        in their prompt (attention over the earlier part of the prompt).

        With PP, vLLM keeps `pp` micro-batches in flight (one per virtual engine); a request's next
        token waits for its micro-batch to pass every stage, so the step is pp stage-times of a batch
        of `decode/pp`; with fewer requests than stages, the idle stages are the bubble."""
        # The whole pass (all stages in turn) for one micro-batch is what one token waits for.
        s, tp, pp = self.shape, self.tp, self.pp
        d_mb = max(decode / pp, min(decode, 1.0)) if decode > 0 else 0.0
        p_mb = prefill / pp
        ctx_mb = ctx * (d_mb / decode) if decode > 0 else 0.0
        tokens = d_mb + p_mb
        if tokens <= 0:
            return 0.0
        # Each operator is its own roofline (max of its bytes over bandwidth and its FLOPs over peak) and
        # the step is their sum, as aiconfigurator sums per-operator times: in a mixed step the dense
        # GEMMs can be compute-bound while the expert reads or the decoders' KV reads are memory-bound,
        # which one max over the whole step hides.
        bw = self.hw.bw_eff * self.hw.bw
        ceff = self.hw.compute_eff
        n_tok = self.padded(decode + prefill) / pp if self.graph_sizes else tokens
        # Logits are computed only at the rows the sampler reads, one per scheduled request
        # (vllm/v1/worker/gpu_model_runner.py: logits_indices; hidden_states[logits_indices] is what
        # compute_logits sees), never for every prompt token of a prefill chunk.
        rows = min(d_mb + (1.0 if p_mb else 0.0), tokens)
        dense_flops = 2 * (s.active_params - s.active_expert_params - s.lm_head_params) * n_tok
        dense_flops += 2 * s.lm_head_params * rows
        # Past the skinny kernels' batch sizes ROCm's GEMMs stream the weights at a smaller share.
        rows_read = decode + prefill
        body_bw = bw * (self.hw.blas_bw_ratio if rows_read > s.skinny_tokens else 1.0)
        head_bw = bw * (self.hw.blas_bw_ratio if rows > s.lm_head_skinny_tokens else 1.0)
        read = s.body_bytes / body_bw + s.lm_head_bytes / head_bw
        t_dense = max(read / tp, dense_flops / tp / (ceff * self.hw.peak))
        # Routed experts: a step reads only the experts its tokens touch, through the fused-MoE kernels
        # (a smaller share of the roofline, MOE_EFF); their FLOPs are the active experts' per token.
        t_exp = 0.0
        if s.num_experts:
            # Wide EP (passes/all2all_perf.py): the DP ranks step together, so a rank's experts see every
            # rank's tokens, and each rank holds 1/ep_dp of the experts.
            frac = touched_expert_fraction(s.num_experts, s.experts_per_tok, tokens * self.ep_dp)
            t_exp = max(
                s.expert_bytes * frac / self.ep_dp / tp / (self.hw.moe_eff * bw),
                2 * s.active_expert_params * n_tok / tp / (ceff * self.hw.peak),
            )
        # Attention reads each context token's KV once per step: the decoders' contexts, and for a
        # prefill chunk the prompt so far (flash attention tiles queries over one pass of the keys).
        pf_ctx = prefill_ctx + p_mb / 2 if p_mb else 0.0
        kv_tokens_full = ctx_mb + pf_ctx
        per_req_ctx = ctx_mb / d_mb if d_mb else 0.0
        kv_tokens_win = d_mb * min(per_req_ctx, s.window) + min(pf_ctx, s.window)
        kv = kv_tokens_full * s.kv_bytes_full + kv_tokens_win * s.kv_bytes_window
        # FLOPs: 4 x attn_dim per (query, key); attention runs in 16 bit whatever the weights are
        # (FlashAttention/FlashInfer on bf16 Q/K/V).
        heads_tp = max(1.0, min(tp, s.attn_dim))
        dec_flops = 4 * s.attn_dim * s.num_layers * ctx_mb / heads_tp
        pf_flops = 4 * s.attn_dim * s.num_layers * p_mb * prefill_ctx / heads_tp
        # Decode attention is a KV read (memory-bound); the chunk's attention runs at the prefill
        # kernel's rate for its mean context.
        pf_eff = self.hw.attn_eff * prefill_ctx / (prefill_ctx + ATTN_CTX_HALF) if p_mb else 1.0
        t_attn = max(
            kv / bw,
            dec_flops / (ceff * self.hw.peak16) + (pf_flops / (pf_eff * self.hw.peak16) if pf_flops else 0.0),
        )
        t = t_dense + t_exp + t_attn
        if tp > 1:
            # Two all-reduces per layer (attention out, MLP out), ring: 2(tp-1)/tp of the message.
            msg = tokens * s.hidden * self.act_bytes
            t += 2 * s.num_layers * (self.hw.allreduce_lat + 2 * (tp - 1) / tp * msg / self.hw.link_bw)
        if pp > 1:
            msg = tokens * s.hidden * self.act_bytes
            t += (pp - 1) * (self.hw.p2p_lat + msg / self.hw.p2p_bw)
        if self.all2all is not None:
            t += s.num_moe_layers * self.all2all.layer_time(tokens)
        # Host overhead: once per token step. vLLM V1 captures graphs by token count; a step with more
        # tokens than the largest captured size runs eager, paying launches on every layer.
        eager = self.eager or decode + prefill > self.graph_max_batch
        host = STEP_OVERHEAD_S + HOST_PER_SEQ_S[self.engine] * (decode + (1 if prefill else 0))
        floor = s.num_layers * LAYER_FLOOR_S + s.num_moe_layers * MOE_LAYER_FLOOR_S
        gpu = t + floor + (EAGER_PER_LAYER_S * s.num_layers if eager else 0.0)
        if self.async_scheduling:
            # Async scheduling (vllm/v1/engine/core.py step_with_batch_queue, the default from the release
            # that enabled it; facts/vllm_versions.json): the scheduler and input preparation of step n+1
            # run while step n is on the GPU, so the host time hides behind the GPU time; what is left is
            # the sampled-token hand-off (ASYNC_RESIDUAL_S).
            return max(gpu, host) + ASYNC_RESIDUAL_S
        return gpu + host

    def prefill_time(self, tokens: float, budget: float) -> float:
        """Seconds to prefill one prompt alone, in chunks of at most `budget` tokens."""
        if tokens <= 0:
            return 0.0
        chunks = max(1, math.ceil(tokens / max(budget, 1.0)))
        size = tokens / chunks
        return sum(self.step_time(0.0, 0.0, size, i * size + size / 2) for i in range(chunks))
