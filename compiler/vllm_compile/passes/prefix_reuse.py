"""Prefix-cache reuse in the performance estimate (`workload.prefix_reuse`).

With prefix caching on, vLLM's scheduler skips the prompt tokens whose blocks are already cached
(`v1/core/kv_cache_manager.py: get_computed_blocks`): only the rest is prefilled, and the cached blocks
are shared between requests. A reuse fraction r therefore scales the prefill work and the KV tokens a
request adds by (1 - r). Attention over the cached prefix is still computed for the new tokens; at the
prompt lengths of the presets it is a small share of the prefill and is not counted.
"""

from __future__ import annotations

from ..plan import EngineConfig, Resolved
from .workload import Lengths, Workload


def reuse(resolved: Resolved, engine: EngineConfig) -> float:
    r = resolved.profile.workload.prefix_reuse or 0.0
    return r if engine.enable_prefix_caching else 0.0


def apply(workload: Workload, resolved: Resolved, engine: EngineConfig) -> tuple[Workload, list[str]]:
    """The workload as the engine computes it, and the assumption to state."""
    given = resolved.profile.workload.prefix_reuse
    if not given:
        return workload, []
    r = reuse(resolved, engine)
    if r == 0.0:
        return workload, [f"workload.prefix_reuse {given:g} ignored: prefix caching is off"]
    p = workload.prompt
    scaled = Lengths(mean=p.mean * (1 - r), p50=p.p50 * (1 - r), p99=p.p99 * (1 - r), max=p.max * (1 - r))
    note = (
        f"prefix cache: {r:.0%} of prompt tokens hit cached blocks (workload.prefix_reuse), so "
        f"{p.mean * (1 - r):.0f} of {p.mean:g} prompt tokens are prefilled per request"
    )
    return workload.model_copy(update={"prompt": scaled}), [note]
