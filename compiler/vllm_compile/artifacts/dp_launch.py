"""Multi-node data parallel (wide expert parallel) without Ray: one `vllm serve` per node.

vLLM's own multi-node DP launch (docs "Data Parallel Deployment", `vllm serve` flags of each release
since 0.9.0): every node runs `--data-parallel-size D --data-parallel-size-local L
--data-parallel-address <node 0> --data-parallel-rpc-port P`; node 0 serves the API, the others add
`--data-parallel-start-rank <node index x L> --headless`. DeepEP's NVLink buffers need every local rank
of a node in one pod (cuda IPC does not cross pods), so a pod is a node: a LeaderWorkerSet whose
leader is node 0 and whose workers are the others (LWS sets LWS_LEADER_ADDRESS and LWS_WORKER_INDEX).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..facts.wide_ep import facts as wide_ep_facts
from ..plan import Plan

# vLLM's RPC port for DP coordination: EngineArgs leaves it None and ParallelConfig.data_parallel_rpc_port
# defaults to 29550 (config/parallel.py); written explicitly so every node agrees.
RPC_PORT = 29550


class DpLaunchError(ValueError):
    pass


@dataclass(frozen=True)
class DpLayout:
    data_parallel_size: int
    local: int  # DP ranks per node
    nodes: int
    gpus_per_node: int  # GPUs a node's pod takes: local x TP x PP

    def leader_args(self, address: str) -> list[str]:
        return [
            "--data-parallel-size-local",
            str(self.local),
            "--data-parallel-address",
            address,
            "--data-parallel-rpc-port",
            str(RPC_PORT),
        ]

    def worker_args(self, address: str, start_rank: str) -> list[str]:
        return [*self.leader_args(address), "--data-parallel-start-rank", start_rank, "--headless"]


def dp_layout(plan: Plan, gpus_per_node: int) -> DpLayout | None:
    """How a DP deployment wider than one node splits over nodes; None where it fits one node."""
    engine = plan.engine
    per_rank = engine.gpus_per_replica
    dp = engine.data_parallel_size
    if dp <= 1 or per_rank * dp <= gpus_per_node or per_rank > gpus_per_node:
        return None
    version = plan.resolved.vllm.version
    if not wide_ep_facts(version).has_dp_launch:
        raise DpLaunchError(
            f"vLLM {version} has no --data-parallel-address: multi-node data parallelism needs 0.9.0 or newer"
        )
    local = engine.data_parallel_size_local or gpus_per_node // per_rank
    if dp % local:
        raise DpLaunchError(
            f"data_parallel_size {dp} does not split into nodes of {local} DP ranks "
            f"({gpus_per_node} GPUs / {per_rank} per rank): set parallelism.data_parallel_size_local"
        )
    return DpLayout(dp, local, dp // local, local * per_rank)
