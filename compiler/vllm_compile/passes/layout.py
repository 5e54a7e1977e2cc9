"""Parallel layouts vLLM can run on the GPUs given: tensor x pipeline x data parallel sizes.

Pure arithmetic over the model's shape and the machine's node size, shared by the settings and
recommend passes. The rules, from vLLM and from what the artifacts can deploy:
- TP must shard the attention heads (ModelFacts.supports_tensor_parallel: heads and KV heads divide,
  or KV heads replicate) and stays inside a node (it all-reduces twice per layer);
- PP at most one stage per decoder layer (vLLM distributed/utils.py get_pp_indices), within a node
  or across nodes;
- DP replicas inside one node (multi-node data parallelism is not generated: deploy.replicas scales
  out instead);
- a replica over several nodes fills them evenly, each node whole TP groups;
- every GPU given is used: tp x pp x dp == gpus.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Layout = tuple[int, int, int]  # (tp, pp, dp)

# Bounded search: at most this many layouts are evaluated (the smallest pipelines and fewest replicas
# first, which are the fast ones); with the schema's 1,024 GPUs there are rarely more than a dozen.
MAX_LAYOUTS = 24


def valid(layout: Layout, gpus: int, per_node: int, layers: int, shards: Callable[[int], bool]) -> bool:
    tp, pp, dp = layout
    if tp < 1 or pp < 1 or dp < 1 or tp * pp * dp != gpus or pp > layers or not shards(tp):
        return False
    if dp > 1 and gpus > per_node:
        return False
    replica = tp * pp
    if replica > per_node:
        if tp > per_node:
            return False
        nodes = math.ceil(replica / per_node)
        if replica % nodes or (replica // nodes) % tp:
            return False
    return True


def candidates(
    gpus: int,
    per_node: int,
    layers: int,
    shards: Callable[[int], bool],
    fixed: tuple[int | None, int | None, int | None] = (None, None, None),
) -> list[Layout]:
    """Every valid layout that keeps the fixed sizes. A user who fixed TP or PP did not ask for
    replicas: DP stays 1 then unless DP is fixed too."""
    fixed_tp, fixed_pp, fixed_dp = fixed
    no_dp = (fixed_tp is not None or fixed_pp is not None) and fixed_dp is None
    out: list[Layout] = []
    for tp in [fixed_tp] if fixed_tp is not None else range(1, min(gpus, per_node) + 1):
        if gpus % tp:
            continue
        rest = gpus // tp
        for pp in [fixed_pp] if fixed_pp is not None else _divisors(rest):
            if rest % pp:
                continue
            dp = rest // pp
            if (fixed_dp is not None and dp != fixed_dp) or (no_dp and dp != 1):
                continue
            if valid((tp, pp, dp), gpus, per_node, layers, shards):
                out.append((tp, pp, dp))
    out.sort(key=lambda layout: (layout[1], layout[2], -layout[0]))
    return out[:MAX_LAYOUTS]


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})


def largest_replica(per_node: int, layers: int, shards: Callable[[int], bool]) -> int:
    """The most GPUs one replica of this model can use: the largest TP inside a node times one
    pipeline stage per layer."""
    tp = max(t for t in range(1, per_node + 1) if shards(t))
    return tp * layers


def no_layout_message(gpus: int, per_node: int, layers: int, shards: Callable[[int], bool]) -> str:
    """Why no layout uses `gpus`, and the GPU counts near it that have one."""
    near = [
        n
        for n in range(max(1, gpus - 16), gpus + 17)
        if n != gpus and candidates(n, per_node, layers, shards)
    ]
    below = max((n for n in near if n < gpus), default=None)
    above = min((n for n in near if n > gpus), default=None)
    options = " or ".join(str(n) for n in (below, above) if n is not None)
    cap = largest_replica(per_node, layers, shards)
    return (
        f"no tensor x pipeline x data parallel layout vLLM can run uses all {gpus} GPUs for one replica "
        f"({per_node} GPUs per node, {layers} layers: TP must shard the heads and stay in a node, at most "
        f"one pipeline stage per layer, replicas (DP) within a node"
        + (f"; one replica uses at most {cap}" if cap < gpus else "")
        + ")"
        + (f"; hardware.gpus: {options} has a layout" if options else "")
        + "; more GPUs serve more load as deploy.replicas"
    )
