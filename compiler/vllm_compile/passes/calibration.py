"""Calibration pass: a repository measurement replaces the modelled terms vLLM's code does not determine.

For a deployment a record matches (observe.calibration.find_match: same model, GPU, release and the
settings that shape these terms), the measured activation peak, non-torch memory and (where the release
deducts it) vLLM's own CUDA graph estimate replace the modelled ones on the measured pipeline stage; the KV
cache is then sized again exactly as the memory pass does (available = budget - weights - activation -
non-torch - graphs, blocks, tokens, concurrency). Weights stay modelled: vLLM's code determines them.
Pure: the same record gives the same plan.
"""

from __future__ import annotations

from ..facts.weights import pp_layer_range
from ..observe.calibration import CalibrationRecord
from ..plan import EngineConfig, MemoryPlan, Resolved
from ..units import gib
from . import kv_cache as kv
from .memory import largest_max_model_len
from .memory_terms import gib_bytes, terms_for


def apply_calibration(
    resolved: Resolved, engine: EngineConfig, memory: MemoryPlan, record: CalibrationRecord, source: str
) -> tuple[MemoryPlan, dict]:
    """The memory plan with the record's terms, and what the lock records about the substitution."""
    model, version = resolved.model, resolved.vllm
    observed = record.observed
    stage = record.pp_rank
    replaced: dict[str, dict[str, float]] = {}
    ranks, stages, available = [], [], []
    for rank in memory.ranks:
        update: dict[str, int] = {}
        if rank.pp_rank == stage:
            for term, field in (
                ("activation_peak_gib", "activation_peak_bytes"),
                ("non_torch_gib", "non_torch_bytes"),
            ):
                if observed.get(term) is not None:
                    update[field] = gib_bytes(float(observed[term]))
                    replaced[term] = {
                        "measured": float(observed[term]),
                        "modelled": gib(getattr(rank, field)),
                    }
            graph = observed.get("cuda_graph_estimated_gib")
            if rank.cuda_graph_bytes and graph is not None:  # only where this release deducts the pool
                update["cuda_graph_bytes"] = gib_bytes(float(graph))
                replaced["cuda_graph_gib"] = {
                    "measured": float(graph),
                    "modelled": gib(rank.cuda_graph_bytes),
                }
        new = rank.model_copy(update=update)
        kv_bytes = (
            new.requested_bytes - new.weights_bytes - new.activation_peak_bytes - new.non_torch_bytes
            - new.cuda_graph_bytes
        )  # fmt: skip
        if engine.kv_cache_memory_bytes is not None:
            kv_bytes = engine.kv_cache_memory_bytes
        layers = pp_layer_range(model.num_hidden_layers, engine.pipeline_parallel_size, rank.pp_rank)
        stage_kv = kv.stage_kv(model, engine, layers)
        ranks.append(
            new.model_copy(
                update={
                    "kv_cache_bytes": kv_bytes,
                    "num_blocks": kv.num_blocks(kv_bytes, stage_kv.block_bytes),
                }
            )
        )
        stages.append(stage_kv)
        available.append(kv_bytes)
    terms = terms_for(version.version, version.engine)
    # In-flight steps as the memory pass counts them (pp + 1 with the 0.33 runner's async scheduling).
    batches = engine.pipeline_parallel_size + 1 if terms.sw_in_flight_async else 1
    plan, binding = kv.plan_kv_cache(
        model, engine, stages, available, in_flight_batches=batches, tokens_formula=terms.tokens_formula
    )
    summary = ", ".join(
        f"{t} {v['measured']} GiB (modelled {v['modelled']})" for t, v in sorted(replaced.items())
    )
    calibrated = memory.model_copy(
        update={
            "ranks": ranks,
            "binding_pp_rank": binding,
            "kv": plan,
            "largest_max_model_len": largest_max_model_len(model, engine, stages, available, batches),
            "assumptions": [
                *memory.assumptions,
                f"calibrated from repository measurement {record.id} ({source}): {summary}",
            ],
        }
    )
    used = {
        "id": record.id,
        "file": source,
        "log_sha256": record.log_sha256,
        "pp_rank": stage,
        "terms": replaced,
    }
    return calibrated, used
