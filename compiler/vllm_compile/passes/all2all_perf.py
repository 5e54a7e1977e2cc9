"""Wide expert parallel in the step time: the all-to-all dispatch and combine of every MoE layer.

Each DP rank sends each of its tokens to the EP ranks that hold the token's top-k experts (dispatch)
and receives the expert outputs back (combine). Bytes per token per MoE layer, as vLLM's backends
send them (fused_moe/prepare_finalize/deepep_ll.py, deepep_ht.py):
- dispatch: hidden x 1 byte (fp8, when the experts are block-fp8 quantized: `use_fp8_dispatch`) plus
  hidden/128 fp32 scales, or hidden x 2 bytes (bf16);
- combine: hidden x 2 bytes (bf16);
to each of the top-k destinations (DeepEP LL sends per expert; a destination on the sender itself is
a local copy). A share of the destinations is on another node: (ep - ranks per node) / ep for experts
spread evenly. Intra-node bytes go over NVLink, inter-node bytes over one NIC per GPU.

Naive / allgather_reducescatter instead all-gather every rank's tokens to every rank and
reduce-scatter the outputs: (ep - 1) x tokens x hidden x 2 bytes each way (all2all.py AgRsAll2AllManager).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..facts.gpu_spec import GpuSpec
from ..facts.model_facts import ModelFacts
from ..plan import EngineConfig
from .all2all import ep_size, uses_all2all

# One NIC per GPU, one direction (GB/s): 400 Gb/s NDR InfiniBand (NVIDIA ConnectX-7 datasheet) and
# 400 GbE RoCE; "unknown" across nodes is taken as InfiniBand, the fabric wide-EP deployments use.
NIC_GBPS = {"infiniband": 50.0, "ethernet": 50.0, "unknown": 50.0, "nvlink": 50.0, "pcie": 50.0}
# Fixed cost of one dispatch or combine kernel (launch, per-expert signalling), on top of the bytes over
# the links. DeepEP's README (low-latency kernels, H800 + CX7 400 Gb/s, 128 tokens, hidden 7168, top-8,
# fp8 dispatch / bf16 combine) measures 118 us dispatch + 195 us combine at EP16 over RDMA, where the bytes
# alone take ~150 + ~290 us at 50 GB/s: its achieved "RDMA bandwidth" (63/74 GB/s) is above one NIC's,
# so the cost is bandwidth-bound and the fixed part is small (tests/test_wide_ep.py compares the two).
LAT_INTRA_S = 2 * 10e-6
LAT_INTER_S = 2 * 20e-6
# NCCL all-gather / reduce-scatter fixed latency per call (NCCL tests, tens of microseconds).
LAT_NCCL_S = 30e-6


@dataclass(frozen=True)
class AllToAllCost:
    backend: str
    ep: int
    per_node: int
    hidden: int
    topk: int
    dispatch_bytes: float  # per token per destination
    combine_bytes: float
    nvlink_bw: float  # bytes/s
    nic_bw: float  # bytes/s

    @property
    def remote_share(self) -> float:
        return max(0, self.ep - self.per_node) / self.ep

    def layer_time(self, tokens: float) -> float:
        """Seconds of one MoE layer's dispatch + combine for `tokens` on this rank."""
        if tokens <= 0:
            return 0.0
        if self.backend in ("naive", "allgather_reducescatter"):
            msg = tokens * self.hidden * 2 * (self.ep - 1)
            bw = self.nic_bw if self.remote_share else self.nvlink_bw
            return 2 * (LAT_NCCL_S + msg / bw)
        per_token = (self.dispatch_bytes + self.combine_bytes) * self.topk
        remote = per_token * tokens * self.remote_share
        local = per_token * tokens * (1 - self.remote_share)
        lat = LAT_INTER_S if self.remote_share else LAT_INTRA_S
        return lat + max(local / self.nvlink_bw, remote / self.nic_bw)


def cost(
    model: ModelFacts, engine: EngineConfig, gpu: GpuSpec, per_node: int, interconnect: str
) -> AllToAllCost | None:
    if not uses_all2all(model, engine):
        return None
    h = model.hidden_size
    fp8 = (engine.quantization or "") in ("fp8", "compressed-tensors", "modelopt")
    dispatch = h + h // 128 * 4 if fp8 else 2 * h
    nvlink = (gpu.nvlink_gbps or 0) / 2 * 1e9 or NIC_GBPS["pcie"] * 1e9
    return AllToAllCost(
        backend=engine.all2all_backend or "allgather_reducescatter",
        ep=ep_size(engine),
        per_node=min(per_node, ep_size(engine)),
        hidden=h,
        topk=max(1, model.num_experts_per_tok),
        dispatch_bytes=dispatch,
        combine_bytes=2 * h,
        nvlink_bw=nvlink,
        nic_bw=NIC_GBPS.get(interconnect, 50.0) * 1e9,
    )


def assumption(c: AllToAllCost | None) -> list[str]:
    if c is None:
        return []
    where = (
        f"{c.remote_share:.0%} of destinations across nodes at {c.nic_bw / 1e9:.0f} GB/s per GPU"
        if c.remote_share
        else "all destinations on the node's NVLink"
    )
    return [
        f"wide EP: {c.backend} dispatch + combine per MoE layer over {c.ep} EP ranks ({where}); "
        f"{c.layer_time(128) * 1e6:.0f} us per layer at 128 tokens per rank"
    ]
